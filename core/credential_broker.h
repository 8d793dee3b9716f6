// CredentialBroker: how a worker asks the control thread for credentials it cannot find in the
// CredentialCache. Implemented by control/ (ControlThread); core/ only sees this interface.
//
// The control thread answers by publishing into the CredentialCache under `key` (a token or a
// failure) and then waking the requesting worker (Worker::NotifyCredentials), whose waiting
// sessions look again. A worker never blocks on a request.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "core/route.h"
#include "proto/secret.h"

namespace mailring::core {

// Cache key destination part of the Connectivity service's tokens (per tenant); "@" cannot
// appear in a destination name.
inline constexpr std::string_view kConnectivityCredential = "@connectivity";

struct CredentialRequest {
  enum class Kind : uint8_t {
    kClientCredentials,  // the destination's own token (OAuth2ClientCredentials)
    kRefreshToken,       // exchange `grant_secret` (a refresh token) for an access token
    kAuthorizationCode,  // exchange `grant_secret` (an authorization code)
    kInvalidate,         // the server rejected the token published under `key`: drop it
    kConnectivity,       // a Connectivity service JWT for the route's tenant (OnPremise)
  };
  Kind kind = Kind::kClientCredentials;
  // Which route: destination and tenant. Held by pointer, not by index, because route tables
  // change while requests are in flight; the route lives as long as someone holds it.
  std::shared_ptr<const Route> route;
  std::string key;         // where the answer is published (CredentialKey)
  proto::Secret grant_secret;
  int worker = 0;          // who to wake
};

class CredentialBroker {
 public:
  virtual ~CredentialBroker() = default;
  // Thread-safe and non-blocking.
  virtual void Request(CredentialRequest request) = 0;
};

}  // namespace mailring::core
