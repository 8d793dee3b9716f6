// TextLineReader: SMTP and POP3 framing for the session (LineReader over
// proto::TextLineAssembler): plain CRLF lines, no literals.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "core/dialog/line_reader.h"
#include "proto/text_line_assembler.h"

namespace mailring::core {

class TextLineReader final : public LineReader {
 public:
  explicit TextLineReader(size_t max_line_bytes) : assembler_(max_line_bytes) {}

  absl::Status Append(std::string_view bytes) override { return assembler_.Append(bytes); }
  std::optional<std::string_view> NextLine() override { return assembler_.NextLine(); }
  std::string TakePending() override { return assembler_.TakePending(); }

 private:
  proto::TextLineAssembler assembler_;
};

}  // namespace mailring::core
