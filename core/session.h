// Session: one proxied mail connection (IMAP, SMTP or POP3), client leg and upstream leg, owned
// by one worker, which it sees only as its SessionHost (core/session_host.h). What differs per
// protocol lives in core/dialog/ (MailProtocol); the phases, transports, relay and credential path
// here are shared.
//
// A session moves through its phases in order (Session::EnterPhase, the only place the phase
// changes); the one step back is a client's refresh token or code that the token service or the
// server refused: kUpstreamLogin returns to kClientDialog and the client may try again.
//
//   kConnecting        io_uring connect to the upstream, linked to a timeout
//   kProxyHandshake    (OnPremise) SOCKS5 with SAP's method 0x80 through the Connectivity
//                      Proxy, authenticated with a Connectivity service JWT (proto/socks5.h)
//   kUpstreamGreeting  waiting for the server's first line (recv from the provided buffers);
//                      for imap4s after the TLS handshake (core/tls_client.h)
//   kUpstreamLogin     the protocol's login dialog (core/dialog/upstream_login.h): capabilities,
//                      [STARTTLS], then the destination's password or an access token
//                      (XOAUTH2 / OAUTHBEARER); then the client is greeted
//                      (core/dialog/client_dialog.h): IMAP "* PREAUTH" relays at once
//   kClientDialog      SMTP and POP3 (EHLO, CAPA, USER/PASS answered locally until the first
//                      command the server must answer), and OAuth2RefreshToken /
//                      OAuth2AuthorizationCode destinations of every protocol: the client
//                      authenticates to mailring with XOAUTH2 carrying its refresh token or
//                      code; mailring exchanges it for an access token and logs in upstream
//   kRelay             bytes both ways through core/relay_leg.h; never parsed again
//   kClosing           cancels outstanding requests, frees itself when the last completes
//
// A route with "mail.<protocol>.auth": "false" goes to kRelay as soon as its transport is
// established (at once on a bare socket): the client sees the server's own greeting and logs in
// itself.
//
// What lies between the upstream socket and the dialog (the proxy handshake, TLS, plain) is the
// UpstreamTransport (core/transport/upstream_transport.h), one stack driven by DriveTransport();
// the relay takes over what it built (a plain leg, or the TlsClient) in StartRelay.
//
// Access tokens come from the CredentialCache (one atomic load). When the cache has none yet,
// the session asks the control thread (CredentialBroker) and parks without blocking its worker;
// the host calls OnCredentialsChanged() when the control thread published something. A
// session copies the token it uses: it holds no pointer into the cache across iterations.
//
// Every failure before the relay reaches the client as the protocol's failure line ("* BYE
// [UNAVAILABLE] <reason>", "421 4.3.0 <reason>", "-ERR <reason>") and the
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

#include "core/dialog/client_dialog.h"
#include "core/relay_leg.h"
#include "core/route.h"
#include "core/timer_wheel.h"
#include "core/tls_client.h"
#include "core/tls_relay.h"
#include "proto/secret.h"

struct io_uring_cqe;

namespace mailring::core {

class MailProtocol;
class SessionHost;

class alignas(16) Session {
 public:
  enum class Phase : uint8_t {
    kConnecting,
    kProxyHandshake,
    kUpstreamGreeting,
    kUpstreamLogin,
    kClientDialog,
    kRelay,
    kClosing,
  };

  // `host` outlives the session; `client_fd` is a connected non-blocking socket the session
  // owns from now on.
  Session(SessionHost* host, std::shared_ptr<const Route> route, int client_fd, uint64_t id);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Opens the upstream socket and submits the connect. May close the session at once.
  void Start();
  // A completion for one of this session's requests.
  void OnCompletion(uint8_t op, const io_uring_cqe& cqe);
  // Host shutdown after the drain timeout: BYE and close.
  void Shutdown();
  // The credential cache changed while this session waited for a token.
  void OnCredentialsChanged();

  Phase phase() const { return phase_; }
  uint64_t id() const { return id_; }
  // io_uring requests submitted and not yet completed for the last time; a closing session is
  // handed to SessionHost::ScheduleDestroy() only at 0.
  uint32_t pending_ops() const { return pending_ops_; }

  // Intrusive list of the host's live sessions (the worker's drain walks it).
  Session* prev_in_worker = nullptr;
  Session* next_in_worker = nullptr;

 private:
  struct LoginState;

  static void OnTimerFired(void* self);
  void OnTimer();
  // The one place the phase changes: sets it and arms that phase's deadline (the login timeout
  // from kConnecting to the end of the upstream login, the client's timeout in kClientDialog,
  // the idle timeout in kRelay, none once closing).
  void EnterPhase(Phase next);

  void SubmitConnect();
  void OnConnected(int result);
  // Reading a peer before the relay: one reader per side.
  enum class Side : uint8_t { kClient, kUpstream };
  int FdOf(Side side) const { return side == Side::kClient ? client_fd_ : upstream_fd_; }
  void ArmPreRelayRecv(Side side);
  void OnPreRelayRecv(Side side, int result, uint32_t cqe_flags);
  void OnPreRelayReadable(Side side);
  void OnPreRelayBytes(Side side, std::string_view bytes);
  void OnPreRelayEof(Side side, int error);  // error 0: orderly close
  // The upstream transport (core/transport/upstream_transport.h): the session does its socket
  // I/O, phases, credentials and log lines; the transport decides what the bytes are.
  void DriveTransport();
  void StartProxyHandshake(const proto::Secret& jwt);  // the Connectivity JWT, to the transport
  void OnUpstreamBytes(std::string_view raw);
  bool SendUpstream(std::string_view plaintext);  // sealed by the transport; false: closed
  void FeedUpstream(std::string_view plaintext);  // the dialog's input

  // Tokens (OAuth2 destinations).
  void OnUpstreamWantsToken();
  void LookUpToken();
  void RequestToken();
  void UseToken(const proto::Secret& token);
  enum class LoginFailure : uint8_t {
    kFatal,                     // the session ends
    kServerRefusedCredentials,  // the token is bad; a client that authenticates may retry
    kTokenServiceRefusedGrant,  // the client's refresh token or code; it may retry
  };
  void OnUpstreamLoginFailed(std::string_view reason, LoginFailure failure);

  // The client's dialog before the relay (core/dialog/client_dialog.h).
  void GreetClient();
  void EnterClientDialog();
  // Carries out one step of the dialog; false when the caller must stop reading client lines
  // (the session closed, relays, or waits for a token).
  bool HandleClientStep(ClientDialog::Step step);
  void EnterRelayFromDialog(std::string_view reply, std::string_view forward);
  void FeedClient(std::string_view bytes);
  void ProcessClientLines();
  bool SendToClientOrClose(std::string_view bytes);

  void StartRelay();
  void PumpLeg(int leg);
  void OnRelayRecv(int leg, const io_uring_cqe& cqe);
  void ArmPoll(int fd, uint32_t events, uint8_t op);

  // Ends the session. `client_reason` non-empty: the client gets the protocol's failure line.
  void Close(std::string_view log_reason, std::string_view client_reason, bool failure);
  void MaybeFree();

  // Plaintext bytes relayed in one direction ([0] client → upstream, [1] upstream → client).
  uint64_t BytesRelayed(int leg) const;
  // "mail.<protocol>.auth": "false": the client logs in itself; mailring only relays.
  bool RelayOnly() const;
  bool StartTlsRoute() const;
  std::string LogPrefix() const;
  std::string_view Action() const;

  // --- touched on the relay path ---
  SessionHost* host_;
  int client_fd_;
  int upstream_fd_ = -1;
  Phase phase_ = Phase::kConnecting;
  uint8_t legs_finished_ = 0;
  uint32_t pending_ops_ = 0;
  int64_t last_activity_ms_ = 0;
  RelayLeg legs_[2];  // [0] client → upstream, [1] upstream → client
  // --- the rest ---
  std::shared_ptr<const Route> route_;  // kept alive while the session runs (routes change)
  const MailProtocol* protocol_;        // the route's family; lives for the process
  uint64_t id_;
  int64_t started_ms_;
  TimerWheel::Entry timer_;
  std::unique_ptr<LoginState> login_;  // only before the relay
  std::unique_ptr<TlsClient> tls_;     // TLS upstream leg (imap4s, STARTTLS), from the transport
  std::unique_ptr<TlsRelay> tls_relay_;
  bool destroy_scheduled_ = false;
  bool upstream_write_failed_ = false;  // client → upstream failed writing; draining the other leg
};

}  // namespace mailring::core
