// The bearer-token SASL pieces every protocol's dialogs share (IMAP, SMTP and POP3 differ only
// in the command around them):
//  - ChooseBearer(): the client response mailring sends upstream, XOAUTH2 when the server offers
//    it, else OAUTHBEARER (RFC 7628), else nothing;
//  - DecodeClientXoauth2(): the XOAUTH2 response a refresh-token / authorization-code client
//    sends mailring, with a reason fit for the client when it is malformed.
//
// Contract: pure. Results carry bearer secrets: to the socket or the token exchange, never a log.
// Reasons never quote the input.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "proto/sasl.h"
#include "proto/secret.h"

namespace mailring::core {

struct BearerResponse {
  std::string mechanism;  // "XOAUTH2" or "OAUTHBEARER"
  std::string base64;     // the client response, base64-encoded
};

// nullopt when the server offers neither mechanism.
std::optional<BearerResponse> ChooseBearer(bool offers_xoauth2, bool offers_oauthbearer,
                                           std::string_view user, const proto::Secret& token,
                                           std::string_view host, uint16_t port);

absl::StatusOr<proto::BearerResponse> DecodeClientXoauth2(std::string_view base64);

}  // namespace mailring::core
