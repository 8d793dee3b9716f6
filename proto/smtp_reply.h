// SmtpReplyAssembler: groups an SMTP server's lines into replies (RFC 5321 4.2): "250-..." lines
// continue a reply, the first "250 ..." (or a bare "250") ends it.
//
// Contract: pure. Lines without their CRLF. A malformed line (no three-digit code, a
// continuation whose code differs, more than kMaxLines lines) is InvalidArgument, whose message
// never quotes the input.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace mailring::proto {

struct SmtpReply {
  int code = 0;
  std::vector<std::string> lines;  // the text of each line after "NNN-" / "NNN "
  // The last line's text: what a failure quotes ("5.7.8 Authentication failed").
  std::string_view last() const { return lines.empty() ? std::string_view() : lines.back(); }
};

class SmtpReplyAssembler {
 public:
  static constexpr size_t kMaxLines = 256;

  // The completed reply when `line` ends one, nullopt while it continues.
  absl::StatusOr<std::optional<SmtpReply>> OnLine(std::string_view line);

 private:
  SmtpReply pending_;
};

}  // namespace mailring::proto
