// Encoders for the commands mailring sends to log in upstream on a client's behalf.
//
// Contract: pure functions; the result contains credentials and must never be logged.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mailring::proto {

// "<tag> AUTHENTICATE PLAIN <base64(\0user\0password)>\r\n" (RFC 4616 + RFC 4959 SASL-IR).
std::string EncodeAuthenticatePlain(std::string_view tag, std::string_view user,
                                    std::string_view password);

// The RFC 9051 "astring" encoding of `value` for a LOGIN argument: an atom when every byte is an
// ATOM-CHAR (and the value is non-empty), else a quoted string when it has no CR, LF, NUL or
// 8-bit byte, else a literal. A literal is "{N}\r\n" + octets (synchronizing) or "{N+}\r\n" +
// octets when `non_synchronizing` (LITERAL+ / LITERAL- with N <= 4096).
enum class AstringForm { kAtom, kQuoted, kLiteral };
AstringForm ChooseAstringForm(std::string_view value);

// A LOGIN command split where the sender must wait for a "+" continuation from the server
// before sending the next segment (one segment when no synchronizing literal is needed).
// Every segment but the last ends with "{N}\r\n"; the last ends with "\r\n".
std::vector<std::string> EncodeLogin(std::string_view tag, std::string_view user,
                                     std::string_view password, bool non_synchronizing_literals);

}  // namespace mailring::proto
