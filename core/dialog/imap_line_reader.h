// ImapLineReader: IMAP framing for the session (LineReader over proto::ImapLineAssembler):
// literals ({N}, {N+}) stay inside their logical line.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "core/dialog/line_reader.h"
#include "proto/imap_line_assembler.h"

namespace mailring::core {

class ImapLineReader final : public LineReader {
 public:
  explicit ImapLineReader(size_t max_line_bytes) : assembler_(max_line_bytes) {}

  absl::Status Append(std::string_view bytes) override { return assembler_.Append(bytes); }
  std::optional<std::string_view> NextLine() override { return assembler_.NextLine(); }
  bool AwaitingLiteralContinuation() const override {
    return assembler_.AwaitingLiteralContinuation();
  }
  std::string TakePending() override { return assembler_.TakePending(); }

 private:
  proto::ImapLineAssembler assembler_;
};

}  // namespace mailring::core
