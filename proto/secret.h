// Secret: a string that must never reach a log line, an error message or a metric.
//
// It has no operator<< and no implicit conversion; AbslStringify prints "<redacted>", so a
// Secret passed to absl::StrCat/StrFormat by mistake leaks nothing. Read it with Reveal() only
// where the wire needs it.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "absl/base/config.h"
#include "absl/strings/str_cat.h"

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

#if defined(ABSL_LTS_RELEASE_VERSION) && ABSL_LTS_RELEASE_VERSION < 20230125
  // Abseil before 20230125 (Debian 12 ships 20220623) ignores AbslStringify in StrCat; this
  // conversion gives the same "<redacted>" there. Newer Abseil uses AbslStringify and would find
  // this conversion ambiguous, hence the version guard.
  operator absl::AlphaNum() const { return absl::AlphaNum("<redacted>"); }  // NOLINT
#endif

 private:
  std::string value_;
};

}  // namespace mailring::proto
