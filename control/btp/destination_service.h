// DestinationServiceClient: SAP BTP Destination service, "find destination" API.
//
//  - Service keys per instance (from files, as mounted from Secrets: clientid, clientsecret,
//    url, uri; control/btp/service_key.h).
//  - An instance token by client_credentials at <url>/oauth/token; per tenant, the tenant
//    subdomain becomes the first DNS label of that host. Tokens are cached until shortly before
//    they expire.
//  - GET <uri>/destination-configuration/v1/destinations/<name> with
//    "Authorization: Bearer <instance token>", and for OAuth2RefreshToken /
//    OAuth2AuthorizationCode destinations "X-refresh-token" or "X-code" (+ "X-redirect-uri")
//    carrying the client's secret. The response's destinationConfiguration (all strings) is
//    parsed with proto::ParseDestination; authTokens[] gives type, value, expires_in (a string)
//    and error.
//  - Destinations are cached about two minutes (lookups without a user secret); while the
//    service is unreachable the last good entry is served. Concurrent lookups of the same key
//    share one request.
//
// Contract: control thread only; callbacks run inside HttpClient::Poll(). Secrets (tokens, the
// user's refresh token or code, client secrets) never reach a log line or an error text.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "control/http_client.h"
#include "core/clock.h"
#include "control/btp/service_key.h"
#include "proto/destination.h"
#include "proto/secret.h"

namespace mailring::control {

struct DestinationAuthToken {
  std::string type;         // "Bearer"
  proto::Secret value;
  int64_t expires_in_seconds = 0;
  std::string error;        // set when the service could not obtain the token
};

struct FoundDestination {
  proto::Destination destination;
  std::vector<DestinationAuthToken> auth_tokens;
};

struct DestinationLookup {
  std::string instance;  // service instance name (a key of the client's service keys)
  std::string name;      // destination name
  std::string tenant;    // subdomain, or empty for the provider
  proto::Secret refresh_token;  // X-refresh-token (OAuth2RefreshToken), optional
  proto::Secret code;           // X-code (OAuth2AuthorizationCode), optional
  std::string redirect_uri;     // X-redirect-uri, optional
};

struct DestinationServiceOptions {
  absl::Duration destination_ttl = absl::Minutes(2);
  absl::Duration token_margin = absl::Seconds(30);
  absl::Duration http_timeout = absl::Seconds(10);
  std::string ca_file;
  // The clock of freshness and expiry (milliseconds, monotonic); tests drive their own.
  std::function<int64_t()> now_ms = core::MonotonicMs;
};

class DestinationServiceClient {
 public:
  using Callback = std::function<void(absl::StatusOr<FoundDestination>)>;

  DestinationServiceClient(HttpClient* http, std::map<std::string, ServiceKey> instances,
                           DestinationServiceOptions options = {});
  ~DestinationServiceClient();

  // NotFound when the service says 404 (SAP's ConfigurationError-ReferencedDestination-NotFound),
  // FailedPrecondition for an unknown instance, Unavailable when the service cannot be reached
  // and nothing is cached.
  void Find(DestinationLookup lookup, Callback done);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mailring::control
