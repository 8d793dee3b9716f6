// ParseImapResponse: splits "<tag> <keyword> [<code>] <text>" without copying.
//
// Tolerant where tolerance is harmless (a bare "+" continuation, a status line without text, a
// '[' that never closes is kept as text) and strict where the proxy's decisions depend on it: a
// line without a keyword is not a response.
#include "proto/imap_response.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "proto/absl_string_view.h"

namespace mailring::proto {
namespace {

// Status responses (RFC 9051 7.1) carry resp-text: an optional "[code]" followed by text.
bool HasRespText(std::string_view keyword) {
  for (std::string_view status : {"OK", "NO", "BAD", "PREAUTH", "BYE"}) {
    if (absl::EqualsIgnoreCase(AsAbsl(keyword), AsAbsl(status))) return true;
  }
  return false;
}

// Fills code and text from resp-text: "[CODE args] text", "[CODE]", or just "text".
void ParseRespText(std::string_view rest, ImapResponse* response) {
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close != std::string_view::npos) {
      response->code = rest.substr(1, close - 1);
      rest.remove_prefix(close + 1);
      if (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    }
  }
  response->text = rest;
}

}  // namespace

bool ImapResponse::IsStatus(std::string_view status) const {
  return absl::EqualsIgnoreCase(AsAbsl(keyword), AsAbsl(status));
}

std::optional<std::string_view> ImapResponse::Capabilities() const {
  constexpr std::string_view kCapability = "CAPABILITY";
  if (absl::StartsWithIgnoreCase(AsAbsl(code), AsAbsl(kCapability)) &&
      (code.size() == kCapability.size() || code[kCapability.size()] == ' ')) {
    return AsStd(absl::StripAsciiWhitespace(AsAbsl(code.substr(kCapability.size()))));
  }
  if (kind == Kind::kUntagged && IsStatus(kCapability)) {
    return AsStd(absl::StripAsciiWhitespace(AsAbsl(text)));
  }
  return std::nullopt;
}

std::optional<ImapResponse> ParseImapResponse(std::string_view line) {
  if (line.empty()) return std::nullopt;
  ImapResponse response;

  if (line.front() == '+') {
    // "+ text", "+ base64" or a bare "+" (some servers omit the space before empty text).
    if (line.size() > 1 && line[1] != ' ') return std::nullopt;
    response.kind = ImapResponse::Kind::kContinuation;
    ParseRespText(line.size() > 1 ? line.substr(2) : std::string_view(), &response);
    return response;
  }

  const size_t tag_end = line.find(' ');
  if (tag_end == 0 || tag_end == std::string_view::npos) return std::nullopt;
  const std::string_view tag = line.substr(0, tag_end);
  if (tag == "*") {
    response.kind = ImapResponse::Kind::kUntagged;
  } else {
    response.kind = ImapResponse::Kind::kTagged;
    response.tag = tag;
  }

  std::string_view rest = line.substr(tag_end + 1);
  const size_t keyword_end = rest.find(' ');
  response.keyword = rest.substr(0, keyword_end);
  if (response.keyword.empty()) return std::nullopt;
  rest = keyword_end == std::string_view::npos ? std::string_view() : rest.substr(keyword_end + 1);

  if (HasRespText(response.keyword)) {
    ParseRespText(rest, &response);
  } else {
    response.text = rest;  // "* CAPABILITY ...", "* 3 EXISTS", "* FLAGS (...)"
  }
  return response;
}

}  // namespace mailring::proto
