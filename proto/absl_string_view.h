// Bridges std::string_view (our headers) and absl::string_view (Abseil's API).
//
// Debian 12's Abseil is built with ABSL_OPTION_USE_STD_STRING_VIEW=0, so absl::string_view is a
// distinct type there and neither converts implicitly to the other. On an Abseil built with the
// option on, both are the same type and these functions are identities.
#pragma once

#include <string_view>

#include "absl/strings/string_view.h"

namespace mailring::proto {

inline absl::string_view AsAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}
inline std::string_view AsStd(absl::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace mailring::proto
