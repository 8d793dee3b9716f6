// TlsClient against an in-memory wolfSSL server: the test moves ciphertext between the two the
// way the worker moves it between TlsClient and the socket (Feed / TakeOutput), so every byte
// the client sees went through its I/O callbacks. Certificates come from
// tests/integration/test_ca.sh, the same script the Dovecot integration tests use.
#include "core/tls_client.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "core/tls/aes_gcm_device.h"
#include "core/tls/tls13_record_layer.h"
#include "gtest/gtest.h"
#include "tests/core/byte_pattern.h"
#include "tests/core/tls/in_memory_tls_server.h"

namespace mailring::core {
namespace {

using Result = TlsClient::Result;

// Handshakes and transfers are bounded by this many ping-pong rounds, so a bug spins no test.
constexpr int kMaxRounds = 10000;

using mailring::testing::BytePattern;

class TlsClientTest : public ::testing::Test {
 protected:
  // Two CAs: "ca" signs the servers the client trusts, "other" signs certificates it must refuse.
  static void SetUpTestSuite() {
    ca_ = new TlsTestCertificates("ca");
    other_ = new TlsTestCertificates("other");
  }
  static void TearDownTestSuite() {
    delete ca_;
    ca_ = nullptr;
    delete other_;
    other_ = nullptr;
  }
  void SetUp() override {
    if (!ca_->error().empty()) GTEST_SKIP() << ca_->error();
    if (!other_->error().empty()) GTEST_SKIP() << other_->error();
  }

  static std::string Ca(const std::string& file) { return ca_->File(file); }
  static std::string OtherCa(const std::string& file) { return other_->File(file); }

  // A context trusting only `ca_file` (not the system store).
  static std::unique_ptr<TlsContext> Context(const std::string& ca_file,
                                             bool aes_gcm_device = true,
                                             bool take_over_records = true) {
    TlsContextOptions options;
    options.aes_gcm_device = aes_gcm_device;
    options.take_over_records = take_over_records;
    options.use_system_ca = false;
    options.ca_file = ca_file;
    absl::StatusOr<std::unique_ptr<TlsContext>> context = TlsContext::Create(options);
    EXPECT_TRUE(context.ok()) << context.status();
    return context.ok() ? std::move(*context) : nullptr;
  }

  static std::unique_ptr<InMemoryTlsServer> Server(const std::string& name) {
    return std::make_unique<InMemoryTlsServer>(wolfTLS_server_method(), Ca(name + "-chain.pem"),
                                       Ca(name + ".key"));
  }

  // Runs both handshakes to their end: the client's last Handshake() result.
  static Result Handshake(TlsClient& client, InMemoryTlsServer& server) {
    return server.HandshakeWith(client, kMaxRounds);
  }

  // Moves the server's output to the client and reads until `want` bytes arrived or nothing
  // more comes: the last Read() result.
  static Result ReadFromServer(TlsClient& client, InMemoryTlsServer& server, std::string* out, size_t want,
                               size_t max_bytes = 65536) {
    client.Feed(server.TakeOutput());
    Result result = Result::kWantInput;
    for (int round = 0; round < kMaxRounds && out->size() < want; ++round) {
      result = client.Read(out, max_bytes);
      if (result != Result::kDone) break;
    }
    return result;
  }

  // Server → client: the server writes `data` in `piece`-byte writes and the client is fed the
  // ciphertext in `slice`-byte slices (cutting records anywhere, as recv does), reading all it
  // can after each; what it reads is appended to `received`. Assertions fail the calling test
  // (wrap the call in ASSERT_NO_FATAL_FAILURE).
  static void SendDown(TlsClient& client, InMemoryTlsServer& server, std::string_view data, size_t piece,
                       size_t slice, std::string* received) {
    for (size_t offset = 0; offset < data.size(); offset += piece) {
      ASSERT_TRUE(server.Write(data.substr(offset, piece)));
      const std::string ciphertext = server.TakeOutput();
      for (size_t at = 0; at < ciphertext.size(); at += slice) {
        client.Feed(std::string_view(ciphertext).substr(at, slice));
        Result result;
        do {
          result = client.Read(received, 65536);
        } while (result == Result::kDone);
        ASSERT_EQ(result, Result::kWantInput) << client.error();
      }
    }
  }

  // Client → server in 1 MiB writes, each one's ciphertext read by the server at once; what the
  // server reads is appended to `at_server`. Assertions as SendDown's.
  static void SendUp(TlsClient& client, InMemoryTlsServer& server, std::string_view data,
                     std::string* at_server) {
    constexpr size_t kWrite = 1u << 20;
    for (size_t offset = 0; offset < data.size(); offset += kWrite) {
      ASSERT_EQ(client.Write(data.substr(offset, kWrite)), Result::kDone) << client.error();
      server.Feed(client.TakeOutput());
      ASSERT_EQ(server.ReadAll(at_server), WOLFSSL_ERROR_WANT_READ);
    }
  }

  // `size` pattern bytes each way, byte-identical: server → client in 256 KiB writes fed to the
  // client in `slice`-byte slices, then client → server in 1 MiB writes.
  static void ExpectByteIdenticalBothWays(TlsClient& client, InMemoryTlsServer& server, size_t size,
                                          uint32_t seed, size_t slice) {
    const std::string down = BytePattern(size, seed);
    std::string received;
    received.reserve(size);
    ASSERT_NO_FATAL_FAILURE(SendDown(client, server, down, 256u << 10, slice, &received));
    ASSERT_EQ(received.size(), size);
    EXPECT_TRUE(received == down) << "server → client bytes differ";

    const std::string up = BytePattern(size, seed + 1);
    std::string at_server;
    at_server.reserve(size);
    ASSERT_NO_FATAL_FAILURE(SendUp(client, server, up, &at_server));
    ASSERT_EQ(at_server.size(), size);
    EXPECT_TRUE(at_server == up) << "client → server bytes differ";
  }

  static inline TlsTestCertificates* ca_ = nullptr;
  static inline TlsTestCertificates* other_ = nullptr;
};

TEST_F(TlsClientTest, HandshakeWithTestCaNegotiatesTls13) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = Server("server");
  TlsClient client(*context, "localhost", /*verify=*/true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  EXPECT_EQ(client.protocol_version(), "TLSv1.3");
  EXPECT_FALSE(client.cipher_suite().empty());
  EXPECT_TRUE(client.error().empty());
  EXPECT_EQ(client.Handshake(), Result::kDone);  // idempotent once done
  // X25519's key share was offered first and taken (no HelloRetryRequest for P-256).
  const char* group = wolfSSL_get_curve_name(server->ssl());
  EXPECT_STREQ(group == nullptr ? "(none)" : group, "X25519");
}

TEST_F(TlsClientTest, HandshakeSurvivesCiphertextOneByteAtATime) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = Server("server");
  TlsClient client(*context, "localhost", true);
  Result result = Result::kWantInput;
  int server_state = 0;
  for (int round = 0; round < kMaxRounds && result != Result::kError; ++round) {
    result = client.Handshake();
    server->Feed(client.TakeOutput());
    if (server_state == 0) server_state = server->Accept();
    if (result == Result::kDone && server_state != 0) break;
    const std::string flight = server->TakeOutput();
    for (size_t i = 0; i < flight.size(); ++i) {
      client.Feed(flight.substr(i, 1));
      result = client.Handshake();
      ASSERT_NE(result, Result::kError) << client.error();
      server->Feed(client.TakeOutput());
    }
  }
  ASSERT_EQ(result, Result::kDone) << client.error();
  EXPECT_EQ(server_state, 1);
}

TEST_F(TlsClientTest, SniCarriesTheServerName) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = Server("server");
  // The server aborts the handshake unless the client's SNI names localhost.
  ASSERT_EQ(wolfSSL_UseSNI(server->ssl(), WOLFSSL_SNI_HOST_NAME, "localhost", 9), WOLFSSL_SUCCESS);
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  EXPECT_EQ(wolfSSL_SNI_Status(server->ssl(), WOLFSSL_SNI_HOST_NAME), WOLFSSL_SNI_REAL_MATCH);
}

TEST_F(TlsClientTest, IpLiteralServerNameMatchesTheAddressInTheCertificate) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = Server("server");
  TlsClient client(*context, "127.0.0.1", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
}

TEST_F(TlsClientTest, PlaintextRoundTripsBothWays) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = Server("server");
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();

  ASSERT_EQ(client.Write("a1 LOGIN alice secret\r\n"), Result::kDone) << client.error();
  EXPECT_TRUE(client.has_output());
  server->Feed(client.TakeOutput());
  EXPECT_FALSE(client.has_output());
  std::string at_server;
  EXPECT_EQ(server->ReadAll(&at_server), WOLFSSL_ERROR_WANT_READ);
  EXPECT_EQ(at_server, "a1 LOGIN alice secret\r\n");

  ASSERT_TRUE(server->Write("a1 OK logged in\r\n"));
  std::string at_client;
  EXPECT_EQ(ReadFromServer(client, *server, &at_client, 17), Result::kDone) << client.error();
  EXPECT_EQ(at_client, "a1 OK logged in\r\n");
  // Nothing more: the next read wants input.
  EXPECT_EQ(client.Read(&at_client, 65536), Result::kWantInput);
}

TEST_F(TlsClientTest, ReadAppendsAtMostMaxBytes) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = Server("server");
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  const std::string sent = BytePattern(100000, 7);
  ASSERT_TRUE(server->Write(sent));
  client.Feed(server->TakeOutput());
  std::string received = "prefix";
  ASSERT_EQ(client.Read(&received, 1000), Result::kDone) << client.error();
  EXPECT_EQ(received.size(), 1006u);
  for (int round = 0; round < kMaxRounds && received.size() < sent.size() + 6; ++round) {
    const size_t before = received.size();
    ASSERT_EQ(client.Read(&received, 1000), Result::kDone) << client.error();
    EXPECT_LE(received.size() - before, 1000u);
  }
  EXPECT_TRUE(received.substr(6) == sent);
  EXPECT_EQ(client.Read(&received, 1000), Result::kWantInput);
}

TEST_F(TlsClientTest, TwentyMebibytesEachWayByteIdentical) {
  auto context = Context(Ca("ca.pem"), /*aes_gcm_device=*/true, /*take_over_records=*/false);
  ASSERT_NE(context, nullptr);
  const AesGcmDeviceCounts before = AesGcmDeviceRecordCounts();
  auto server = Server("server");
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  constexpr size_t kSize = 20u << 20;
  // Ciphertext handed to the client in 16 KiB slices (a provided buffer's size).
  ASSERT_NO_FATAL_FAILURE(ExpectByteIdenticalBothWays(client, *server, kSize, 1, 16384));
  // The client's records went through the AES-NI device (the in-process server's context has
  // no device id: its side is wolfSSL's software AES, so each direction is checked by the other).
  if (context->uses_aes_gcm_device()) {
    const AesGcmDeviceCounts after = AesGcmDeviceRecordCounts();
    EXPECT_GE(after.encrypted - before.encrypted, kSize / 16384) << "client → server records";
    EXPECT_GE(after.decrypted - before.decrypted, kSize / 16384) << "server → client records";
  }
}

// The server is wolfSSL's software AES-GCM, the client the libcrypto device: an independent
// implementation on each side. Every data record in both directions must go through the device.
TEST_F(TlsClientTest, AesGcmDeviceCarriesEveryRecordByteIdentical) {
  if (!AesGcmDeviceId().has_value()) GTEST_SKIP() << "no AES-GCM device on this machine";
  auto context = Context(Ca("ca.pem"), /*aes_gcm_device=*/true, /*take_over_records=*/false);
  ASSERT_NE(context, nullptr);
  ASSERT_TRUE(context->uses_aes_gcm_device());
  auto server = Server("server");
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  EXPECT_EQ(client.cipher_suite(), "TLS13-AES128-GCM-SHA256");  // AES-GCM is offered first
  constexpr size_t kSize = 20u << 20;
  constexpr size_t kRecords = kSize / 16384;  // at least: records carry up to 16 KiB
  const AesGcmDeviceCounts before = AesGcmDeviceRecordCounts();

  const std::string down = BytePattern(kSize, 3);
  std::string received;
  for (size_t offset = 0; offset < kSize; offset += 1u << 20) {
    ASSERT_TRUE(server->Write(std::string_view(down).substr(offset, 1u << 20)));
    ASSERT_EQ(ReadFromServer(client, *server, &received, offset + (1u << 20)), Result::kDone)
        << client.error();
  }
  EXPECT_TRUE(received == down) << "server → client bytes differ";

  const std::string up = BytePattern(kSize, 4);
  std::string at_server;
  ASSERT_NO_FATAL_FAILURE(SendUp(client, *server, up, &at_server));
  EXPECT_TRUE(at_server == up) << "client → server bytes differ";

  const AesGcmDeviceCounts after = AesGcmDeviceRecordCounts();
  EXPECT_GE(after.decrypted - before.decrypted, kRecords);
  EXPECT_GE(after.encrypted - before.encrypted, kRecords);
}

TEST_F(TlsClientTest, WithoutTheDeviceRecordsStayInWolfSslSoftware) {
  auto context = Context(Ca("ca.pem"), /*aes_gcm_device=*/false);
  ASSERT_NE(context, nullptr);
  EXPECT_FALSE(context->uses_aes_gcm_device());
  auto server = Server("server");
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  const AesGcmDeviceCounts before = AesGcmDeviceRecordCounts();
  const std::string down = BytePattern(1u << 20, 5);
  ASSERT_TRUE(server->Write(down));
  std::string received;
  ASSERT_EQ(ReadFromServer(client, *server, &received, down.size()), Result::kDone);
  EXPECT_TRUE(received == down);
  EXPECT_EQ(AesGcmDeviceRecordCounts().decrypted, before.decrypted);
}

TEST_F(TlsClientTest, CorruptRecordThroughTheDeviceIsAnErrorWithoutPlaintext) {
  if (!AesGcmDeviceId().has_value()) GTEST_SKIP() << "no AES-GCM device on this machine";
  auto context = Context(Ca("ca.pem"), /*aes_gcm_device=*/true, /*take_over_records=*/false);
  ASSERT_NE(context, nullptr);
  auto server = Server("server");
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  ASSERT_TRUE(server->Write("secret plaintext"));
  std::string record = server->TakeOutput();
  record[record.size() - 20] ^= 0x01;  // inside the ciphertext
  client.Feed(record);
  std::string out;
  EXPECT_EQ(client.Read(&out, 1000), Result::kError);
  EXPECT_TRUE(out.empty());
  EXPECT_NE(client.error().find("integrity"), std::string::npos) << client.error();
}

TEST_F(TlsClientTest, DrainedBuffersAreReleasedAfterABurst) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = Server("server");
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  const std::string burst = BytePattern(256u << 10, 6);
  ASSERT_TRUE(server->Write(burst));
  const std::string records = server->TakeOutput();
  client.Feed(std::string_view(records).substr(0, records.size() - 10));  // a record cut short
  std::string received;
  while (client.Read(&received, 65536) == Result::kDone) {
  }
  ASSERT_EQ(client.Write(std::string(64u << 10, 'x')), Result::kDone);
  client.ReleaseDrainedBuffers();  // the cut record's bytes are still needed
  EXPECT_GT(client.buffered_capacity(), 0u);
  client.Feed(std::string_view(records).substr(records.size() - 10));
  while (client.Read(&received, 65536) == Result::kDone) {
  }
  EXPECT_TRUE(received == burst);
  EXPECT_GT(client.buffered_capacity(), 64u << 10);  // the unsent records
  server->Feed(client.TakeOutput());
  client.ReleaseDrainedBuffers();
  EXPECT_LE(client.buffered_capacity(), 2 * std::string().capacity());  // in-object only
}

TEST_F(TlsClientTest, ExpiredCertificateIsRefused) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = Server("expired");
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kError);
  EXPECT_EQ(client.error(), "certificate has expired");
}

TEST_F(TlsClientTest, WrongHostNameIsRefused) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = Server("wronghost");
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kError);
  EXPECT_NE(client.error().find("host name mismatch: the certificate does not name localhost"),
            std::string::npos)
      << client.error();
  EXPECT_NE(client.error().find("wrong.example"), std::string::npos) << client.error();
}

TEST_F(TlsClientTest, UnknownCaIsRefused) {
  auto context = Context(OtherCa("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = Server("server");
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kError);
  EXPECT_EQ(client.error(), "certificate is not signed by a trusted CA");
}

TEST_F(TlsClientTest, SystemStoreAloneDoesNotTrustTheTestCa) {
  TlsContextOptions options;  // system store, no extra file
  absl::StatusOr<std::unique_ptr<TlsContext>> context = TlsContext::Create(options);
  ASSERT_TRUE(context.ok()) << context.status();
  auto server = Server("server");
  TlsClient client(**context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kError);
  EXPECT_EQ(client.error(), "certificate is not signed by a trusted CA");
}

TEST_F(TlsClientTest, VerifyOffAcceptsWrongHostAndUnknownCa) {
  auto context = Context(OtherCa("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = Server("wronghost");
  TlsClient client(*context, "localhost", /*verify=*/false);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  ASSERT_EQ(client.Write("x"), Result::kDone);
  server->Feed(client.TakeOutput());
  std::string at_server;
  server->ReadAll(&at_server);
  EXPECT_EQ(at_server, "x");
}

TEST_F(TlsClientTest, EmptyServerNameWithVerifyIsAnError) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  TlsClient client(*context, "", true);
  EXPECT_EQ(client.Handshake(), Result::kError);
  EXPECT_FALSE(client.error().empty());
  EXPECT_FALSE(client.has_output());  // nothing was sent
}

TEST_F(TlsClientTest, AlertDuringHandshakeIsNamed) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(client.Handshake(), Result::kWantInput);
  EXPECT_TRUE(client.has_output());  // the ClientHello
  // A plaintext fatal handshake_failure alert record, as a server sends it after a ClientHello
  // it cannot serve.
  client.Feed(std::string_view("\x15\x03\x03\x00\x02\x02\x28", 7));
  ASSERT_EQ(client.Handshake(), Result::kError);
  EXPECT_EQ(client.error(), "TLS alert from the server: handshake_failure");
}

TEST_F(TlsClientTest, ServerRefusingTheSniSendsAnAlert) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = Server("server");
  ASSERT_EQ(wolfSSL_UseSNI(server->ssl(), WOLFSSL_SNI_HOST_NAME, "other.example", 13),
            WOLFSSL_SUCCESS);
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kError);
  EXPECT_NE(client.error().find("TLS alert from the server: "), std::string::npos)
      << client.error();
}

TEST_F(TlsClientTest, Tls11OnlyServerIsRefused) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  InMemoryTlsServer server(wolfTLSv1_1_server_method(), Ca("server-chain.pem"), Ca("server.key"));
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, server), Result::kError);
  EXPECT_EQ(client.error(), "protocol version not accepted (TLS 1.2 minimum)");
}

TEST_F(TlsClientTest, Tls12ServerIsAccepted) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  InMemoryTlsServer server(wolfTLSv1_2_server_method(), Ca("server-chain.pem"), Ca("server.key"));
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, server), Result::kDone) << client.error();
  EXPECT_EQ(client.protocol_version(), "TLSv1.2");
  ASSERT_TRUE(server.Write("* OK\r\n"));
  std::string at_client;
  EXPECT_EQ(ReadFromServer(client, server, &at_client, 6), Result::kDone) << client.error();
  EXPECT_EQ(at_client, "* OK\r\n");
}

TEST_F(TlsClientTest, CloseNotifyAfterDataReadsAsDataThenClosed) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = Server("server");
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  ASSERT_TRUE(server->Write("* BYE bye\r\n"));
  wolfSSL_shutdown(server->ssl());
  client.Feed(server->TakeOutput());
  std::string at_client;
  EXPECT_EQ(client.Read(&at_client, 65536), Result::kDone) << client.error();
  EXPECT_EQ(at_client, "* BYE bye\r\n");
  EXPECT_EQ(client.Read(&at_client, 65536), Result::kClosed) << client.error();
  EXPECT_EQ(client.Read(&at_client, 65536), Result::kClosed);
  EXPECT_EQ(at_client, "* BYE bye\r\n");
}

TEST_F(TlsClientTest, ClientShutdownSendsCloseNotify) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = Server("server");
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  client.Shutdown();
  ASSERT_TRUE(client.has_output());
  server->Feed(client.TakeOutput());
  std::string at_server;
  EXPECT_EQ(server->ReadAll(&at_server), WOLFSSL_ERROR_ZERO_RETURN);
}

TEST_F(TlsClientTest, AlertMidSessionIsNamedAndCarriesNoPlaintext) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = Server("server");
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  // Let the client consume the server's post-handshake messages (session tickets).
  std::string at_client;
  ASSERT_EQ(ReadFromServer(client, *server, &at_client, 1), Result::kWantInput);
  // A corrupted record from the client makes the server send a fatal bad_record_mac.
  ASSERT_EQ(client.Write("a2 LOGIN alice SECRET-PASSWORD\r\n"), Result::kDone);
  std::string record = client.TakeOutput();
  record[record.size() - 1] ^= 0x01;
  server->Feed(record);
  std::string at_server;
  EXPECT_NE(server->ReadAll(&at_server), WOLFSSL_ERROR_WANT_READ);
  EXPECT_TRUE(at_server.empty());
  client.Feed(server->TakeOutput());
  ASSERT_EQ(client.Read(&at_client, 65536), Result::kError);
  EXPECT_EQ(client.error(), "TLS alert from the server: bad_record_mac");
  EXPECT_EQ(client.Read(&at_client, 65536), Result::kError);  // sticky
  EXPECT_EQ(client.Write("more"), Result::kError);
}

TEST_F(TlsClientTest, CorruptRecordFromServerIsAnErrorWithoutPlaintext) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = Server("server");
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  std::string at_client;
  ASSERT_EQ(ReadFromServer(client, *server, &at_client, 1), Result::kWantInput);
  ASSERT_TRUE(server->Write("* 1 FETCH (BODY[] {15}\r\nSECRET-PLAINTEXT)\r\n"));
  std::string record = server->TakeOutput();
  record[record.size() / 2] ^= 0x40;
  client.Feed(record);
  ASSERT_EQ(client.Read(&at_client, 65536), Result::kError);
  EXPECT_NE(client.error().find("failed its integrity check"), std::string::npos) << client.error();
  EXPECT_EQ(client.error().find("SECRET"), std::string::npos) << client.error();
  EXPECT_TRUE(at_client.empty());
}

TEST_F(TlsClientTest, UnreadableCaFileIsNamed) {
  TlsContextOptions options;
  options.use_system_ca = false;
  options.ca_file = Ca("no-such-ca.pem");
  absl::StatusOr<std::unique_ptr<TlsContext>> context = TlsContext::Create(options);
  ASSERT_FALSE(context.ok());
  EXPECT_NE(context.status().message().find("no-such-ca.pem"), std::string_view::npos)
      << context.status();
}

TEST_F(TlsClientTest, ScriptIsIdempotent) {
  const std::string before = Ca("server.pem");
  const auto stamp = std::filesystem::last_write_time(before);
  const std::string again =
      "'" + TlsTestCertificates::Script().string() + "' '" + ca_->dir().string() + "'";
  ASSERT_EQ(std::system(again.c_str()), 0);
  EXPECT_EQ(std::filesystem::last_write_time(before), stamp);
}

// --- Resumption: the worker's session cache (core/tls/session_cache.h) through TlsClient ---

// A server context whose connections share one ticket key and session cache, like one Dovecot.
class ServerContext {
 public:
  ServerContext(WOLFSSL_METHOD* method, const std::string& chain, const std::string& key)
      : ctx_(wolfSSL_CTX_new(method)) {
    EXPECT_NE(ctx_, nullptr);
    EXPECT_EQ(wolfSSL_CTX_use_certificate_chain_file(ctx_, chain.c_str()), WOLFSSL_SUCCESS);
    EXPECT_EQ(wolfSSL_CTX_use_PrivateKey_file(ctx_, key.c_str(), WOLFSSL_FILETYPE_PEM),
              WOLFSSL_SUCCESS);
  }
  ~ServerContext() { wolfSSL_CTX_free(ctx_); }
  std::unique_ptr<InMemoryTlsServer> Connection() { return std::make_unique<InMemoryTlsServer>(ctx_); }

 private:
  WOLFSSL_CTX* ctx_;
};

class TlsResumptionTest : public TlsClientTest {
 protected:
  void SetUp() override {
    TlsClientTest::SetUp();
    if (IsSkipped()) return;
    context_ = Context(Ca("ca.pem"));
    ASSERT_NE(context_, nullptr);
    tls13_ = std::make_unique<ServerContext>(wolfTLS_server_method(), Ca("server-chain.pem"),
                                             Ca("server.key"));
  }
  TlsResumption For(const std::string& key) { return {context_->session_cache(), key}; }

  // One connection: handshake, then the server's greeting read (which, in TLS 1.3, carries the
  // server's NewSessionTicket to the client before it). Returns whether it resumed.
  bool Connect(ServerContext& server_context, const std::string& key) {
    auto server = server_context.Connection();
    TlsClient client(*context_, "localhost", /*verify=*/true, For(key));
    EXPECT_EQ(Handshake(client, *server), Result::kDone) << client.error();
    EXPECT_EQ(client.resumed(), wolfSSL_session_reused(server->ssl()) == 1);
    EXPECT_TRUE(server->Write("* OK ready\r\n"));
    std::string greeting;
    EXPECT_EQ(ReadFromServer(client, *server, &greeting, 12), Result::kDone) << client.error();
    EXPECT_EQ(greeting, "* OK ready\r\n");
    return client.resumed();
  }

  TlsSessionCache& cache() { return *context_->session_cache(); }

  std::unique_ptr<TlsContext> context_;
  std::unique_ptr<ServerContext> tls13_;
};

TEST_F(TlsResumptionTest, SecondConnectionResumesWithATls13Ticket) {
  EXPECT_FALSE(Connect(*tls13_, "dest"));
  EXPECT_EQ(cache().sessions(), 1u);  // the ticket that came before the greeting
  // A session of a few KiB at most (the memory bound the cache's header states).
  EXPECT_GT(cache().session_bytes(), 0u);
  EXPECT_LT(cache().session_bytes(), 5u * 1024);

  auto server = tls13_->Connection();
  TlsClient client(*context_, "localhost", true, For("dest"));
  EXPECT_TRUE(client.offered_session());
  EXPECT_EQ(cache().sessions(), 0u);  // taken: a TLS 1.3 ticket is offered once
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  EXPECT_TRUE(client.resumed());
  EXPECT_EQ(wolfSSL_session_reused(server->ssl()), 1);
  EXPECT_EQ(client.protocol_version(), "TLSv1.3");
  // The resumed connection carries data both ways and brings its own next ticket.
  ASSERT_TRUE(server->Write("* OK resumed\r\n"));
  std::string at_client;
  ASSERT_EQ(ReadFromServer(client, *server, &at_client, 14), Result::kDone) << client.error();
  EXPECT_EQ(at_client, "* OK resumed\r\n");
  ASSERT_EQ(client.Write("a1 NOOP\r\n"), Result::kDone);
  server->Feed(client.TakeOutput());
  std::string at_server;
  EXPECT_EQ(server->ReadAll(&at_server), WOLFSSL_ERROR_WANT_READ);
  EXPECT_EQ(at_server, "a1 NOOP\r\n");
  EXPECT_EQ(cache().sessions(), 1u);
  EXPECT_TRUE(Connect(*tls13_, "dest"));
}

TEST_F(TlsResumptionTest, ATicketIsNeverOfferedTwice) {
  EXPECT_FALSE(Connect(*tls13_, "dest"));
  {
    // Resumes, but ends before reading anything: no new ticket reaches the client.
    auto server = tls13_->Connection();
    TlsClient client(*context_, "localhost", true, For("dest"));
    ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
    EXPECT_TRUE(client.resumed());
  }
  auto server = tls13_->Connection();
  TlsClient client(*context_, "localhost", true, For("dest"));
  EXPECT_FALSE(client.offered_session());
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  EXPECT_FALSE(client.resumed());
}

TEST_F(TlsResumptionTest, AnotherDestinationDoesNotGetTheTicket) {
  EXPECT_FALSE(Connect(*tls13_, "dest-a"));
  EXPECT_FALSE(Connect(*tls13_, "dest-b"));  // full: dest-a's ticket stays with dest-a
  EXPECT_TRUE(Connect(*tls13_, "dest-a"));
  EXPECT_TRUE(Connect(*tls13_, "dest-b"));
}

TEST_F(TlsResumptionTest, WithoutResumptionNothingIsOfferedOrKept) {
  auto server = tls13_->Connection();
  TlsClient client(*context_, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  ASSERT_TRUE(server->Write("* OK\r\n"));
  std::string greeting;
  ASSERT_EQ(ReadFromServer(client, *server, &greeting, 6), Result::kDone) << client.error();
  EXPECT_FALSE(client.offered_session());
  EXPECT_FALSE(client.resumed());
  EXPECT_EQ(cache().sessions(), 0u);
}

TEST_F(TlsResumptionTest, DeclinedTicketIsForgottenAndReplaced) {
  EXPECT_FALSE(Connect(*tls13_, "dest"));
  EXPECT_FALSE(Connect(*tls13_, "dest-other"));
  // Another server process (another ticket key) behind the same destination: it declines.
  ServerContext restarted(wolfTLS_server_method(), Ca("server-chain.pem"), Ca("server.key"));
  auto server = restarted.Connection();
  TlsClient client(*context_, "localhost", true, For("dest"));
  EXPECT_TRUE(client.offered_session());
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  EXPECT_FALSE(client.resumed());
  ASSERT_TRUE(server->Write("* OK\r\n"));
  std::string greeting;
  ASSERT_EQ(ReadFromServer(client, *server, &greeting, 6), Result::kDone) << client.error();
  EXPECT_EQ(cache().sessions(), 2u);  // dest-other's, and the restarted server's new ticket
  EXPECT_TRUE(Connect(restarted, "dest"));
}

TEST_F(TlsResumptionTest, FailedHandshakeAfterAnOfferDropsTheDestinationsSessions) {
  // Two connections open side by side, neither with a ticket to offer: "dest" gets two.
  auto server_1 = tls13_->Connection();
  auto server_2 = tls13_->Connection();
  TlsClient client_1(*context_, "localhost", true, For("dest"));
  TlsClient client_2(*context_, "localhost", true, For("dest"));
  for (auto [client, server] : {std::pair{&client_1, server_1.get()}, {&client_2, server_2.get()}}) {
    ASSERT_EQ(Handshake(*client, *server), Result::kDone) << client->error();
    ASSERT_TRUE(server->Write("* OK\r\n"));
    std::string greeting;
    ASSERT_EQ(ReadFromServer(*client, *server, &greeting, 6), Result::kDone) << client->error();
  }
  EXPECT_FALSE(Connect(*tls13_, "dest-other"));
  ASSERT_EQ(cache().sessions(), 3u);
  // The next "dest" connection offers one ticket and fails: the other one goes too.
  InMemoryTlsServer tls11(wolfTLSv1_1_server_method(), Ca("server-chain.pem"), Ca("server.key"));
  TlsClient client(*context_, "localhost", true, For("dest"));
  EXPECT_TRUE(client.offered_session());
  ASSERT_EQ(Handshake(client, tls11), Result::kError);
  EXPECT_EQ(cache().sessions(), 1u);  // only dest-other's is left
  EXPECT_FALSE(Connect(*tls13_, "dest"));
  EXPECT_TRUE(Connect(*tls13_, "dest-other"));
}

TEST_F(TlsResumptionTest, Tls12SessionResumesRepeatedly) {
  ServerContext tls12(wolfTLSv1_2_server_method(), Ca("server-chain.pem"), Ca("server.key"));
  EXPECT_FALSE(Connect(tls12, "dest"));
  EXPECT_EQ(cache().sessions(), 1u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(Connect(tls12, "dest")) << "connection " << i;
    EXPECT_EQ(cache().sessions(), 1u);  // reusable: it stays
  }
}

TEST_F(TlsResumptionTest, ExpiredTicketIsNotOffered) {
  int64_t now = 5'000'000;
  TlsContextOptions options;
  options.use_system_ca = false;
  options.ca_file = Ca("ca.pem");
  options.session_cache.clock = [&now] { return now; };
  absl::StatusOr<std::unique_ptr<TlsContext>> context = TlsContext::Create(options);
  ASSERT_TRUE(context.ok()) << context.status();
  context_ = *std::move(context);
  EXPECT_FALSE(Connect(*tls13_, "dest"));
  ASSERT_EQ(cache().sessions(), 1u);
  // wolfSSL's server gives its tickets 300 s (less our 15 s margin).
  now += 285 * 1000;
  TlsClient client(*context_, "localhost", true, For("dest"));
  EXPECT_FALSE(client.offered_session());
  EXPECT_EQ(cache().sessions(), 0u);
}

TEST_F(TlsResumptionTest, ZeroCapacityTurnsResumptionOff) {
  TlsContextOptions options;
  options.use_system_ca = false;
  options.ca_file = Ca("ca.pem");
  options.session_cache.max_destinations = 0;
  absl::StatusOr<std::unique_ptr<TlsContext>> context = TlsContext::Create(options);
  ASSERT_TRUE(context.ok()) << context.status();
  context_ = *std::move(context);
  EXPECT_FALSE(Connect(*tls13_, "dest"));
  EXPECT_FALSE(Connect(*tls13_, "dest"));
}

// --- the record take-over (core/tls/tls13_record_layer.h) -------------------------------------
// The server stays wolfSSL's own record layer (software AES): every record the client seals or
// opens after the take-over is checked by an independent implementation.

TEST_F(TlsClientTest, RecordsMoveFromWolfSslAfterTheFirstDataAndCarryTwentyMebibytesEachWay) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = Server("server");
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  EXPECT_FALSE(client.took_over_records()) << "not before the first application data";
  const Tls13RecordLayerCounts before = Tls13RecordLayerRecordCounts();
  ASSERT_TRUE(server->Write("* OK [CAPABILITY IMAP4rev1] ready\r\n"));
  std::string greeting;
  ASSERT_EQ(ReadFromServer(client, *server, &greeting, 1), Result::kDone) << client.error();
  EXPECT_EQ(greeting, "* OK [CAPABILITY IMAP4rev1] ready\r\n");
  ASSERT_TRUE(client.took_over_records());
  EXPECT_EQ(client.protocol_version(), "TLSv1.3");
  EXPECT_EQ(client.cipher_suite(), "TLS13-AES128-GCM-SHA256");

  constexpr size_t kSize = 20u << 20;
  // Slices of 7001 bytes: they cut records anywhere.
  ASSERT_NO_FATAL_FAILURE(ExpectByteIdenticalBothWays(client, *server, kSize, 11, 7001));
  const Tls13RecordLayerCounts after = Tls13RecordLayerRecordCounts();
  EXPECT_EQ(after.handovers - before.handovers, 1u);
  EXPECT_GE(after.opened - before.opened, kSize / 16384);
  EXPECT_GE(after.sealed - before.sealed, kSize / 16384);
}

TEST_F(TlsClientTest, TakeOverWaitsForARecordBoundary) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = Server("server");
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  ASSERT_TRUE(server->Write("first record\r\n"));
  ASSERT_TRUE(server->Write("second record\r\n"));
  const std::string records = server->TakeOutput();
  client.Feed(std::string_view(records).substr(0, records.size() - 3));  // the second cut short
  std::string received;
  while (client.Read(&received, 65536) == Result::kDone) {
  }
  EXPECT_EQ(received, "first record\r\n");
  EXPECT_FALSE(client.took_over_records()) << "wolfSSL holds part of the second record";
  client.Feed(std::string_view(records).substr(records.size() - 3));
  ASSERT_EQ(client.Read(&received, 65536), Result::kDone) << client.error();
  EXPECT_EQ(received, "first record\r\nsecond record\r\n");
  EXPECT_TRUE(client.took_over_records());
  ASSERT_TRUE(server->Write("third\r\n"));
  ASSERT_EQ(ReadFromServer(client, *server, &received, received.size() + 7), Result::kDone);
  EXPECT_EQ(received, "first record\r\nsecond record\r\nthird\r\n");
}

TEST_F(TlsClientTest, AfterTheTakeOverReadsRespectMaxBytes) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = Server("server");
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  ASSERT_TRUE(server->Write("hello\r\n"));
  std::string received;
  ASSERT_EQ(ReadFromServer(client, *server, &received, 7), Result::kDone);
  ASSERT_TRUE(client.took_over_records());
  const std::string big = BytePattern(40000, 13);
  ASSERT_TRUE(server->Write(big));
  client.Feed(server->TakeOutput());
  received.clear();
  for (int round = 0; round < 100 && received.size() < big.size(); ++round) {
    const size_t before = received.size();
    ASSERT_EQ(client.Read(&received, 1000), Result::kDone) << client.error();
    EXPECT_LE(received.size() - before, 1000u);
  }
  EXPECT_TRUE(received == big);
  EXPECT_EQ(client.Read(&received, 1000), Result::kWantInput);
}

TEST_F(TlsClientTest, AfterTheTakeOverCloseNotifyGoesBothWays) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = Server("server");
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  ASSERT_TRUE(server->Write("* BYE\r\n"));
  std::string received;
  ASSERT_EQ(ReadFromServer(client, *server, &received, 7), Result::kDone);
  ASSERT_TRUE(client.took_over_records());
  client.Shutdown();
  server->Feed(client.TakeOutput());
  std::string at_server;
  EXPECT_EQ(server->ReadAll(&at_server), WOLFSSL_ERROR_ZERO_RETURN) << "the server saw our close";
  wolfSSL_shutdown(server->ssl());
  client.Feed(server->TakeOutput());
  EXPECT_EQ(client.Read(&received, 1000), Result::kClosed) << client.error();
  EXPECT_EQ(client.Read(&received, 1000), Result::kClosed);
}

TEST_F(TlsClientTest, AfterTheTakeOverACorruptRecordIsAnErrorWithoutPlaintext) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = Server("server");
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  ASSERT_TRUE(server->Write("ok\r\n"));
  std::string out;
  ASSERT_EQ(ReadFromServer(client, *server, &out, 4), Result::kDone);
  ASSERT_TRUE(client.took_over_records());
  ASSERT_TRUE(server->Write("secret plaintext"));
  std::string record = server->TakeOutput();
  record[record.size() - 20] ^= 0x01;
  client.Feed(record);
  out.clear();
  EXPECT_EQ(client.Read(&out, 1000), Result::kError);
  EXPECT_TRUE(out.empty());
  EXPECT_NE(client.error().find("integrity"), std::string::npos) << client.error();
}

TEST_F(TlsClientTest, AfterTheTakeOverAServerKeyUpdateEndsTheConnectionClearly) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = Server("server");
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  ASSERT_TRUE(server->Write("ok\r\n"));
  std::string out;
  ASSERT_EQ(ReadFromServer(client, *server, &out, 4), Result::kDone);
  ASSERT_TRUE(client.took_over_records());
  ASSERT_EQ(wolfSSL_update_keys(server->ssl()), WOLFSSL_SUCCESS);
  client.Feed(server->TakeOutput());
  EXPECT_EQ(client.Read(&out, 1000), Result::kError);
  EXPECT_NE(client.error().find("key update"), std::string::npos) << client.error();
}

TEST_F(TlsClientTest, AfterTheTakeOverASessionTicketIsIgnored) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = Server("server");
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  ASSERT_TRUE(server->Write("ok\r\n"));
  std::string out;
  ASSERT_EQ(ReadFromServer(client, *server, &out, 4), Result::kDone);
  ASSERT_TRUE(client.took_over_records());
  ASSERT_EQ(wolfSSL_send_SessionTicket(server->ssl()), WOLFSSL_SUCCESS);
  ASSERT_TRUE(server->Write("after the ticket\r\n"));
  out.clear();
  ASSERT_EQ(ReadFromServer(client, *server, &out, 18), Result::kDone) << client.error();
  EXPECT_EQ(out, "after the ticket\r\n");
}

TEST_F(TlsClientTest, Tls12KeepsWolfSslRecords) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = std::make_unique<InMemoryTlsServer>(wolfTLSv1_2_server_method(), Ca("server-chain.pem"),
                                            Ca("server.key"));
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  ASSERT_TRUE(server->Write("hello\r\n"));
  std::string out;
  ASSERT_EQ(ReadFromServer(client, *server, &out, 7), Result::kDone);
  EXPECT_EQ(client.protocol_version(), "TLSv1.2");
  EXPECT_FALSE(client.took_over_records());
  ASSERT_EQ(client.Write("a1 NOOP\r\n"), Result::kDone);
  server->Feed(client.TakeOutput());
  std::string at_server;
  EXPECT_EQ(server->ReadAll(&at_server), WOLFSSL_ERROR_WANT_READ);
  EXPECT_EQ(at_server, "a1 NOOP\r\n");
}

// --- kTLS handover (core/tls/ktls.h) -------------------------------------------------------------

// The keys KtlsHandover() gives must be exactly the connection's: a record layer built from them
// opens the server's next record and seals one the server opens.
void ExpectKeysCarryTheConnection(const KtlsKeys& keys, InMemoryTlsServer& server) {
  absl::StatusOr<Tls13RecordLayer> records = Tls13RecordLayer::Create(keys.transmit, keys.receive);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_TRUE(server.Write("* 1 EXISTS\r\n"));
  const std::string record = server.TakeOutput();
  size_t consumed = 0;
  std::string plaintext;
  const absl::StatusOr<Tls13RecordLayer::Opened> opened =
      records->Open(record, &consumed, &plaintext);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, Tls13RecordLayer::Opened::kApplicationData);
  EXPECT_EQ(plaintext, "* 1 EXISTS\r\n");
  std::string sealed;
  ASSERT_TRUE(records->SealApplicationData("a2 NOOP\r\n", &sealed).ok());
  server.Feed(sealed);
  std::string at_server;
  EXPECT_EQ(server.ReadAll(&at_server), WOLFSSL_ERROR_WANT_READ);
  EXPECT_EQ(at_server, "a2 NOOP\r\n");
}

TEST_F(TlsClientTest, KtlsHandoverGivesTheRecordLayersKeysAfterTheTakeOver) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = Server("server");
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  ASSERT_TRUE(server->Write("* OK ready\r\n"));
  std::string out;
  ASSERT_EQ(ReadFromServer(client, *server, &out, 12), Result::kDone);
  ASSERT_EQ(client.Write("a1 NOOP\r\n"), Result::kDone);
  server->Feed(client.TakeOutput());
  std::string at_server;
  ASSERT_EQ(server->ReadAll(&at_server), WOLFSSL_ERROR_WANT_READ);
  ASSERT_TRUE(client.took_over_records());
  const std::variant<KtlsKeys, KtlsFallback> handover = client.KtlsHandover();
  ASSERT_TRUE(std::holds_alternative<KtlsKeys>(handover));
  EXPECT_EQ(std::get<KtlsKeys>(handover).transmit.sequence, 1u) << "one record sealed";
  ExpectKeysCarryTheConnection(std::get<KtlsKeys>(handover), *server);
}

TEST_F(TlsClientTest, KtlsHandoverGivesWolfSslsKeysWithoutTheTakeOver) {
  auto context = Context(Ca("ca.pem"), /*aes_gcm_device=*/true, /*take_over_records=*/false);
  ASSERT_NE(context, nullptr);
  auto server = Server("server");
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  ASSERT_TRUE(server->Write("* OK ready\r\n"));
  std::string out;
  ASSERT_EQ(ReadFromServer(client, *server, &out, 12), Result::kDone);
  ASSERT_FALSE(client.took_over_records());
  const std::variant<KtlsKeys, KtlsFallback> handover = client.KtlsHandover();
  ASSERT_TRUE(std::holds_alternative<KtlsKeys>(handover));
  ExpectKeysCarryTheConnection(std::get<KtlsKeys>(handover), *server);
}

TEST_F(TlsClientTest, KtlsHandoverWaitsForARecordBoundary) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = Server("server");
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  ASSERT_TRUE(server->Write("* OK ready\r\n"));
  std::string out;
  ASSERT_EQ(ReadFromServer(client, *server, &out, 12), Result::kDone);
  ASSERT_TRUE(server->Write("* 2 EXISTS\r\n"));
  const std::string record = server->TakeOutput();
  client.Feed(std::string_view(record).substr(0, 7));  // a partial record buffered
  EXPECT_EQ(std::get<KtlsFallback>(client.KtlsHandover()), KtlsFallback::kNotAtRecordBoundary);
  client.Feed(std::string_view(record).substr(7));
  ASSERT_EQ(client.Read(&out, 65536), Result::kDone);
  EXPECT_TRUE(std::holds_alternative<KtlsKeys>(client.KtlsHandover()));
  ASSERT_EQ(client.Write("a1 NOOP\r\n"), Result::kDone);  // unsent output
  EXPECT_EQ(std::get<KtlsFallback>(client.KtlsHandover()), KtlsFallback::kNotAtRecordBoundary);
}

TEST_F(TlsClientTest, KtlsHandoverRefusesTls12) {
  auto context = Context(Ca("ca.pem"));
  ASSERT_NE(context, nullptr);
  auto server = std::make_unique<InMemoryTlsServer>(wolfTLSv1_2_server_method(), Ca("server-chain.pem"),
                                            Ca("server.key"));
  TlsClient client(*context, "localhost", true);
  ASSERT_EQ(Handshake(client, *server), Result::kDone) << client.error();
  ASSERT_TRUE(server->Write("hello\r\n"));
  std::string out;
  ASSERT_EQ(ReadFromServer(client, *server, &out, 7), Result::kDone);
  EXPECT_EQ(std::get<KtlsFallback>(client.KtlsHandover()), KtlsFallback::kNotTls13);
}

}  // namespace
}  // namespace mailring::core
