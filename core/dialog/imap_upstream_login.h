// UpstreamLogin: the IMAP conversation mailring holds with the mail server before relaying,
// as a pure state machine (lines in, bytes to send out), so it is tested without sockets.
//
//   greeting ─► [CAPABILITY] ─► login ─► [CAPABILITY, when the login response carried none] ─► done
//
// The login, by credential kind:
//  - password: AUTHENTICATE PLAIN with an initial response when the server offers AUTH=PLAIN and
//    SASL-IR (one round trip, any byte in the password), else LOGIN (atoms, quoted strings,
//    literals), unless the server announces LOGINDISABLED.
//  - bearer token (OAuth2 destinations): AUTHENTICATE XOAUTH2, or OAUTHBEARER when only that is
//    offered; with SASL-IR in one line, else after the "+" continuation. The token arrives
//    through ProvideToken(), possibly long after the greeting (the control thread fetches it):
//    OnLine() returns kNeedToken when the conversation waits for it. A failed bearer login
//    answers the server's error challenge with an empty line, as RFC 7628 requires, and can be
//    retried with another token (PrepareRetry()).
// With STARTTLS wanted (UpstreamCredentials::starttls), "M0 STARTTLS" comes first; OnLine()
// returns kStartTls when the server agreed, the session runs the TLS handshake and calls
// OnTlsEstablished(), and the conversation continues with a fresh CAPABILITY. A PREAUTH
// greeting skips the login.
//
// Contract: Step::send carries credentials: write it to the socket, never to a log. Reasons in
// Step::failure are safe to show to the client and to log: they quote the server, never the
// credentials.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proto/imap_capabilities.h"
#include "proto/secret.h"

namespace mailring::core {

struct UpstreamCredentials {
  enum class Kind : uint8_t { kPassword, kBearerToken };
  // STARTTLS before the login: never, when the server offers it, or required (no credentials
  // are ever sent in clear then).
  enum class StartTls : uint8_t { kNever, kIfOffered, kRequired };
  Kind kind = Kind::kPassword;
  StartTls starttls = StartTls::kNever;
  std::string user;
  proto::Secret password;  // kPassword
  std::string host;        // the server's name and port, for OAUTHBEARER's host/port fields
  uint16_t port = 0;
};

class UpstreamLogin {
 public:
  enum class Outcome : uint8_t { kNeedMore, kSend, kNeedToken, kStartTls, kLoggedIn, kFailed };
  struct Step {
    Outcome outcome = Outcome::kNeedMore;
    std::string send;     // kSend: bytes for the server
    std::string failure;  // kFailed: why, for the client and the log
  };

  explicit UpstreamLogin(UpstreamCredentials credentials);

  Step OnLine(std::string_view line);

  // Bearer logins: the access token, and the user to log in as when the destination names
  // none. Returns the next step (kSend, or kFailed when the server offers no bearer mechanism).
  // Valid once OnLine() returned kNeedToken.
  Step ProvideToken(const proto::Secret& token, std::string_view fallback_user = {});

  // After kStartTls: the session completed the TLS handshake. Capabilities are asked again
  // (RFC 9051: those from before TLS must be forgotten); returns that step.
  Step OnTlsEstablished();

  // True after a kFailed in which the server refused the credentials but the connection is
  // still usable (a tagged NO to the login): PrepareRetry() then waits for another token.
  bool can_retry() const { return retryable_; }
  void PrepareRetry();

  // What the conversation is doing, for log lines and BYE reasons ("reading the upstream
  // greeting", "authenticating upstream with AUTHENTICATE XOAUTH2", ...).
  std::string_view action() const;

  // The capabilities after login (valid once OnLine returned kLoggedIn).
  const proto::CapabilitySet& capabilities() const { return capabilities_; }

 private:
  enum class State : uint8_t {
    kGreeting,
    kCapabilityBeforeLogin,
    kStartTls,
    kAwaitingToken,
    kAuthenticatePlain,
    kAuthenticateBearer,
    kLogin,
    kCapabilityAfterLogin,
    kDone,
    kFailed,
  };

  Step StartLogin();
  Step BeforeLogin();  // STARTTLS first when wanted, else StartLogin()
  Step Fail(std::string reason, bool retryable = false);

  State state_ = State::kGreeting;
  UpstreamCredentials credentials_;
  proto::CapabilitySet capabilities_;
  bool capabilities_fresh_ = false;  // capabilities seen since the login command was sent
  bool retryable_ = false;
  bool tls_established_ = false;
  std::vector<std::string> login_segments_;  // LOGIN with synchronizing literals
  size_t next_segment_ = 0;
  std::string bearer_mechanism_;       // "XOAUTH2" or "OAUTHBEARER"
  std::string bearer_response_;        // base64 client response, sent after "+" without SASL-IR
  bool bearer_response_sent_ = false;
  std::string bearer_error_;           // the server's error challenge, decoded, for the reason
};

}  // namespace mailring::core
