// TlsRelay on real loopback sockets: an application socket on one side, and on the other a
// socket whose far end the test bridges to an in-memory wolfSSL server. Covers both decrypting
// paths (records opened in place after the take-over, wolfSSL's copies before it), a client
// socket that takes little at a time (views sent in parts), plaintext left over from the login
// dialog, a forged record, close_notify both ways.
#include "core/tls_relay.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/tls/tls13_record_layer.h"
#include "core/tls_client.h"
#include "gtest/gtest.h"
#include "tests/core/byte_pattern.h"
#include "tests/core/loopback.h"
#include "tests/core/tls/in_memory_tls_server.h"

namespace mailring::core {
namespace {

using mailring::testing::SetNonBlocking;
using mailring::testing::TcpPair;
using Wait = RelayLeg::Wait;

// Every loop in these tests is bounded by this many rounds and by kDeadline. Rounds that move
// nothing wait for the kernel (WaitForAny) rather than spin: a small send buffer on loopback is
// freed only as ACKs arrive, and a spinning loop would spend its rounds before they do on a fast
// or loaded machine.
constexpr int kMaxRounds = 200000;
constexpr std::chrono::seconds kDeadline(60);

bool InTime(std::chrono::steady_clock::time_point start) {
  return std::chrono::steady_clock::now() - start < kDeadline;
}

// Waits until one of `fds` is ready, at most 100 ms (fds with no events are ignored by poll).
void WaitForAny(std::initializer_list<pollfd> fds) {
  std::vector<pollfd> polled(fds);
  ::poll(polled.data(), polled.size(), 100);
}

using mailring::testing::BytePattern;

// Reads what `fd` (non-blocking) has, at most `limit` bytes; sets *eof on EOF.
std::string ReadAvailable(int fd, size_t limit, bool* eof) {
  std::string out;
  char buffer[65536];
  while (out.size() < limit) {
    const ssize_t n =
        ::recv(fd, buffer, std::min(sizeof(buffer), limit - out.size()), MSG_DONTWAIT);
    if (n == 0) *eof = true;
    if (n <= 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  return out;
}

class TlsRelayTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ca_ = new TlsTestCertificates("ca"); }
  static void TearDownTestSuite() {
    delete ca_;
    ca_ = nullptr;
  }

  // Connects the TLS client to the in-memory server, reads the greeting (which lets the record
  // layer take over when `take_over`), and builds the relay between the two socket pairs.
  void Start(bool take_over) {
    if (!ca_->error().empty()) GTEST_SKIP() << ca_->error();
    TlsContextOptions options;
    options.use_system_ca = false;
    options.ca_file = ca_->File("ca.pem");
    options.take_over_records = take_over;
    absl::StatusOr<std::unique_ptr<TlsContext>> context = TlsContext::Create(options);
    ASSERT_TRUE(context.ok()) << context.status();
    context_ = std::move(*context);
    server_ =
        std::make_unique<InMemoryTlsServer>(ca_->File("server-chain.pem"), ca_->File("server.key"));
    tls_ = std::make_unique<TlsClient>(*context_, "localhost", true);
    ASSERT_EQ(server_->HandshakeWith(*tls_), TlsClient::Result::kDone) << tls_->error();
    ASSERT_TRUE(server_->Write("* OK ready\r\n"));
    tls_->Feed(server_->TakeOutput());
    std::string greeting;
    ASSERT_EQ(tls_->Read(&greeting, 65536), TlsClient::Result::kDone) << tls_->error();
    ASSERT_EQ(greeting, "* OK ready\r\n");
    ASSERT_EQ(tls_->took_over_records(), take_over);

    std::tie(app_, client_fd_) = TcpPair();
    std::tie(upstream_fd_, server_end_) = TcpPair();
    for (int fd : {app_, client_fd_, upstream_fd_, server_end_}) SetNonBlocking(fd);
    relay_ = std::make_unique<TlsRelay>(client_fd_, upstream_fd_, tls_.get());
  }

  void TearDown() override {
    relay_.reset();
    for (int fd : {app_, client_fd_, upstream_fd_, server_end_}) {
      if (fd >= 0) ::close(fd);
    }
  }

  // Sends what it can of `*ciphertext` into the server's end of the upstream socket.
  void PushCiphertext(std::string* ciphertext) {
    const ssize_t n = ::send(server_end_, ciphertext->data(), ciphertext->size(), MSG_DONTWAIT);
    if (n > 0) ciphertext->erase(0, static_cast<size_t>(n));
  }

  // Server → application: the server writes `data` in 256 KiB writes, the relay pumps, and the
  // application reads at most `read_limit` bytes per round (a small limit keeps the client's
  // socket full, so the relay's views go out in parts), until `expect` bytes arrived (default:
  // all of `data`). Returns what the application received; `*last` is the last PumpToClient
  // result.
  std::string RelayDown(std::string_view data, size_t read_limit, Wait* last, size_t expect = 0) {
    if (expect == 0) expect = data.size();
    std::string received;
    std::string ciphertext;
    size_t written = 0;
    bool eof = false;
    const auto start = std::chrono::steady_clock::now();
    for (int round = 0; round < kMaxRounds && InTime(start) && received.size() < expect && !eof;
         ++round) {
      if (ciphertext.empty() && written < data.size()) {
        const std::string_view piece = data.substr(written, 256u << 10);
        EXPECT_TRUE(server_->Write(piece));
        written += piece.size();
        ciphertext = server_->TakeOutput();
      }
      PushCiphertext(&ciphertext);
      *last = relay_->PumpToClient(1u << 20);
      if (*last == Wait::kFailed || *last == Wait::kFinished) break;
      const std::string got = ReadAvailable(app_, read_limit, &eof);
      received += got;
      if (got.empty() && *last != Wait::kYield) {
        const bool more_to_push = !ciphertext.empty() || written < data.size();
        WaitForAny({{app_, POLLIN, 0},
                    {upstream_fd_, static_cast<short>(*last == Wait::kReadable ? POLLIN : 0), 0},
                    {client_fd_, static_cast<short>(*last == Wait::kWritable ? POLLOUT : 0), 0},
                    {server_end_, static_cast<short>(more_to_push ? POLLOUT : 0), 0}});
      }
    }
    received += ReadAvailable(app_, SIZE_MAX, &eof);
    return received;
  }

  // Pumps server → client until the relay finishes that direction (expected: the upstream's
  // bytes are all in the upstream socket, followed by its end), then reads the application's
  // socket to EOF: what arrived, *eof when the EOF came.
  std::string PumpUntilTheClientsDirectionEnds(bool* eof) {
    Wait last = Wait::kReadable;
    const auto start = std::chrono::steady_clock::now();
    for (int round = 0;
         round < kMaxRounds && InTime(start) && last != Wait::kFinished && last != Wait::kFailed;
         ++round) {
      last = relay_->PumpToClient(1u << 20);
      if (last == Wait::kReadable) WaitForAny({{upstream_fd_, POLLIN, 0}});
    }
    EXPECT_EQ(last, Wait::kFinished) << relay_->tls_error();
    std::string received;
    for (int round = 0; round < kMaxRounds && InTime(start) && !*eof; ++round) {
      received += ReadAvailable(app_, SIZE_MAX, eof);
      if (!*eof) WaitForAny({{app_, POLLIN, 0}});
    }
    return received;
  }

  static inline TlsTestCertificates* ca_ = nullptr;
  std::unique_ptr<TlsContext> context_;
  std::unique_ptr<InMemoryTlsServer> server_;
  std::unique_ptr<TlsClient> tls_;
  std::unique_ptr<TlsRelay> relay_;
  int app_ = -1;
  int client_fd_ = -1;
  int upstream_fd_ = -1;
  int server_end_ = -1;
};

TEST_F(TlsRelayTest, TwentyMebibytesDownAreByteIdenticalThroughRecordsOpenedInPlace) {
  ASSERT_NO_FATAL_FAILURE(Start(/*take_over=*/true));
  if (IsSkipped()) return;
  const std::string data = BytePattern(20u << 20, 3);
  const Tls13RecordLayerCounts before = Tls13RecordLayerRecordCounts();
  Wait last = Wait::kReadable;
  const std::string received = RelayDown(data, 1u << 20, &last);
  EXPECT_NE(last, Wait::kFailed) << relay_->tls_error();
  ASSERT_EQ(received.size(), data.size());
  EXPECT_TRUE(received == data) << "the relayed bytes differ";
  EXPECT_EQ(relay_->bytes_to_client(), data.size());
  EXPECT_GE(Tls13RecordLayerRecordCounts().opened - before.opened, data.size() / 16384);
}

TEST_F(TlsRelayTest, ASlowClientTakesTheOpenedRecordsInParts) {
  ASSERT_NO_FATAL_FAILURE(Start(/*take_over=*/true));
  if (IsSkipped()) return;
  // A client socket that holds little: most sends stop inside a record's plaintext.
  const int small = 4096;
  ::setsockopt(client_fd_, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  const std::string data = BytePattern(2u << 20, 5);
  Wait last = Wait::kReadable;
  const std::string received = RelayDown(data, 7001, &last);
  EXPECT_NE(last, Wait::kFailed) << relay_->tls_error();
  ASSERT_EQ(received.size(), data.size());
  EXPECT_TRUE(received == data) << "the relayed bytes differ";
}

TEST_F(TlsRelayTest, WithoutTheTakeOverWolfSslCarriesTheBytes) {
  ASSERT_NO_FATAL_FAILURE(Start(/*take_over=*/false));
  if (IsSkipped()) return;
  const std::string data = BytePattern(4u << 20, 7);
  Wait last = Wait::kReadable;
  const std::string received = RelayDown(data, 1u << 20, &last);
  EXPECT_NE(last, Wait::kFailed) << relay_->tls_error();
  ASSERT_EQ(received.size(), data.size());
  EXPECT_TRUE(received == data) << "the relayed bytes differ";
  EXPECT_FALSE(tls_->took_over_records());
}

TEST_F(TlsRelayTest, PlaintextLeftByTheDialogGoesFirst) {
  ASSERT_NO_FATAL_FAILURE(Start(/*take_over=*/true));
  if (IsSkipped()) return;
  // The dialog read 5 bytes of a record; the relay must deliver the rest before anything new.
  ASSERT_TRUE(server_->Write("a1 OK done\r\n"));
  tls_->Feed(server_->TakeOutput());
  std::string dialog;
  ASSERT_EQ(tls_->Read(&dialog, 5), TlsClient::Result::kDone);
  ASSERT_EQ(dialog, "a1 OK");
  Wait last = Wait::kReadable;
  const std::string received = RelayDown("* 1 EXISTS\r\n", 65536, &last, 7 + 12);
  EXPECT_EQ(received, " done\r\n* 1 EXISTS\r\n");
}

TEST_F(TlsRelayTest, AForgedRecordFailsTheRelayAfterTheGoodBytes) {
  ASSERT_NO_FATAL_FAILURE(Start(/*take_over=*/true));
  if (IsSkipped()) return;
  ASSERT_TRUE(server_->Write("good\r\n"));
  ASSERT_TRUE(server_->Write("forged\r\n"));
  std::string ciphertext = server_->TakeOutput();
  ciphertext[ciphertext.size() - 20] ^= 0x01;  // inside the second record's body
  PushCiphertext(&ciphertext);
  ASSERT_TRUE(ciphertext.empty());
  Wait last = Wait::kReadable;
  std::string received;
  bool eof = false;
  const auto start = std::chrono::steady_clock::now();
  for (int round = 0; round < kMaxRounds && InTime(start) && last != Wait::kFailed; ++round) {
    last = relay_->PumpToClient(1u << 20);
    received += ReadAvailable(app_, SIZE_MAX, &eof);
    if (last == Wait::kReadable) WaitForAny({{upstream_fd_, POLLIN, 0}});
  }
  ASSERT_EQ(last, Wait::kFailed);
  EXPECT_EQ(received, "good\r\n");
  EXPECT_NE(relay_->tls_error().find("integrity check"), std::string::npos) << relay_->tls_error();
}

TEST_F(TlsRelayTest, TheServersCloseNotifyEndsTheClientsDirection) {
  ASSERT_NO_FATAL_FAILURE(Start(/*take_over=*/true));
  if (IsSkipped()) return;
  ASSERT_TRUE(server_->Write("* BYE\r\n"));
  server_->Shutdown();
  std::string ciphertext = server_->TakeOutput();
  PushCiphertext(&ciphertext);
  bool eof = false;
  const std::string received = PumpUntilTheClientsDirectionEnds(&eof);
  EXPECT_EQ(received, "* BYE\r\n");
  EXPECT_TRUE(eof);
}

TEST_F(TlsRelayTest, AnUpstreamThatHangsUpWithoutCloseNotifyEndsTheClientsDirection) {
  ASSERT_NO_FATAL_FAILURE(Start(/*take_over=*/true));
  if (IsSkipped()) return;
  // IMAP servers often close TCP right after LOGOUT's answer, without a close_notify.
  ASSERT_TRUE(server_->Write("* BYE\r\na1 OK\r\n"));
  std::string ciphertext = server_->TakeOutput();
  PushCiphertext(&ciphertext);
  ASSERT_TRUE(ciphertext.empty());
  ::shutdown(server_end_, SHUT_WR);
  bool eof = false;
  const std::string received = PumpUntilTheClientsDirectionEnds(&eof);
  EXPECT_EQ(received, "* BYE\r\na1 OK\r\n");
  EXPECT_TRUE(eof);
}

TEST_F(TlsRelayTest, ClientBytesGoUpAsRecordsAndItsEofAsCloseNotify) {
  ASSERT_NO_FATAL_FAILURE(Start(/*take_over=*/true));
  if (IsSkipped()) return;
  const std::string data = BytePattern(3u << 20, 9);
  std::string at_server;
  size_t sent = 0;
  bool shut = false;
  int server_read = WOLFSSL_ERROR_WANT_READ;
  const auto start = std::chrono::steady_clock::now();
  for (int round = 0; round < kMaxRounds && InTime(start) && server_read == WOLFSSL_ERROR_WANT_READ;
       ++round) {
    if (sent < data.size()) {
      const ssize_t n = ::send(app_, data.data() + sent, data.size() - sent, MSG_DONTWAIT);
      if (n > 0) sent += static_cast<size_t>(n);
    } else if (!shut) {
      ::shutdown(app_, SHUT_WR);
      shut = true;
    }
    const Wait wait = relay_->PumpToUpstream(1u << 20);
    ASSERT_NE(wait, Wait::kFailed) << relay_->tls_error();
    bool eof = false;
    const std::string ciphertext = ReadAvailable(server_end_, SIZE_MAX, &eof);
    server_->Feed(ciphertext);
    server_read = server_->ReadAll(&at_server);
    if (ciphertext.empty() && wait != Wait::kYield) {
      WaitForAny({{server_end_, POLLIN, 0},
                  {client_fd_, static_cast<short>(wait == Wait::kReadable ? POLLIN : 0), 0},
                  {upstream_fd_, static_cast<short>(wait == Wait::kWritable ? POLLOUT : 0), 0},
                  {app_, static_cast<short>(sent < data.size() ? POLLOUT : 0), 0}});
    }
  }
  EXPECT_EQ(server_read, WOLFSSL_ERROR_ZERO_RETURN) << "no close_notify after the client's EOF";
  ASSERT_EQ(at_server.size(), data.size());
  EXPECT_TRUE(at_server == data) << "the bytes at the server differ";
  EXPECT_EQ(relay_->bytes_to_upstream(), data.size());
}

}  // namespace
}  // namespace mailring::core
