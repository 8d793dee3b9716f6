#include "core/tls_client.h"

// options.h first: it carries the configuration Debian built the library with, and the other
// wolfSSL headers do not compile without it (the include sorter must not move it).
// clang-format off
#include <wolfssl/options.h>
// clang-format on
#include <arpa/inet.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <iterator>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "core/tls/aes_gcm_device.h"
#include "proto/str_cat.h"

namespace mailring::core {

void ReleaseThreadTlsCaches() { wc_ecc_fp_free(); }
namespace {

// Debian's bundle; used when wolfSSL's own search of the system store finds nothing.
constexpr const char* kSystemCaBundle = "/etc/ssl/certs/ca-certificates.crt";
// Plaintext moved per wolfSSL_read: one maximal TLS record.
constexpr size_t kReadChunk = 16384;
// Plaintext handed to one wolfSSL_write (it splits it into records).
constexpr size_t kWriteChunk = 1 << 20;

void InitializeWolfSslOnce() {
  static std::once_flag once;
  std::call_once(once, [] { wolfSSL_Init(); });
}

std::string WolfSslErrorText(int code) {
  char text[WOLFSSL_MAX_ERROR_SZ] = {};
  wolfSSL_ERR_error_string_n(static_cast<unsigned long>(code), text, sizeof(text));
  return StrCat(text, " (wolfSSL error ", code, ")");
}

bool IsIpLiteral(const std::string& name) {
  unsigned char address[16];
  return inet_pton(AF_INET, name.c_str(), address) == 1 ||
         inet_pton(AF_INET6, name.c_str(), address) == 1;
}

// " (it names a, b)" from the peer certificate's subjectAltNames, or "" when unavailable. Names
// in a certificate are public; nothing else of it is quoted.
std::string PeerCertificateNames(WOLFSSL* ssl) {
  WOLFSSL_X509* peer = wolfSSL_get_peer_certificate(ssl);
  if (peer == nullptr) return "";
  constexpr int kMaxNames = 5;
  std::string names;
  int count = 0;
  while (const char* name = wolfSSL_X509_get_next_altname(peer)) {
    if (count == kMaxNames) {
      names += ", ...";
      break;
    }
    StrAppend(&names, count == 0 ? "" : ", ", name);
    ++count;
  }
  wolfSSL_X509_free(peer);
  return names.empty() ? "" : StrCat(" (it names ", names, ")");
}

}  // namespace

absl::StatusOr<std::unique_ptr<TlsContext>> TlsContext::Create(const TlsContextOptions& options) {
  InitializeWolfSslOnce();
  WOLFSSL_CTX* ctx = wolfSSL_CTX_new(wolfTLS_client_method());
  if (ctx == nullptr) return absl::InternalError("TLS: cannot create a wolfSSL context");
  auto context = std::unique_ptr<TlsContext>(new TlsContext(ctx, options.session_cache));

  // Sessions to resume are kept by TlsClient in the worker's own cache, not in wolfSSL's
  // process-wide one (which is shared by all threads behind a lock and keyed by nothing we
  // choose): wolfSSL hands each new session to the callback and stores none itself.
  wolfSSL_CTX_set_session_cache_mode(ctx,
                                     WOLFSSL_SESS_CACHE_CLIENT | WOLFSSL_SESS_CACHE_NO_INTERNAL);
  wolfSSL_CTX_sess_set_new_cb(ctx, &TlsClient::NewSessionCallback);

  if (wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS) {
    return absl::InternalError("TLS: cannot set TLS 1.2 as the minimum version");
  }
  // Key exchange: X25519 first (its key share is the one sent), as OpenSSL's clients, HAProxy and
  // nginx offer it. wolfSSL's generic P-256 math costs about twice the CPU per handshake here
  // (769 against 370 µs for a full one, 625 against 130 µs resumed); P-256, P-384 and P-521 stay
  // offered for a server without X25519, which costs it one HelloRetryRequest round trip.
  int groups[] = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1, WOLFSSL_ECC_SECP384R1,
                  WOLFSSL_ECC_SECP521R1};
  if (wolfSSL_CTX_set_groups(ctx, groups, static_cast<int>(std::size(groups))) !=
      WOLFSSL_SUCCESS) {
    return absl::InternalError("TLS: cannot set the key exchange groups");
  }
  // wolfSSL's default suite order already offers AES-GCM first (TLS 1.3 and 1.2), which is what
  // the device accelerates; ChaCha20-Poly1305 has no crypto-callback hook in wolfSSL 5.5.4.
  if (options.aes_gcm_device) {
    if (const std::optional<int> device = AesGcmDeviceId(); device.has_value()) {
      if (wolfSSL_CTX_SetDevId(ctx, *device) != WOLFSSL_SUCCESS) {
        return absl::InternalError("TLS: cannot attach the AES-GCM device to the context");
      }
      context->uses_aes_gcm_device_ = true;
    }
  }
  context->takes_over_records_ = options.take_over_records;
  // Peer verification is chosen per session (TlsClient); this is the safe default.
  wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, nullptr);

  if (options.use_system_ca) {
    bool loaded = false;
#ifdef WOLFSSL_SYS_CA_CERTS
    loaded = wolfSSL_CTX_load_system_CA_certs(ctx) == WOLFSSL_SUCCESS;
#endif
    if (!loaded) {
      const int result = wolfSSL_CTX_load_verify_locations(ctx, kSystemCaBundle, nullptr);
      if (result != WOLFSSL_SUCCESS) {
        return absl::FailedPreconditionError(StrCat("TLS: cannot load the system CA store (",
                                                    kSystemCaBundle,
                                                    "): ", WolfSslErrorText(result)));
      }
    }
  }
  if (!options.ca_file.empty()) {
    const int result = wolfSSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr);
    if (result != WOLFSSL_SUCCESS) {
      return absl::InvalidArgumentError(
          StrCat("TLS: cannot load the CA file ", options.ca_file, ": ", WolfSslErrorText(result)));
    }
  }
  return context;
}

TlsContext::~TlsContext() { wolfSSL_CTX_free(ctx_); }

TlsClient::TlsClient(const TlsContext& context, std::string_view server_name, bool verify,
                     TlsResumption resumption)
    : server_name_(server_name), verify_(verify), resumption_(std::move(resumption)) {
  take_over_records_ = context.takes_over_records();
  ssl_ = wolfSSL_new(context.get());
  if (ssl_ == nullptr) {
    error_ = "cannot create a TLS session (out of memory)";
    return;
  }
  wolfSSL_SSLSetIORecv(ssl_, &TlsClient::ReceiveCallback);
  wolfSSL_SSLSetIOSend(ssl_, &TlsClient::SendCallback);
  wolfSSL_SetIOReadCtx(ssl_, this);
  wolfSSL_SetIOWriteCtx(ssl_, this);
  wolfSSL_set_verify(ssl_, verify_ ? WOLFSSL_VERIFY_PEER : WOLFSSL_VERIFY_NONE, nullptr);

  // RFC 6066: SNI carries host names only, never address literals.
  if (!server_name_.empty() && !IsIpLiteral(server_name_) &&
      wolfSSL_UseSNI(ssl_, WOLFSSL_SNI_HOST_NAME, server_name_.data(),
                     static_cast<unsigned short>(server_name_.size())) != WOLFSSL_SUCCESS) {
    error_ = StrCat("cannot use the server name ", server_name_, " for SNI");
    return;
  }
  if (verify_ && !server_name_.empty() &&
      wolfSSL_check_domain_name(ssl_, server_name_.c_str()) != WOLFSSL_SUCCESS) {
    error_ = StrCat("cannot check the certificate against ", server_name_);
    return;
  }
  OfferKeptSession();
}

void TlsClient::OfferKeptSession() {
  if (resumption_.cache == nullptr) return;
  std::optional<std::string> kept = resumption_.cache->Take(resumption_.key);
  if (!kept.has_value()) return;
  const auto* bytes = reinterpret_cast<const unsigned char*>(kept->data());
  WOLFSSL_SESSION* session =
      wolfSSL_d2i_SSL_SESSION(nullptr, &bytes, static_cast<long>(kept->size()));
  if (session == nullptr) return;  // unreadable: a full handshake, nothing lost
  // wolfSSL_set_session copies the session into ssl_ (NO_SESSION_CACHE_REF build), so ours is
  // freed at once. When it refuses the session (e.g. expired by wolfSSL's own clock), nothing
  // is offered and the handshake is a full one.
  offered_session_ = wolfSSL_set_session(ssl_, session) == WOLFSSL_SUCCESS;
  wolfSSL_SESSION_free(session);
}

int TlsClient::NewSessionCallback(WOLFSSL* ssl, WOLFSSL_SESSION* session) {
  // The read context is the TlsClient (set in the constructor for every ssl of our contexts).
  auto* self = static_cast<TlsClient*>(wolfSSL_GetIOReadCtx(ssl));
  if (self != nullptr) self->KeepSession(session);
  return 0;  // not kept by reference: wolfSSL frees `session`
}

void TlsClient::KeepSession(WOLFSSL_SESSION* session) {
  if (resumption_.cache == nullptr || !wolfSSL_SESSION_is_resumable(session)) return;
  // TLS 1.2 hands over the new session inside the handshake, before Handshake() sees whether
  // the offered one was declined: the stale ones must go before the new one is kept. (TLS 1.3
  // tickets come after the handshake, whose end already settled it.)
  if (!handshake_done_ && offered_session_ && wolfSSL_session_reused(ssl_) != 1) {
    ForgetKeptSessions();
  }
  const int size = wolfSSL_i2d_SSL_SESSION(session, nullptr);
  if (size <= 0) return;
  std::string bytes(static_cast<size_t>(size), '\0');
  auto* out = reinterpret_cast<unsigned char*>(bytes.data());
  if (wolfSSL_i2d_SSL_SESSION(session, &out) != size) return;
  // TLS 1.3: the ticket's lifetime; TLS 1.2: the session's timeout (wolfSSL sets it from the
  // ticket lifetime hint when there is one). Both in seconds.
  const bool tls13 = wolfSSL_version(ssl_) == TLS1_3_VERSION;
  const long lifetime_s =
      tls13 ? static_cast<long>(wolfSSL_SESSION_get_ticket_lifetime_hint(session))
            : wolfSSL_SESSION_get_timeout(session);
  resumption_.cache->Put(resumption_.key, std::move(bytes), int64_t{lifetime_s} * 1000,
                         /*single_use=*/tls13);
}

void TlsClient::ForgetKeptSessions() {
  if (resumption_.cache == nullptr || forgot_kept_sessions_) return;
  forgot_kept_sessions_ = true;  // once: what this connection keeps afterwards is fresh
  resumption_.cache->Forget(resumption_.key);
}

TlsClient::~TlsClient() {
  if (ssl_ != nullptr) wolfSSL_free(ssl_);
}

void TlsClient::Feed(std::string_view ciphertext) {
  assert(opened_bytes_ == 0);
  input_.Append(ciphertext);
}

std::span<char> TlsClient::InputRoom(size_t max_bytes) {
  assert(opened_bytes_ == 0);
  return input_.Room(max_bytes).first(max_bytes);
}

void TlsClient::InputReceived(size_t bytes) { input_.Commit(bytes); }

std::string TlsClient::TakeOutput() {
  std::string output = std::move(output_);
  output_.clear();
  return output;
}

void TlsClient::AppendOutputTo(std::string* out) {
  if (out->empty()) {
    out->swap(output_);  // both keep their capacity: no allocation per record batch
  } else {
    out->append(output_);
  }
  output_.clear();
}

bool TlsClient::has_output() const { return !output_.empty(); }

TlsClient::Result TlsClient::Handshake() {
  if (!error_.empty()) return Result::kError;
  if (records_.has_value() || wolfSSL_is_init_finished(ssl_)) return Result::kDone;
  if (verify_ && server_name_.empty()) {
    error_ = "no server name to check the certificate against";
    return Result::kError;
  }
  const int result = wolfSSL_connect(ssl_);
  if (result == WOLFSSL_SUCCESS) {
    if (!handshake_done_) {
      handshake_done_ = true;
      resumed_ = offered_session_ && wolfSSL_session_reused(ssl_) == 1;
      // Declined: the server no longer knows its tickets (restart, rotated keys); the other
      // kept sessions of the destination would be declined too.
      if (offered_session_ && !resumed_) ForgetKeptSessions();
    }
    return Result::kDone;
  }
  if (wolfSSL_get_error(ssl_, result) == WOLFSSL_ERROR_WANT_READ) return Result::kWantInput;
  if (offered_session_) ForgetKeptSessions();
  return Fail(result);
}

TlsClient::Result TlsClient::Write(std::string_view plaintext) {
  if (!error_.empty()) return Result::kError;
  if (records_.has_value()) {
    if (absl::Status sealed = records_->SealApplicationData(plaintext, &output_); !sealed.ok()) {
      error_ = std::string(sealed.message());
      return Result::kError;
    }
    return Result::kDone;
  }
  if (!wolfSSL_is_init_finished(ssl_)) {
    error_ = "write before the TLS handshake completed";
    return Result::kError;
  }
  // The send callback never pushes back, so wolfSSL_write consumes everything it is given.
  while (!plaintext.empty()) {
    const size_t size = std::min(plaintext.size(), kWriteChunk);
    const int written = wolfSSL_write(ssl_, plaintext.data(), static_cast<int>(size));
    if (written <= 0) return Fail(written);
    plaintext.remove_prefix(static_cast<size_t>(written));
  }
  return Result::kDone;
}

TlsClient::Result TlsClient::Read(std::string* out, size_t max_bytes) {
  if (!error_.empty()) return Result::kError;
  if (records_.has_value()) return ReadRecords(out, max_bytes);
  const Result result = ReadWithWolfSsl(out, max_bytes);
  // Only after application data: by then the server's post-handshake tickets have been read by
  // wolfSSL (servers send them before their first data), where resumption can keep them.
  if (result == Result::kDone) MaybeTakeOverRecords();
  return result;
}

TlsClient::Result TlsClient::ReadWithWolfSsl(std::string* out, size_t max_bytes) {
  if (wolfSSL_get_shutdown(ssl_) & WOLFSSL_RECEIVED_SHUTDOWN) return Result::kClosed;
  if (!wolfSSL_is_init_finished(ssl_)) {
    error_ = "read before the TLS handshake completed";
    return Result::kError;
  }
  size_t appended = 0;
  char chunk[kReadChunk];
  while (appended < max_bytes) {
    const int want = static_cast<int>(std::min(max_bytes - appended, sizeof(chunk)));
    const int got = wolfSSL_read(ssl_, chunk, want);
    if (got > 0) {
      out->append(chunk, static_cast<size_t>(got));
      appended += static_cast<size_t>(got);
      continue;
    }
    const int code = wolfSSL_get_error(ssl_, got);
    if (code == WOLFSSL_ERROR_WANT_READ) break;
    const Result result = code == WOLFSSL_ERROR_ZERO_RETURN ? Result::kClosed : Fail(got);
    // The plaintext before the close or the failure is delivered first; the next call reports
    // the close (wolfSSL remembers it) or the failure (error_ is set).
    return appended > 0 ? Result::kDone : result;
  }
  return appended > 0 ? Result::kDone : Result::kWantInput;
}

TlsClient::Result TlsClient::OpenInPlace(size_t max_bytes,
                                         std::vector<std::string_view>* plaintext) {
  if (!error_.empty()) return Result::kError;
  if (!records_.has_value()) {
    error_ = "opening records in place before the record layer took them over";
    return Result::kError;
  }
  assert(opened_bytes_ == 0 && !pending_plaintext_handed_out_);
  size_t opened = 0;
  if (!pending_plaintext_.empty()) {  // left by a Read() that could not take a whole record
    plaintext->push_back(pending_plaintext_);
    pending_plaintext_handed_out_ = true;
    opened = pending_plaintext_.size();
  }
  while (opened < max_bytes && !closed_by_server_) {
    size_t consumed = 0;
    std::string_view content;
    const absl::StatusOr<Tls13RecordLayer::Opened> result = records_->OpenInPlace(
        input_.mutable_readable().subspan(opened_bytes_), &consumed, &content);
    if (!result.ok()) {
      error_ = std::string(result.status().message());
      // The plaintext before the failure goes first; the next call reports it.
      if (opened > 0) return Result::kDone;
      ReleaseOpened();
      return Result::kError;
    }
    if (*result == Tls13RecordLayer::Opened::kNeedMore) break;
    opened_bytes_ += consumed;
    if (*result == Tls13RecordLayer::Opened::kCloseNotify) closed_by_server_ = true;
    if (content.empty()) continue;
    plaintext->push_back(content);
    opened += content.size();
  }
  if (opened > 0) return Result::kDone;
  ReleaseOpened();  // only records with nothing for the caller (tickets, close_notify)
  return closed_by_server_ ? Result::kClosed : Result::kWantInput;
}

void TlsClient::ReleaseOpened() {
  input_.Consume(opened_bytes_);
  opened_bytes_ = 0;
  if (pending_plaintext_handed_out_) pending_plaintext_.clear();
  pending_plaintext_handed_out_ = false;
}

TlsClient::Result TlsClient::ReadRecords(std::string* out, size_t max_bytes) {
  assert(opened_bytes_ == 0 && !pending_plaintext_handed_out_);
  size_t appended = std::min(pending_plaintext_.size(), max_bytes);
  out->append(pending_plaintext_, 0, appended);
  pending_plaintext_.erase(0, appended);
  if (!pending_plaintext_.empty()) return Result::kDone;
  while (appended < max_bytes && !closed_by_server_) {
    size_t consumed = 0;
    const size_t before = out->size();
    const absl::StatusOr<Tls13RecordLayer::Opened> opened =
        records_->Open(input_.readable(), &consumed, out);
    if (!opened.ok()) {
      error_ = std::string(opened.status().message());
      // The plaintext before the failure goes first; the next call reports it.
      return appended > 0 ? Result::kDone : Result::kError;
    }
    if (*opened == Tls13RecordLayer::Opened::kNeedMore) break;
    input_.Consume(consumed);
    if (*opened == Tls13RecordLayer::Opened::kCloseNotify) closed_by_server_ = true;
    if (*opened != Tls13RecordLayer::Opened::kApplicationData) continue;
    appended += out->size() - before;
    if (appended > max_bytes) {  // a record's worth more than the caller takes: keep the rest
      const size_t extra = appended - max_bytes;
      pending_plaintext_.assign(*out, out->size() - extra, extra);
      out->resize(out->size() - extra);
      appended = max_bytes;
    }
  }
  if (appended > 0) return Result::kDone;
  return closed_by_server_ ? Result::kClosed : Result::kWantInput;
}

std::variant<KtlsKeys, KtlsFallback> TlsClient::WolfSslTrafficKeys() const {
  if (wolfSSL_version(ssl_) != TLS1_3_VERSION) return KtlsFallback::kNotTls13;
  if (wolfSSL_GetBulkCipher(ssl_) != wolfssl_aes_gcm || wolfSSL_GetIVSize(ssl_) != 12) {
    return KtlsFallback::kNotAesGcm;
  }
  const int key_size = wolfSSL_GetKeySize(ssl_);
  const unsigned char* client_key = wolfSSL_GetClientWriteKey(ssl_);
  const unsigned char* client_iv = wolfSSL_GetClientWriteIV(ssl_);
  const unsigned char* server_key = wolfSSL_GetServerWriteKey(ssl_);
  const unsigned char* server_iv = wolfSSL_GetServerWriteIV(ssl_);
  word64 write_sequence = 0, read_sequence = 0;
  // Both return !sequence (1 for 0) on success and BAD_FUNC_ARG (< 0) on misuse.
  if ((key_size != 16 && key_size != 32) || client_key == nullptr || client_iv == nullptr ||
      server_key == nullptr || server_iv == nullptr ||
      wolfSSL_GetSequenceNumber(ssl_, &write_sequence) < 0 ||
      wolfSSL_GetPeerSequenceNumber(ssl_, &read_sequence) < 0) {
    return KtlsFallback::kNotAesGcm;
  }
  KtlsKeys keys;
  keys.transmit.key.assign(reinterpret_cast<const char*>(client_key),
                           static_cast<size_t>(key_size));
  std::memcpy(keys.transmit.iv.data(), client_iv, keys.transmit.iv.size());
  keys.transmit.sequence = write_sequence;
  keys.receive.key.assign(reinterpret_cast<const char*>(server_key),
                          static_cast<size_t>(key_size));
  std::memcpy(keys.receive.iv.data(), server_iv, keys.receive.iv.size());
  keys.receive.sequence = read_sequence;
  return keys;
}

std::variant<KtlsKeys, KtlsFallback> TlsClient::KtlsHandover() const {
  if (!error_.empty() || closed_by_server_ || !handshake_done_ || !input_.empty() ||
      record_delivered_ != 0 || !pending_plaintext_.empty() || !output_.empty()) {
    return KtlsFallback::kNotAtRecordBoundary;
  }
  if (records_.has_value()) return KtlsKeys{records_->write_key(), records_->read_key()};
  if (ssl_ == nullptr || wolfSSL_pending(ssl_) != 0 ||
      (wolfSSL_get_shutdown(ssl_) & WOLFSSL_RECEIVED_SHUTDOWN)) {
    return KtlsFallback::kNotAtRecordBoundary;
  }
  return WolfSslTrafficKeys();
}

void TlsClient::MaybeTakeOverRecords() {
  // At a record boundary (nothing of a record half-delivered), with no plaintext left inside
  // wolfSSL, on TLS 1.3 with AES-GCM and its 12-byte static IV: what Tls13RecordLayer handles.
  if (!take_over_records_ || ssl_ == nullptr || !error_.empty() || record_delivered_ != 0 ||
      wolfSSL_pending(ssl_) != 0 || (wolfSSL_get_shutdown(ssl_) & WOLFSSL_RECEIVED_SHUTDOWN)) {
    return;
  }
  std::variant<KtlsKeys, KtlsFallback> keys = WolfSslTrafficKeys();
  if (!std::holds_alternative<KtlsKeys>(keys)) return;
  KtlsKeys& traffic = std::get<KtlsKeys>(keys);
  absl::StatusOr<Tls13RecordLayer> records =
      Tls13RecordLayer::Create(std::move(traffic.transmit), std::move(traffic.receive));
  if (!records.ok()) return;  // wolfSSL keeps the connection
  version_ = std::string(protocol_version());
  cipher_ = std::string(cipher_suite());
  records_.emplace(*std::move(records));
  wolfSSL_free(ssl_);
  ssl_ = nullptr;
  CountTls13Handover();
}

void TlsClient::ReleaseDrainedBuffers() {
  if (opened_bytes_ == 0) input_.Release();
  if (output_.empty()) std::string().swap(output_);
  if (pending_plaintext_.empty()) std::string().swap(pending_plaintext_);
}

void TlsClient::Shutdown() {
  if (records_.has_value()) {
    if (absl::Status sealed = records_->SealCloseNotify(&output_); !sealed.ok()) {
      error_ = std::string(sealed.message());
    }
    return;
  }
  if (ssl_ == nullptr || !wolfSSL_is_init_finished(ssl_)) return;
  // Returns "not done" because the server's close_notify is not awaited; only ours is wanted.
  wolfSSL_shutdown(ssl_);
}

std::string_view TlsClient::protocol_version() const {
  if (records_.has_value()) return version_;
  if (ssl_ == nullptr || !wolfSSL_is_init_finished(ssl_)) return {};
  const char* version = wolfSSL_get_version(ssl_);
  return version == nullptr ? std::string_view() : std::string_view(version);
}

std::string_view TlsClient::cipher_suite() const {
  if (records_.has_value()) return cipher_;
  if (ssl_ == nullptr || !wolfSSL_is_init_finished(ssl_)) return {};
  const char* name = wolfSSL_get_cipher_name(ssl_);
  return name == nullptr ? std::string_view() : std::string_view(name);
}

int TlsClient::ReceiveCallback(WOLFSSL* /*ssl*/, char* buffer, int size, void* context) {
  auto* self = static_cast<TlsClient*>(context);
  const size_t available = self->input_.size();
  if (available == 0 || size <= 0) return WOLFSSL_CBIO_ERR_WANT_READ;
  // Never past the current record: its header first, then its body (wolfSSL asks again for
  // what it still needs).
  constexpr size_t kHeaderSize = sizeof(record_header_);
  const size_t record_left = self->record_size_ == 0
                                 ? kHeaderSize - self->record_delivered_
                                 : self->record_size_ - self->record_delivered_;
  const size_t n = std::min({available, static_cast<size_t>(size), record_left});
  const char* bytes = self->input_.readable().data();
  std::memcpy(buffer, bytes, n);
  if (self->record_size_ == 0) {
    std::memcpy(self->record_header_ + self->record_delivered_, bytes, n);
  }
  self->record_delivered_ += n;
  if (self->record_size_ == 0 && self->record_delivered_ == kHeaderSize) {
    self->record_size_ = kHeaderSize + ((size_t{self->record_header_[3]} << 8) |
                                        self->record_header_[4]);
  }
  if (self->record_delivered_ == self->record_size_) {
    self->record_delivered_ = 0;
    self->record_size_ = 0;
  }
  self->input_.Consume(n);
  return static_cast<int>(n);
}

int TlsClient::SendCallback(WOLFSSL* /*ssl*/, char* buffer, int size, void* context) {
  auto* self = static_cast<TlsClient*>(context);
  self->output_.append(buffer, static_cast<size_t>(size));
  return size;
}

TlsClient::Result TlsClient::Fail(int wolfssl_return) {
  const int code = wolfSSL_get_error(ssl_, wolfssl_return);
  switch (code) {
    case ASN_AFTER_DATE_E:
      error_ = "certificate has expired";
      break;
    case ASN_BEFORE_DATE_E:
      error_ = "certificate is not yet valid";
      break;
    case DOMAIN_NAME_MISMATCH:
      error_ = StrCat("host name mismatch: the certificate does not name ", server_name_,
                      PeerCertificateNames(ssl_));
      break;
    case ASN_NO_SIGNER_E:
      error_ = "certificate is not signed by a trusted CA";
      break;
    case VERIFY_MAC_ERROR:
    case AES_GCM_AUTH_E:
    case AES_CCM_AUTH_E:
      error_ =
          StrCat("a record from the server failed its integrity check (wolfSSL error ", code, ")");
      break;
    case VERSION_ERROR:
    case UNSUPPORTED_PROTO_VERSION:
      error_ = "protocol version not accepted (TLS 1.2 minimum)";
      break;
    case FATAL_ERROR: {
      WOLFSSL_ALERT_HISTORY history{};
      if (wolfSSL_get_alert_history(ssl_, &history) == WOLFSSL_SUCCESS &&
          history.last_rx.code >= 0) {
        error_ = StrCat("TLS alert from the server: ",
                        wolfSSL_alert_desc_string_long(history.last_rx.code));
      } else {
        error_ = "TLS alert from the server";
      }
      break;
    }
    default:
      error_ = WolfSslErrorText(code);
      break;
  }
  return Result::kError;
}

}  // namespace mailring::core
