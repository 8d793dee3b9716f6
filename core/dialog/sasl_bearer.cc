#include "core/dialog/sasl_bearer.h"

#include "proto/str_cat.h"

namespace mailring::core {

std::optional<BearerResponse> ChooseBearer(bool offers_xoauth2, bool offers_oauthbearer,
                                           std::string_view user, const proto::Secret& token,
                                           std::string_view host, uint16_t port) {
  if (offers_xoauth2) {
    return BearerResponse{"XOAUTH2", proto::Base64Encode(proto::EncodeXoauth2(user, token.Reveal()))};
  }
  if (offers_oauthbearer) {
    return BearerResponse{"OAUTHBEARER", proto::Base64Encode(proto::EncodeOauthBearer(
                                             user, token.Reveal(), host, port))};
  }
  return std::nullopt;
}

absl::StatusOr<proto::BearerResponse> DecodeClientXoauth2(std::string_view base64) {
  absl::StatusOr<std::string> raw = proto::Base64DecodeStrict(base64);
  if (!raw.ok()) return absl::InvalidArgumentError("the XOAUTH2 response is not valid base64");
  absl::StatusOr<proto::BearerResponse> bearer = proto::DecodeXoauth2(*raw);
  if (!bearer.ok()) {
    return absl::InvalidArgumentError(
        mailring::StrCat("malformed XOAUTH2 response: ", bearer.status().message()));
  }
  return bearer;
}

}  // namespace mailring::core
