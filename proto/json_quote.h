// JsonQuote: a string as a JSON string literal (RFC 8259: quotes, backslash and control
// characters escaped), for the few JSON documents mailring writes by hand (Kubernetes objects,
// status bodies). Bytes >= 0x80 pass through: the input is expected to be UTF-8.
#pragma once

#include <string>
#include <string_view>

namespace mailring::proto {

std::string JsonQuote(std::string_view value);

}  // namespace mailring::proto
