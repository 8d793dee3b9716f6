// TextLineAssembler: splits a CRLF-delimited byte stream (SMTP, POP3) into lines.
//
// Contract: pure, no I/O. Append() copies the bytes it is given; a line from NextLine() stays
// valid until the next Append() or NextLine() and never includes its line end. Bare LF is
// accepted as a line end (tolerance towards telnet users). A line longer than max_line_bytes
// (without its line end) is an error (ResourceExhausted, whose message never quotes input); after
// an error Append() keeps failing, and NextLine() still hands out the lines completed before the
// offending one and nothing after it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace mailring::proto {

class TextLineAssembler {
 public:
  explicit TextLineAssembler(size_t max_line_bytes) : max_line_bytes_(max_line_bytes) {}

  absl::Status Append(std::string_view bytes);
  std::optional<std::string_view> NextLine();
  // Removes and returns what follows the last line handed out (complete lines included).
  std::string TakePending();

 private:
  absl::Status Fail(size_t keep_until);

  size_t max_line_bytes_;
  std::string buffer_;
  size_t consumed_ = 0;      // bytes of buffer_ already handed out as lines
  size_t checked_ = 0;       // bytes of buffer_ up to which lines were checked and complete
  absl::Status error_;
};

}  // namespace mailring::proto
