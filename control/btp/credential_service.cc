#include "control/btp/credential_service.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "core/clock.h"
#include "core/log.h"
#include "core/worker.h"
#include "proto/oauth_token.h"
#include "proto/str_cat.h"

namespace mailring::control {

using core::CredentialRequest;

struct CredentialService::Grant {
  std::string key;
  std::shared_ptr<const core::Route> route;  // destination and tenant this grant is for
  CredentialRequest::Kind kind = CredentialRequest::Kind::kClientCredentials;
  proto::Secret client_secret_grant;    // the client's refresh token or code
  proto::Secret issued_refresh_token;   // returned by the token service with a token
  bool in_flight = false;
  int failures = 0;
  int64_t next_attempt_ms = std::numeric_limits<int64_t>::max();  // client credentials only
  int64_t last_used_ms = 0;
  core::Credential current;  // what is published under `key`
  absl::flat_hash_set<int> waiting_workers;
};

namespace {

std::string_view GrantName(const CredentialRequest::Kind kind) {
  switch (kind) {
    case CredentialRequest::Kind::kClientCredentials:
      return "client_credentials";
    case CredentialRequest::Kind::kRefreshToken:
      return "refresh_token";
    case CredentialRequest::Kind::kAuthorizationCode:
      return "authorization_code";
    case CredentialRequest::Kind::kInvalidate:
      return "invalidate";
    case CredentialRequest::Kind::kConnectivity:
      return "client_credentials(connectivity)";
  }
  return "";
}

std::string Describe(const core::Route& route, CredentialRequest::Kind kind) {
  return mailring::StrCat("destination=", route.destination.name,
                          route.tenant.empty() ? "" : " tenant=", route.tenant,
                          " grant=", GrantName(kind));
}

// Grants the service keeps fresh on its own, rather than on a worker's demand.
bool IsRefreshed(CredentialRequest::Kind kind) {
  return kind == CredentialRequest::Kind::kClientCredentials ||
         kind == CredentialRequest::Kind::kConnectivity;
}

}  // namespace

CredentialService::CredentialService(std::shared_ptr<const core::RouteTable> routes,
                                     core::CredentialCache* cache, HttpClient* http,
                                     CredentialServiceOptions options)
    : routes_(std::move(routes)),
      cache_(cache),
      http_(http),
      options_(std::move(options)),
      random_(std::random_device{}()) {
  // Client-credentials tokens are fetched before any session asks, so that the first session
  // of a route does not wait for the token service.
  for (const auto& route : *routes_) {
    if (route->via_connectivity_proxy && options_.connectivity.has_value()) {
      const std::string key = core::CredentialKey(core::kConnectivityCredential, route->tenant);
      if (!grants_.contains(key)) {
        auto grant = std::make_unique<Grant>();
        grant->key = key;
        grant->route = route;
        grant->kind = CredentialRequest::Kind::kConnectivity;
        grant->next_attempt_ms = 0;
        grants_.emplace(key, std::move(grant));
      }
    }
    if (route->destination.authentication !=
            proto::AuthenticationType::kOAuth2ClientCredentials ||
        !route->destination.login_on_behalf) {
      continue;
    }
    auto grant = std::make_unique<Grant>();
    grant->key = core::CredentialKey(route->destination.name, route->tenant);
    grant->route = route;
    grant->next_attempt_ms = 0;
    grants_.emplace(grant->key, std::move(grant));
  }
}

CredentialService::~CredentialService() = default;

void CredentialService::SetWorkers(std::vector<core::Worker*> workers) {
  workers_ = std::move(workers);
}

void CredentialService::Request(CredentialRequest request) {
  {
    absl::MutexLock lock(&mutex_);
    queue_.push_back(std::move(request));
  }
  http_->Wakeup();
}

int64_t CredentialService::Jitter(int64_t delay_ms, double low, double high) {
  std::uniform_real_distribution<double> factor(low, high);
  return static_cast<int64_t>(static_cast<double>(delay_ms) * factor(random_));
}

int64_t CredentialService::Tick(int64_t now_ms) {
  std::vector<CredentialRequest> requests;
  {
    absl::MutexLock lock(&mutex_);
    requests.swap(queue_);
  }
  for (CredentialRequest& request : requests) Handle(std::move(request), now_ms);

  int64_t next_ms = now_ms + 1000;
  for (auto& [key, grant] : grants_) {
    if (!IsRefreshed(grant->kind) || grant->in_flight) continue;
    if (now_ms >= grant->next_attempt_ms) StartFetch(*grant, now_ms);
    if (!grant->in_flight) next_ms = std::min(next_ms, grant->next_attempt_ms);
  }
  if (now_ms >= next_sweep_ms_) {
    Sweep(now_ms);
    next_sweep_ms_ = now_ms + 5000;
  }
  return std::max(next_ms, now_ms);
}

void CredentialService::Handle(CredentialRequest request, int64_t now_ms) {
  if (request.route == nullptr) return;
  auto it = grants_.find(request.key);
  if (request.kind == CredentialRequest::Kind::kInvalidate) {
    if (it == grants_.end()) return;
    Grant& grant = *it->second;
    MAILRING_LOG(kInfo, Describe(*grant.route, grant.kind),
                 ": the mail server rejected the cached access token; dropping it");
    grant.current = core::Credential();
    cache_->Erase(grant.key);
    if (IsRefreshed(grant.kind)) grant.next_attempt_ms = now_ms;
    return;
  }
  if (it == grants_.end()) {
    auto grant = std::make_unique<Grant>();
    grant->key = request.key;
    grant->route = request.route;
    grant->kind = request.kind;
    grant->client_secret_grant = request.grant_secret;
    it = grants_.emplace(request.key, std::move(grant)).first;
    if (grants_.size() > options_.max_exchanges) {
      // Evict the least recently used idle exchange.
      auto oldest = grants_.end();
      for (auto candidate = grants_.begin(); candidate != grants_.end(); ++candidate) {
        const Grant& g = *candidate->second;
        if (IsRefreshed(g.kind) || g.in_flight ||
            !g.waiting_workers.empty() || candidate == it) {
          continue;
        }
        if (oldest == grants_.end() || g.last_used_ms < oldest->second->last_used_ms) {
          oldest = candidate;
        }
      }
      if (oldest != grants_.end()) {
        cache_->Erase(oldest->first);
        grants_.erase(oldest);
        it = grants_.find(request.key);
      }
    }
  }
  Grant& grant = *it->second;
  grant.route = request.route;  // the newest configuration of this destination and tenant
  grant.last_used_ms = now_ms;
  grant.waiting_workers.insert(request.worker);
  if (grant.in_flight) return;  // the answer will wake this worker too
  if (grant.current.UsableAt(now_ms)) {
    // Published meanwhile (the worker raced the publication): wake it to look again.
    Publish(grant, grant.current);
    return;
  }
  StartFetch(grant, now_ms);
}

void CredentialService::StartFetch(Grant& grant, int64_t now_ms) {
  const core::Route& route = *grant.route;
  const proto::Destination& destination = route.destination;
  const bool connectivity = grant.kind == CredentialRequest::Kind::kConnectivity;
  if (!connectivity && !route.destination_service_instance.empty() &&
      destination_service_ != nullptr) {
    // Cluster mode: the Destination service runs the destination's OAuth flow (with the
    // client's X-refresh-token / X-code) and returns the token in authTokens.
    FetchThroughDestinationService(grant);
    return;
  }
  if (connectivity && !options_.connectivity.has_value()) {
    core::Credential failed;
    failed.failure = "no Connectivity service key configured (--connectivity-service-key)";
    failed.failed_at_ms = now_ms;
    grant.next_attempt_ms = std::numeric_limits<int64_t>::max();
    Publish(grant, std::move(failed));
    return;
  }
  // The Connectivity service key's url names the provider's subdomain; a tenant's tokens come
  // from the tenant's (the service-key rule, not the destination's tokenServiceURLType rule).
  absl::StatusOr<std::string> url =
      connectivity
          ? proto::SubscriberUrlOfServiceKey(options_.connectivity->token_url, route.tenant)
          : proto::ResolveTokenServiceUrl(destination.token_service_url,
                                          destination.Property("tokenServiceURLType"),
                                          route.tenant);
  if (!url.ok()) {
    core::Credential failed = grant.current;
    failed.failure = mailring::StrCat("tokenServiceURL: ", url.status().message());
    failed.failed_at_ms = now_ms;
    grant.next_attempt_ms = now_ms + absl::ToInt64Milliseconds(options_.max_backoff);
    Publish(grant, std::move(failed));
    return;
  }
  proto::TokenRequest request;
  request.token_url = *std::move(url);
  if (connectivity) {
    request.client_id = options_.connectivity->client_id;
    request.client_secret = options_.connectivity->client_secret;
  } else if (!destination.Property("tokenServiceUser").empty()) {
    // SAP's tokenServiceUser/tokenServicePassword: the client authenticates with HTTP Basic.
    request.client_id = std::string(destination.Property("tokenServiceUser"));
    request.client_secret = proto::Secret(std::string(destination.Property("tokenServicePassword")));
    request.client_auth_basic = true;
  } else {
    request.client_id = destination.client_id;
    request.client_secret = destination.client_secret;
  }
  if (!connectivity) request.scope = std::string(destination.Property("scope"));
  switch (grant.kind) {
    case CredentialRequest::Kind::kClientCredentials:
    case CredentialRequest::Kind::kConnectivity:
      request.grant = proto::GrantType::kClientCredentials;
      break;
    case CredentialRequest::Kind::kRefreshToken:
      request.grant = proto::GrantType::kRefreshToken;
      request.refresh_token = grant.issued_refresh_token.empty() ? grant.client_secret_grant
                                                                 : grant.issued_refresh_token;
      break;
    case CredentialRequest::Kind::kAuthorizationCode:
      if (!grant.issued_refresh_token.empty()) {
        // The code was used already; renew with the refresh token it brought.
        request.grant = proto::GrantType::kRefreshToken;
        request.refresh_token = grant.issued_refresh_token;
      } else {
        request.grant = proto::GrantType::kAuthorizationCode;
        request.code = grant.client_secret_grant;
        request.redirect_uri = std::string(destination.Property("redirectUri"));
      }
      break;
    case CredentialRequest::Kind::kInvalidate:
      return;
  }
  proto::EncodedTokenRequest encoded = proto::EncodeTokenRequest(request);
  HttpRequest http_request;
  http_request.method = "POST";
  http_request.url = std::move(encoded.url);
  http_request.headers = std::move(encoded.headers);
  http_request.body = std::move(encoded.body);
  http_request.timeout = options_.http_timeout;
  if (!connectivity) {
    // The destination's own limits (SAP: tokenServiceURL.ConnectionTimeoutInSeconds, 0-60, and
    // .SocketReadTimeoutInSeconds, 0-600, 10 each by default). 0 is "no limit of its own": the
    // range's upper end then, so that no token request waits without bound.
    const int connect_s = destination.token_service_connect_timeout_seconds > 0
                              ? destination.token_service_connect_timeout_seconds
                              : proto::kMaxTokenServiceConnectTimeoutSeconds;
    const int read_s = destination.token_service_read_timeout_seconds > 0
                           ? destination.token_service_read_timeout_seconds
                           : proto::kMaxTokenServiceReadTimeoutSeconds;
    http_request.connect_timeout = absl::Seconds(connect_s);
    http_request.idle_timeout = absl::Seconds(read_s);
    http_request.timeout = absl::Seconds(connect_s + read_s);
  }
  http_request.ca_file = options_.ca_file;
  grant.in_flight = true;
  if (!IsRefreshed(grant.kind)) counters_.exchanges.fetch_add(1, std::memory_order_relaxed);
  MAILRING_LOG(kDebug, Describe(route, grant.kind), ": requesting an access token");
  http_->Start(std::move(http_request),
               [this, key = grant.key](absl::StatusOr<HttpResponse> response) {
                 OnFetched(key, std::move(response));
               });
}

void CredentialService::OnFetched(const std::string& key, absl::StatusOr<HttpResponse> response) {
  OnToken(key, response.ok() ? proto::ParseTokenResponse(static_cast<int>(response->status),
                                                         response->body)
                             : absl::StatusOr<proto::TokenResponse>(response.status()));
}

void CredentialService::FetchThroughDestinationService(Grant& grant) {
  const core::Route& route = *grant.route;
  DestinationLookup lookup;
  lookup.instance = route.destination_service_instance;
  lookup.name = route.destination.name;
  lookup.tenant = route.tenant;
  if (grant.kind == CredentialRequest::Kind::kRefreshToken) {
    lookup.refresh_token = grant.client_secret_grant;
  } else if (grant.kind == CredentialRequest::Kind::kAuthorizationCode) {
    lookup.code = grant.client_secret_grant;
    lookup.redirect_uri = std::string(route.destination.Property("redirectUri"));
  }
  grant.in_flight = true;
  if (!IsRefreshed(grant.kind)) counters_.exchanges.fetch_add(1, std::memory_order_relaxed);
  MAILRING_LOG(kDebug, Describe(route, grant.kind),
               ": asking the Destination service for an access token");
  destination_service_->Find(
      std::move(lookup), [this, key = grant.key](absl::StatusOr<FoundDestination> found) {
        if (!found.ok()) {
          OnToken(key, found.status());
          return;
        }
        // The Destination service did the OAuth flow: its authTokens[] carry the result.
        for (const DestinationAuthToken& token : found->auth_tokens) {
          if (!token.error.empty()) {
            OnToken(key, absl::UnauthenticatedError(
                             mailring::StrCat("Destination service: ", token.error)));
            return;
          }
          if (token.value.empty()) continue;
          proto::TokenResponse response;
          response.access_token = token.value;
          response.expires_in_seconds = token.expires_in_seconds;
          response.token_type = token.type;
          OnToken(key, std::move(response));
          return;
        }
        OnToken(key, absl::UnavailableError("Destination service returned no authTokens"));
      });
}

void CredentialService::OnToken(const std::string& key,
                                absl::StatusOr<proto::TokenResponse> token) {
  auto it = grants_.find(key);
  if (it == grants_.end()) return;
  Grant& grant = *it->second;
  grant.in_flight = false;
  // An HTTP answer arrives between ticks: the time is read now, not taken from the last Tick.
  const int64_t now_ms = options_.now_ms();
  const core::Route& route = *grant.route;
  if (token.ok()) {
    const int64_t lifetime_ms =
        token->expires_in_seconds > 0
            ? token->expires_in_seconds * 1000
            : absl::ToInt64Milliseconds(options_.default_lifetime);
    const int64_t margin_ms =
        std::min(absl::ToInt64Milliseconds(options_.expiry_margin), lifetime_ms / 10);
    core::Credential credential;
    credential.access_token = token->access_token;
    credential.expires_at_ms = now_ms + lifetime_ms - margin_ms;
    if (!token->refresh_token.empty()) grant.issued_refresh_token = token->refresh_token;
    grant.failures = 0;
    counters_.tokens_obtained.fetch_add(1, std::memory_order_relaxed);
    if (IsRefreshed(grant.kind)) {
      const double j = options_.jitter_fraction;
      grant.next_attempt_ms =
          now_ms + std::max<int64_t>(
                       500, Jitter(static_cast<int64_t>(lifetime_ms * options_.refresh_at_fraction),
                                   1 - j, 1 + j));
    }
    MAILRING_LOG(kInfo, Describe(route, grant.kind), ": obtained an access token valid for ",
                 lifetime_ms / 1000, "s",
                 IsRefreshed(grant.kind)
                     ? mailring::StrCat(", refreshing in ", (grant.next_attempt_ms - now_ms) / 1000,
                                        "s")
                     : std::string());
    Publish(grant, std::move(credential));
    return;
  }
  ++grant.failures;
  counters_.token_failures.fetch_add(1, std::memory_order_relaxed);
  const int64_t base_ms = absl::ToInt64Milliseconds(options_.min_backoff)
                          << std::min(grant.failures - 1, 20);
  const int64_t backoff_ms =
      Jitter(std::min(base_ms, absl::ToInt64Milliseconds(options_.max_backoff)), 0.5, 1.5);
  core::Credential failed = grant.current;  // the last good token stays until it expires
  failed.failure = std::string(token.status().message());
  failed.failed_at_ms = now_ms;
  const bool still_valid = failed.UsableAt(now_ms);
  if (IsRefreshed(grant.kind)) {
    grant.next_attempt_ms = now_ms + backoff_ms;
    MAILRING_LOG(kWarning, Describe(route, grant.kind), ": token request failed (attempt ",
                 grant.failures, "): ", failed.failure, "; retrying in ", backoff_ms / 1000.0,
                 "s", still_valid
                          ? mailring::StrCat(", serving the cached token for another ",
                                             (failed.expires_at_ms - now_ms) / 1000, "s")
                          : std::string(", no valid token meanwhile"));
  } else {
    MAILRING_LOG(kWarning, Describe(route, grant.kind), ": token exchange failed: ",
                 failed.failure);
  }
  Publish(grant, std::move(failed));
}

void CredentialService::Publish(Grant& grant, core::Credential credential) {
  grant.current = credential;
  cache_->Publish(grant.key, std::move(credential));
  for (const int worker : grant.waiting_workers) {
    if (worker >= 0 && static_cast<size_t>(worker) < workers_.size()) {
      workers_[worker]->NotifyCredentials();
    }
  }
  grant.waiting_workers.clear();
}

void CredentialService::Sweep(int64_t now_ms) {
  const int64_t failure_ttl_ms = absl::ToInt64Milliseconds(options_.failure_ttl);
  constexpr int64_t kKeepRefreshTokenMs = 24LL * 3600 * 1000;
  for (auto it = grants_.begin(); it != grants_.end();) {
    Grant& grant = *it->second;
    const bool idle = !IsRefreshed(grant.kind) &&
                      !grant.in_flight && grant.waiting_workers.empty() &&
                      !grant.current.UsableAt(now_ms);
    const bool failure_old =
        grant.current.failure.empty() || now_ms - grant.current.failed_at_ms > failure_ttl_ms;
    if (idle && failure_old) {
      cache_->Erase(grant.key);
      if (grant.issued_refresh_token.empty() || now_ms - grant.last_used_ms > kKeepRefreshTokenMs) {
        grants_.erase(it++);
        continue;
      }
      grant.current = core::Credential();
    }
    ++it;
  }
}

}  // namespace mailring::control
