#include "core/dialog/imap_upstream_login.h"

#include <utility>

#include "proto/imap_login.h"
#include "proto/imap_response.h"
#include "proto/printable_text.h"
#include "proto/sasl.h"
#include "proto/str_cat.h"

namespace mailring::core {
namespace {

constexpr std::string_view kStartTlsTag = "M0";
constexpr std::string_view kCapabilityBeforeLoginTag = "M1";
constexpr std::string_view kLoginTag = "M2";
constexpr std::string_view kCapabilityAfterLoginTag = "M3";

std::string Quote(const proto::ImapResponse& response) {
  std::string out;
  if (!response.code.empty()) mailring::StrAppend(&out, "[", response.code, "] ");
  out.append(response.text);
  return proto::PrintableText(out, 200);
}

}  // namespace

ImapUpstreamLogin::ImapUpstreamLogin(UpstreamCredentials credentials)
    : credentials_(std::move(credentials)) {}

std::string_view ImapUpstreamLogin::action() const {
  switch (state_) {
    case State::kGreeting:
      return "reading the upstream greeting";
    case State::kCapabilityBeforeLogin:
      return "asking upstream for its capabilities";
    case State::kStartTls:
      return "starting TLS with STARTTLS";
    case State::kAwaitingToken:
      return "waiting for an access token";
    case State::kAuthenticatePlain:
      return "authenticating upstream with AUTHENTICATE PLAIN";
    case State::kAuthenticateBearer:
      return bearer_mechanism_ == "OAUTHBEARER"
                 ? "authenticating upstream with AUTHENTICATE OAUTHBEARER"
                 : "authenticating upstream with AUTHENTICATE XOAUTH2";
    case State::kLogin:
      return "logging in upstream with LOGIN";
    case State::kCapabilityAfterLogin:
      return "asking upstream for its capabilities after login";
    case State::kDone:
      return "logged in upstream";
    case State::kFailed:
      return "upstream login failed";
  }
  return "";
}

UpstreamLogin::Step ImapUpstreamLogin::Fail(std::string reason, bool retryable) {
  state_ = State::kFailed;
  retryable_ = retryable;
  return Step{Outcome::kFailed, {}, std::move(reason)};
}

void ImapUpstreamLogin::PrepareRetry() {
  if (!retryable_) return;
  retryable_ = false;
  bearer_error_.clear();
  state_ = State::kAwaitingToken;
}

UpstreamLogin::Step ImapUpstreamLogin::BeforeLogin() {
  if (credentials_.starttls == UpstreamCredentials::StartTls::kNever || tls_established_) {
    return StartLogin();
  }
  if (capabilities_.Has("STARTTLS")) {
    state_ = State::kStartTls;
    return Step{Outcome::kSend, mailring::StrCat(kStartTlsTag, " STARTTLS\r\n"), {}};
  }
  if (credentials_.starttls == UpstreamCredentials::StartTls::kRequired) {
    return Fail(
        "the destination requires STARTTLS but the server does not offer it; no credentials "
        "were sent");
  }
  return StartLogin();
}

UpstreamLogin::Step ImapUpstreamLogin::OnTlsEstablished() {
  tls_established_ = true;
  capabilities_ = proto::CapabilitySet();
  capabilities_fresh_ = false;
  state_ = State::kCapabilityBeforeLogin;
  return Step{Outcome::kSend, mailring::StrCat(kCapabilityBeforeLoginTag, " CAPABILITY\r\n"),
              {}};
}

UpstreamLogin::Step ImapUpstreamLogin::StartLogin() {
  capabilities_fresh_ = false;
  if (credentials_.kind == UpstreamCredentials::Kind::kBearerToken) {
    state_ = State::kAwaitingToken;
    return Step{Outcome::kNeedToken, {}, {}};
  }
  if (capabilities_.HasAuth("PLAIN") && capabilities_.Has("SASL-IR")) {
    state_ = State::kAuthenticatePlain;
    return Step{Outcome::kSend,
                proto::EncodeAuthenticatePlain(kLoginTag, credentials_.user,
                                               credentials_.password.Reveal()),
                {}};
  }
  if (capabilities_.Has("LOGINDISABLED")) {
    return Fail(
        "upstream does not allow a plaintext login (LOGINDISABLED) and offers no AUTH=PLAIN "
        "with SASL-IR");
  }
  const bool non_synchronizing = capabilities_.Has("LITERAL+") || capabilities_.Has("LITERAL-");
  login_segments_ = proto::EncodeLogin(kLoginTag, credentials_.user,
                                       credentials_.password.Reveal(), non_synchronizing);
  next_segment_ = 1;
  state_ = State::kLogin;
  return Step{Outcome::kSend, login_segments_[0], {}};
}

UpstreamLogin::Step ImapUpstreamLogin::ProvideToken(const proto::Secret& token,
                                                std::string_view fallback_user) {
  if (state_ != State::kAwaitingToken) return Fail("internal: access token provided too early");
  const std::string_view user =
      credentials_.user.empty() ? fallback_user : std::string_view(credentials_.user);
  std::string raw;
  if (capabilities_.HasAuth("XOAUTH2")) {
    bearer_mechanism_ = "XOAUTH2";
    raw = proto::EncodeXoauth2(user, token.Reveal());
  } else if (capabilities_.HasAuth("OAUTHBEARER")) {
    bearer_mechanism_ = "OAUTHBEARER";
    raw = proto::EncodeOauthBearer(user, token.Reveal(), credentials_.host, credentials_.port);
  } else {
    return Fail("upstream offers neither AUTH=XOAUTH2 nor AUTH=OAUTHBEARER for an OAuth2 login");
  }
  state_ = State::kAuthenticateBearer;
  bearer_error_.clear();
  bearer_response_ = proto::Base64Encode(raw);
  if (capabilities_.Has("SASL-IR")) {
    bearer_response_sent_ = true;
    return Step{Outcome::kSend,
                mailring::StrCat(kLoginTag, " AUTHENTICATE ", bearer_mechanism_, " ",
                                 bearer_response_, "\r\n"),
                {}};
  }
  bearer_response_sent_ = false;
  return Step{Outcome::kSend,
              mailring::StrCat(kLoginTag, " AUTHENTICATE ", bearer_mechanism_, "\r\n"), {}};
}

UpstreamLogin::Step ImapUpstreamLogin::OnLine(std::string_view line) {
  const std::optional<proto::ImapResponse> parsed = proto::ParseImapResponse(line);
  if (!parsed.has_value()) {
    return Fail(mailring::StrCat("upstream sent a malformed response while ", action()));
  }
  const proto::ImapResponse& response = *parsed;
  using Kind = proto::ImapResponse::Kind;

  // A BYE ends the conversation in every state.
  if (response.kind == Kind::kUntagged && response.IsStatus("BYE")) {
    return Fail(mailring::StrCat("upstream closed the session while ", action(), ": ",
                                 Quote(response)));
  }
  if (response.kind == Kind::kUntagged) {
    if (std::optional<std::string_view> caps = response.Capabilities()) {
      capabilities_ = proto::CapabilitySet::Parse(*caps);
      capabilities_fresh_ = true;
    }
  }

  switch (state_) {
    case State::kGreeting:
      if (response.kind != Kind::kUntagged) {
        return Fail("upstream did not start with a greeting");
      }
      if (response.IsStatus("PREAUTH")) {
        // Already authenticated (e.g. by client certificate or a trusted network).
        if (capabilities_fresh_) {
          state_ = State::kDone;
          return Step{Outcome::kLoggedIn, {}, {}};
        }
        state_ = State::kCapabilityAfterLogin;
        return Step{Outcome::kSend,
                    mailring::StrCat(kCapabilityAfterLoginTag, " CAPABILITY\r\n"), {}};
      }
      if (!response.IsStatus("OK")) {
        return Fail(mailring::StrCat("unexpected upstream greeting: ", Quote(response)));
      }
      if (capabilities_fresh_) return BeforeLogin();
      state_ = State::kCapabilityBeforeLogin;
      return Step{Outcome::kSend,
                  mailring::StrCat(kCapabilityBeforeLoginTag, " CAPABILITY\r\n"), {}};

    case State::kCapabilityBeforeLogin:
      if (response.kind != Kind::kTagged) return Step{};
      if (response.tag != kCapabilityBeforeLoginTag || !response.IsStatus("OK")) {
        return Fail(mailring::StrCat("upstream refused CAPABILITY: ", Quote(response)));
      }
      if (capabilities_.empty()) return Fail("upstream announced no capabilities");
      return BeforeLogin();

    case State::kStartTls:
      if (response.kind != Kind::kTagged) return Step{};
      if (response.tag != kStartTlsTag || !response.IsStatus("OK")) {
        return Fail(mailring::StrCat("upstream refused STARTTLS: ", Quote(response),
                                     "; no credentials were sent"));
      }
      return Step{Outcome::kStartTls, {}, {}};

    case State::kAwaitingToken:
      return Step{};  // untagged data while the token is fetched: nothing to do

    case State::kAuthenticateBearer:
      if (response.kind == Kind::kContinuation) {
        if (!bearer_response_sent_) {
          bearer_response_sent_ = true;
          return Step{Outcome::kSend, mailring::StrCat(bearer_response_, "\r\n"), {}};
        }
        // The error challenge (RFC 7628 3.2.3, Google's XOAUTH2): a base64 JSON status. The
        // exchange must be finished with an empty response; the tagged NO follows.
        absl::StatusOr<std::string> decoded = proto::Base64DecodeStrict(response.text);
        bearer_error_ =
            decoded.ok() ? proto::PrintableText(*decoded, 160) : "unreadable error challenge";
        return Step{Outcome::kSend, "\r\n", {}};
      }
      if (response.kind != Kind::kTagged) return Step{};
      if (response.tag != kLoginTag || !response.IsStatus("OK")) {
        return Fail(mailring::StrCat("upstream rejected the access token: ", Quote(response),
                                     bearer_error_.empty() ? "" : " ", bearer_error_),
                    /*retryable=*/response.tag == kLoginTag);
      }
      [[fallthrough]];
    case State::kAuthenticatePlain:
    case State::kLogin:
      if (state_ != State::kAuthenticateBearer && response.kind == Kind::kContinuation) {
        if (state_ == State::kLogin && next_segment_ < login_segments_.size()) {
          return Step{Outcome::kSend, login_segments_[next_segment_++], {}};
        }
        // A challenge we did not expect: cancel the exchange; the server then answers the
        // command with a tagged NO or BAD, which ends the login below.
        return Step{Outcome::kSend, "*\r\n", {}};
      }
      if (response.kind != Kind::kTagged) return Step{};
      if (response.tag != kLoginTag || !response.IsStatus("OK")) {
        return Fail(mailring::StrCat("upstream rejected the login: ", Quote(response)));
      }
      if (std::optional<std::string_view> caps = response.Capabilities()) {
        capabilities_ = proto::CapabilitySet::Parse(*caps);
        capabilities_fresh_ = true;
      }
      login_segments_.clear();
      bearer_response_.clear();
      if (capabilities_fresh_) {
        state_ = State::kDone;
        return Step{Outcome::kLoggedIn, {}, {}};
      }
      state_ = State::kCapabilityAfterLogin;
      return Step{Outcome::kSend,
                  mailring::StrCat(kCapabilityAfterLoginTag, " CAPABILITY\r\n"), {}};

    case State::kCapabilityAfterLogin:
      if (response.kind != Kind::kTagged) return Step{};
      if (response.tag != kCapabilityAfterLoginTag || !response.IsStatus("OK")) {
        return Fail(mailring::StrCat("upstream refused CAPABILITY after login: ",
                                     Quote(response)));
      }
      state_ = State::kDone;
      return Step{Outcome::kLoggedIn, {}, {}};

    case State::kDone:
    case State::kFailed:
      return Step{};
  }
  return Step{};
}

}  // namespace mailring::core
