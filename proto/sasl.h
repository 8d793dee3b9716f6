// SASL messages for OAuth 2.0 bearer tokens over IMAP, and strict base64.
//
//   XOAUTH2 (Google/Microsoft):  "user=" user "\x01auth=Bearer " token "\x01\x01"
//   OAUTHBEARER (RFC 7628):      "n,a=" saslname "," "\x01host=" host "\x01port=" port
//                                "\x01auth=Bearer " token "\x01\x01"
// Both travel base64-encoded in "AUTHENTICATE <mech> <base64>" (SASL-IR, RFC 4959) or on the
// line after a "+ " continuation. On failure an XOAUTH2/OAUTHBEARER server sends an error
// challenge "+ <base64 JSON>" which the client must answer with an empty line before the server
// sends its tagged NO (RFC 7628 section 3.2.3).
//
// Contract: pure functions. Encoded and decoded messages carry bearer tokens: never log them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "proto/secret.h"

namespace mailring::proto {

std::string Base64Encode(std::string_view bytes);

// RFC 4648 base64 with the standard alphabet. Padding may be omitted (some clients do), but
// when present it must be correct; whitespace, other characters, and non-zero trailing bits
// are errors (InvalidArgument whose message never quotes the input).
absl::StatusOr<std::string> Base64DecodeStrict(std::string_view text);

// Raw (not base64) client responses.
std::string EncodeXoauth2(std::string_view user, std::string_view access_token);
std::string EncodeOauthBearer(std::string_view user, std::string_view access_token,
                              std::string_view host, uint16_t port);

struct BearerResponse {
  std::string user;     // may be empty for OAUTHBEARER without "a="
  Secret bearer_token;  // the value after "Bearer "
};

// Decodes a raw XOAUTH2 client response. Errors (InvalidArgument) name what is wrong
// ("no auth=Bearer field", "missing final \x01\x01", ...) and never quote the token.
absl::StatusOr<BearerResponse> DecodeXoauth2(std::string_view raw);

// Decodes a raw OAUTHBEARER (RFC 7628) client response the same way.
absl::StatusOr<BearerResponse> DecodeOauthBearer(std::string_view raw);

}  // namespace mailring::proto
