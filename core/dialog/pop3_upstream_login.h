// Pop3UpstreamLogin: the POP3 conversation mailring holds with the mail server before relaying
// (UpstreamLogin; RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH).
//
//   +OK greeting ─► CAPA ─► [STLS ─► TLS ─► CAPA] ─► login ─► kLoggedIn
//
// - password: AUTH PLAIN when the server lists "SASL ... PLAIN", else USER / PASS (refused when
//   the name or password cannot travel on a POP3 line).
// - bearer token: AUTH XOAUTH2, or OAUTHBEARER when only that is listed. The client's response
//   goes on the AUTH line when the line stays within RFC 5034's 255 octets, else after the
//   server's "+ " continuation. A refused token's error challenge ("+ <base64 JSON>") is
//   answered with an empty line (RFC 7628 3.2.3) and the failure is retryable.
// - A server without CAPA (-ERR) is treated as announcing nothing: USER / PASS, no STLS.
//
// Contract: as UpstreamLogin (core/dialog/upstream_login.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/dialog/upstream_login.h"

namespace mailring::core {

class Pop3UpstreamLogin final : public UpstreamLogin {
 public:
  explicit Pop3UpstreamLogin(UpstreamCredentials credentials);

  Step OnLine(std::string_view line) override;
  Step ProvideToken(const proto::Secret& token, std::string_view fallback_user) override;
  Step OnTlsEstablished() override;
  bool can_retry() const override { return retryable_; }
  void PrepareRetry() override;
  std::string_view action() const override;
  // The CAPA lines ("TOP", "UIDL", "SASL PLAIN XOAUTH2", ...).
  const std::vector<std::string>& capabilities() const override { return capabilities_; }

 private:
  enum class State : uint8_t {
    kGreeting,
    kCapa,          // waiting for CAPA's +OK or -ERR
    kCapaList,      // reading the capability lines up to "."
    kStls,
    kAwaitingToken,
    kAuthPlain,
    kUser,
    kPass,
    kAuthBearer,
    kBearerErrorAnswered,  // sent the empty line after an error challenge; its -ERR comes next
    kDone,
    kFailed,
  };

  Step AfterCapabilities();  // STLS when wanted, else the login
  Step StartLogin();
  Step Fail(std::string reason, bool retryable = false);
  bool HasSasl(std::string_view mechanism) const;
  bool Has(std::string_view capability) const;

  State state_ = State::kGreeting;
  UpstreamCredentials credentials_;
  std::vector<std::string> capabilities_;
  bool tls_established_ = false;
  bool retryable_ = false;
  std::string pending_response_;  // base64 SASL response to send after the server's "+ "
  std::string bearer_mechanism_;
  std::string bearer_error_;      // the decoded error challenge, for the reason
};

}  // namespace mailring::core
