#include "proto/text_line_assembler.h"

#include "proto/str_cat.h"

namespace mailring::proto {

absl::Status TextLineAssembler::Fail(size_t keep_until) {
  buffer_.resize(keep_until);  // the offending line is dropped, earlier lines stay
  error_ = absl::ResourceExhaustedError(
      mailring::StrCat("line longer than ", max_line_bytes_, " bytes"));
  return error_;
}

absl::Status TextLineAssembler::Append(std::string_view bytes) {
  if (!error_.ok()) return error_;
  if (consumed_ > 0) {  // lines handed out are no longer referenced (see the contract)
    buffer_.erase(0, consumed_);
    checked_ -= consumed_;
    consumed_ = 0;
  }
  buffer_.append(bytes);
  while (true) {
    const size_t newline = buffer_.find('\n', checked_);
    if (newline == std::string::npos) break;
    size_t length = newline - checked_;
    if (length > 0 && buffer_[newline - 1] == '\r') --length;
    if (length > max_line_bytes_) return Fail(checked_);
    checked_ = newline + 1;
  }
  // An unfinished line may still be within its limit (+1: its CR may already be here).
  if (buffer_.size() - checked_ > max_line_bytes_ + 1) return Fail(checked_);
  return absl::OkStatus();
}

std::optional<std::string_view> TextLineAssembler::NextLine() {
  if (consumed_ >= checked_) return std::nullopt;
  const size_t newline = buffer_.find('\n', consumed_);  // < checked_: the range is complete
  size_t end = newline;
  if (end > consumed_ && buffer_[end - 1] == '\r') --end;
  const std::string_view line(buffer_.data() + consumed_, end - consumed_);
  consumed_ = newline + 1;
  return line;
}

std::string TextLineAssembler::TakePending() {
  std::string pending = buffer_.substr(consumed_);
  buffer_.clear();
  consumed_ = 0;
  checked_ = 0;
  return pending;
}

}  // namespace mailring::proto
