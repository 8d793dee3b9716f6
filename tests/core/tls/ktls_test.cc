// kTLS (core/tls/ktls.h, core/tls/ktls_handover.h): the pure parts everywhere; the kernel parts
// (two kTLS ends of a loopback connection, control records, splice through RelayLeg) only where
// the kernel has TLS. Without it (TCP_ULP "tls" gives ENOENT, e.g. a kernel without CONFIG_TLS)
// those tests skip with a message; scripts/ktls_vm.sh runs this binary in a VM whose kernel has
// it.
#include "core/tls/ktls.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/log.h"
#include "core/relay_leg.h"
#include "core/tls/ktls_handover.h"
#include "core/worker_counters.h"
#include "gtest/gtest.h"
#include "tests/core/loopback.h"

namespace mailring::core {
namespace {

using mailring::testing::SetNonBlocking;
using mailring::testing::TcpPair;

TrafficKey Key(size_t size, uint8_t first, uint64_t sequence) {
  TrafficKey key;
  for (size_t i = 0; i < size; ++i) key.key.push_back(static_cast<char>(first + i));
  for (size_t i = 0; i < key.iv.size(); ++i) key.iv[i] = static_cast<uint8_t>(0xa0 + i);
  key.sequence = sequence;
  return key;
}

template <typename Info>
std::string Bytes(const Info& info) {
  return std::string(reinterpret_cast<const char*>(&info), sizeof(info));
}

// --- crypto_info --------------------------------------------------------------------------------

TEST(KtlsCryptoInfoTest, Aes128GcmSplitsTheStaticIvAndWritesTheSequenceBigEndian) {
  const absl::StatusOr<KtlsCryptoInfo> info = Tls13CryptoInfo(Key(16, 0x00, 0x0102030405060708));
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_TRUE(std::holds_alternative<tls12_crypto_info_aes_gcm_128>(*info));
  // The kernel's layout: version (u16 LE 0x0304), cipher_type (u16 LE 51), iv[8], key[16],
  // salt[4], rec_seq[8].
  const std::string expected = std::string("\x04\x03\x33\x00", 4) +
                               "\xa4\xa5\xa6\xa7\xa8\xa9\xaa\xab" +
                               std::string("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b"
                                           "\x0c\x0d\x0e\x0f",
                                           16) +
                               "\xa0\xa1\xa2\xa3" + "\x01\x02\x03\x04\x05\x06\x07\x08";
  EXPECT_EQ(Bytes(std::get<tls12_crypto_info_aes_gcm_128>(*info)), expected);
}

TEST(KtlsCryptoInfoTest, Aes256GcmByKeySize) {
  const absl::StatusOr<KtlsCryptoInfo> info = Tls13CryptoInfo(Key(32, 0x40, 7));
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_TRUE(std::holds_alternative<tls12_crypto_info_aes_gcm_256>(*info));
  const auto& value = std::get<tls12_crypto_info_aes_gcm_256>(*info);
  EXPECT_EQ(value.info.version, TLS_1_3_VERSION);
  EXPECT_EQ(value.info.cipher_type, TLS_CIPHER_AES_GCM_256);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(value.key), 32), Key(32, 0x40, 7).key);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(value.salt), 4), "\xa0\xa1\xa2\xa3");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(value.iv), 8),
            "\xa4\xa5\xa6\xa7\xa8\xa9\xaa\xab");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(value.rec_seq), 8),
            std::string("\0\0\0\0\0\0\0\x07", 8));
}

TEST(KtlsCryptoInfoTest, OtherKeySizesAreRefused) {
  EXPECT_EQ(Tls13CryptoInfo(Key(24, 0, 0)).status().code(), absl::StatusCode::kInvalidArgument);
}

// --- control records ----------------------------------------------------------------------------

constexpr uint8_t kAlert = 21;
constexpr uint8_t kHandshake = 22;

TEST(KtlsControlRecordTest, TicketsAreIgnored) {
  const std::string ticket("\x04\x00\x00\x03" "abc", 7);
  EXPECT_EQ(ParseControlRecord(kHandshake, ticket).value(), ControlRecord::kIgnored);
  EXPECT_EQ(ParseControlRecord(kHandshake, ticket + ticket).value(), ControlRecord::kIgnored);
}

TEST(KtlsControlRecordTest, CloseNotifyEndsTheDirection) {
  EXPECT_EQ(ParseControlRecord(kAlert, std::string("\x01\x00", 2)).value(),
            ControlRecord::kCloseNotify);
}

TEST(KtlsControlRecordTest, OtherAlertsFailNamingTheAlert) {
  const absl::StatusOr<ControlRecord> record = ParseControlRecord(kAlert, "\x02\x28");
  ASSERT_FALSE(record.ok());
  EXPECT_NE(record.status().message().find("handshake_failure"), std::string_view::npos)
      << record.status();
}

TEST(KtlsControlRecordTest, KeyUpdateAndCertificateRequestCannotBeFollowed) {
  const absl::StatusOr<ControlRecord> update =
      ParseControlRecord(kHandshake, std::string("\x18\x00\x00\x01\x00", 5));
  ASSERT_FALSE(update.ok());
  EXPECT_EQ(update.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(update.status().message().find("key update"), std::string_view::npos)
      << update.status();
  // A ticket before it does not hide it.
  EXPECT_FALSE(
      ParseControlRecord(kHandshake, std::string("\x04\x00\x00\x00\x18\x00\x00\x01\x00", 9)).ok());
  const absl::StatusOr<ControlRecord> request =
      ParseControlRecord(kHandshake, std::string("\x0d\x00\x00\x00", 4));
  EXPECT_EQ(request.status().code(), absl::StatusCode::kUnimplemented);
}

TEST(KtlsControlRecordTest, ApplicationDataIsNotAControlRecord) {
  EXPECT_FALSE(ParseControlRecord(23, "data").ok());
}

TEST(KtlsControlRecordTest, RecordTypeFromAFakeControlMessage) {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(uint8_t)) + CMSG_SPACE(sizeof(int))] = {};
  msghdr message{};
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  // Something else first, then the record type.
  cmsghdr* other = CMSG_FIRSTHDR(&message);
  other->cmsg_level = SOL_SOCKET;
  other->cmsg_type = SCM_RIGHTS;
  other->cmsg_len = CMSG_LEN(sizeof(int));
  cmsghdr* type = CMSG_NXTHDR(&message, other);
  ASSERT_NE(type, nullptr);
  type->cmsg_level = SOL_TLS;
  type->cmsg_type = TLS_GET_RECORD_TYPE;
  type->cmsg_len = CMSG_LEN(sizeof(uint8_t));
  *CMSG_DATA(type) = kHandshake;
  message.msg_controllen = CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(uint8_t));
  EXPECT_EQ(RecordTypeFromControl(message), kHandshake);

  msghdr none{};
  EXPECT_EQ(RecordTypeFromControl(none), std::nullopt);
}

TEST(KtlsFallbackTest, EveryReasonHasALabel) {
  for (size_t i = 0; i < static_cast<size_t>(KtlsFallback::kCount); ++i) {
    EXPECT_NE(KtlsFallbackLabel(static_cast<KtlsFallback>(i)), "unknown") << i;
  }
  EXPECT_EQ(KtlsFallbackLabel(KtlsFallback::kNoKernelTls), "no_kernel_tls");
}

// --- the kernel -------------------------------------------------------------------------------

// True when this kernel attaches the TLS ULP (probed on a fresh loopback connection).
bool KernelHasTls() {
  auto [a, b] = TcpPair();
  const bool has = ::setsockopt(a, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) == 0;
  ::close(a);
  ::close(b);
  return has;
}

#define SKIP_WITHOUT_KERNEL_TLS()                                                         \
  if (!KernelHasTls()) {                                                                  \
    GTEST_SKIP() << "this kernel has no TLS (TCP_ULP \"tls\": ENOENT); scripts/ktls_vm.sh " \
                    "runs this test in a VM whose kernel has it";                         \
  }

KtlsKeys ClientKeys(size_t key_size) {
  return {Key(key_size, 0x10, 3), Key(key_size, 0x60, 5)};
}
KtlsKeys ServerKeys(size_t key_size) {
  const KtlsKeys client = ClientKeys(key_size);
  return {client.receive, client.transmit};
}

// Sends one record of `type` through a kTLS socket.
void SendRecord(int fd, uint8_t type, std::string_view bytes) {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(uint8_t))] = {};
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_TLS;
  header->cmsg_type = TLS_SET_RECORD_TYPE;
  header->cmsg_len = CMSG_LEN(sizeof(uint8_t));
  *CMSG_DATA(header) = type;
  ASSERT_EQ(::sendmsg(fd, &message, MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
}

// A loopback connection with kTLS on both ends: `client` as mailring's upstream socket,
// `server` as the mail server's.
struct KtlsPair {
  explicit KtlsPair(size_t key_size = 16) {
    std::tie(client, server) = TcpPair();
    client_status = InstallKtls(client, ClientKeys(key_size));
    server_status = InstallKtls(server, ServerKeys(key_size));
  }
  ~KtlsPair() {
    ::close(client);
    ::close(server);
  }
  int client = -1, server = -1;
  absl::Status client_status, server_status;
};

TEST(KtlsKernelTest, WithoutKernelTlsInstallSaysNotFoundAndTheSocketStaysPlain) {
  if (KernelHasTls()) GTEST_SKIP() << "this kernel has TLS: the fallback is not reachable";
  auto [a, b] = TcpPair();
  const absl::Status status = InstallKtls(a, ClientKeys(16));
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_TRUE(KtlsErrorAllowsFallback(status));
  ASSERT_EQ(::send(a, "plain", 5, 0), 5);
  char buffer[8];
  EXPECT_EQ(::recv(b, buffer, sizeof(buffer), 0), 5);
  ::close(a);
  ::close(b);
}

TEST(KtlsKernelTest, DataBothWaysWithAes128AndAes256) {
  SKIP_WITHOUT_KERNEL_TLS();
  for (const size_t key_size : {size_t{16}, size_t{32}}) {
    KtlsPair pair(key_size);
    ASSERT_TRUE(pair.client_status.ok()) << pair.client_status;
    ASSERT_TRUE(pair.server_status.ok()) << pair.server_status;
    ASSERT_EQ(::send(pair.client, "a1 NOOP\r\n", 9, 0), 9);
    char buffer[64];
    ASSERT_EQ(::recv(pair.server, buffer, sizeof(buffer), 0), 9);
    EXPECT_EQ(std::string_view(buffer, 9), "a1 NOOP\r\n");
    ASSERT_EQ(::send(pair.server, "a1 OK\r\n", 7, 0), 7);
    ASSERT_EQ(::recv(pair.client, buffer, sizeof(buffer), 0), 7);
    EXPECT_EQ(std::string_view(buffer, 7), "a1 OK\r\n");
  }
}

TEST(KtlsKernelTest, ATicketIsReadAndIgnoredThenDataFollows) {
  SKIP_WITHOUT_KERNEL_TLS();
  KtlsPair pair;
  ASSERT_TRUE(pair.client_status.ok() && pair.server_status.ok());
  SendRecord(pair.server, kHandshake, std::string("\x04\x00\x00\x02xy", 6));
  ASSERT_EQ(::send(pair.server, "hello", 5, 0), 5);
  char buffer[64];
  pollfd p{pair.client, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  // A plain recv meets the ticket: EIO, the record stays at the head.
  EXPECT_EQ(::recv(pair.client, buffer, sizeof(buffer), MSG_DONTWAIT), -1);
  EXPECT_EQ(errno, EIO);
  EXPECT_EQ(ReadControlRecord(pair.client).value(), ControlRecord::kIgnored);
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  ASSERT_EQ(::recv(pair.client, buffer, sizeof(buffer), 0), 5);
  EXPECT_EQ(std::string_view(buffer, 5), "hello");
}

TEST(KtlsKernelTest, CloseNotifyIsSentAndRead) {
  SKIP_WITHOUT_KERNEL_TLS();
  KtlsPair pair;
  ASSERT_TRUE(pair.client_status.ok() && pair.server_status.ok());
  ASSERT_TRUE(SendCloseNotify(pair.server).ok());
  pollfd p{pair.client, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  EXPECT_EQ(ReadControlRecord(pair.client).value(), ControlRecord::kCloseNotify);
}

TEST(KtlsKernelTest, AKeyUpdateEndsTheConnectionSayingWhy) {
  SKIP_WITHOUT_KERNEL_TLS();
  KtlsPair pair;
  ASSERT_TRUE(pair.client_status.ok() && pair.server_status.ok());
  SendRecord(pair.server, kHandshake, std::string("\x18\x00\x00\x01\x00", 5));
  pollfd p{pair.client, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  const absl::StatusOr<ControlRecord> record = ReadControlRecord(pair.client);
  ASSERT_FALSE(record.ok());
  EXPECT_NE(record.status().message().find("key update"), std::string_view::npos)
      << record.status();
}

// Drives a leg with poll(2) standing in for io_uring (no multishot recv: splice only).
RelayLeg::Wait Drive(RelayLeg& leg, PipePool& pool, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    const RelayLeg::Wait wait = leg.Pump(pool, 256 * 1024);
    if (wait == RelayLeg::Wait::kFinished || wait == RelayLeg::Wait::kFailed) return wait;
    pollfd p = wait == RelayLeg::Wait::kWritable ? pollfd{leg.to_fd(), POLLOUT, 0}
                                                 : pollfd{leg.from_fd(), POLLIN, 0};
    ::poll(&p, 1, 100);
  }
  return RelayLeg::Wait::kFailed;
}

uint8_t PatternByte(size_t i) { return static_cast<uint8_t>((i * 2654435761u) >> 13); }

TEST(KtlsKernelTest, RelayLegSplicesFromAKtlsSourceThroughTicketsUntilCloseNotify) {
  SKIP_WITHOUT_KERNEL_TLS();
  KtlsPair pair;
  ASSERT_TRUE(pair.client_status.ok() && pair.server_status.ok());
  auto [destination, reader] = TcpPair();
  SetNonBlocking(pair.client);
  SetNonBlocking(destination);
  PipePool pool(2, 2);
  RelayLeg leg(pair.client, destination);
  leg.set_ktls(/*source=*/true, /*destination=*/false);
  constexpr size_t kBytes = 8 << 20;
  std::thread server([&] {
    std::vector<uint8_t> data(kBytes);
    for (size_t i = 0; i < kBytes; ++i) data[i] = PatternByte(i);
    const auto send_all = [&](size_t from, size_t to) {
      for (size_t off = from; off < to;) {
        const ssize_t n = ::send(pair.server, data.data() + off, to - off, MSG_NOSIGNAL);
        if (n <= 0) return;
        off += static_cast<size_t>(n);
      }
    };
    send_all(0, kBytes / 2);
    SendRecord(pair.server, kHandshake, std::string("\x04\x00\x00\x00", 4));  // a ticket
    send_all(kBytes / 2, kBytes);
    (void)SendCloseNotify(pair.server);
  });
  size_t received = 0;
  bool identical = true, eof = false;
  std::thread check([&] {
    std::vector<uint8_t> buffer(1 << 16);
    while (true) {
      const ssize_t n = ::recv(reader, buffer.data(), buffer.size(), 0);
      if (n <= 0) {
        eof = n == 0;
        return;
      }
      for (ssize_t i = 0; i < n; ++i) identical &= buffer[i] == PatternByte(received + i);
      received += static_cast<size_t>(n);
    }
  });
  EXPECT_EQ(Drive(leg, pool, std::chrono::seconds(60)), RelayLeg::Wait::kFinished)
      << leg.failure_reason();
  server.join();
  check.join();
  EXPECT_EQ(received, kBytes);
  EXPECT_TRUE(identical);
  EXPECT_TRUE(eof) << "close_notify must become the destination's EOF";
  EXPECT_EQ(leg.bytes_spliced(), kBytes);
  EXPECT_EQ(leg.control_records(), 2u) << "the ticket and the close_notify";
  ::close(destination);
  ::close(reader);
}

TEST(KtlsKernelTest, RelayLegIntoAKtlsDestinationSendsCloseNotifyBeforeItsFin) {
  SKIP_WITHOUT_KERNEL_TLS();
  KtlsPair pair;
  ASSERT_TRUE(pair.client_status.ok() && pair.server_status.ok());
  auto [writer, source] = TcpPair();
  SetNonBlocking(source);
  SetNonBlocking(pair.client);
  PipePool pool(2, 2);
  RelayLeg leg(source, pair.client);
  leg.set_ktls(/*source=*/false, /*destination=*/true);
  ASSERT_EQ(::send(writer, "a LOGOUT\r\n", 10, 0), 10);
  ::shutdown(writer, SHUT_WR);
  EXPECT_EQ(Drive(leg, pool, std::chrono::seconds(10)), RelayLeg::Wait::kFinished);
  char buffer[64];
  ASSERT_EQ(::recv(pair.server, buffer, sizeof(buffer), 0), 10);
  EXPECT_EQ(ReadControlRecord(pair.server).value(), ControlRecord::kCloseNotify);
  ::close(writer);
  ::close(source);
}

TEST(KtlsKernelTest, RelayLegFailsOnAnAlertNamingIt) {
  SKIP_WITHOUT_KERNEL_TLS();
  KtlsPair pair;
  ASSERT_TRUE(pair.client_status.ok() && pair.server_status.ok());
  auto [destination, reader] = TcpPair();
  SetNonBlocking(pair.client);
  SetNonBlocking(destination);
  PipePool pool(2, 2);
  RelayLeg leg(pair.client, destination);
  leg.set_ktls(true, false);
  ASSERT_EQ(::send(pair.server, "last words", 10, 0), 10);
  SendRecord(pair.server, kAlert, "\x02\x50");  // internal_error
  EXPECT_EQ(Drive(leg, pool, std::chrono::seconds(10)), RelayLeg::Wait::kFailed);
  EXPECT_TRUE(leg.source_failed());
  EXPECT_NE(leg.failure_reason().find("internal_error"), std::string_view::npos)
      << leg.failure_reason();
  char buffer[64];
  EXPECT_EQ(::recv(reader, buffer, sizeof(buffer), MSG_DONTWAIT), 10) << "delivered first";
  ::close(destination);
  ::close(reader);
}

// --- the handover -------------------------------------------------------------------------------

TEST(KtlsHandoverTest, DisabledAndUnsuitableSessionsFallBackAndAreCounted) {
  WorkerCounters counters;
  auto [a, b] = TcpPair();
  EXPECT_FALSE(HandOverToKtls(a, ClientKeys(16), /*enabled=*/false, counters, "t").installed);
  EXPECT_FALSE(HandOverToKtls(a, KtlsFallback::kNotTls13, true, counters, "t").installed);
  EXPECT_EQ(counters.tls_relays_userspace.load(), 2u);
  EXPECT_EQ(counters.tls_relays_ktls.load(), 0u);
  EXPECT_EQ(counters.ktls_fallbacks[static_cast<size_t>(KtlsFallback::kDisabled)].load(), 1u);
  EXPECT_EQ(counters.ktls_fallbacks[static_cast<size_t>(KtlsFallback::kNotTls13)].load(), 1u);
  ::close(a);
  ::close(b);
}

TEST(KtlsHandoverTest, NoKernelTlsFallsBackCountedAndLoggedOncePerWorker) {
  if (KernelHasTls()) GTEST_SKIP() << "this kernel has TLS: the fallback is not reachable";
  SetLogLevel(LogLevel::kInfo);
  WorkerCounters counters;
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 3; ++i) {
    auto [a, b] = TcpPair();
    const KtlsHandoverResult result = HandOverToKtls(a, ClientKeys(16), true, counters, "t");
    EXPECT_FALSE(result.installed);
    EXPECT_TRUE(result.fatal.ok()) << result.fatal;
    ::close(a);
    ::close(b);
  }
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(counters.tls_relays_userspace.load(), 3u);
  EXPECT_EQ(counters.ktls_fallbacks[static_cast<size_t>(KtlsFallback::kNoKernelTls)].load(), 3u);
  size_t lines = 0;
  for (size_t at = log.find("no_kernel_tls"); at != std::string::npos;
       at = log.find("no_kernel_tls", at + 1)) {
    ++lines;
  }
  EXPECT_EQ(lines, 1u) << log;

  WorkerCounters other_worker;  // another worker logs its own first fallback
  ::testing::internal::CaptureStderr();
  auto [a, b] = TcpPair();
  HandOverToKtls(a, ClientKeys(16), true, other_worker, "t");
  EXPECT_NE(::testing::internal::GetCapturedStderr().find("no_kernel_tls"), std::string::npos);
  ::close(a);
  ::close(b);
}

TEST(KtlsHandoverTest, WithKernelTlsTheKeysAreInstalledAndCounted) {
  SKIP_WITHOUT_KERNEL_TLS();
  WorkerCounters counters;
  auto [a, b] = TcpPair();
  EXPECT_TRUE(HandOverToKtls(a, ClientKeys(16), true, counters, "t").installed);
  EXPECT_EQ(counters.tls_relays_ktls.load(), 1u);
  EXPECT_EQ(counters.tls_relays_userspace.load(), 0u);
  ::close(a);
  ::close(b);
}

}  // namespace
}  // namespace mailring::core
