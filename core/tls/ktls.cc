#include "core/tls/ktls.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "proto/str_cat.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif

namespace mailring::core {
namespace {

constexpr uint8_t kAlertRecord = 21;
constexpr uint8_t kApplicationDataRecord = 23;
// A TLS 1.3 record holds at most 2^14 bytes of plaintext (RFC 8446 §5.1).
constexpr size_t kMaxRecordPlaintext = 16384;

std::string ErrnoName(int error) { return StrCat(std::strerror(error), " (errno ", error, ")"); }

template <typename Info>
Info FillCryptoInfo(const TrafficKey& key, uint16_t cipher_type) {
  Info info{};
  info.info.version = TLS_1_3_VERSION;
  info.info.cipher_type = cipher_type;
  static_assert(sizeof(info.salt) == 4 && sizeof(info.iv) == 8 && sizeof(info.rec_seq) == 8);
  std::memcpy(info.salt, key.iv.data(), 4);
  std::memcpy(info.iv, key.iv.data() + 4, 8);
  std::memcpy(info.key, key.key.data(), sizeof(info.key));
  for (int i = 0; i < 8; ++i) {
    info.rec_seq[7 - i] = static_cast<unsigned char>(key.sequence >> (8 * i));
  }
  return info;
}

// Wipes a crypto_info copy once the kernel has it (the key stays in TrafficKey's owner only).
void Wipe(KtlsCryptoInfo& info) {
  std::visit([](auto& value) { explicit_bzero(&value, sizeof(value)); }, info);
}

absl::Status SetDirection(int fd, int direction, const TrafficKey& key) {
  absl::StatusOr<KtlsCryptoInfo> info = Tls13CryptoInfo(key);
  if (!info.ok()) return info.status();
  const int result = std::visit(
      [&](const auto& value) {
        return ::setsockopt(fd, SOL_TLS, direction, &value, sizeof(value));
      },
      *info);
  const int error = errno;
  Wipe(*info);
  if (result != 0) {
    return absl::FailedPreconditionError(StrCat(
        "kTLS: setsockopt(SOL_TLS, ", direction == TLS_TX ? "TLS_TX" : "TLS_RX",
        ") failed: ", ErrnoName(error)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<KtlsCryptoInfo> Tls13CryptoInfo(const TrafficKey& key) {
  if (key.key.size() == TLS_CIPHER_AES_GCM_128_KEY_SIZE) {
    return FillCryptoInfo<tls12_crypto_info_aes_gcm_128>(key, TLS_CIPHER_AES_GCM_128);
  }
  if (key.key.size() == TLS_CIPHER_AES_GCM_256_KEY_SIZE) {
    return FillCryptoInfo<tls12_crypto_info_aes_gcm_256>(key, TLS_CIPHER_AES_GCM_256);
  }
  return absl::InvalidArgumentError(
      StrCat("kTLS: an AES-GCM key of ", key.key.size(), " bytes (16 or 32 expected)"));
}

absl::Status InstallKtls(int fd, const KtlsKeys& keys) {
  static constexpr char kUlp[] = "tls";
  if (::setsockopt(fd, SOL_TCP, TCP_ULP, kUlp, sizeof(kUlp)) != 0) {
    const int error = errno;
    if (error == ENOENT) {
      return absl::NotFoundError("kTLS: the kernel has no TLS module (TCP_ULP \"tls\": ENOENT)");
    }
    return absl::FailedPreconditionError(
        StrCat("kTLS: setsockopt(TCP_ULP, \"tls\") failed: ", ErrnoName(error)));
  }
  // RX first: should it fail, nothing is installed and the socket still passes bytes through.
  if (absl::Status rx = SetDirection(fd, TLS_RX, keys.receive); !rx.ok()) return rx;
  if (absl::Status tx = SetDirection(fd, TLS_TX, keys.transmit); !tx.ok()) {
    return absl::InternalError(
        StrCat(tx.message(), " after TLS_RX was installed: the connection cannot go on"));
  }
  return absl::OkStatus();
}

bool KtlsErrorAllowsFallback(const absl::Status& status) {
  return absl::IsNotFound(status) || absl::IsFailedPrecondition(status) ||
         absl::IsInvalidArgument(status);
}

absl::StatusOr<ControlRecord> ParseControlRecord(uint8_t record_type, std::string_view plaintext) {
  if (record_type == kApplicationDataRecord) {
    return absl::InternalError("kTLS: application data where a control record was expected");
  }
  const absl::StatusOr<Tls13RecordLayer::Opened> opened =
      Tls13RecordLayer::InspectControlRecord(record_type, plaintext);
  if (!opened.ok()) return opened.status();
  switch (*opened) {
    case Tls13RecordLayer::Opened::kCloseNotify:
      return ControlRecord::kCloseNotify;
    case Tls13RecordLayer::Opened::kIgnored:
      return ControlRecord::kIgnored;
    case Tls13RecordLayer::Opened::kNeedMore:
    case Tls13RecordLayer::Opened::kApplicationData:
      break;
  }
  return absl::InternalError("kTLS: an unexpected control record");
}

absl::StatusOr<ControlRecord> ReadControlRecord(int fd) {
  char plaintext[kMaxRecordPlaintext];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(uint8_t))] = {};
  iovec iov{plaintext, sizeof(plaintext)};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = ::recvmsg(fd, &message, MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    const int error = errno;
    if (error == EAGAIN) return absl::UnavailableError("kTLS: no control record to read yet");
    return absl::UnavailableError(
        StrCat("kTLS: reading a control record failed: ", ErrnoName(error)));
  }
  if (n == 0) return ControlRecord::kCloseNotify;  // TCP FIN without close_notify: EOF all the same
  const std::optional<uint8_t> record_type = RecordTypeFromControl(message);
  if (!record_type.has_value()) return absl::InternalError("kTLS: a record without its record type");
  return ParseControlRecord(*record_type, std::string_view(plaintext, static_cast<size_t>(n)));
}

std::optional<uint8_t> RecordTypeFromControl(const msghdr& message) {
  for (const cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr;
       header = CMSG_NXTHDR(const_cast<msghdr*>(&message), const_cast<cmsghdr*>(header))) {
    if (header->cmsg_level == SOL_TLS && header->cmsg_type == TLS_GET_RECORD_TYPE &&
        header->cmsg_len >= CMSG_LEN(sizeof(uint8_t))) {
      return *CMSG_DATA(header);
    }
  }
  return std::nullopt;
}

absl::Status SendCloseNotify(int fd) {
  char alert[2] = {1, 0};  // level warning, close_notify (RFC 8446 §6.1)
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(uint8_t))] = {};
  iovec iov{alert, sizeof(alert)};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_TLS;
  header->cmsg_type = TLS_SET_RECORD_TYPE;
  header->cmsg_len = CMSG_LEN(sizeof(uint8_t));
  *CMSG_DATA(header) = kAlertRecord;
  ssize_t n;
  do {
    n = ::sendmsg(fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof(alert))) {
    return absl::UnavailableError(StrCat("kTLS: sending close_notify failed: ",
                                         n < 0 ? ErrnoName(errno) : std::string("short write")));
  }
  return absl::OkStatus();
}

}  // namespace mailring::core
