#include "core/dialog/smtp_upstream_login.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "core/dialog/sasl_bearer.h"
#include "proto/absl_string_view.h"
#include "proto/printable_text.h"
#include "proto/sasl.h"
#include "proto/str_cat.h"

namespace mailring::core {
namespace {

constexpr size_t kMaxQuoted = 200;  // how much of a server's reply a failure quotes
constexpr size_t kMaxCapabilities = 64;

// "535 5.7.8 Authentication failed", printable and bounded.
std::string Quote(const proto::SmtpReply& reply) {
  return proto::PrintableText(mailring::StrCat(reply.code, " ", reply.last()), kMaxQuoted);
}

}  // namespace

SmtpUpstreamLogin::SmtpUpstreamLogin(UpstreamCredentials credentials)
    : credentials_(std::move(credentials)) {
  if (credentials_.client_name.empty()) credentials_.client_name = "mailring";
}

std::string_view SmtpUpstreamLogin::action() const {
  switch (state_) {
    case State::kGreeting:
      return "reading the upstream SMTP greeting";
    case State::kEhlo:
      return "asking upstream for its SMTP extensions (EHLO)";
    case State::kStartTls:
      return "asking upstream for STARTTLS";
    case State::kAwaitingToken:
      return "waiting for an access token";
    case State::kAuthPlain:
      return "authenticating upstream with AUTH PLAIN";
    case State::kAuthLoginUser:
    case State::kAuthLoginPassword:
      return "authenticating upstream with AUTH LOGIN";
    case State::kAuthBearer:
    case State::kBearerErrorAnswered:
      return bearer_mechanism_ == "OAUTHBEARER" ? "authenticating upstream with AUTH OAUTHBEARER"
                                                : "authenticating upstream with AUTH XOAUTH2";
    case State::kDone:
      return "logged in upstream";
    case State::kFailed:
      return "failed to log in upstream";
  }
  return "";
}

UpstreamLogin::Step SmtpUpstreamLogin::Fail(std::string reason, bool retryable) {
  state_ = State::kFailed;
  retryable_ = retryable;
  return Step{Outcome::kFailed, {}, std::move(reason)};
}

bool SmtpUpstreamLogin::Has(std::string_view keyword) const {
  for (const std::string& line : capabilities_) {
    const std::string_view first = std::string_view(line).substr(0, line.find(' '));
    if (absl::EqualsIgnoreCase(proto::AsAbsl(first), proto::AsAbsl(keyword))) return true;
  }
  return false;
}

bool SmtpUpstreamLogin::HasAuth(std::string_view mechanism) const {
  for (const std::string& line : capabilities_) {
    std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
    // "AUTH PLAIN LOGIN"; some old servers also say "AUTH=PLAIN LOGIN".
    if (words.empty()) continue;
    size_t first = 1;
    if (absl::StartsWithIgnoreCase(words[0], "AUTH=")) {
      words[0].remove_prefix(5);
      first = 0;
    } else if (!absl::EqualsIgnoreCase(words[0], "AUTH")) {
      continue;
    }
    for (size_t i = first; i < words.size(); ++i) {
      if (absl::EqualsIgnoreCase(words[i], proto::AsAbsl(mechanism))) return true;
    }
  }
  return false;
}

UpstreamLogin::Step SmtpUpstreamLogin::Ehlo() {
  state_ = State::kEhlo;
  capabilities_.clear();
  return Step{Outcome::kSend, mailring::StrCat("EHLO ", credentials_.client_name, "\r\n"), {}};
}

UpstreamLogin::Step SmtpUpstreamLogin::OnTlsEstablished() {
  // RFC 3207 4.2: forget what the server said before TLS and ask again.
  tls_established_ = true;
  return Ehlo();
}

void SmtpUpstreamLogin::PrepareRetry() {
  retryable_ = false;
  bearer_error_.clear();
  state_ = State::kAwaitingToken;
}

UpstreamLogin::Step SmtpUpstreamLogin::AfterCapabilities() {
  if (credentials_.starttls != UpstreamCredentials::StartTls::kNever && !tls_established_) {
    if (Has("STARTTLS")) {
      state_ = State::kStartTls;
      return Step{Outcome::kSend, "STARTTLS\r\n", {}};
    }
    if (credentials_.starttls == UpstreamCredentials::StartTls::kRequired) {
      return Fail("the SMTP server does not offer STARTTLS, which the destination requires");
    }
  }
  return StartLogin();
}

UpstreamLogin::Step SmtpUpstreamLogin::StartLogin() {
  if (credentials_.kind == UpstreamCredentials::Kind::kBearerToken) {
    state_ = State::kAwaitingToken;
    return Step{Outcome::kNeedToken, {}, {}};
  }
  if (HasAuth("PLAIN")) {
    state_ = State::kAuthPlain;
    return Step{Outcome::kSend,
                mailring::StrCat("AUTH PLAIN ",
                                 proto::Base64Encode(mailring::StrCat(
                                     std::string_view("\0", 1), credentials_.user,
                                     std::string_view("\0", 1), credentials_.password.Reveal())),
                                 "\r\n"),
                {}};
  }
  if (HasAuth("LOGIN")) {
    state_ = State::kAuthLoginUser;
    return Step{Outcome::kSend, "AUTH LOGIN\r\n", {}};
  }
  return Fail(tls_established_ || credentials_.starttls != UpstreamCredentials::StartTls::kNever
                  ? "the SMTP server offers neither AUTH PLAIN nor AUTH LOGIN"
                  : "the SMTP server offers neither AUTH PLAIN nor AUTH LOGIN (many servers "
                    "offer them only after STARTTLS: set mail.smtp.starttls.enable)");
}

UpstreamLogin::Step SmtpUpstreamLogin::ProvideToken(const proto::Secret& token,
                                                    std::string_view fallback_user) {
  const std::string_view user = credentials_.user.empty() ? fallback_user : credentials_.user;
  std::optional<BearerResponse> bearer =
      ChooseBearer(HasAuth("XOAUTH2"), HasAuth("OAUTHBEARER"), user, token, credentials_.host,
                   credentials_.port);
  if (!bearer.has_value()) {
    return Fail("the SMTP server offers no bearer-token mechanism (AUTH XOAUTH2 or OAUTHBEARER)");
  }
  bearer_mechanism_ = bearer->mechanism;
  state_ = State::kAuthBearer;
  return Step{Outcome::kSend,
              mailring::StrCat("AUTH ", bearer_mechanism_, " ", bearer->base64, "\r\n"), {}};
}

UpstreamLogin::Step SmtpUpstreamLogin::OnLine(std::string_view line) {
  if (state_ == State::kAwaitingToken || state_ == State::kDone || state_ == State::kFailed) {
    return Step{Outcome::kNeedMore, {}, {}};  // unsolicited: the session keeps it
  }
  absl::StatusOr<std::optional<proto::SmtpReply>> reply = replies_.OnLine(line);
  if (!reply.ok()) {
    return Fail(mailring::StrCat("the SMTP server sent ", reply.status().message(), " while ",
                                 action()));
  }
  if (!reply->has_value()) return Step{Outcome::kNeedMore, {}, {}};
  return OnReply(**reply);
}

UpstreamLogin::Step SmtpUpstreamLogin::OnReply(const proto::SmtpReply& reply) {
  switch (state_) {
    case State::kGreeting:
      if (reply.code != 220) {
        return Fail(mailring::StrCat("the SMTP server refused the connection: ", Quote(reply)));
      }
      return Ehlo();
    case State::kEhlo:
      if (reply.code != 250) {
        return Fail(mailring::StrCat("the SMTP server refused EHLO: ", Quote(reply)));
      }
      // The first line names the server; the others are extensions.
      for (size_t i = 1; i < reply.lines.size() && capabilities_.size() < kMaxCapabilities; ++i) {
        capabilities_.push_back(reply.lines[i]);
      }
      return AfterCapabilities();
    case State::kStartTls:
      if (reply.code == 220) return Step{Outcome::kStartTls, {}, {}};
      if (credentials_.starttls == UpstreamCredentials::StartTls::kRequired) {
        return Fail(mailring::StrCat("the SMTP server refused STARTTLS: ", Quote(reply)));
      }
      return StartLogin();
    case State::kAuthPlain:
      if (reply.code == 235) {
        state_ = State::kDone;
        return Step{Outcome::kLoggedIn, {}, {}};
      }
      return Fail(mailring::StrCat("the SMTP server refused the login: ", Quote(reply)));
    case State::kAuthLoginUser:
      if (reply.code != 334) {
        return Fail(mailring::StrCat("the SMTP server refused AUTH LOGIN: ", Quote(reply)));
      }
      state_ = State::kAuthLoginPassword;
      return Step{Outcome::kSend, mailring::StrCat(proto::Base64Encode(credentials_.user), "\r\n"),
                  {}};
    case State::kAuthLoginPassword:
      if (reply.code != 334) {
        return Fail(mailring::StrCat("the SMTP server refused the user: ", Quote(reply)));
      }
      state_ = State::kAuthPlain;  // what follows is the final 235 or a refusal
      return Step{Outcome::kSend,
                  mailring::StrCat(proto::Base64Encode(credentials_.password.Reveal()), "\r\n"),
                  {}};
    case State::kAuthBearer:
      if (reply.code == 235) {
        state_ = State::kDone;
        return Step{Outcome::kLoggedIn, {}, {}};
      }
      if (reply.code == 334) {
        // The error challenge: answer with an empty line; the refusal follows.
        absl::StatusOr<std::string> decoded =
            proto::Base64DecodeStrict(std::string_view(reply.last()));
        bearer_error_ = decoded.ok() ? proto::PrintableText(*decoded, kMaxQuoted) : std::string();
        state_ = State::kBearerErrorAnswered;
        return Step{Outcome::kSend, "\r\n", {}};
      }
      return Fail(mailring::StrCat("the SMTP server refused the token: ", Quote(reply)),
                  /*retryable=*/reply.code >= 500);
    case State::kBearerErrorAnswered:
      return Fail(mailring::StrCat("the SMTP server refused the token: ", Quote(reply),
                                   bearer_error_.empty() ? "" : " ", bearer_error_),
                  /*retryable=*/reply.code >= 500);
    case State::kAwaitingToken:
    case State::kDone:
    case State::kFailed:
      break;
  }
  return Step{Outcome::kNeedMore, {}, {}};
}

}  // namespace mailring::core
