// InMemoryTlsServer: one wolfSSL server connection on memory buffers. A test moves ciphertext
// between it and the code under test (TlsClient, UpstreamTransport) the way a worker moves it
// between that code and the socket (Feed / TakeOutput), so every byte the client side sees went
// through its own I/O path. TlsTestCertificates makes a throw-away CA and server certificates
// with tests/integration/test_ca.sh (the script the Dovecot integration tests use too).
//
// Header-only, for the tests of core/tls_client, core/tls/ and core/transport/.
#pragma once

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include "gtest/gtest.h"

namespace mailring::core {

class InMemoryTlsServer {
 public:
  // A server with a context of its own: `method` e.g. wolfTLS_server_method() or
  // wolfTLSv1_2_server_method(); `chain` and `key`: PEM files.
  InMemoryTlsServer(WOLFSSL_METHOD* method, const std::string& chain, const std::string& key) {
    ctx_ = wolfSSL_CTX_new(method);
    EXPECT_NE(ctx_, nullptr);
    EXPECT_EQ(wolfSSL_CTX_use_certificate_chain_file(ctx_, chain.c_str()), WOLFSSL_SUCCESS);
    EXPECT_EQ(wolfSSL_CTX_use_PrivateKey_file(ctx_, key.c_str(), WOLFSSL_FILETYPE_PEM),
              WOLFSSL_SUCCESS);
    Connect();
  }
  InMemoryTlsServer(const std::string& chain, const std::string& key)
      : InMemoryTlsServer(wolfTLS_server_method(), chain, key) {}
  // A connection of `shared_ctx` (not owned): servers of one context share its ticket key and
  // session cache, so a client may resume with one what it got from another.
  explicit InMemoryTlsServer(WOLFSSL_CTX* shared_ctx) : owns_ctx_(false), ctx_(shared_ctx) {
    Connect();
  }
  ~InMemoryTlsServer() {
    wolfSSL_free(ssl_);
    if (owns_ctx_) wolfSSL_CTX_free(ctx_);
  }
  InMemoryTlsServer(const InMemoryTlsServer&) = delete;
  InMemoryTlsServer& operator=(const InMemoryTlsServer&) = delete;

  WOLFSSL* ssl() { return ssl_; }
  void Feed(std::string_view bytes) { input_.append(bytes); }
  std::string TakeOutput() { return std::exchange(output_, std::string()); }

  // wolfSSL_accept's outcome: 1 done, 0 wants input, < 0 the wolfSSL error (negative).
  int Accept() {
    const int result = wolfSSL_accept(ssl_);
    if (result == WOLFSSL_SUCCESS) return 1;
    const int error = wolfSSL_get_error(ssl_, result);
    return error == WOLFSSL_ERROR_WANT_READ ? 0 : (error < 0 ? error : -error);
  }
  bool Write(std::string_view plaintext) {
    return wolfSSL_write(ssl_, plaintext.data(), static_cast<int>(plaintext.size())) ==
           static_cast<int>(plaintext.size());
  }
  // Appends what the fed records decrypt to; returns wolfSSL_get_error of the last read
  // (WOLFSSL_ERROR_WANT_READ when all was consumed).
  int ReadAll(std::string* out) {
    char buffer[16384];
    for (;;) {
      const int got = wolfSSL_read(ssl_, buffer, sizeof(buffer));
      if (got <= 0) return wolfSSL_get_error(ssl_, got);
      out->append(buffer, static_cast<size_t>(got));
    }
  }
  // What the fed records decrypt to.
  std::string ReadAll() {
    std::string out;
    ReadAll(&out);
    return out;
  }
  // Queues a close_notify into the output.
  void Shutdown() { wolfSSL_shutdown(ssl_); }

  // Runs the handshakes of `client` (a TlsClient: Handshake / Feed / TakeOutput) and this server
  // to their end, moving the ciphertext in memory, in at most `max_rounds` rounds: the client's
  // last Handshake() result (kDone once both are done).
  template <typename Client>
  typename Client::Result HandshakeWith(Client& client, int max_rounds = 10000) {
    typename Client::Result result = Client::Result::kWantInput;
    int server_state = 0;
    for (int round = 0; round < max_rounds; ++round) {
      result = client.Handshake();
      Feed(client.TakeOutput());
      if (server_state == 0) server_state = Accept();
      client.Feed(TakeOutput());
      if (result == Client::Result::kError) return result;
      if (result == Client::Result::kDone && server_state != 0) return result;
    }
    ADD_FAILURE() << "handshake did not finish in " << max_rounds << " rounds";
    return result;
  }

 private:
  void Connect() {
    ssl_ = wolfSSL_new(ctx_);
    EXPECT_NE(ssl_, nullptr);
    wolfSSL_SSLSetIORecv(ssl_, &InMemoryTlsServer::Receive);
    wolfSSL_SSLSetIOSend(ssl_, &InMemoryTlsServer::Send);
    wolfSSL_SetIOReadCtx(ssl_, this);
    wolfSSL_SetIOWriteCtx(ssl_, this);
  }
  static int Receive(WOLFSSL*, char* buffer, int size, void* context) {
    auto* self = static_cast<InMemoryTlsServer*>(context);
    if (self->input_.empty()) return WOLFSSL_CBIO_ERR_WANT_READ;
    const size_t n = std::min(self->input_.size(), static_cast<size_t>(size));
    self->input_.copy(buffer, n);
    self->input_.erase(0, n);
    return static_cast<int>(n);
  }
  static int Send(WOLFSSL*, char* buffer, int size, void* context) {
    static_cast<InMemoryTlsServer*>(context)->output_.append(buffer, static_cast<size_t>(size));
    return size;
  }

  bool owns_ctx_ = true;
  WOLFSSL_CTX* ctx_ = nullptr;
  WOLFSSL* ssl_ = nullptr;
  std::string input_;
  std::string output_;
};

// Certificates for "localhost" from tests/integration/test_ca.sh: File("ca.pem"),
// File("server-chain.pem"), File("server.key"), ... error() is set when the script failed (no
// openssl); tests then skip.
//
// One set per `name`, shared by every test process of the build: ctest runs each test in a process
// of its own, and making two CAs per process (EC keys, a dozen openssl runs) cost ~3 s per TLS test
// under ASan on a loaded machine. The script is idempotent and takes a lock, so concurrent
// processes may ask for the same set; the certificates are valid for 10 years and are never
// modified by a test. The sets live in MAILRING_TEST_CA_DIR (the build tree, set by
// tests/core/CMakeLists.txt), else under the system's temporary directory.
class TlsTestCertificates {
 public:
  explicit TlsTestCertificates(std::string_view name = "ca") : dir_(Root() / name) {
    const std::string command = "'" + Script().string() + "' '" + dir_.string() + "' 2>&1";
    if (std::system(command.c_str()) != 0) error_ = "test_ca.sh failed (is openssl installed?)";
  }

  // tests/integration/test_ca.sh; __FILE__ is this header's path in the CMake build.
  static std::filesystem::path Script() {
    return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() /
           "integration" / "test_ca.sh";
  }

  const std::string& error() const { return error_; }
  const std::filesystem::path& dir() const { return dir_; }
  std::string File(std::string_view name) const { return (dir_ / name).string(); }

 private:
  static std::filesystem::path Root() {
#ifdef MAILRING_TEST_CA_DIR
    return MAILRING_TEST_CA_DIR;
#else
    return std::filesystem::temp_directory_path() / "mailring-test-ca";
#endif
  }

  std::filesystem::path dir_;
  std::string error_;
};

}  // namespace mailring::core
