// SmtpUpstreamLogin: the SMTP conversation mailring holds with the mail server before relaying
// (UpstreamLogin; RFC 5321, RFC 3207 STARTTLS, RFC 4954 AUTH).
//
//   220 greeting ─► EHLO ─► [STARTTLS ─► TLS ─► EHLO] ─► AUTH ─► 235 ─► kLoggedIn
//
// - password: AUTH PLAIN with an initial response when the server offers PLAIN, else AUTH LOGIN.
// - bearer token: AUTH XOAUTH2, or OAUTHBEARER when only that is offered. A refused token's
//   error challenge ("334 <base64 JSON>") is answered with an empty line (RFC 7628 3.2.3); the
//   failure is then retryable on the same connection.
// - EHLO's name is UpstreamCredentials::client_name, "mailring" when empty.
//
// Contract: as UpstreamLogin (core/dialog/upstream_login.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/dialog/upstream_login.h"
#include "proto/smtp_reply.h"

namespace mailring::core {

class SmtpUpstreamLogin final : public UpstreamLogin {
 public:
  explicit SmtpUpstreamLogin(UpstreamCredentials credentials);

  Step OnLine(std::string_view line) override;
  Step ProvideToken(const proto::Secret& token, std::string_view fallback_user) override;
  Step OnTlsEstablished() override;
  bool can_retry() const override { return retryable_; }
  void PrepareRetry() override;
  std::string_view action() const override;
  // The EHLO keyword lines after the greeting line ("8BITMIME", "SIZE 35882577", "AUTH PLAIN").
  const std::vector<std::string>& capabilities() const override { return capabilities_; }

 private:
  enum class State : uint8_t {
    kGreeting,
    kEhlo,
    kStartTls,
    kAwaitingToken,
    kAuthPlain,
    kAuthLoginUser,
    kAuthLoginPassword,
    kAuthBearer,
    kBearerErrorAnswered,  // sent the empty line after an error challenge; its 5xx comes next
    kDone,
    kFailed,
  };

  Step OnReply(const proto::SmtpReply& reply);
  Step Ehlo();
  Step AfterCapabilities();
  Step StartLogin();
  Step Fail(std::string reason, bool retryable = false);
  bool Has(std::string_view keyword) const;
  bool HasAuth(std::string_view mechanism) const;

  State state_ = State::kGreeting;
  UpstreamCredentials credentials_;
  proto::SmtpReplyAssembler replies_;
  std::vector<std::string> capabilities_;
  bool tls_established_ = false;
  bool retryable_ = false;
  std::string bearer_mechanism_;
  std::string bearer_error_;
};

}  // namespace mailring::core
