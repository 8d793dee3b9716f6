// LineReader: how the session splits a peer's bytes into protocol lines before the relay.
//
// IMAP needs literals ({N}, {N+}) inside a logical line (proto::ImapLineAssembler); SMTP and
// POP3 have plain CRLF lines (proto::TextLineAssembler). The session only sees this interface.
//
// Contract: Append() copies the bytes; a line from NextLine() stays valid until the next
// Append() or NextLine(); it never includes the line end. After an error Append() keeps
// failing; lines completed before it are still handed out. Error messages never quote input.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace mailring::core {

class LineReader {
 public:
  virtual ~LineReader() = default;
  virtual absl::Status Append(std::string_view bytes) = 0;
  virtual std::optional<std::string_view> NextLine() = 0;
  // The peer waits for a continuation ("+ ") before it sends a literal's octets (IMAP only).
  virtual bool AwaitingLiteralContinuation() const { return false; }
  // Removes and returns the bytes after the last line handed out: the relay's first bytes.
  virtual std::string TakePending() = 0;
};

}  // namespace mailring::core
