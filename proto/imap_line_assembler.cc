// ImapLineAssembler: one forward scan over the buffered stream.
//
// Every byte is examined once while scanning, plus once more when the end of a line part is
// checked for a literal announcement (that look-back never crosses the start of the part, so it
// is bounded by the part's length). Complete lines are queued as offsets into buffer_ and handed
// out by NextLine(); buffer_ is compacted in Append() once the returned prefix is at least half of
// it, so the copying is amortised O(1) per byte and memory stays proportional to what is pending.
//
// Counting rules (they make the result independent of how the stream is split into Append calls):
//  - line text = every byte of the line that is not literal octets, including the CRLF that ends
//    a literal announcement, excluding the CRLF (or bare LF) that ends the line;
//  - literal octets = the sum over the line's literals, bounded by max_literal_bytes.
// A line is rejected as soon as its text provably exceeds max_line_bytes (a trailing CR may still
// be the start of the line end, so it is not counted until the next byte arrives).
//
// Lines completed before an error stay available from NextLine(); nothing after the failing line
// is ever returned, and Append() keeps returning the first error.
#include "proto/imap_line_assembler.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace mailring::proto {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

ImapLineAssembler::ImapLineAssembler(size_t max_line_bytes, size_t max_literal_bytes)
    : max_line_bytes_(max_line_bytes), max_literal_bytes_(max_literal_bytes) {}

absl::Status ImapLineAssembler::Append(std::string_view bytes) {
  if (failed_) return status_;
  if (bytes.empty()) return absl::OkStatus();
  Compact();
  buffer_.append(bytes.data(), bytes.size());
  absl::Status status = Scan();
  if (!status.ok()) {
    failed_ = true;
    status_ = status;
    awaiting_continuation_ = false;
  }
  return status;
}

void ImapLineAssembler::Compact() {
  if (consumed_ == 0) return;
  // Only when the dead prefix is at least as large as what survives: the memmove is then paid for
  // by the bytes that were consumed, which keeps the total work linear.
  if (consumed_ * 2 < buffer_.size()) return;
  const size_t shift = consumed_;
  buffer_.erase(0, shift);
  consumed_ = 0;
  line_start_ -= shift;
  part_start_ -= shift;
  scan_pos_ -= shift;
  for (size_t i = ready_head_; i < ready_.size(); ++i) {
    ready_[i].begin -= shift;
    ready_[i].end -= shift;
    ready_[i].next -= shift;
  }
}

absl::Status ImapLineAssembler::Scan() {
  const size_t size = buffer_.size();
  while (scan_pos_ < size) {
    awaiting_continuation_ = false;  // a byte arrived after any announcement we saw
    if (literal_left_ > 0) {
      const size_t take = std::min(literal_left_, size - scan_pos_);
      scan_pos_ += take;
      literal_left_ -= take;
      if (literal_left_ == 0) part_start_ = scan_pos_;
      continue;
    }
    const char* base = buffer_.data();
    const void* lf = std::memchr(base + scan_pos_, '\n', size - scan_pos_);
    if (lf == nullptr) {
      scan_pos_ = size;
      size_t text = line_text_bytes_ + (size - part_start_);
      if (buffer_[size - 1] == '\r') --text;  // may become the line end
      if (text > max_line_bytes_) return LineTooLong();
      return absl::OkStatus();
    }
    const size_t lf_pos = static_cast<const char*>(lf) - base;
    size_t text_end = lf_pos;
    if (text_end > part_start_ && buffer_[text_end - 1] == '\r') --text_end;
    // The same test the no-LF path above applies to a prefix, so it runs before anything else
    // here: a split stream must fail with the same error as an unsplit one.
    if (line_text_bytes_ + (text_end - part_start_) > max_line_bytes_) return LineTooLong();

    size_t literal_size = 0;
    bool synchronizing = false;
    absl::StatusOr<bool> announced = ParseAnnouncement(text_end, &literal_size, &synchronizing);
    if (!announced.ok()) return announced.status();
    if (*announced) {
      line_text_bytes_ += lf_pos + 1 - part_start_;
      if (line_text_bytes_ > max_line_bytes_) return LineTooLong();
      if (literal_size > max_literal_bytes_ - line_literal_bytes_) {
        return absl::ResourceExhaustedError(
            absl::StrCat("IMAP literal of ", literal_size, " octets exceeds the limit of ",
                         max_literal_bytes_, " literal octets per line"));
      }
      line_literal_bytes_ += literal_size;
      literal_left_ = literal_size;
      scan_pos_ = lf_pos + 1;
      part_start_ = scan_pos_;
      // Set after the reset at the loop top: it stays true only if no further byte is buffered.
      if (scan_pos_ == size) awaiting_continuation_ = synchronizing;
      continue;
    }

    ready_.push_back(LineRange{line_start_, text_end, lf_pos + 1});
    scan_pos_ = lf_pos + 1;
    line_start_ = scan_pos_;
    part_start_ = scan_pos_;
    line_text_bytes_ = 0;
    line_literal_bytes_ = 0;
  }
  return absl::OkStatus();
}

// Looks at the text part [part_start_, text_end) for a literal announcement at its very end:
// "{N}", "{N+}" (LITERAL+ / LITERAL-) or "~{N}" (RFC 3516 literal8; the '~' needs no special
// handling because only the braces matter). Returns false for ordinary text, including server
// prose that happens to end in braces ("{world}"). A brace group whose body starts with a digit
// but is not all digits (optionally followed by '+'), or is exactly "+", is a botched
// announcement: treating it as text would desynchronise the stream, so it is InvalidArgument.
absl::StatusOr<bool> ImapLineAssembler::ParseAnnouncement(size_t text_end, size_t* literal_size,
                                                          bool* synchronizing) const {
  if (text_end == part_start_ || buffer_[text_end - 1] != '}') return false;
  const size_t close = text_end - 1;
  size_t open = close;
  while (open > part_start_) {
    const char c = buffer_[open - 1];
    if (c == '{' || c == '}' || c == ' ') break;
    --open;
  }
  if (open == part_start_ || buffer_[open - 1] != '{') return false;
  const std::string_view body(buffer_.data() + open, close - open);
  if (body.empty()) return false;

  std::string_view digits = body;
  const bool plus = digits.back() == '+';
  if (plus) digits.remove_suffix(1);
  const bool all_digits = !digits.empty() && std::all_of(digits.begin(), digits.end(), IsDigit);
  if (!all_digits) {
    if (IsDigit(body.front()) || body == "+") {
      return absl::InvalidArgumentError("malformed IMAP literal announcement at end of line");
    }
    return false;
  }
  // Anything that does not fit the limit is rejected as too large; cap the accumulation so a
  // run of digits cannot overflow.
  size_t value = 0;
  for (char c : digits) {
    value = value * 10 + static_cast<size_t>(c - '0');
    if (value > max_literal_bytes_) {
      return absl::ResourceExhaustedError(
          absl::StrCat("IMAP literal announcement exceeds the limit of ", max_literal_bytes_,
                       " literal octets per line"));
    }
  }
  *literal_size = value;
  *synchronizing = !plus;
  return true;
}

absl::Status ImapLineAssembler::LineTooLong() const {
  return absl::ResourceExhaustedError(
      absl::StrCat("IMAP line longer than ", max_line_bytes_, " bytes (literals excluded)"));
}

std::optional<std::string_view> ImapLineAssembler::NextLine() {
  if (ready_head_ == ready_.size()) return std::nullopt;
  const LineRange line = ready_[ready_head_++];
  if (ready_head_ == ready_.size()) {
    ready_.clear();
    ready_head_ = 0;
  }
  consumed_ = line.next;
  return std::string_view(buffer_.data() + line.begin, line.end - line.begin);
}

bool ImapLineAssembler::AwaitingLiteralContinuation() const {
  return !failed_ && awaiting_continuation_;
}

std::string_view ImapLineAssembler::Pending() const {
  return std::string_view(buffer_).substr(consumed_);
}

std::string ImapLineAssembler::TakePending() {
  std::string pending = buffer_.substr(consumed_);
  buffer_.clear();
  consumed_ = 0;
  scan_pos_ = 0;
  line_start_ = 0;
  part_start_ = 0;
  line_text_bytes_ = 0;
  line_literal_bytes_ = 0;
  literal_left_ = 0;
  awaiting_continuation_ = false;
  ready_.clear();
  ready_head_ = 0;
  return pending;
}

}  // namespace mailring::proto
