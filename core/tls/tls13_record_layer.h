// Tls13RecordLayer: TLS 1.3 record protection (RFC 8446 §5) with AES-128-GCM or AES-256-GCM, for a
// connection whose handshake wolfSSL has completed and handed over (TlsClient).
//
// Why: Debian's wolfSSL 5.5.4 holds about 74 KiB per connection for as long as its WOLFSSL object
// lives (perf/micro/tls_session_memory.cc: a 37.5 KB object, its side allocations and the
// handshake's leftovers), and an idle IMAP session lives for hours. Once the handshake is done, a
// TLS 1.3 AES-GCM connection needs only two traffic keys, two static IVs and two sequence numbers
// (about 120 bytes): TlsClient takes them out of wolfSSL (its ATOMIC_USER getters) at a record
// boundary, frees the WOLFSSL object and protects records with this class from then on. The keys
// and sequence numbers are exactly what the kernel's kTLS takes (TLS_TX / TLS_RX), so this is also
// the user-space side of that handover. The AES-GCM itself runs on libcrypto's EVP (AES-NI,
// core/tls/aes_gcm_cipher.h).
//
// What it accepts after the handshake (RFC 8446): application data; handshake messages
// NewSessionTicket (ignored: a ticket wolfSSL did not see cannot be used) and nothing else
// (KeyUpdate needs the traffic secret, which wolfSSL 5.5.4 does not give out, so it ends the
// connection with a clear error, as does a post-handshake CertificateRequest); alerts
// (close_notify closes, any other alert is an error naming it). Outer records are checked
// strictly: type 23, legacy version 0x0303, at most 2^14 + 256 bytes of ciphertext.
//
// Contract: single-threaded (one worker). Never logs; error texts name the failure, never key
// material or record contents. Sequence numbers are never reused: after 2^24 records in one
// direction (RFC 8446 §5.5's AES-GCM limit, ~256 GiB) the connection fails instead.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace mailring::core {

// One direction's traffic protection.
struct TrafficKey {
  std::string key;                   // 16 (AES-128-GCM) or 32 (AES-256-GCM) bytes
  std::array<uint8_t, 12> iv{};      // the static IV (RFC 8446 §5.3)
  uint64_t sequence = 0;             // of the next record
};

// Process-wide counts of what every record layer did (all threads; relaxed).
struct Tls13RecordLayerCounts {
  uint64_t handovers = 0;  // connections whose records moved here from wolfSSL
  uint64_t sealed = 0;     // records sealed
  uint64_t opened = 0;     // records opened (their tag matched)
};
Tls13RecordLayerCounts Tls13RecordLayerRecordCounts();
// Counted by TlsClient when a handover completes.
void CountTls13Handover();

class Tls13RecordLayer {
 public:
  // Largest plaintext in one record (RFC 8446 §5.1).
  static constexpr size_t kMaxPlaintext = 16384;

  // InvalidArgument for a key that is not 16 or 32 bytes; FailedPrecondition when libcrypto has
  // no AES-GCM.
  static absl::StatusOr<Tls13RecordLayer> Create(TrafficKey write, TrafficKey read);

  // Seals `plaintext` as application data records (at most kMaxPlaintext each), appended to
  // `out`. An error (the sequence limit, a libcrypto failure) ends the connection.
  absl::Status SealApplicationData(std::string_view plaintext, std::string* out);
  // Seals a close_notify alert (RFC 8446 §6.1) into `out`.
  absl::Status SealCloseNotify(std::string* out);

  enum class Opened : uint8_t {
    kNeedMore,         // `in` does not hold a whole record yet; nothing consumed
    kApplicationData,  // plaintext appended to `out`
    kIgnored,          // a record with nothing for the caller (NewSessionTicket)
    kCloseNotify,      // the peer closed its direction
  };
  // Opens the record at the start of `in`; `*consumed` is set to its size (0 for kNeedMore).
  // Errors (a record that fails its tag, a malformed record, an alert, a KeyUpdate) end the
  // connection; their message is the reason to give.
  absl::StatusOr<Opened> Open(std::string_view in, size_t* consumed, std::string* out);
  // Open() without a copy: decrypts the record at the start of `in` where it lies and points
  // `*plaintext` into `in` at its application data (empty for every other result). The record's
  // bytes are overwritten either way; on an error nothing is consumed and the connection ends.
  absl::StatusOr<Opened> OpenInPlace(std::span<char> in, size_t* consumed,
                                     std::string_view* plaintext);

  // What a decrypted record that is not application data means (kIgnored, kCloseNotify or the
  // error ending the connection, as Open() says); also used for kTLS (core/tls/ktls.h).
  static absl::StatusOr<Opened> InspectControlRecord(uint8_t content_type,
                                                     std::string_view plaintext);
  // The keys and next sequence numbers, for handing the connection to kTLS.
  const TrafficKey& write_key() const { return write_; }
  const TrafficKey& read_key() const { return read_; }

 private:
  Tls13RecordLayer(TrafficKey write, TrafficKey read)
      : write_(std::move(write)), read_(std::move(read)) {}
  absl::Status Seal(uint8_t content_type, std::string_view plaintext, std::string* out);
  // The size of the whole record at the start of `in` (header included), 0 when it is not all
  // there yet, or the error that the header or the sequence number means.
  absl::StatusOr<size_t> WholeRecordSize(std::string_view in) const;
  // Decrypts `record` (one whole record) into `inner` (which may be the record's own body) and
  // returns the content's size without the type byte and padding; the type in `*content_type`.
  absl::StatusOr<size_t> Decrypt(std::string_view record, uint8_t* inner, uint8_t* content_type);

  TrafficKey write_;
  TrafficKey read_;
};

}  // namespace mailring::core
