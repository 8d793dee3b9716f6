// TlsTestServer: one wolfSSL server connection on memory buffers, for the transport tests: the
// test moves ciphertext between it and the transport the way the session moves it between the
// transport and the socket. TlsTestCertificates makes a throw-away CA with
// tests/integration/test_ca.sh (the same script tests/core/tls_client_test.cc and the Dovecot
// integration tests use).
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

class TlsTestServer {
 public:
  // `chain` and `key`: PEM files.
  TlsTestServer(const std::string& chain, const std::string& key) {
    ctx_ = wolfSSL_CTX_new(wolfTLS_server_method());
    EXPECT_NE(ctx_, nullptr);
    EXPECT_EQ(wolfSSL_CTX_use_certificate_chain_file(ctx_, chain.c_str()), WOLFSSL_SUCCESS);
    EXPECT_EQ(wolfSSL_CTX_use_PrivateKey_file(ctx_, key.c_str(), WOLFSSL_FILETYPE_PEM),
              WOLFSSL_SUCCESS);
    ssl_ = wolfSSL_new(ctx_);
    EXPECT_NE(ssl_, nullptr);
    wolfSSL_SSLSetIORecv(ssl_, &TlsTestServer::Receive);
    wolfSSL_SSLSetIOSend(ssl_, &TlsTestServer::Send);
    wolfSSL_SetIOReadCtx(ssl_, this);
    wolfSSL_SetIOWriteCtx(ssl_, this);
  }
  ~TlsTestServer() {
    wolfSSL_free(ssl_);
    wolfSSL_CTX_free(ctx_);
  }
  TlsTestServer(const TlsTestServer&) = delete;
  TlsTestServer& operator=(const TlsTestServer&) = delete;

  void Feed(std::string_view bytes) { input_.append(bytes); }
  std::string TakeOutput() { return std::exchange(output_, std::string()); }

  // wolfSSL_accept's outcome: 1 done, 0 wants input, <0 failed.
  int Accept() {
    const int result = wolfSSL_accept(ssl_);
    if (result == WOLFSSL_SUCCESS) return 1;
    const int error = wolfSSL_get_error(ssl_, result);
    return error == WOLFSSL_ERROR_WANT_READ ? 0 : -1;
  }
  bool Write(std::string_view plaintext) {
    return wolfSSL_write(ssl_, plaintext.data(), static_cast<int>(plaintext.size())) ==
           static_cast<int>(plaintext.size());
  }
  // What the fed records decrypt to.
  std::string ReadAll() {
    std::string out;
    char buffer[16384];
    for (;;) {
      const int got = wolfSSL_read(ssl_, buffer, sizeof(buffer));
      if (got <= 0) return out;
      out.append(buffer, static_cast<size_t>(got));
    }
  }
  void Shutdown() { wolfSSL_shutdown(ssl_); }

 private:
  static int Receive(WOLFSSL*, char* buffer, int size, void* context) {
    auto* self = static_cast<TlsTestServer*>(context);
    if (self->input_.empty()) return WOLFSSL_CBIO_ERR_WANT_READ;
    const size_t n = std::min(self->input_.size(), static_cast<size_t>(size));
    self->input_.copy(buffer, n);
    self->input_.erase(0, n);
    return static_cast<int>(n);
  }
  static int Send(WOLFSSL*, char* buffer, int size, void* context) {
    static_cast<TlsTestServer*>(context)->output_.append(buffer, static_cast<size_t>(size));
    return size;
  }

  WOLFSSL_CTX* ctx_ = nullptr;
  WOLFSSL* ssl_ = nullptr;
  std::string input_;
  std::string output_;
};

// A CA and server certificates for "localhost" in a temporary directory, made once per test
// suite; error() is set when the script failed (no openssl), and tests then skip.
class TlsTestCertificates {
 public:
  TlsTestCertificates() {
    char pattern[] = "/tmp/transport_test.XXXXXX";
    if (mkdtemp(pattern) == nullptr) {
      error_ = "mkdtemp failed";
      return;
    }
    dir_ = pattern;
    // __FILE__ is this file's absolute path in the CMake build.
    const std::filesystem::path script =
        std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "integration" /
        "test_ca.sh";
    const std::string command = "'" + script.string() + "' '" + dir_.string() + "' 2>&1";
    if (std::system(command.c_str()) != 0) error_ = "test_ca.sh failed (is openssl installed?)";
  }
  ~TlsTestCertificates() {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  const std::string& error() const { return error_; }
  std::string File(std::string_view name) const { return (dir_ / name).string(); }

 private:
  std::filesystem::path dir_;
  std::string error_;
};

}  // namespace mailring::core
