// ImapUpstreamLogin: the IMAP conversation mailring holds with the mail server before relaying,
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

#include "core/dialog/upstream_login.h"
#include "proto/imap_capabilities.h"
#include "proto/secret.h"

namespace mailring::core {

class ImapUpstreamLogin final : public UpstreamLogin {
 public:
  explicit ImapUpstreamLogin(UpstreamCredentials credentials);

  Step OnLine(std::string_view line) override;

  // Bearer logins: the access token, and the user to log in as when the destination names
  // none. Returns the next step (kSend, or kFailed when the server offers no bearer mechanism).
  // Valid once OnLine() returned kNeedToken.
  Step ProvideToken(const proto::Secret& token, std::string_view fallback_user) override;

  // After kStartTls: the session completed the TLS handshake. Capabilities are asked again
  // (RFC 9051: those from before TLS must be forgotten); returns that step.
  Step OnTlsEstablished() override;

  // True after a kFailed in which the server refused the credentials but the connection is
  // still usable (a tagged NO to the login): PrepareRetry() then waits for another token.
  bool can_retry() const override { return retryable_; }
  void PrepareRetry() override;

  // What the conversation is doing, for log lines and BYE reasons ("reading the upstream
  // greeting", "authenticating upstream with AUTHENTICATE XOAUTH2", ...).
  std::string_view action() const override;

  // The capabilities after login (valid once OnLine returned kLoggedIn): the atoms, and the set
  // for IMAP's own filtering (CapabilitySet::ForPreauthenticatedClient()).
  const std::vector<std::string>& capabilities() const override { return capabilities_.atoms(); }
  const proto::CapabilitySet& capability_set() const { return capabilities_; }

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
