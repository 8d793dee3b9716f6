// TlsClient: one client-side TLS connection to a mail server, driven by a worker.
//
// wolfSSL runs with in-memory I/O callbacks: the worker feeds ciphertext it received from the
// socket (Feed), asks wolfSSL to make progress (Handshake / Read / Write), and sends whatever
// ciphertext wolfSSL produced (TakeOutput). wolfSSL never touches the socket, never blocks and
// needs no thread of its own; the worker's io_uring does all I/O.
//
// Verification is on unless the destination opts out: the system CA store plus an optional
// extra CA file (TlsContext), SNI with the server name, and the certificate's names checked
// against it. TLS 1.2 is the minimum; TLS 1.3 is preferred.
//
// Contract: single-threaded (one worker). Failure reasons (error()) name what went wrong
// ("certificate has expired", "host name mismatch: certificate is for x, not y", "TLS alert:
// handshake failure", ...) and never contain key material. Output buffers are bounded by what
// the caller writes; Read() appends at most `max_bytes` of plaintext.
//
// Resumption: a TlsClient given a TlsResumption offers a session its worker kept for the same
// destination (core/tls/session_cache.h) and keeps the sessions the server issues: TLS 1.2's at
// the end of the handshake, TLS 1.3's NewSessionTickets when a later Read() processes them (they
// arrive after the handshake). A resumed handshake skips the certificate exchange; the session
// being resumed was verified when it was made, under the same key (which includes the
// verification setting). A handshake that offered a session and failed, or that the server
// completed without resuming, drops the destination's kept sessions.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "core/byte_buffer.h"
#include "core/tls/ktls.h"
#include "core/tls/session_cache.h"
#include "core/tls/tls13_record_layer.h"

struct WOLFSSL_CTX;
struct WOLFSSL;
struct WOLFSSL_SESSION;

namespace mailring::core {

struct TlsContextOptions {
  bool use_system_ca = true;  // the system store (/etc/ssl/certs)
  std::string ca_file;        // extra PEM bundle, optional
  // AES-GCM record crypto on AES-NI through libcrypto (core/tls/aes_gcm_device.h) when the
  // machine has it; false keeps wolfSSL's software AES (tests compare the two).
  bool aes_gcm_device = true;
  // The worker's resumption cache; max_destinations = 0 turns resumption off.
  TlsSessionCacheOptions session_cache;
  // After a TLS 1.3 AES-GCM handshake, take the records over from wolfSSL at the first record
  // boundary after application data and free its connection state (core/tls/tls13_record_layer.h:
  // ~74 KiB less per session); false keeps wolfSSL for the whole connection.
  bool take_over_records = true;
};

// A WOLFSSL_CTX: CA store and protocol limits, shared by the sessions of one worker, and that
// worker's TLS session cache (a new context, e.g. with another CA file, starts with none).
class TlsContext {
 public:
  static absl::StatusOr<std::unique_ptr<TlsContext>> Create(const TlsContextOptions& options);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  WOLFSSL_CTX* get() const { return ctx_; }
  // True when the context's AES-GCM records go through the AES-NI device.
  bool uses_aes_gcm_device() const { return uses_aes_gcm_device_; }
  // The worker's sessions to resume. Mutable through a const context on purpose: the context is
  // shared read-only by the worker's sessions, the cache is the worker thread's own state.
  TlsSessionCache* session_cache() const { return session_cache_.get(); }
  bool takes_over_records() const { return takes_over_records_; }

 private:
  TlsContext(WOLFSSL_CTX* ctx, TlsSessionCacheOptions cache_options)
      : ctx_(ctx), session_cache_(std::make_unique<TlsSessionCache>(std::move(cache_options))) {}
  WOLFSSL_CTX* ctx_;
  bool uses_aes_gcm_device_ = false;
  bool takes_over_records_ = true;
  std::unique_ptr<TlsSessionCache> session_cache_;
};

// Where a TlsClient takes a session to offer and keeps the ones the server issues.
struct TlsResumption {
  TlsSessionCache* cache = nullptr;  // null: neither offer nor keep (a full handshake)
  std::string key;                   // TlsResumptionKey(route)
};

// Frees the calling thread's wolfSSL caches (the ECC fixed-point cache is thread-local): call
// it when a thread that ran TLS handshakes ends, or the memory is lost with the thread.
void ReleaseThreadTlsCaches();

class TlsClient {
 public:
  enum class Result { kDone, kWantInput, kClosed, kError };

  // `server_name`: for SNI and, when `verify`, the certificate check. Empty server_name with
  // verify is an error at Handshake().
  // `resumption`: see the top of this file; the default resumes nothing.
  TlsClient(const TlsContext& context, std::string_view server_name, bool verify,
            TlsResumption resumption = {});
  ~TlsClient();
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  // Ciphertext received from the server.
  void Feed(std::string_view ciphertext);
  // Feed() without the copy, for a caller that reads the socket itself: room for up to
  // `max_bytes` of ciphertext at the end of the input, for recv(2) to write into; then
  // InputReceived() with what it wrote.
  std::span<char> InputRoom(size_t max_bytes);
  void InputReceived(size_t bytes);
  // Ciphertext wolfSSL wants sent (handshake messages, records, alerts); moves it out.
  std::string TakeOutput();
  // The same, appended to `out` (swapped into it when `out` is empty, keeping both capacities).
  void AppendOutputTo(std::string* out);
  bool has_output() const;

  // kDone once the handshake completed; kWantInput until then; kError with error() set.
  Result Handshake();
  // Encrypts all of `plaintext` into the output. kError on failure.
  Result Write(std::string_view plaintext);
  // Decrypts what the fed ciphertext holds, appending at most `max_bytes` of plaintext to
  // `out`. kDone when something was appended, kWantInput when a whole record is not there yet,
  // kClosed on the server's close_notify, kError on an alert or a bad record.
  Result Read(std::string* out, size_t max_bytes);
  // Read() without copies, for the relay after the take-over (took_over_records()): opens the
  // whole records in the input where they lie, until at least `max_bytes` of plaintext are open
  // or the input holds no whole record, and appends views of the plaintext to `plaintext`
  // (views into the input). Results as Read(). The views stay valid until ReleaseOpened(), which
  // must come before the next OpenInPlace(), Read(), Feed() or InputRoom().
  Result OpenInPlace(size_t max_bytes, std::vector<std::string_view>* plaintext);
  // The plaintext OpenInPlace() gave was used: its records leave the input.
  void ReleaseOpened();
  // Frees the buffers of ciphertext already consumed or taken, keeping nothing that is still
  // needed: an idle session must not hold the capacity a 64 KiB burst left behind.
  void ReleaseDrainedBuffers();
  // Capacity of the input and output buffers (an empty one keeps its small in-object capacity).
  size_t buffered_capacity() const { return input_.capacity() + output_.capacity(); }
  // Queues a close_notify into the output.
  void Shutdown();
  // True once the records moved from wolfSSL to the record layer (wolfSSL's state is freed).
  bool took_over_records() const { return records_.has_value(); }
  // For kTLS (core/tls/ktls.h): on a TLS 1.3 AES-GCM connection at a record boundary with
  // nothing buffered here (no unconsumed ciphertext, no record half-fed to wolfSSL, no pending
  // plaintext, no unsent output), both traffic keys with their next sequence numbers, taken
  // from wolfSSL or from the record layer; otherwise why not. Changes nothing: once the kernel
  // holds the keys, the caller must not use this client for records again (it frees it).
  std::variant<KtlsKeys, KtlsFallback> KtlsHandover() const;

  const std::string& error() const { return error_; }
  std::string_view protocol_version() const;  // "TLSv1.3", after the handshake
  std::string_view cipher_suite() const;
  // After the handshake: true when it resumed a kept session (no certificate exchange).
  bool resumed() const { return resumed_; }
  // True when a kept session was offered in the ClientHello.
  bool offered_session() const { return offered_session_; }

  // wolfSSL's new-session callback, set on every TlsContext (TLS 1.2: at the handshake's end;
  // TLS 1.3: per NewSessionTicket). Public only so that TlsContext can register it.
  static int NewSessionCallback(WOLFSSL* ssl, WOLFSSL_SESSION* session);

 private:
  void OfferKeptSession();
  void KeepSession(WOLFSSL_SESSION* session);
  void ForgetKeptSessions();
  static int ReceiveCallback(WOLFSSL* ssl, char* buffer, int size, void* context);
  static int SendCallback(WOLFSSL* ssl, char* buffer, int size, void* context);
  Result Fail(int wolfssl_return);
  Result ReadWithWolfSsl(std::string* out, size_t max_bytes);
  Result ReadRecords(std::string* out, size_t max_bytes);
  // Hands the records to the record layer when wolfSSL is at a record boundary with nothing
  // buffered (TlsContextOptions::take_over_records); frees ssl_ when it does.
  void MaybeTakeOverRecords();
  // wolfSSL's TLS 1.3 AES-GCM traffic keys and sequence numbers, or why it has none to give.
  std::variant<KtlsKeys, KtlsFallback> WolfSslTrafficKeys() const;

  WOLFSSL* ssl_ = nullptr;  // null after the take-over
  std::optional<Tls13RecordLayer> records_;
  bool take_over_records_ = false;
  bool closed_by_server_ = false;  // close_notify seen by the record layer
  // wolfSSL is fed one record at a time, so that a take-over never strands a record it has
  // buffered: bytes of the current record delivered so far, its size once its header is known.
  size_t record_delivered_ = 0;
  size_t record_size_ = 0;
  unsigned char record_header_[5] = {};
  std::string pending_plaintext_;  // opened beyond what the last Read() could take
  std::string version_;  // kept from wolfSSL at the take-over
  std::string cipher_;
  ByteBuffer input_;       // ciphertext fed, not yet consumed by wolfSSL or the record layer
  size_t opened_bytes_ = 0;  // records at the front of input_ that OpenInPlace() opened
  bool pending_plaintext_handed_out_ = false;  // OpenInPlace() gave a view of it
  std::string output_;     // ciphertext produced, not yet taken
  std::string server_name_;
  bool verify_ = true;
  TlsResumption resumption_;
  bool offered_session_ = false;
  bool resumed_ = false;
  bool handshake_done_ = false;
  bool forgot_kept_sessions_ = false;
  std::string error_;
};

}  // namespace mailring::core
