// ServiceKey: the credentials of an SAP BTP service instance (Connectivity, Destination), as
// mounted from a Kubernetes Secret or written to a file: a JSON object with `clientid`,
// `clientsecret`, `url` (the XSUAA base URL, whose /oauth/token issues tokens), optionally
// `token_service_url` (preferred over `url` for tokens) and `uri` (the service's API).
//
// Contract: the secret is a proto::Secret; errors name the file and the field, never a value.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "proto/secret.h"

namespace mailring::control {

struct ServiceKey {
  std::string client_id;
  proto::Secret client_secret;
  std::string token_url;  // <token_service_url or url>/oauth/token
  std::string uri;        // the service's API base, when the key has one
};

absl::StatusOr<ServiceKey> ParseServiceKey(std::string_view json);
absl::StatusOr<ServiceKey> LoadServiceKey(std::string_view path);

}  // namespace mailring::control
