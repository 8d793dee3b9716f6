// kTLS: the kernel protects the records of an upstream TLS connection once wolfSSL completed its
// handshake, so the relay moves the TLS leg like a plain one (core/relay_leg.h: multishot recv
// copy path, splice for bursts): the kernel decrypts on recv/splice from the socket and encrypts
// on send/splice into it. mailring's user-space record path (TlsRelay, Tls13RecordLayer) stays
// the fallback.
//
// What the kernel takes (linux/tls.h): TCP_ULP "tls", then SOL_TLS TLS_TX and TLS_RX with a
// tls12_crypto_info_aes_gcm_{128,256} each. For TLS 1.3 the 12-byte static IV is split: salt =
// iv[0..3], iv = iv[4..11]; rec_seq is the next record's sequence number, big-endian.
//
// What it does not do itself, and these functions do:
//  - records that are not application data (RFC 8446: NewSessionTicket, KeyUpdate, alerts):
//    recv without a control buffer fails with EIO on them and splice with EINVAL, leaving the
//    record at the head of the socket; ReadControlRecord() takes it with recvmsg and a
//    TLS_GET_RECORD_TYPE cmsg and says what it was;
//  - the close_notify of our direction: SendCloseNotify() before shutdown(SHUT_WR).
//
// A KeyUpdate cannot be followed (wolfSSL 5.5.4 gives out no traffic secret to derive the next
// key from), nor a post-handshake CertificateRequest: both end the connection with that reason.
//
// Contract: pure functions on a socket fd and traffic keys; no logging, no key material in any
// status message. Keys handed to the kernel are wiped from the crypto_info copies here.
#pragma once

#include <linux/tls.h>

#include <cstddef>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string_view>
#include <variant>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/ktls_fallback.h"
#include "core/tls/tls13_record_layer.h"

namespace mailring::core {

// The two directions of a TLS 1.3 connection at a record boundary, as kTLS takes them.
struct KtlsKeys {
  TrafficKey transmit;  // ours (client_application_traffic)
  TrafficKey receive;   // the server's
};

// The crypto_info setsockopt(SOL_TLS, TLS_TX/TLS_RX) takes for a TLS 1.3 traffic key: a
// tls12_crypto_info_aes_gcm_128 or _256 by key size. InvalidArgument for another key size.
using KtlsCryptoInfo = std::variant<tls12_crypto_info_aes_gcm_128, tls12_crypto_info_aes_gcm_256>;
absl::StatusOr<KtlsCryptoInfo> Tls13CryptoInfo(const TrafficKey& key);

// Attaches the TLS ULP to a connected TCP socket and installs both directions (RX, then TX).
// NotFound: TCP_ULP failed with ENOENT (no kernel TLS); FailedPrecondition: another failure
// before any direction was installed. Both leave a plain TCP socket (the TLS ULP without keys
// passes everything through), so the user-space record path can take the session.
// Internal: RX was installed and TX failed; the socket is unusable, the session must close.
absl::Status InstallKtls(int fd, const KtlsKeys& keys);
// True when InstallKtls's error leaves the socket usable by the user-space record path.
bool KtlsErrorAllowsFallback(const absl::Status& status);

// The next record on a kTLS socket is not application data: reads it (recvmsg with a
// TLS_GET_RECORD_TYPE cmsg) and says what it was.
enum class ControlRecord : uint8_t {
  kIgnored,      // NewSessionTicket: consumed, relaying goes on
  kCloseNotify,  // the server closed its direction
};
// Errors: the alert the server sent ("TLS alert from the server: ..."), a KeyUpdate or
// CertificateRequest (Unimplemented, saying why), EAGAIN as Unavailable ("no record yet"), a
// socket error.
absl::StatusOr<ControlRecord> ReadControlRecord(int fd);
// The record type a recvmsg on a kTLS socket reported in its TLS_GET_RECORD_TYPE cmsg, if any.
std::optional<uint8_t> RecordTypeFromControl(const struct msghdr& message);
// What a control record of `record_type` holding `plaintext` means (the parsing part of
// ReadControlRecord; application data is an error here).
absl::StatusOr<ControlRecord> ParseControlRecord(uint8_t record_type, std::string_view plaintext);

// Sends a TLS close_notify alert (level 1, description 0) through the kernel (sendmsg with a
// TLS_SET_RECORD_TYPE cmsg); call before shutdown(SHUT_WR).
absl::Status SendCloseNotify(int fd);

}  // namespace mailring::core
