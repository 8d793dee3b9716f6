// ImapLineAssembler: splits an IMAP byte stream (either direction) into complete logical lines.
//
// A logical line is what RFC 9051 calls a command or response: text up to CRLF, where every
// literal announced at the end of a line part ("{N}", "{N+}", "~{N}") continues the line with its
// N octets and the text that follows them. The assembler buffers at most `max_line_bytes` of
// line text (literal octets count towards `max_literal_bytes` instead) and reports oversize input
// as an error instead of buffering it.
//
// Contract: pure, no I/O. Append() copies the bytes it is given. Lines returned by NextLine()
// stay valid until the next call to Append() or NextLine(). After an error the assembler stays
// failed. Bare LF is accepted as a line end (tolerance towards telnet users); the returned line
// never includes the CR/LF.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace mailring::proto {

class ImapLineAssembler {
 public:
  static constexpr size_t kDefaultMaxLineBytes = 8 * 1024;
  static constexpr size_t kDefaultMaxLiteralBytes = 64 * 1024;

  explicit ImapLineAssembler(size_t max_line_bytes = kDefaultMaxLineBytes,
                             size_t max_literal_bytes = kDefaultMaxLiteralBytes);

  // Buffers `bytes`. Returns ResourceExhausted when a line (without its literals) exceeds
  // max_line_bytes or one literal exceeds max_literal_bytes, InvalidArgument on a malformed
  // literal announcement (e.g. "{12a}"). Never fails for incomplete input.
  absl::Status Append(std::string_view bytes);

  // The next complete logical line (literals inline, final CRLF stripped), or nullopt when more
  // bytes are needed.
  std::optional<std::string_view> NextLine();

  // True when the buffered partial line ends with a synchronizing literal announcement
  // ("{N}\r\n") whose octets have not started: the peer waits for a "+" continuation.
  bool AwaitingLiteralContinuation() const;

  // Bytes buffered after the last line returned by NextLine() (not yet a complete line).
  std::string_view Pending() const;

  // Removes and returns Pending(): used when the session stops parsing and hands the rest of the
  // stream to the relay.
  std::string TakePending();

 private:
  // Implementation detail owned by the .cc; see there.
  size_t max_line_bytes_;
  size_t max_literal_bytes_;
  std::string buffer_;
  size_t consumed_ = 0;      // bytes of buffer_ already returned as lines
  size_t scan_pos_ = 0;      // where scanning for the end of the current line resumes
  size_t line_text_bytes_ = 0;  // non-literal bytes of the current line seen so far
  size_t literal_left_ = 0;  // octets of the current literal not yet buffered
  bool awaiting_continuation_ = false;
  bool failed_ = false;
};

}  // namespace mailring::proto
