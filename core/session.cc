#include "core/session.h"

#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/escaping.h"
#include "core/completion.h"
#include "core/dialog/mail_protocol.h"
#include "core/log.h"
#include "core/send_some.h"
#include "core/session_host.h"
#include "core/tcp_options.h"
#include "core/tls/ktls_handover.h"
#include "core/transport/upstream_transport.h"
#include "proto/absl_string_view.h"
#include "proto/printable_text.h"
#include "proto/str_cat.h"

namespace mailring::core {
namespace {

constexpr int kToUpstream = 0;
constexpr int kToClient = 1;

// Pre-relay writes are a few hundred bytes on a socket whose send buffer is empty (the peer has
// not been sent anything else yet), so a direct non-blocking send(2) completes at once. A short
// write would mean a peer that does not read at all; that is reported as a failure (EAGAIN).
int SendNow(int fd, std::string_view bytes) {
  const ssize_t sent = SendSome(fd, bytes);
  if (sent < 0) return static_cast<int>(-sent);
  return static_cast<size_t>(sent) < bytes.size() ? EAGAIN : 0;
}

std::string ErrnoText(int error) {
  switch (error) {
    case ECONNREFUSED:
      return "connection refused";
    case ETIMEDOUT:
      return "connection timed out";
    case EHOSTUNREACH:
      return "host unreachable";
    case ENETUNREACH:
      return "network unreachable";
    case ECONNRESET:
      return "connection reset by peer";
    case EPIPE:
      return "connection closed by peer";
    default:
      return std::strerror(error);
  }
}

bool UsesBearerToken(proto::AuthenticationType type) {
  return type == proto::AuthenticationType::kOAuth2ClientCredentials ||
         type == proto::AuthenticationType::kOAuth2RefreshToken ||
         type == proto::AuthenticationType::kOAuth2AuthorizationCode;
}

bool ClientAuthenticates(proto::AuthenticationType type) {
  return type == proto::AuthenticationType::kOAuth2RefreshToken ||
         type == proto::AuthenticationType::kOAuth2AuthorizationCode;
}

UpstreamCredentials CredentialsFor(const Route& route) {
  UpstreamCredentials credentials;
  switch (route.tls) {
    case Route::Tls::kStartTlsIfOffered:
      credentials.starttls = UpstreamCredentials::StartTls::kIfOffered;
      break;
    case Route::Tls::kStartTlsRequired:
      credentials.starttls = UpstreamCredentials::StartTls::kRequired;
      break;
    default:
      break;
  }
  credentials.user = route.destination.user;
  credentials.host = route.destination.host;
  credentials.port = route.destination.port;
  if (UsesBearerToken(route.destination.authentication)) {
    credentials.kind = UpstreamCredentials::Kind::kBearerToken;
  } else {
    credentials.kind = UpstreamCredentials::Kind::kPassword;
    credentials.password = route.destination.password;
  }
  return credentials;
}

// The cache key of an exchanged token: the client's refresh token or code is never stored,
// only its SHA-256, so a reconnect with the same secret finds the same access token.
std::string SubjectOf(const proto::Secret& secret) {
  unsigned char digest[32];
  wc_Sha256Hash(reinterpret_cast<const unsigned char*>(secret.Reveal().data()),
                static_cast<unsigned>(secret.size()), digest);
  const std::string hex = absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
  return hex;
}

// A failed exchange stays in the cache so that waiting sessions see it; a new attempt after
// this long asks the token service again rather than repeating an old failure.
constexpr int64_t kExchangeFailureReuseMs = 5000;

}  // namespace

// Pre-relay state, allocated on connect and freed on entering the relay.
struct Session::LoginState {
  LoginState(const MailProtocol& protocol, const Route& route, size_t max_line_bytes,
             const TlsContext* tls_context)
      : transport(UpstreamTransport::OptionsFor(route, tls_context)),
        upstream_lines(protocol.NewLineReader(max_line_bytes)),
        dialog(protocol.NewUpstreamLogin(CredentialsFor(route))) {}
  // What lies under the dialog (proxy handshake, TLS, plain); the relay takes over its TLS
  // connection (StartRelay). Here rather than in Session: a relayed session does not carry it.
  UpstreamTransport transport;
  std::unique_ptr<LineReader> upstream_lines;  // the server's lines, until the relay
  std::unique_ptr<UpstreamLogin> dialog;
  // The login is done; the client's dialog runs (SMTP, POP3: EHLO, CAPA, ... answered locally)
  // and the server is not read again before the relay, which then delivers whatever it sent.
  bool upstream_logged_in = false;
  bool upstream_recv_armed = false;
  bool starttls = false;               // STARTTLS accepted: TLS up → the dialog resumes
  std::string credential_key;          // where this session's token is (or will be) cached
  proto::Secret used_token;            // the token offered upstream (to remember a rejection)
  int64_t token_requested_ms = -1;     // when we asked the control thread, -1: not yet
  // The client's side before the relay (core/dialog/client_dialog.h): set once greeted.
  std::unique_ptr<ClientDialog> client_dialog;
  std::unique_ptr<LineReader> client_lines;
  bool client_recv_armed = false;
  // Refresh-token / authorization-code destinations: what the client authenticated with.
  std::string client_user;             // user= from the client's XOAUTH2 response
  proto::Secret client_grant;          // the refresh token or code being exchanged
};

Session::Session(SessionHost* host, std::shared_ptr<const Route> route, int client_fd, uint64_t id)
    : host_(host),
      client_fd_(client_fd),
      route_(std::move(route)),
      protocol_(&ForProtocol(route_->destination.protocol)),
      id_(id),
      started_ms_(host->now_ms()),
      timer_(&Session::OnTimerFired, this) {
  WorkerCounters& counters = host_->mutable_counters();
  counters.sessions_accepted.fetch_add(1, std::memory_order_relaxed);
  counters.sessions_open.fetch_add(1, std::memory_order_relaxed);
}

Session::~Session() {
  WorkerCounters& counters = host_->mutable_counters();
  counters.sessions_open.fetch_sub(1, std::memory_order_relaxed);
  counters.bytes_client_to_upstream.fetch_add(BytesRelayed(kToUpstream), std::memory_order_relaxed);
  counters.bytes_upstream_to_client.fetch_add(BytesRelayed(kToClient), std::memory_order_relaxed);
  if (client_fd_ >= 0) ::close(client_fd_);
  if (upstream_fd_ >= 0) ::close(upstream_fd_);
}

uint64_t Session::BytesRelayed(int leg) const {
  // A TLS session's legs carry ciphertext on one side: its relay counts the plaintext.
  if (tls_relay_ != nullptr) {
    return leg == kToUpstream ? tls_relay_->bytes_to_upstream() : tls_relay_->bytes_to_client();
  }
  return legs_[leg].bytes_relayed();
}

bool Session::RelayOnly() const { return !route_->destination.login_on_behalf; }

bool Session::StartTlsRoute() const {
  return route_->tls == Route::Tls::kStartTlsIfOffered ||
         route_->tls == Route::Tls::kStartTlsRequired;
}

std::string Session::LogPrefix() const {
  return mailring::StrCat("session=w", host_->index(), ":", id_, " ", route_->log_label);
}

std::string_view Session::Action() const {
  switch (phase_) {
    case Phase::kConnecting:
      return "connecting to upstream";
    case Phase::kProxyHandshake:
      return login_ != nullptr ? login_->transport.proxy_action()
                               : "waiting for a Connectivity Proxy token";
    case Phase::kUpstreamGreeting:
    case Phase::kUpstreamLogin:
      return login_ != nullptr ? login_->dialog->action() : "logging in upstream";
    case Phase::kClientDialog:
      return ClientAuthenticates(route_->destination.authentication)
                 ? "waiting for the client to authenticate"
                 : "waiting for the client's first command";
    case Phase::kRelay:
      return "relaying";
    case Phase::kClosing:
      return "closing";
  }
  return "";
}

void Session::EnterPhase(Phase next) {
  phase_ = next;
  const WorkerOptions& options = host_->options();
  switch (next) {
    case Phase::kConnecting:
      // One deadline from connect to the end of the upstream login (kProxyHandshake,
      // kUpstreamGreeting and kUpstreamLogin keep it).
      host_->timers().Schedule(
          &timer_, host_->now_ms() + absl::ToInt64Milliseconds(options.login_timeout));
      break;
    case Phase::kProxyHandshake:
    case Phase::kUpstreamGreeting:
    case Phase::kUpstreamLogin:
      break;
    case Phase::kClientDialog:
      // The client's turn; every line it sends restarts this clock (ProcessClientLines).
      host_->timers().Schedule(
          &timer_, host_->now_ms() + absl::ToInt64Milliseconds(options.client_auth_timeout));
      break;
    case Phase::kRelay:
      host_->timers().Schedule(
          &timer_, last_activity_ms_ + absl::ToInt64Milliseconds(options.idle_timeout));
      break;
    case Phase::kClosing:
      host_->timers().Cancel(&timer_);
      break;
  }
}

void Session::Start() {
  const WorkerOptions& options = host_->options();
  // The client socket inherited its TCP options from the listener (core/tcp_options.h).
  upstream_fd_ = ::socket(route_->upstream.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                          IPPROTO_TCP);
  if (upstream_fd_ < 0) {
    const std::string why = mailring::StrCat("cannot open an upstream socket: ", ErrnoText(errno));
    Close(why, "mailring cannot reach the mail server right now (out of sockets)", true);
    return;
  }
  SetTcpOptions(upstream_fd_, options);
  EnterPhase(Phase::kConnecting);
  MAILRING_LOG(kDebug, LogPrefix(), " accepted, connecting to ", route_->upstream.ToString());
  SubmitConnect();
}

void Session::SubmitConnect() {
  host_->ReserveSqes(2);  // a linked pair must not be split across two submissions
  io_uring_sqe* sqe = host_->GetSqe();
  io_uring_prep_connect(sqe, upstream_fd_, route_->upstream.get(), route_->upstream.length);
  io_uring_sqe_set_data64(sqe, Tag(this, Op::kConnect));
  sqe->flags |= IOSQE_IO_LINK;
  io_uring_sqe* timeout_sqe = host_->GetSqe();
  io_uring_prep_link_timeout(timeout_sqe, host_->connect_timeout_spec(), 0);
  io_uring_sqe_set_data64(timeout_sqe, Tag(this, Op::kConnectTimeout));
  pending_ops_ += 2;
}

void Session::OnCompletion(uint8_t op, const io_uring_cqe& cqe) {
  // A multishot request (the relay's recv) stays pending until its last completion.
  if (!(cqe.flags & IORING_CQE_F_MORE)) --pending_ops_;
  if (phase_ == Phase::kClosing) {
    if (cqe.flags & IORING_CQE_F_BUFFER) {
      host_->buffers().Recycle(static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT));
    }
    MaybeFree();
    return;
  }
  switch (static_cast<Op>(op)) {
    case Op::kConnect:
      OnConnected(cqe.res);
      return;
    case Op::kConnectTimeout:
      return;  // the connect's own completion reports the outcome (-ECANCELED on timeout)
    case Op::kUpstreamRecv:
      OnPreRelayRecv(Side::kUpstream, cqe.res, cqe.flags);
      return;
    case Op::kUpstreamReadable:
      OnPreRelayReadable(Side::kUpstream);
      return;
    case Op::kClientRecv:
      OnPreRelayRecv(Side::kClient, cqe.res, cqe.flags);
      return;
    case Op::kClientPreRelayReadable:
      OnPreRelayReadable(Side::kClient);
      return;
    case Op::kClientReadable:
    case Op::kUpstreamWritable:
      last_activity_ms_ = host_->now_ms();
      legs_[kToUpstream].set_armed_poll(0);
      PumpLeg(kToUpstream);
      return;
    case Op::kRelayUpstreamReadable:
    case Op::kClientWritable:
      last_activity_ms_ = host_->now_ms();
      legs_[kToClient].set_armed_poll(0);
      PumpLeg(kToClient);
      return;
    case Op::kClientRelayRecv:
      OnRelayRecv(kToUpstream, cqe);
      return;
    case Op::kUpstreamRelayRecv:
      OnRelayRecv(kToClient, cqe);
      return;
    default:
      return;
  }
}

void Session::OnConnected(int result) {
  if (result < 0) {
    const std::string why =
        result == -ECANCELED
            ? mailring::StrCat("no answer within ",
                               absl::FormatDuration(host_->options().connect_timeout))
            : ErrnoText(-result);
    Close(mailring::StrCat("connecting to upstream ", route_->upstream.ToString(), " failed: ", why),
          mailring::StrCat("cannot connect to the mail server of destination ",
                       route_->destination.name, ": ", why),
          true);
    return;
  }
  if (RelayOnly() && UpstreamTransport::IsBareSocket(*route_)) {
    // Pure relay: nothing to establish, nothing to read before the relay (no login state, no
    // transport): the client reads the server's own greeting and logs in itself.
    MAILRING_LOG(kDebug, LogPrefix(), " connected, relaying without login");
    StartRelay();
    return;
  }
  login_ = std::make_unique<LoginState>(*protocol_, *route_, host_->options().max_line_bytes,
                                        host_->tls_context());
  // The Connectivity Proxy wants a JWT of the Connectivity service before anything else
  // (the transport asks for it: kNeedProxyToken).
  EnterPhase(route_->via_connectivity_proxy ? Phase::kProxyHandshake : Phase::kUpstreamGreeting);
  DriveTransport();
}

// Runs the upstream transport (core/transport/upstream_transport.h) until it needs something
// from outside (the server's bytes, the proxy's JWT) or has handed plaintext to the dialog. The
// transport's events become this session's phases, log lines and counters; this is where a
// relay-only route with something to establish decides to relay (a bare socket relays straight
// from OnConnected, without allocating login state).
void Session::DriveTransport() {
  // The transport lives in login_: after a step that closes, relays or hands plaintext to the
  // dialog (which may do either), the loop returns without touching it again.
  UpstreamTransport& transport = login_->transport;
  while (true) {
    TransportStep step = transport.Next(Action());
    switch (step.outcome) {
      case TransportStep::Outcome::kNeedMore:
        ArmPreRelayRecv(Side::kUpstream);
        return;
      case TransportStep::Outcome::kNeedProxyToken:
        login_->credential_key = CredentialKey(kConnectivityCredential, route_->tenant);
        LookUpToken();
        return;
      case TransportStep::Outcome::kSend:
        if (const int error = SendNow(upstream_fd_, step.bytes); error != 0) {
          const TransportFailure failure =
              transport.SendFailed(step.layer, ErrnoText(error), Action());
          Close(failure.log_reason, failure.client_reason, true);
          return;
        }
        continue;
      case TransportStep::Outcome::kProxyConnected:
        MAILRING_LOG(kDebug, LogPrefix(), " Connectivity Proxy connected to ",
                     route_->destination.host, ":", route_->destination.port);
        EnterPhase(Phase::kUpstreamGreeting);
        continue;
      case TransportStep::Outcome::kTlsStarted:
        if (!route_->tls_verify) {
          MAILRING_LOG(kWarning, LogPrefix(),
                       " TLS to the mail server WITHOUT certificate verification (the "
                       "destination's ssl.trust / checkserveridentity opts out)");
        }
        continue;
      case TransportStep::Outcome::kTlsEstablished: {
        const TlsClient& tls = *transport.tls();
        WorkerCounters& counters = host_->mutable_counters();
        (tls.resumed() ? counters.tls_handshakes_resumed : counters.tls_handshakes_full)
            .fetch_add(1, std::memory_order_relaxed);
        MAILRING_LOG(kDebug, LogPrefix(), " TLS established with upstream (",
                     tls.protocol_version(), ", ", tls.cipher_suite(),
                     tls.resumed() ? ", resumed" : "", ")");
        continue;
      }
      case TransportStep::Outcome::kEstablished:
        // A relay-only route relays once the transport is what the route asks for: at once,
        // or for a STARTTLS route after the upgrade the dialog negotiates first.
        if (RelayOnly() && (!StartTlsRoute() || transport.tls() != nullptr)) {
          // Whatever the server already sent goes to the client first (TLS keeps its records).
          const std::string early = transport.TakeBufferedPlaintext();
          if (!early.empty() && !SendToClientOrClose(early)) return;
          StartRelay();
          return;
        }
        if (login_->starttls) {
          login_->starttls = false;
          const UpstreamLogin::Step resumed = login_->dialog->OnTlsEstablished();
          if (!SendUpstream(resumed.send)) return;
        }
        continue;  // records that came with the handshake's end may hold the next line
      case TransportStep::Outcome::kPlaintext:
        FeedUpstream(step.bytes);
        return;
      case TransportStep::Outcome::kFailed:
        Close(step.failure.log_reason, step.failure.client_reason, true);
        return;
    }
  }
}

bool Session::SendUpstream(std::string_view plaintext) {
  TransportStep sealed = login_->transport.Seal(plaintext);
  if (sealed.outcome == TransportStep::Outcome::kFailed) {
    Close(sealed.failure.log_reason, sealed.failure.client_reason, true);
    return false;
  }
  if (const int error = SendNow(upstream_fd_, sealed.bytes); error != 0) {
    const TransportFailure failure =
        login_->transport.SendFailed(sealed.layer, ErrnoText(error), Action());
    Close(failure.log_reason, failure.client_reason, true);
    return false;
  }
  return true;
}

void Session::StartProxyHandshake(const proto::Secret& jwt) {
  login_->credential_key.clear();
  login_->token_requested_ms = -1;
  login_->transport.ProvideProxyToken(jwt);
  DriveTransport();
}

// Raw bytes from the upstream socket before the relay: the transport opens them (proxy
// replies, TLS records) and hands the dialog its plaintext.
void Session::OnUpstreamBytes(std::string_view raw) {
  login_->transport.Feed(raw);
  DriveTransport();
}

// --- Reading a peer before the relay --------------------------------------------------------
// One reader per side: a recv into the worker's provided buffers, copied out and recycled at
// once (the ring is shared by every session of the worker), or, when the ring is empty, a poll
// and a recv into the stack. Bytes go to OnUpstreamBytes() or FeedClient().

void Session::ArmPreRelayRecv(Side side) {
  bool& armed = side == Side::kUpstream ? login_->upstream_recv_armed : login_->client_recv_armed;
  if (armed) return;
  armed = true;
  io_uring_sqe* sqe = host_->GetSqe();
  io_uring_prep_recv(sqe, FdOf(side), nullptr, host_->buffers().buffer_bytes(), 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = host_->buffers().group_id();
  io_uring_sqe_set_data64(sqe, Tag(this, side == Side::kUpstream ? Op::kUpstreamRecv
                                                                  : Op::kClientRecv));
  ++pending_ops_;
}

void Session::OnPreRelayRecv(Side side, int result, uint32_t cqe_flags) {
  bool& armed = side == Side::kUpstream ? login_->upstream_recv_armed : login_->client_recv_armed;
  armed = false;
  if (result == -ENOBUFS) {
    host_->mutable_counters().recv_ring_empty.fetch_add(1, std::memory_order_relaxed);
    armed = true;
    ArmPoll(FdOf(side), POLLIN,
            static_cast<uint8_t>(side == Side::kUpstream ? Op::kUpstreamReadable
                                                         : Op::kClientPreRelayReadable));
    return;
  }
  if (result <= 0) {
    OnPreRelayEof(side, result == 0 ? 0 : -result);
    return;
  }
  const auto buffer_id = static_cast<uint16_t>(cqe_flags >> IORING_CQE_BUFFER_SHIFT);
  const std::string bytes(host_->buffers().Buffer(buffer_id), static_cast<size_t>(result));
  host_->buffers().Recycle(buffer_id);
  OnPreRelayBytes(side, bytes);
}

void Session::OnPreRelayReadable(Side side) {
  bool& armed = side == Side::kUpstream ? login_->upstream_recv_armed : login_->client_recv_armed;
  armed = false;
  char buffer[16 * 1024];
  const ssize_t n = ::recv(FdOf(side), buffer, sizeof(buffer), MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
    armed = true;
    ArmPoll(FdOf(side), POLLIN,
            static_cast<uint8_t>(side == Side::kUpstream ? Op::kUpstreamReadable
                                                         : Op::kClientPreRelayReadable));
    return;
  }
  if (n <= 0) {
    OnPreRelayEof(side, n == 0 ? 0 : errno);
    return;
  }
  OnPreRelayBytes(side, std::string_view(buffer, static_cast<size_t>(n)));
}

void Session::OnPreRelayBytes(Side side, std::string_view bytes) {
  if (side == Side::kUpstream) {
    OnUpstreamBytes(bytes);
  } else {
    FeedClient(bytes);
  }
}

void Session::OnPreRelayEof(Side side, int error) {
  if (side == Side::kClient) {
    Close(error == 0 ? mailring::StrCat("client closed the connection while ", Action())
                     : mailring::StrCat("client read failed: ", ErrnoText(error)),
          {}, false);
    return;
  }
  const std::string why = error == 0
                              ? std::string("upstream closed the connection")
                              : mailring::StrCat("upstream read failed: ", ErrnoText(error));
  Close(mailring::StrCat(why, " while ", Action()),
        mailring::StrCat("the mail server of destination ", route_->destination.name,
                         " closed the connection while mailring was ", Action()),
        true);
}

void Session::FeedUpstream(std::string_view bytes) {
  LoginState& login = *login_;
  if (absl::Status status = login.upstream_lines->Append(bytes); !status.ok()) {
    Close(mailring::StrCat("upstream sent a bad response while ", Action(), ": ", status.message()),
          mailring::StrCat("the mail server of destination ", route_->destination.name,
                           " sent a response mailring cannot read"),
          true);
    return;
  }
  while (std::optional<std::string_view> line = login.upstream_lines->NextLine()) {
    if (phase_ == Phase::kUpstreamGreeting) EnterPhase(Phase::kUpstreamLogin);
    UpstreamLogin::Step step = login.dialog->OnLine(*line);
    switch (step.outcome) {
      case UpstreamLogin::Outcome::kNeedMore:
        break;
      case UpstreamLogin::Outcome::kSend:
        if (!SendUpstream(step.send)) return;
        break;
      case UpstreamLogin::Outcome::kStartTls:
        // What the server sent after its answer is already TLS.
        login.starttls = true;
        login_->transport.StartTls(login.upstream_lines->TakePending());
        DriveTransport();
        return;
      case UpstreamLogin::Outcome::kNeedToken:
        OnUpstreamWantsToken();
        if (phase_ == Phase::kClosing) return;
        break;
      case UpstreamLogin::Outcome::kFailed:
        OnUpstreamLoginFailed(step.failure, login.dialog->can_retry()
                                                ? LoginFailure::kServerRefusedCredentials
                                                : LoginFailure::kFatal);
        if (phase_ == Phase::kClosing) return;
        break;
      case UpstreamLogin::Outcome::kLoggedIn:
        host_->mutable_counters().logins_ok.fetch_add(1, std::memory_order_relaxed);
        login.upstream_logged_in = true;
        if (login.client_dialog != nullptr) {
          // The client's AUTHENTICATE (refresh token, code) succeeded upstream.
          HandleClientStep(login.client_dialog->Authenticated(login.dialog->capabilities()));
        } else {
          GreetClient();
        }
        return;
    }
  }
  // Keep reading while the login waits for a token or the client: a server that gives up
  // (BYE, close) is noticed at once.
  ArmPreRelayRecv(Side::kUpstream);
}

// --- Tokens -------------------------------------------------------------------------------

void Session::OnUpstreamWantsToken() {
  LoginState& login = *login_;
  if (!ClientAuthenticates(route_->destination.authentication)) {
    login.credential_key = CredentialKey(route_->destination.name, route_->tenant);
    LookUpToken();
    return;
  }
  // The client brings the grant: greet it (once) and read its AUTHENTICATE.
  if (login.client_dialog == nullptr) {
    GreetClient();
    return;
  }
  EnterClientDialog();
}

void Session::LookUpToken() {
  LoginState& login = *login_;
  CredentialCache* cache = host_->services().credentials;
  if (cache == nullptr || host_->services().broker == nullptr) {
    Close("no credential service configured for an OAuth2 destination",
          "mailring has no token service for this destination", true);
    return;
  }
  const int64_t now = host_->now_ms();
  const Credential* credential = cache->Find(host_->index(), login.credential_key);
  // The only token wanted in the proxy handshake is the Connectivity Proxy's.
  const bool for_proxy = phase_ == Phase::kProxyHandshake;
  // A token the server just rejected may still be in the cache until the control thread has
  // dropped it: never offer it again (the host remembers it until the entry changes).
  if (credential != nullptr && credential->UsableAt(now) &&
      !host_->rejected_tokens().Contains(login.credential_key, credential->access_token)) {
    const proto::Secret token = credential->access_token;  // copied: see the class comment
    if (for_proxy) {
      StartProxyHandshake(token);
    } else {
      UseToken(token);
    }
    return;
  }
  const bool exchange = !for_proxy && login.client_dialog != nullptr;
  if (credential != nullptr && !credential->failure.empty()) {
    // A failure the control thread published after our request, or (client credentials, whose
    // refresh the control thread drives itself) any failure while no token is valid.
    const bool fresh_answer = login.token_requested_ms >= 0
                                  ? credential->failed_at_ms >= login.token_requested_ms
                                  : (!exchange || now - credential->failed_at_ms <
                                                      kExchangeFailureReuseMs);
    if (fresh_answer) {
      const std::string failure = credential->failure;
      if (for_proxy) {
        Close(mailring::StrCat("no Connectivity Proxy token: ", failure),
              mailring::StrCat("cannot reach the on-premise mail server of destination ",
                               route_->destination.name, ": no token for the Connectivity Proxy: ",
                               failure),
              true);
      } else if (exchange) {
        OnUpstreamLoginFailed(mailring::StrCat("token service: ", failure),
                              LoginFailure::kTokenServiceRefusedGrant);
      } else {
        Close(mailring::StrCat("no access token: ", failure),
              mailring::StrCat("no access token for destination ", route_->destination.name,
                               ": ", failure),
              true);
      }
      return;
    }
  }
  if (login.token_requested_ms < 0) RequestToken();
  host_->WaitForCredentials(this);
}

void Session::RequestToken() {
  LoginState& login = *login_;
  CredentialRequest request;
  request.route = route_;
  request.key = login.credential_key;
  request.worker = host_->index();
  if (phase_ == Phase::kProxyHandshake) {
    request.kind = CredentialRequest::Kind::kConnectivity;
  } else if (login.client_dialog == nullptr) {
    request.kind = CredentialRequest::Kind::kClientCredentials;
  } else {
    request.kind =
        route_->destination.authentication == proto::AuthenticationType::kOAuth2RefreshToken
            ? CredentialRequest::Kind::kRefreshToken
            : CredentialRequest::Kind::kAuthorizationCode;
    request.grant_secret = login.client_grant;
  }
  login.token_requested_ms = host_->now_ms();
  MAILRING_LOG(kDebug, LogPrefix(), " waiting for an access token from the control thread");
  host_->services().broker->Request(std::move(request));
}

void Session::OnCredentialsChanged() {
  if (phase_ == Phase::kClosing || login_ == nullptr) return;
  LookUpToken();
}

void Session::UseToken(const proto::Secret& token) {
  LoginState& login = *login_;
  login.used_token = token;
  if (phase_ == Phase::kClientDialog) EnterPhase(Phase::kUpstreamLogin);
  UpstreamLogin::Step step = login.dialog->ProvideToken(token, login.client_user);
  if (step.outcome == UpstreamLogin::Outcome::kFailed) {
    OnUpstreamLoginFailed(step.failure, LoginFailure::kFatal);
    return;
  }
  SendUpstream(step.send);
}

void Session::OnUpstreamLoginFailed(std::string_view reason, LoginFailure failure) {
  host_->mutable_counters().logins_failed.fetch_add(1, std::memory_order_relaxed);
  LoginState& login = *login_;
  if (failure == LoginFailure::kServerRefusedCredentials && !login.credential_key.empty() &&
      host_->services().broker != nullptr) {
    // The server refused a token we took from the cache: nobody should use it again.
    if (!login.used_token.empty()) {
      host_->rejected_tokens().Remember(login.credential_key, login.used_token);
    }
    CredentialRequest invalidate;
    invalidate.kind = CredentialRequest::Kind::kInvalidate;
    invalidate.route = route_;
    invalidate.key = login.credential_key;
    invalidate.worker = host_->index();
    host_->services().broker->Request(std::move(invalidate));
  }
  if (login.client_dialog == nullptr || failure == LoginFailure::kFatal) {
    Close(reason, reason, true);
    return;
  }
  // The client authenticates itself: it is told why and may try again.
  MAILRING_LOG(kWarning, LogPrefix(), " client authentication failed: ", reason);
  login.dialog->PrepareRetry();
  login.credential_key.clear();
  login.token_requested_ms = -1;
  login.client_grant = proto::Secret();
  EnterPhase(Phase::kClientDialog);
  const ClientDialog::Step step = login.client_dialog->Rejected(reason);
  if (step.outcome == ClientDialog::Outcome::kReplyAndClose) {
    SendToClientOrClose(step.reply);
    Close("too many failed authentication attempts", {}, true);
    return;
  }
  if (!SendToClientOrClose(step.reply)) return;
  ProcessClientLines();
}

// --- The client's dialog before the relay -----------------------------------------------------

void Session::GreetClient() {
  LoginState& login = *login_;
  ClientDialogOptions options;
  options.destination_name = route_->destination.name;
  options.client_authenticates = ClientAuthenticates(route_->destination.authentication);
  if (options.client_authenticates) {
    options.credential_name =
        route_->destination.authentication == proto::AuthenticationType::kOAuth2RefreshToken
            ? "refresh token"
            : "authorization code";
  }
  login.client_dialog = protocol_->NewClientDialog(std::move(options));
  login.client_lines = protocol_->NewLineReader(host_->options().max_line_bytes);
  const ClientDialog::Step greeting = login.client_dialog->Greet(login.dialog->capabilities());
  if (greeting.outcome == ClientDialog::Outcome::kRelay) {  // IMAP's PREAUTH
    EnterRelayFromDialog(greeting.reply, greeting.forward);
    return;
  }
  if (!SendToClientOrClose(greeting.reply)) return;
  EnterClientDialog();
}

void Session::EnterClientDialog() {
  EnterPhase(Phase::kClientDialog);
  ProcessClientLines();
}

bool Session::HandleClientStep(ClientDialog::Step step) {
  LoginState& login = *login_;
  switch (step.outcome) {
    case ClientDialog::Outcome::kNeedMore:
      return true;
    case ClientDialog::Outcome::kReply:
      return SendToClientOrClose(step.reply);
    case ClientDialog::Outcome::kReplyAndClose:
      SendToClientOrClose(step.reply);
      Close("client logged out or failed to authenticate", {}, false);
      return false;
    case ClientDialog::Outcome::kAuthenticate:
      login.client_user = std::move(step.bearer.user);
      login.client_grant = std::move(step.bearer.bearer_token);
      login.credential_key = CredentialKey(route_->destination.name, route_->tenant,
                                           SubjectOf(login.client_grant));
      login.token_requested_ms = -1;
      LookUpToken();
      return false;
    case ClientDialog::Outcome::kRelay:
      EnterRelayFromDialog(step.reply, step.forward);
      return false;
  }
  return false;
}

void Session::EnterRelayFromDialog(std::string_view reply, std::string_view forward) {
  LoginState& login = *login_;
  // What the server sent after its last login line belongs to the client, after mailring's
  // reply; what the client sent after the line that started the relay goes to the server.
  const std::string to_client = mailring::StrCat(reply, login.upstream_lines->TakePending());
  const std::string to_upstream = mailring::StrCat(
      forward, login.client_lines != nullptr ? login.client_lines->TakePending() : std::string());
  // The login state (and with it the transport that seals to_upstream) lives until StartRelay.
  if (!to_client.empty() && !SendToClientOrClose(to_client)) return;
  if (!to_upstream.empty() && !SendUpstream(to_upstream)) return;
  MAILRING_LOG(kDebug, LogPrefix(), " logged in upstream after ", host_->now_ms() - started_ms_,
               " ms, relaying");
  StartRelay();
}

bool Session::SendToClientOrClose(std::string_view bytes) {
  if (const int error = SendNow(client_fd_, bytes); error != 0) {
    Close(mailring::StrCat("writing to the client failed: ", ErrnoText(error)), {}, false);
    return false;
  }
  return true;
}

void Session::FeedClient(std::string_view bytes) {
  if (absl::Status status = login_->client_lines->Append(bytes); !status.ok()) {
    SendNow(client_fd_, protocol_->FailureLine(proto::AsStd(status.message())));
    Close(mailring::StrCat("client sent an unreadable command: ", status.message()), {}, true);
    return;
  }
  ProcessClientLines();
}

void Session::ProcessClientLines() {
  LoginState& login = *login_;
  // While an authentication is being served (exchange or upstream login under way), further
  // client lines wait in the reader: after success they are the relay's first bytes.
  // The grant is set from the client's AUTHENTICATE until it succeeded or was refused.
  if (phase_ != Phase::kClientDialog || !login.client_grant.empty()) return;
  while (std::optional<std::string_view> line = login.client_lines->NextLine()) {
    host_->timers().Schedule(
        &timer_, host_->now_ms() + absl::ToInt64Milliseconds(host_->options().client_auth_timeout));
    if (!HandleClientStep(login.client_dialog->OnLine(*line))) return;
  }
  if (login.client_lines->AwaitingLiteralContinuation() &&
      !SendToClientOrClose(login.client_dialog->LiteralContinuation())) {
    return;
  }
  ArmPreRelayRecv(Side::kClient);
}

void Session::StartRelay() {
  if (login_ != nullptr) {
    // The relay takes over what the transport built: a plain leg, or the TLS connection.
    tls_ = login_->transport.TakeTls();
    login_.reset();
  }
  // A TLS leg goes to the kernel (kTLS) when it can: the session is then relayed like a plain
  // one, and the TlsClient (wolfSSL or the record layer) is freed.
  bool ktls = false;
  if (tls_ != nullptr) {
    const KtlsHandoverResult handover =
        HandOverToKtls(upstream_fd_, tls_->KtlsHandover(), host_->options().ktls,
                       host_->mutable_counters(), LogPrefix());
    if (!handover.fatal.ok()) {
      Close(mailring::StrCat("upstream TLS lost: ", handover.fatal.message()),
            mailring::StrCat("TLS failure with the mail server of destination ",
                             route_->destination.name),
            true);
      return;
    }
    if (handover.installed) {
      MAILRING_LOG(kDebug, LogPrefix(), " upstream TLS records handed to the kernel (kTLS)");
      tls_.reset();
      ktls = true;
    }
  }
  // Plaintext legs start on the copy path (a multishot recv each) and splice bursts.
  const uint32_t copy_below = tls_ == nullptr ? host_->buffers().buffer_bytes() : 0;
  legs_[kToUpstream] = RelayLeg(client_fd_, upstream_fd_, copy_below);
  legs_[kToClient] = RelayLeg(upstream_fd_, client_fd_, copy_below);
  if (ktls) {
    legs_[kToUpstream].set_ktls(/*source=*/false, /*destination=*/true);
    legs_[kToClient].set_ktls(/*source=*/true, /*destination=*/false);
  }
  last_activity_ms_ = host_->now_ms();
  EnterPhase(Phase::kRelay);
  if (tls_ != nullptr) {
    // TLS may already hold decrypted-to-be records: pump rather than wait for readiness.
    tls_relay_ = std::make_unique<TlsRelay>(client_fd_, upstream_fd_, tls_.get());
    PumpLeg(kToUpstream);
    if (phase_ == Phase::kRelay) PumpLeg(kToClient);
    return;
  }
  // Both legs arm their recv: a multishot recv armed on a socket that already holds bytes
  // completes at once.
  PumpLeg(kToUpstream);
  if (phase_ == Phase::kRelay) PumpLeg(kToClient);
}

void Session::OnRelayRecv(int leg_index, const io_uring_cqe& cqe) {
  last_activity_ms_ = host_->now_ms();
  RelayLeg& leg = legs_[leg_index];
  ProvidedBuffers& buffers = host_->buffers();
  const bool has_buffer = (cqe.flags & IORING_CQE_F_BUFFER) != 0;
  const auto buffer_id = static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
  if (cqe.res == -ENOBUFS) {
    host_->mutable_counters().recv_ring_empty.fetch_add(1, std::memory_order_relaxed);
  }
  std::string_view bytes;
  if (has_buffer && cqe.res > 0) bytes = {buffers.Buffer(buffer_id), static_cast<size_t>(cqe.res)};
  leg.OnRecv(cqe.res, bytes, cqe.res == static_cast<int>(buffers.buffer_bytes()),
             (cqe.flags & IORING_CQE_F_MORE) != 0);
  if (has_buffer) buffers.Recycle(buffer_id);  // the leg sent or queued the bytes
  PumpLeg(leg_index);
}

void Session::ArmPoll(int fd, uint32_t events, uint8_t op) {
  io_uring_sqe* sqe = host_->GetSqe();
  io_uring_prep_poll_add(sqe, fd, events);
  io_uring_sqe_set_data64(sqe, Tag(this, static_cast<Op>(op)));
  ++pending_ops_;
}

void Session::PumpLeg(int leg_index) {
  RelayLeg& leg = legs_[leg_index];
  const bool to_upstream = leg_index == kToUpstream;
  const size_t budget = host_->options().relay_budget_bytes;
  const RelayLeg::Wait wait = tls_relay_ == nullptr ? leg.Pump(host_->pipes(), budget)
                              : to_upstream         ? tls_relay_->PumpToUpstream(budget)
                                                    : tls_relay_->PumpToClient(budget);
  const auto recv_op = to_upstream ? Op::kClientRelayRecv : Op::kUpstreamRelayRecv;
  if (leg.recv_cancel_needed()) {
    // Switching to splice, or the destination is full: stop the recv. Bytes it still delivers
    // before its last completion are sent or queued in order (core/relay_leg.h).
    io_uring_sqe* sqe = host_->GetSqe();
    io_uring_prep_cancel64(sqe, Tag(this, recv_op), 0);
    io_uring_sqe_set_data64(sqe, 0);
    leg.set_cancel_sent();
  }
  switch (wait) {
    case RelayLeg::Wait::kReceiving:
      if (!leg.recv_armed()) {
        io_uring_sqe* sqe = host_->GetSqe();
        io_uring_prep_recv_multishot(sqe, leg.from_fd(), nullptr, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = host_->buffers().group_id();
        io_uring_sqe_set_data64(sqe, Tag(this, recv_op));
        ++pending_ops_;
        leg.set_recv_armed();
      }
      return;
    case RelayLeg::Wait::kRecvEnding:
      return;  // the recv's last completion pumps the leg again
    case RelayLeg::Wait::kReadable:
    case RelayLeg::Wait::kYield: {  // an armed poll on a readable socket completes at once
      if (leg.armed_poll() != 0) return;
      const auto op = static_cast<uint8_t>(to_upstream ? Op::kClientReadable
                                                       : Op::kRelayUpstreamReadable);
      leg.set_armed_poll(op);
      ArmPoll(leg.from_fd(), POLLIN, op);
      return;
    }
    case RelayLeg::Wait::kWritable: {
      if (leg.armed_poll() != 0) return;
      const auto op =
          static_cast<uint8_t>(to_upstream ? Op::kUpstreamWritable : Op::kClientWritable);
      leg.set_armed_poll(op);
      ArmPoll(leg.to_fd(), POLLOUT, op);
      return;
    }
    case RelayLeg::Wait::kFinished:
      ++legs_finished_;
      if (!to_upstream) {
        // The server ended the session (LOGOUT, its own timeout): everything it sent has been
        // delivered and the client was sent FIN. Nothing the client could still send would be
        // answered, so both legs close now rather than waiting for the client to hang up.
        Close(legs_[kToUpstream].error() != 0
                  ? mailring::StrCat("client → upstream relay ended: ",
                                     ErrnoText(legs_[kToUpstream].error()),
                                     "; the server's last bytes delivered")
              : legs_finished_ == 2 ? "both directions ended"
                                    : "upstream closed the session",
              {}, false);
        return;
      }
      // The client half-closed: the server may still answer what it already received, within a
      // bound.
      host_->timers().Schedule(&timer_, host_->now_ms() + absl::ToInt64Milliseconds(
                                                              host_->options().half_close_timeout));
      return;
    case RelayLeg::Wait::kFailed: {
      if (to_upstream && tls_relay_ == nullptr && !leg.source_failed() &&
          !legs_[kToClient].finished()) {
        // Writing to the server failed (it reset or closed): what it sent before is still in
        // its socket or in the other leg. Deliver that to the client first; the other leg ends
        // the session when it reads the server's end (bounded by the half-close timeout).
        if (!upstream_write_failed_) {
          upstream_write_failed_ = true;
          ++legs_finished_;
          MAILRING_LOG(kDebug, LogPrefix(), " client → upstream relay ended: ",
                       ErrnoText(leg.error()), "; delivering what the server sent");
          host_->timers().Schedule(
              &timer_,
              host_->now_ms() + absl::ToInt64Milliseconds(host_->options().half_close_timeout));
          PumpLeg(kToClient);
        }
        return;
      }
      const std::string why =
          tls_relay_ == nullptr
              ? (leg.failure_reason().empty() ? ErrnoText(leg.error())
                                              : mailring::StrCat("TLS: ", leg.failure_reason()))
              : (!tls_relay_->tls_error().empty() ? mailring::StrCat("TLS: ", tls_relay_->tls_error())
                                                  : ErrnoText(tls_relay_->error()));
      Close(mailring::StrCat(to_upstream ? "client → upstream" : "upstream → client",
                             " relay ended: ", why),
            {}, false);
    }
      return;
  }
}

void Session::OnTimerFired(void* self) { static_cast<Session*>(self)->OnTimer(); }

void Session::OnTimer() {
  const WorkerOptions& options = host_->options();
  switch (phase_) {
    case Phase::kConnecting:
    case Phase::kProxyHandshake:
    case Phase::kUpstreamGreeting:
    case Phase::kUpstreamLogin:
    case Phase::kClientDialog: {
      const absl::Duration limit =
          phase_ == Phase::kClientDialog ? options.client_auth_timeout : options.login_timeout;
      const std::string why = mailring::StrCat("timed out after ", absl::FormatDuration(limit),
                                               " while ", Action());
      Close(why, mailring::StrCat("destination ", route_->destination.name, ": ", why), true);
      return;
    }
    case Phase::kRelay: {
      if (legs_finished_ > 0) {
        Close("half-closed session timed out", {}, false);
        return;
      }
      const int64_t idle_ms = absl::ToInt64Milliseconds(options.idle_timeout);
      const int64_t due = last_activity_ms_ + idle_ms;
      if (host_->now_ms() < due) {
        host_->timers().Schedule(&timer_, due);  // activity since: check again later
        return;
      }
      Close(mailring::StrCat("idle for ", absl::FormatDuration(options.idle_timeout)),
            mailring::StrCat("idle for ", absl::FormatDuration(options.idle_timeout)), false);
      return;
    }
    case Phase::kClosing:
      return;
  }
}

void Session::Shutdown() {
  Close("mailring is shutting down", "shutting down", false);
}

void Session::Close(std::string_view log_reason, std::string_view client_reason, bool failure) {
  if (phase_ == Phase::kClosing) return;
  const bool was_relaying = phase_ == Phase::kRelay;
  if (failure) {
    MAILRING_LOG(kWarning, LogPrefix(), " failed: ", log_reason);
  } else {
    MAILRING_LOG(kInfo, LogPrefix(), " closed: ", log_reason, " (", host_->now_ms() - started_ms_,
                 " ms, client→upstream ", BytesRelayed(kToUpstream), " B, upstream→client ",
                 BytesRelayed(kToClient), " B)");
  }
  EnterPhase(Phase::kClosing);
  // Only a session before the relay can be parked (LookUpToken); the host forgets one that is
  // not parked as a no-op, so no flag mirrors its list.
  if (login_ != nullptr) host_->ForgetCredentialWait(this);
  for (RelayLeg& leg : legs_) {
    if (leg.ktls()) {
      WorkerCounters& counters = host_->mutable_counters();
      counters.ktls_spliced_bytes.fetch_add(leg.bytes_spliced(), std::memory_order_relaxed);
      counters.ktls_control_records.fetch_add(leg.control_records(), std::memory_order_relaxed);
    }
    leg.Abandon(host_->pipes());
  }
  login_.reset();

  if (!client_reason.empty()) {
    // Mid-relay (shutdown) the client may be inside a server response; a BYE then is still the
    // most useful thing it can read before the connection closes.
    // Reasons may quote a peer (server, token or Destination service): never a line break.
    SendNow(client_fd_, protocol_->FailureLine(client_reason));
  }
  // Requests hold references to the files: cancel them; the fds are closed in the destructor,
  // once the last completion has arrived (close(2) then sends the FINs). Every request we
  // issue (connect, recv, poll) is cancellable, so no shutdown(2) is needed to wake one.
  // Relaying, the legs know what is armed: cancelling by tag finds a request in one hash
  // bucket, where cancelling by fd walks the ring's whole cancel table (measured: ~3 % of a
  // churn session's CPU).
  const auto cancel_tag = [this](uint8_t op) {
    io_uring_sqe* sqe = host_->GetSqe();
    io_uring_prep_cancel64(sqe, Tag(this, static_cast<Op>(op)), 0);
    io_uring_sqe_set_data64(sqe, 0);
  };
  uint32_t armed_by_legs = 0;
  for (const RelayLeg& leg : legs_) {
    armed_by_legs += (leg.recv_armed() ? 1 : 0) + (leg.armed_poll() != 0 ? 1 : 0);
  }
  if (was_relaying && armed_by_legs == pending_ops_) {
    const Op recv_ops[2] = {Op::kClientRelayRecv, Op::kUpstreamRelayRecv};
    for (int i = 0; i < 2; ++i) {
      if (legs_[i].recv_armed() && !legs_[i].recv_cancel_sent()) {
        cancel_tag(static_cast<uint8_t>(recv_ops[i]));
      }
      if (legs_[i].armed_poll() != 0) cancel_tag(legs_[i].armed_poll());
    }
  } else if (pending_ops_ > 0) {
    for (const int fd : {client_fd_, upstream_fd_}) {
      if (fd < 0) continue;
      io_uring_sqe* sqe = host_->GetSqe();
      io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
      io_uring_sqe_set_data64(sqe, 0);
    }
  }
  // Read what the client sent and nobody will answer, so close(2) sends FIN rather than RST
  // (an RST could destroy the BYE or the server's last response before the client reads it).
  if (legs_[kToUpstream].finished() == false) {
    char sink[4096];
    for (int i = 0; i < 16 && ::recv(client_fd_, sink, sizeof(sink), MSG_DONTWAIT) > 0; ++i) {
    }
  }
  MaybeFree();
}

void Session::MaybeFree() {
  // Never freed synchronously: Close() runs deep inside handlers that read members after it
  // returns (e.g. `if (phase_ == Phase::kClosing) return;`). The host frees it after the
  // current batch of completions.
  if (pending_ops_ == 0 && !destroy_scheduled_) {
    destroy_scheduled_ = true;
    host_->ScheduleDestroy(this);
  }
}

}  // namespace mailring::core
