// Percent-encoding (RFC 3986 2.1) in the two forms mailring speaks: a URI component (query
// parameters of Kubernetes requests: everything but the unreserved characters is escaped) and
// application/x-www-form-urlencoded (OAuth token requests and their HTTP Basic credentials,
// RFC 6749 2.3.1: a space is "+"). One encoder and one decoder for mailring and its test fakes.
//
// Contract: pure. Decoding fails (nullopt) on a malformed escape and never guesses.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mailring::proto {

enum class PercentStyle { kUriComponent, kForm };

std::string PercentEncode(std::string_view value, PercentStyle style);

// %XX escapes (and, for kForm, "+" as a space) decoded.
std::optional<std::string> PercentDecode(std::string_view value, PercentStyle style);

}  // namespace mailring::proto
