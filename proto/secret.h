// Secret: a string that must never reach a log line, an error message or a metric.
//
// It has no operator<< and no implicit conversion; AbslStringify prints "<redacted>", so a
// Secret passed to absl::StrCat/StrFormat by mistake leaks nothing. Read it with Reveal() only
// where the wire needs it.
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace mailring::proto {

class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}

  std::string_view Reveal() const { return value_; }
  bool empty() const { return value_.empty(); }
  size_t size() const { return value_.size(); }

  template <typename Sink>
  friend void AbslStringify(Sink& sink, const Secret&) {
    sink.Append("<redacted>");
  }

 private:
  std::string value_;
};

}  // namespace mailring::proto
