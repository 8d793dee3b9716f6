// ImapResponse: a parsed view of one server response line (RFC 9051 section 7).
//
// Only what a proxy logging in needs: the tag ("*", "+" or a command tag), the status or
// response keyword, the bracketed response code and the human text. Views point into the line
// given to ParseImapResponse and live as long as it does.
#pragma once

#include <optional>
#include <string_view>

namespace mailring::proto {

struct ImapResponse {
  enum class Kind { kUntagged, kTagged, kContinuation };
  Kind kind = Kind::kUntagged;
  std::string_view tag;      // empty for untagged ("*") and continuation ("+") responses
  std::string_view keyword;  // upper-cased comparison helpers below; e.g. "OK", "NO", "BAD",
                             // "PREAUTH", "BYE", "CAPABILITY", "3" (for "* 3 EXISTS")
  std::string_view code;       // inside [...] without brackets, e.g. "CAPABILITY IMAP4rev1 ..."
  std::string_view text;       // the rest: human-readable text, or data for "* CAPABILITY ..."

  bool IsStatus(std::string_view status) const;  // case-insensitive compare of keyword
  // The capability list carried by this response: the code's arguments when the code is
  // "CAPABILITY ...", or the text of an untagged "CAPABILITY" response; nullopt otherwise.
  std::optional<std::string_view> Capabilities() const;
};

// Parses one logical line (without CRLF). Returns nullopt for lines that are not a response
// (empty, no space after the tag, ...). Keyword and tag are case-preserved.
std::optional<ImapResponse> ParseImapResponse(std::string_view line);

}  // namespace mailring::proto
