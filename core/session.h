// Session: one proxied IMAP connection, client leg and upstream leg, owned by one worker.
//
// A session moves through its phases in order and never back:
//
//   kConnecting        io_uring connect to the upstream, linked to a timeout
//   kProxyHandshake    (OnPremise) SOCKS5 with SAP's method 0x80 through the Connectivity
//                      Proxy, authenticated with a Connectivity service JWT (proto/socks5.h)
//   kUpstreamGreeting  waiting for the server's first line (recv from the provided buffers);
//                      for imap4s after the TLS handshake (core/tls_client.h)
//   kUpstreamLogin     CAPABILITY, then AUTHENTICATE PLAIN / LOGIN with the destination's
//                      password, or AUTHENTICATE XOAUTH2 / OAUTHBEARER with an access token
//                      (core/upstream_login.h); then the client is greeted "* PREAUTH"
//   kClientAuth        (OAuth2RefreshToken / OAuth2AuthorizationCode only) the client is
//                      greeted "* OK", authenticates to mailring with XOAUTH2 carrying its
//                      refresh token or code (core/client_auth.h); mailring exchanges it for an
//                      access token, logs in upstream and answers under the client's tag
//   kRelay             bytes both ways through core/relay_leg.h; never parsed again
//   kClosing           cancels outstanding requests, frees itself when the last completes
//
// A route with "mail.imap4.auth": "false" goes from kConnecting straight to kRelay: the client
// sees the server's own greeting and logs in itself.
//
// Access tokens come from the CredentialCache (one atomic load). When the cache has none yet,
// the session asks the control thread (CredentialBroker) and parks without blocking its worker;
// the worker calls OnCredentialsChanged() when the control thread published something. A
// session copies the token it uses: it holds no pointer into the cache across iterations.
//
// Every failure before the relay reaches the client as "* BYE [UNAVAILABLE] <reason>" and the
// log as one line naming the session, route, destination and the action under way (nginx's
// log->action). Reasons never contain credentials.
//
// Lifetime: every submitted io_uring request counts in pending_ops_; a closing session is
// freed only when that count drops to zero, so no completion ever refers to freed memory.
// Relay-path fields come first and the pre-relay state lives in a separately allocated
// LoginState that is freed on entering the relay, keeping idle relayed sessions small.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/relay_leg.h"
#include "core/route.h"
#include "core/timer_wheel.h"
#include "core/tls_client.h"
#include "core/tls_relay.h"
#include "proto/secret.h"

struct io_uring_cqe;

namespace mailring::core {

class Worker;

class alignas(16) Session {
 public:
  enum class Phase : uint8_t {
    kConnecting,
    kProxyHandshake,
    kUpstreamGreeting,
    kUpstreamLogin,
    kClientAuth,
    kRelay,
    kClosing,
  };

  Session(Worker* worker, std::shared_ptr<const Route> route, int client_fd, uint64_t id);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Opens the upstream socket and submits the connect. May close the session at once.
  void Start();
  // A completion for one of this session's requests.
  void OnCompletion(uint8_t op, const io_uring_cqe& cqe);
  // Worker shutdown after the drain timeout: BYE and close.
  void Shutdown();
  // The credential cache changed while this session waited for a token.
  void OnCredentialsChanged();

  Phase phase() const { return phase_; }
  uint64_t id() const { return id_; }

  // Intrusive list of the worker's live sessions (drain walks it).
  Session* prev_in_worker = nullptr;
  Session* next_in_worker = nullptr;

 private:
  struct LoginState;

  static void OnTimerFired(void* self);
  void OnTimer();

  void SubmitConnect();
  void OnConnected(int result);
  void ArmUpstreamRecv();
  void OnUpstreamRecv(const io_uring_cqe& cqe);
  void OnUpstreamReadable();
  void BeginUpstreamProtocol();
  void StartTlsHandshake(bool after_starttls);
  void StartTlsHandshakeWith(std::string_view early);
  void ContinueTlsHandshake();
  void StartProxyHandshake(const proto::Secret& jwt);
  void OnUpstreamBytes(std::string_view raw);
  bool SendUpstream(std::string_view plaintext);  // through TLS when on; false: closed
  void FeedUpstream(std::string_view bytes);
  void GreetClientAndRelay();

  // Tokens (OAuth2 destinations).
  void OnUpstreamWantsToken();
  void LookUpToken();
  void RequestToken();
  void UseToken(const proto::Secret& token);
  void OnUpstreamLoginFailed(std::string_view reason, bool retryable);

  // Client authentication (refresh token / authorization code).
  void ArmClientRecv();
  void OnClientRecv(const io_uring_cqe& cqe);
  void OnClientPreRelayReadable();
  void FeedClient(std::string_view bytes);
  void ProcessClientLines();
  void AnswerClientAndRelay();
  bool SendToClientOrClose(std::string_view bytes);

  void StartRelay();
  void PumpLeg(int leg);
  void OnRelayRecv(int leg, const io_uring_cqe& cqe);
  void ArmPoll(int fd, uint32_t events, uint8_t op);

  // Ends the session. `client_reason` non-empty: the client gets "* BYE [UNAVAILABLE] ...".
  void Close(std::string_view log_reason, std::string_view client_reason, bool failure);
  void MaybeFree();

  std::string LogPrefix() const;
  std::string_view Action() const;

  // --- touched on the relay path ---
  Worker* worker_;
  int client_fd_;
  int upstream_fd_ = -1;
  Phase phase_ = Phase::kConnecting;
  uint8_t legs_finished_ = 0;
  uint32_t pending_ops_ = 0;
  int64_t last_activity_ms_ = 0;
  RelayLeg legs_[2];  // [0] client → upstream, [1] upstream → client
  // --- the rest ---
  std::shared_ptr<const Route> route_;  // kept alive while the session runs (routes change)
  uint64_t id_;
  int64_t started_ms_;
  TimerWheel::Entry timer_;
  std::unique_ptr<LoginState> login_;  // only before the relay
  std::unique_ptr<TlsClient> tls_;     // TLS upstream leg (imap4s, STARTTLS)
  std::unique_ptr<TlsRelay> tls_relay_;
  bool waiting_for_credentials_ = false;
  bool destroy_scheduled_ = false;
};

}  // namespace mailring::core
