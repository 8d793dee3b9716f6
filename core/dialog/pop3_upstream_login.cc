#include "core/dialog/pop3_upstream_login.h"

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

// RFC 5034 4: an AUTH command with its initial response must fit in 255 octets (with CRLF).
constexpr size_t kMaxAuthLine = 255;
// How much of a server's text a failure quotes.
constexpr size_t kMaxQuoted = 200;

bool IsOk(std::string_view line) { return absl::StartsWith(proto::AsAbsl(line), "+OK"); }
bool IsErr(std::string_view line) { return absl::StartsWith(proto::AsAbsl(line), "-ERR"); }
bool IsContinuation(std::string_view line) {
  return line == "+" || absl::StartsWith(proto::AsAbsl(line), "+ ");
}

// The server's words after "+OK" / "-ERR", printable and bounded.
std::string ServerText(std::string_view line) {
  const size_t space = line.find(' ');
  return proto::PrintableText(space == std::string_view::npos ? std::string_view()
                                                              : line.substr(space + 1),
                              kMaxQuoted);
}

bool FitsOnALine(std::string_view value) {
  return value.find_first_of("\r\n") == std::string_view::npos && !value.empty();
}

}  // namespace

Pop3UpstreamLogin::Pop3UpstreamLogin(UpstreamCredentials credentials)
    : credentials_(std::move(credentials)) {}

std::string_view Pop3UpstreamLogin::action() const {
  switch (state_) {
    case State::kGreeting:
      return "reading the upstream POP3 greeting";
    case State::kCapa:
    case State::kCapaList:
      return "asking upstream for its POP3 capabilities";
    case State::kStls:
      return "asking upstream for STLS";
    case State::kAwaitingToken:
      return "waiting for an access token";
    case State::kAuthPlain:
      return "authenticating upstream with AUTH PLAIN";
    case State::kUser:
    case State::kPass:
      return "logging in upstream with USER/PASS";
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

UpstreamLogin::Step Pop3UpstreamLogin::Fail(std::string reason, bool retryable) {
  state_ = State::kFailed;
  retryable_ = retryable;
  return Step{Outcome::kFailed, {}, std::move(reason)};
}

bool Pop3UpstreamLogin::Has(std::string_view capability) const {
  for (const std::string& line : capabilities_) {
    const std::string_view keyword = std::string_view(line).substr(0, line.find(' '));
    if (absl::EqualsIgnoreCase(proto::AsAbsl(keyword), proto::AsAbsl(capability))) return true;
  }
  return false;
}

bool Pop3UpstreamLogin::HasSasl(std::string_view mechanism) const {
  for (const std::string& line : capabilities_) {
    std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (words.empty() || !absl::EqualsIgnoreCase(words[0], "SASL")) continue;
    for (size_t i = 1; i < words.size(); ++i) {
      if (absl::EqualsIgnoreCase(words[i], proto::AsAbsl(mechanism))) return true;
    }
  }
  return false;
}

UpstreamLogin::Step Pop3UpstreamLogin::OnTlsEstablished() {
  // RFC 2595 4: what the server announced before TLS must be forgotten.
  tls_established_ = true;
  capabilities_.clear();
  state_ = State::kCapa;
  return Step{Outcome::kSend, "CAPA\r\n", {}};
}

void Pop3UpstreamLogin::PrepareRetry() {
  retryable_ = false;
  bearer_error_.clear();
  pending_response_.clear();
  state_ = State::kAwaitingToken;
}

UpstreamLogin::Step Pop3UpstreamLogin::AfterCapabilities() {
  if (credentials_.starttls != UpstreamCredentials::StartTls::kNever && !tls_established_) {
    if (Has("STLS")) {
      state_ = State::kStls;
      return Step{Outcome::kSend, "STLS\r\n", {}};
    }
    if (credentials_.starttls == UpstreamCredentials::StartTls::kRequired) {
      return Fail("the POP3 server does not offer STLS, which the destination requires");
    }
  }
  return StartLogin();
}

UpstreamLogin::Step Pop3UpstreamLogin::StartLogin() {
  if (credentials_.kind == UpstreamCredentials::Kind::kBearerToken) {
    state_ = State::kAwaitingToken;
    return Step{Outcome::kNeedToken, {}, {}};
  }
  const std::string_view password = credentials_.password.Reveal();
  if (HasSasl("PLAIN")) {
    const std::string response = proto::Base64Encode(
        mailring::StrCat(std::string_view("\0", 1), credentials_.user, std::string_view("\0", 1),
                         password));
    state_ = State::kAuthPlain;
    std::string line = mailring::StrCat("AUTH PLAIN ", response, "\r\n");
    if (line.size() <= kMaxAuthLine) return Step{Outcome::kSend, std::move(line), {}};
    pending_response_ = response;
    return Step{Outcome::kSend, "AUTH PLAIN\r\n", {}};
  }
  if (!FitsOnALine(credentials_.user) || !FitsOnALine(password)) {
    return Fail("the user name or password cannot be sent with USER/PASS (empty or a line break) "
                "and the POP3 server offers no SASL PLAIN");
  }
  state_ = State::kUser;
  return Step{Outcome::kSend, mailring::StrCat("USER ", credentials_.user, "\r\n"), {}};
}

UpstreamLogin::Step Pop3UpstreamLogin::ProvideToken(const proto::Secret& token,
                                                    std::string_view fallback_user) {
  const std::string_view user = credentials_.user.empty() ? fallback_user : credentials_.user;
  std::optional<BearerResponse> bearer =
      ChooseBearer(HasSasl("XOAUTH2"), HasSasl("OAUTHBEARER"), user, token, credentials_.host,
                   credentials_.port);
  if (!bearer.has_value()) {
    return Fail("the POP3 server offers no bearer-token mechanism (SASL XOAUTH2 or OAUTHBEARER)");
  }
  bearer_mechanism_ = bearer->mechanism;
  const std::string response = std::move(bearer->base64);
  state_ = State::kAuthBearer;
  std::string line = mailring::StrCat("AUTH ", bearer_mechanism_, " ", response, "\r\n");
  if (line.size() <= kMaxAuthLine) {
    pending_response_.clear();
    return Step{Outcome::kSend, std::move(line), {}};
  }
  pending_response_ = response;
  return Step{Outcome::kSend, mailring::StrCat("AUTH ", bearer_mechanism_, "\r\n"), {}};
}

UpstreamLogin::Step Pop3UpstreamLogin::OnLine(std::string_view line) {
  switch (state_) {
    case State::kGreeting:
      if (!IsOk(line)) {
        return Fail(mailring::StrCat("the POP3 server refused the connection: ", ServerText(line)));
      }
      state_ = State::kCapa;
      return Step{Outcome::kSend, "CAPA\r\n", {}};
    case State::kCapa:
      if (IsOk(line)) {
        state_ = State::kCapaList;
        return Step{Outcome::kNeedMore, {}, {}};
      }
      return AfterCapabilities();  // no CAPA: nothing announced
    case State::kCapaList:
      if (line == ".") return AfterCapabilities();
      if (capabilities_.size() < 64) {
        capabilities_.emplace_back(absl::StartsWith(proto::AsAbsl(line), "..") ? line.substr(1)
                                                                                 : line);
      }
      return Step{Outcome::kNeedMore, {}, {}};
    case State::kStls:
      if (IsOk(line)) return Step{Outcome::kStartTls, {}, {}};
      if (credentials_.starttls == UpstreamCredentials::StartTls::kRequired) {
        return Fail(mailring::StrCat("the POP3 server refused STLS: ", ServerText(line)));
      }
      return StartLogin();
    case State::kAuthPlain:
      if (IsContinuation(line) && !pending_response_.empty()) {
        std::string response = std::move(pending_response_);
        pending_response_.clear();
        return Step{Outcome::kSend, mailring::StrCat(response, "\r\n"), {}};
      }
      if (IsOk(line)) {
        state_ = State::kDone;
        return Step{Outcome::kLoggedIn, {}, {}};
      }
      return Fail(mailring::StrCat("the POP3 server refused the login: ", ServerText(line)));
    case State::kUser:
      if (!IsOk(line)) {
        return Fail(mailring::StrCat("the POP3 server refused the user: ", ServerText(line)));
      }
      state_ = State::kPass;
      return Step{Outcome::kSend,
                  mailring::StrCat("PASS ", credentials_.password.Reveal(), "\r\n"), {}};
    case State::kPass:
      if (IsOk(line)) {
        state_ = State::kDone;
        return Step{Outcome::kLoggedIn, {}, {}};
      }
      return Fail(mailring::StrCat("the POP3 server refused the login: ", ServerText(line)));
    case State::kAuthBearer:
      if (IsOk(line)) {
        state_ = State::kDone;
        return Step{Outcome::kLoggedIn, {}, {}};
      }
      if (IsContinuation(line)) {
        if (!pending_response_.empty()) {  // the server asks for the response
          std::string response = std::move(pending_response_);
          pending_response_.clear();
          return Step{Outcome::kSend, mailring::StrCat(response, "\r\n"), {}};
        }
        // The error challenge: answer with an empty line; the -ERR follows.
        const std::string_view encoded = line.size() > 2 ? line.substr(2) : std::string_view();
        absl::StatusOr<std::string> decoded = proto::Base64DecodeStrict(encoded);
        bearer_error_ = decoded.ok() ? proto::PrintableText(*decoded, kMaxQuoted) : std::string();
        state_ = State::kBearerErrorAnswered;
        return Step{Outcome::kSend, "\r\n", {}};
      }
      return Fail(mailring::StrCat("the POP3 server refused the token: ", ServerText(line)),
                  /*retryable=*/true);
    case State::kBearerErrorAnswered:
      return Fail(mailring::StrCat("the POP3 server refused the token: ", ServerText(line),
                                   bearer_error_.empty() ? "" : " ", bearer_error_),
                  /*retryable=*/IsErr(line));
    case State::kAwaitingToken:
    case State::kDone:
    case State::kFailed:
      return Step{Outcome::kNeedMore, {}, {}};  // unsolicited: the session keeps it
  }
  return Step{Outcome::kNeedMore, {}, {}};
}

}  // namespace mailring::core
