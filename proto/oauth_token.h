// OAuth 2.0 token endpoint requests and responses (RFC 6749 sections 4.1.3, 4.4, 6), as the
// SAP Destination service's OAuth2* destination types use them.
//
// Contract: pure functions, no I/O. Requests and responses carry client secrets, refresh
// tokens, codes and access tokens: EncodedTokenRequest and TokenResponse must never be logged.
// Error messages (Status) are safe to log: they carry the HTTP status and the OAuth "error" /
// "error_description" fields, never a secret or the response body verbatim.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/secret.h"

namespace mailring::proto {

enum class GrantType { kClientCredentials, kRefreshToken, kAuthorizationCode };
std::string_view GrantTypeName(GrantType grant);  // "client_credentials", ...

struct TokenRequest {
  GrantType grant = GrantType::kClientCredentials;
  std::string token_url;  // already resolved for the tenant (ResolveTokenServiceUrl)
  std::string client_id;
  Secret client_secret;
  // true: client credentials as HTTP Basic (RFC 6749 2.3.1, form-urlencoded then base64);
  // false: client_id and client_secret in the form body.
  bool client_auth_basic = false;
  std::string scope;        // optional
  Secret refresh_token;     // kRefreshToken
  Secret code;              // kAuthorizationCode
  std::string redirect_uri;  // kAuthorizationCode, optional
};

struct EncodedTokenRequest {
  std::string url;
  std::vector<std::string> headers;  // "Content-Type: application/x-www-form-urlencoded", ...
  std::string body;                  // form-urlencoded
};

EncodedTokenRequest EncodeTokenRequest(const TokenRequest& request);


struct TokenResponse {
  Secret access_token;
  int64_t expires_in_seconds = 0;  // 0 when the server did not say
  std::string token_type;          // "bearer" usually
  Secret refresh_token;            // when the server rotated it
};

// `http_status` 200 with a JSON object holding a string "access_token" is success;
// "expires_in" may be a number or a numeric string. Anything else is an error:
// Unauthenticated for 400/401 with an OAuth error ("invalid_grant: code expired"),
// Unavailable for 5xx and 429, InvalidArgument for a 200 whose body is not the expected JSON.
absl::StatusOr<TokenResponse> ParseTokenResponse(int http_status, std::string_view body);

// A destination's tokenServiceURL for a tenant (SAP's tokenServiceURLType). "Dedicated" (or empty,
// or no tenant): the URL as is. "Common" with a tenant subdomain: the "{tenant}" placeholder is
// replaced by the subdomain; without a placeholder the subdomain is prepended to the host as a
// new first label ("https://authentication.eu10.hana.ondemand.com/oauth/token", "t1" →
// "https://t1.authentication.eu10.hana.ondemand.com/oauth/token"). InvalidArgument for a URL
// that is not http(s), or Common on an IP address.
absl::StatusOr<std::string> ResolveTokenServiceUrl(std::string_view url,
                                                   std::string_view url_type,
                                                   std::string_view tenant);

// A service key's `url` (Destination or Connectivity service) for a subscriber tenant. Its first
// host label is the provider's subdomain, which the tenant's replaces
// ("https://provider.authentication.eu10.hana.ondemand.com", "t1" →
// "https://t1.authentication.eu10.hana.ondemand.com"), as SAP's security library does. No
// tenant: the URL as is.
absl::StatusOr<std::string> SubscriberUrlOfServiceKey(std::string_view url,
                                                      std::string_view tenant);

}  // namespace mailring::proto
