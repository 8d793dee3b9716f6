#include "core/upstream_login.h"

#include <utility>

#include "proto/str_cat.h"
#include "proto/imap_login.h"
#include "proto/imap_response.h"

namespace mailring::core {
namespace {

constexpr std::string_view kCapabilityBeforeLoginTag = "M1";
constexpr std::string_view kLoginTag = "M2";
constexpr std::string_view kCapabilityAfterLoginTag = "M3";

// Server text quoted in a reason: printable ASCII only and bounded, so that a hostile server
// cannot inject lines into the client's stream or flood the log.
std::string Quote(const proto::ImapResponse& response) {
  std::string out;
  if (!response.code.empty()) mailring::StrAppend(&out, "[", response.code, "] ");
  out.append(response.text);
  if (out.size() > 200) out.resize(200);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
  }
  return out;
}

}  // namespace

UpstreamLogin::UpstreamLogin(std::string_view user, const proto::Secret& password)
    : user_(user), password_(password) {}

std::string_view UpstreamLogin::action() const {
  switch (state_) {
    case State::kGreeting:
      return "reading the upstream greeting";
    case State::kCapabilityBeforeLogin:
      return "asking upstream for its capabilities";
    case State::kAuthenticatePlain:
      return "authenticating upstream with AUTHENTICATE PLAIN";
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

UpstreamLogin::Step UpstreamLogin::Fail(std::string reason) {
  state_ = State::kFailed;
  return Step{Outcome::kFailed, {}, std::move(reason)};
}

UpstreamLogin::Step UpstreamLogin::StartLogin() {
  capabilities_fresh_ = false;
  if (capabilities_.HasAuth("PLAIN") && capabilities_.Has("SASL-IR")) {
    state_ = State::kAuthenticatePlain;
    return Step{Outcome::kSend,
                proto::EncodeAuthenticatePlain(kLoginTag, user_, password_.Reveal()), {}};
  }
  if (capabilities_.Has("LOGINDISABLED")) {
    return Fail(
        "upstream does not allow a plaintext login (LOGINDISABLED) and offers no AUTH=PLAIN "
        "with SASL-IR");
  }
  const bool non_synchronizing = capabilities_.Has("LITERAL+") || capabilities_.Has("LITERAL-");
  login_segments_ = proto::EncodeLogin(kLoginTag, user_, password_.Reveal(), non_synchronizing);
  next_segment_ = 1;
  state_ = State::kLogin;
  return Step{Outcome::kSend, login_segments_[0], {}};
}

UpstreamLogin::Step UpstreamLogin::OnLine(std::string_view line) {
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
        return Step{Outcome::kSend, mailring::StrCat(kCapabilityAfterLoginTag, " CAPABILITY\r\n"), {}};
      }
      if (!response.IsStatus("OK")) {
        return Fail(mailring::StrCat("unexpected upstream greeting: ", Quote(response)));
      }
      if (capabilities_fresh_) return StartLogin();
      state_ = State::kCapabilityBeforeLogin;
      return Step{Outcome::kSend, mailring::StrCat(kCapabilityBeforeLoginTag, " CAPABILITY\r\n"), {}};

    case State::kCapabilityBeforeLogin:
      if (response.kind != Kind::kTagged) return Step{};
      if (response.tag != kCapabilityBeforeLoginTag || !response.IsStatus("OK")) {
        return Fail(mailring::StrCat("upstream refused CAPABILITY: ", Quote(response)));
      }
      if (capabilities_.empty()) return Fail("upstream announced no capabilities");
      return StartLogin();

    case State::kAuthenticatePlain:
    case State::kLogin:
      if (response.kind == Kind::kContinuation) {
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
      if (capabilities_fresh_) {
        state_ = State::kDone;
        return Step{Outcome::kLoggedIn, {}, {}};
      }
      state_ = State::kCapabilityAfterLogin;
      return Step{Outcome::kSend, mailring::StrCat(kCapabilityAfterLoginTag, " CAPABILITY\r\n"), {}};

    case State::kCapabilityAfterLogin:
      if (response.kind != Kind::kTagged) return Step{};
      if (response.tag != kCapabilityAfterLoginTag || !response.IsStatus("OK")) {
        return Fail(mailring::StrCat("upstream refused CAPABILITY after login: ", Quote(response)));
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
