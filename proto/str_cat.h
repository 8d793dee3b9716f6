// StrCat / StrAppend that also take std::string_view.
//
// Debian 12's Abseil is built with ABSL_OPTION_USE_STD_STRING_VIEW=0: absl::string_view is a
// type of its own and absl::StrCat does not accept std::string_view, which our interfaces use.
// These forward to Abseil after converting; with an Abseil where both types are one, the
// conversion is a no-op.
#pragma once

#include <string>
#include <string_view>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace mailring {

template <typename T>
decltype(auto) AsAlphaNumArg(const T& value) {
  if constexpr (std::is_same_v<T, std::string_view>) {
    return absl::string_view(value.data(), value.size());
  } else {
    return (value);
  }
}

template <typename... Args>
std::string StrCat(const Args&... args) {
  return absl::StrCat(AsAlphaNumArg(args)...);
}

template <typename... Args>
void StrAppend(std::string* out, const Args&... args) {
  absl::StrAppend(out, AsAlphaNumArg(args)...);
}

}  // namespace mailring
