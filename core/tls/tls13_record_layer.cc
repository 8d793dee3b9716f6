#include "core/tls/tls13_record_layer.h"

#include <algorithm>
#include <atomic>
#include <string>

#include "core/tls/aes_gcm_cipher.h"
#include "proto/str_cat.h"

namespace mailring::core {
namespace {

constexpr size_t kHeaderSize = 5;
constexpr size_t kTagSize = 16;
// RFC 8446 §5.2: TLSCiphertext.length never exceeds 2^14 + 256.
constexpr size_t kMaxCiphertext = 16384 + 256;
// RFC 8446 §5.5: AES-GCM keys protect at most 2^24.5 full-size records; stay below.
constexpr uint64_t kMaxRecordsPerKey = uint64_t{1} << 24;

constexpr uint8_t kChangeCipherSpec = 20;
constexpr uint8_t kAlert = 21;
constexpr uint8_t kHandshake = 22;
constexpr uint8_t kApplicationData = 23;

// Handshake message types (RFC 8446 §4).
constexpr uint8_t kNewSessionTicket = 4;
constexpr uint8_t kCertificateRequest = 13;
constexpr uint8_t kKeyUpdate = 24;

std::atomic<uint64_t> handovers{0};
std::atomic<uint64_t> records_sealed{0};
std::atomic<uint64_t> records_opened{0};

// RFC 8446 §5.3: the per-record nonce is the static IV XORed with the 64-bit sequence number,
// left-padded to the IV's length.
std::array<uint8_t, 12> Nonce(const TrafficKey& key) {
  std::array<uint8_t, 12> nonce = key.iv;
  for (int i = 0; i < 8; ++i) {
    nonce[11 - i] ^= static_cast<uint8_t>(key.sequence >> (8 * i));
  }
  return nonce;
}

void AppendHeader(size_t ciphertext_size, std::string* out) {
  const char header[kHeaderSize] = {static_cast<char>(kApplicationData), 0x03, 0x03,
                                    static_cast<char>(ciphertext_size >> 8),
                                    static_cast<char>(ciphertext_size & 0xff)};
  out->append(header, kHeaderSize);
}

std::string_view AlertName(uint8_t description) {
  switch (description) {
    case 10: return "unexpected_message";
    case 20: return "bad_record_mac";
    case 40: return "handshake_failure";
    case 42: return "bad_certificate";
    case 45: return "certificate_expired";
    case 48: return "unknown_ca";
    case 50: return "decode_error";
    case 51: return "decrypt_error";
    case 70: return "protocol_version";
    case 80: return "internal_error";
    case 90: return "user_canceled";
    case 109: return "missing_extension";
    case 116: return "certificate_required";
    default: return "";
  }
}

}  // namespace

Tls13RecordLayerCounts Tls13RecordLayerRecordCounts() {
  return {handovers.load(std::memory_order_relaxed),
          records_sealed.load(std::memory_order_relaxed),
          records_opened.load(std::memory_order_relaxed)};
}

void CountTls13Handover() { handovers.fetch_add(1, std::memory_order_relaxed); }

absl::StatusOr<Tls13RecordLayer> Tls13RecordLayer::Create(TrafficKey write, TrafficKey read) {
  for (const TrafficKey* key : {&write, &read}) {
    if (key->key.size() != 16 && key->key.size() != 32) {
      return absl::InvalidArgumentError(
          StrCat("TLS record layer: a ", key->key.size(), "-byte key is not AES-GCM's 16 or 32"));
    }
  }
  if (!AesGcmCipherAvailable()) {
    return absl::FailedPreconditionError("TLS record layer: libcrypto has no AES-GCM");
  }
  return Tls13RecordLayer(std::move(write), std::move(read));
}

absl::Status Tls13RecordLayer::SealApplicationData(std::string_view plaintext, std::string* out) {
  while (!plaintext.empty()) {
    const std::string_view chunk = plaintext.substr(0, kMaxPlaintext);
    if (absl::Status status = Seal(kApplicationData, chunk, out); !status.ok()) return status;
    plaintext.remove_prefix(chunk.size());
  }
  return absl::OkStatus();
}

absl::Status Tls13RecordLayer::SealCloseNotify(std::string* out) {
  constexpr char kCloseNotify[2] = {1 /* warning */, 0 /* close_notify */};
  return Seal(kAlert, std::string_view(kCloseNotify, 2), out);
}

absl::Status Tls13RecordLayer::Seal(uint8_t content_type, std::string_view plaintext,
                                    std::string* out) {
  if (write_.sequence >= kMaxRecordsPerKey) {
    return absl::ResourceExhaustedError(
        "TLS: this connection's write key protected its 2^24 records (a key update would be "
        "needed)");
  }
  // TLSInnerPlaintext = content || content type, no padding; then the 16-byte tag.
  const size_t ciphertext_size = plaintext.size() + 1 + kTagSize;
  const size_t start = out->size();
  AppendHeader(ciphertext_size, out);
  out->append(plaintext);
  out->push_back(static_cast<char>(content_type));
  out->resize(start + kHeaderSize + ciphertext_size);
  auto* record = reinterpret_cast<uint8_t*>(out->data() + start);
  const std::array<uint8_t, 12> nonce = Nonce(write_);
  const std::string_view header(out->data() + start, kHeaderSize);
  uint8_t* body = record + kHeaderSize;
  if (!AesGcmSeal(write_.key, nonce.data(), header, body, plaintext.size() + 1, body,
                  body + plaintext.size() + 1, kTagSize)) {
    out->resize(start);
    return absl::InternalError("TLS: libcrypto failed to seal a record");
  }
  ++write_.sequence;
  records_sealed.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::StatusOr<size_t> Tls13RecordLayer::WholeRecordSize(std::string_view in) const {
  if (in.size() < kHeaderSize) return 0;
  const auto* header = reinterpret_cast<const uint8_t*>(in.data());
  const size_t length = (size_t{header[3]} << 8) | header[4];
  if (header[0] != kApplicationData) {
    return absl::DataLossError(
        header[0] == kChangeCipherSpec || header[0] == kAlert || header[0] == kHandshake
            ? StrCat("TLS: the server sent an unprotected record of type ", int{header[0]},
                     " after the handshake")
            : StrCat("TLS: the server sent a record of unknown type ", int{header[0]}));
  }
  if (header[1] != 0x03 || header[2] != 0x03) {
    return absl::DataLossError("TLS: a record from the server has a wrong legacy version");
  }
  if (length <= kTagSize || length > kMaxCiphertext) {
    return absl::DataLossError(StrCat("TLS: a record from the server has an impossible length (",
                                      length, " bytes)"));
  }
  if (in.size() < kHeaderSize + length) return 0;
  if (read_.sequence >= kMaxRecordsPerKey) {
    return absl::ResourceExhaustedError(
        "TLS: the server's key protected 2^24 records without a key update");
  }
  return kHeaderSize + length;
}

absl::StatusOr<size_t> Tls13RecordLayer::Decrypt(std::string_view record, uint8_t* inner,
                                                 uint8_t* content_type) {
  const size_t inner_size = record.size() - kHeaderSize - kTagSize;
  const auto* body = reinterpret_cast<const uint8_t*>(record.data() + kHeaderSize);
  const std::array<uint8_t, 12> nonce = Nonce(read_);
  switch (AesGcmOpen(read_.key, nonce.data(), record.substr(0, kHeaderSize), body, inner_size,
                     inner, body + inner_size, kTagSize)) {
    case AesGcmOpenResult::kOpened:
      break;
    case AesGcmOpenResult::kForged:
      return absl::DataLossError("TLS: a record from the server failed its integrity check");
    case AesGcmOpenResult::kFailed:
      return absl::InternalError("TLS: libcrypto failed to open a record");
  }
  ++read_.sequence;
  records_opened.fetch_add(1, std::memory_order_relaxed);
  // The content type is the last non-zero byte; zeros after it are padding (§5.4).
  size_t end = inner_size;
  while (end > 0 && inner[end - 1] == 0) --end;
  if (end == 0) return absl::DataLossError("TLS: a record from the server has no content type");
  *content_type = inner[end - 1];
  return end - 1;
}

absl::StatusOr<Tls13RecordLayer::Opened> Tls13RecordLayer::Open(std::string_view in,
                                                                size_t* consumed,
                                                                std::string* out) {
  *consumed = 0;
  const absl::StatusOr<size_t> record_size = WholeRecordSize(in);
  if (!record_size.ok()) return record_size.status();
  if (*record_size == 0) return Opened::kNeedMore;
  const size_t start = out->size();
  out->resize(start + *record_size - kHeaderSize - kTagSize);
  auto* inner = reinterpret_cast<uint8_t*>(out->data() + start);
  uint8_t content_type = 0;
  const absl::StatusOr<size_t> content_size =
      Decrypt(in.substr(0, *record_size), inner, &content_type);
  if (!content_size.ok()) {
    out->resize(start);
    return content_size.status();
  }
  *consumed = *record_size;
  out->resize(start + *content_size);
  if (content_type == kApplicationData) return Opened::kApplicationData;
  const std::string plaintext = out->substr(start);
  out->resize(start);
  return InspectControlRecord(content_type, plaintext);
}

absl::StatusOr<Tls13RecordLayer::Opened> Tls13RecordLayer::OpenInPlace(
    std::span<char> in, size_t* consumed, std::string_view* plaintext) {
  *consumed = 0;
  *plaintext = {};
  const std::string_view record_bytes(in.data(), in.size());
  const absl::StatusOr<size_t> record_size = WholeRecordSize(record_bytes);
  if (!record_size.ok()) return record_size.status();
  if (*record_size == 0) return Opened::kNeedMore;
  auto* inner = reinterpret_cast<uint8_t*>(in.data() + kHeaderSize);
  uint8_t content_type = 0;
  const absl::StatusOr<size_t> content_size =
      Decrypt(record_bytes.substr(0, *record_size), inner, &content_type);
  if (!content_size.ok()) return content_size.status();
  *consumed = *record_size;
  const std::string_view content(in.data() + kHeaderSize, *content_size);
  if (content_type != kApplicationData) return InspectControlRecord(content_type, content);
  *plaintext = content;
  return Opened::kApplicationData;
}

absl::StatusOr<Tls13RecordLayer::Opened> Tls13RecordLayer::InspectControlRecord(
    uint8_t content_type, std::string_view plaintext) {
  if (content_type == kAlert) {
    if (plaintext.size() != 2) return absl::DataLossError("TLS: a malformed alert from the server");
    const auto description = static_cast<uint8_t>(plaintext[1]);
    if (description == 0) return Opened::kCloseNotify;
    const std::string_view name = AlertName(description);
    return absl::UnavailableError(
        StrCat("TLS alert from the server: ",
               name.empty() ? StrCat("alert ", int{description}) : std::string(name)));
  }
  if (content_type != kHandshake) {
    return absl::DataLossError(
        StrCat("TLS: the server sent protected content of type ", int{content_type},
               " after the handshake"));
  }
  // Post-handshake messages (§4.6); a record may hold several. Only tickets are harmless.
  while (!plaintext.empty()) {
    if (plaintext.size() < 4) {
      return absl::DataLossError("TLS: a handshake message from the server is cut short");
    }
    const auto type = static_cast<uint8_t>(plaintext[0]);
    const size_t length = (size_t{static_cast<uint8_t>(plaintext[1])} << 16) |
                          (size_t{static_cast<uint8_t>(plaintext[2])} << 8) |
                          static_cast<uint8_t>(plaintext[3]);
    if (type == kKeyUpdate) {
      return absl::UnimplementedError(
          "TLS: the server asked for a key update, which mailring cannot follow on a connection "
          "it took over from wolfSSL");
    }
    if (type == kCertificateRequest) {
      return absl::UnimplementedError(
          "TLS: the server asked for a client certificate after the handshake");
    }
    if (type != kNewSessionTicket) {
      return absl::DataLossError(
          StrCat("TLS: the server sent handshake message ", int{type}, " after the handshake"));
    }
    // A message split across records would leave a fragment here: tickets are small, and a
    // fragment is as useless to us as the ticket; nothing else may be split (checked above).
    plaintext.remove_prefix(std::min(plaintext.size(), 4 + length));
  }
  return Opened::kIgnored;
}

}  // namespace mailring::core
