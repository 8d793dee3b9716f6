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
// failed: Append() keeps returning that error, NextLine() still hands out the lines completed
// before the offending one and nothing after it. Bare LF is accepted as a line end (tolerance
// towards telnet users); the returned line never includes the CR/LF. Limits apply per logical
// line: its text (everything but literal octets and the final CRLF) against max_line_bytes, the
// sum of its literals against max_literal_bytes.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

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
  // One complete line queued for NextLine(): [begin, end) is its text, `next` the first byte
  // after its line end. Offsets into buffer_.
  struct LineRange {
    size_t begin;
    size_t end;
    size_t next;
  };

  void Compact();
  absl::Status Scan();
  absl::StatusOr<bool> ParseAnnouncement(size_t text_end, size_t* literal_size,
                                         bool* synchronizing) const;
  absl::Status LineTooLong() const;

  // Implementation detail owned by the .cc; see there.
  size_t max_line_bytes_;
  size_t max_literal_bytes_;
  std::string buffer_;
  size_t consumed_ = 0;            // bytes of buffer_ already returned as lines
  size_t scan_pos_ = 0;            // where scanning for the end of the current line resumes
  size_t line_start_ = 0;          // first byte of the current (incomplete) line
  size_t part_start_ = 0;          // first byte of the current text part (after the last literal)
  size_t line_text_bytes_ = 0;     // text bytes of the current line's finished parts
  size_t line_literal_bytes_ = 0;  // literal octets announced so far on the current line
  size_t literal_left_ = 0;        // octets of the current literal not yet buffered
  std::vector<LineRange> ready_;   // complete lines not yet returned, from ready_head_ on
  size_t ready_head_ = 0;
  bool awaiting_continuation_ = false;
  bool failed_ = false;
  absl::Status status_;  // the first error, returned again by every later Append()
};

}  // namespace mailring::proto
