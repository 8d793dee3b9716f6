// CredentialService: the control thread's token machinery for OAuth2 destinations. It obtains
// access tokens from token services, publishes them into the CredentialCache the workers read,
// refreshes them ahead of expiry and answers the workers' requests (core::CredentialBroker).
//
//  - OAuth2ClientCredentials: one token per (destination, tenant), fetched at start-up and
//    refreshed at about 80 % of its lifetime (with jitter, so that many destinations do not
//    refresh in lockstep). A failed refresh is retried with exponential backoff and jitter while
//    the last good token keeps being served until it really expires.
//  - OAuth2RefreshToken / OAuth2AuthorizationCode: a worker asks for an exchange of the client's
//    refresh token or code; the answer is cached under a hash of that secret, so a client that
//    reconnects with the same refresh token costs no new exchange while the token is valid. An
//    authorization code is exchanged once: if the token service returned a refresh token with
//    it, an expired access token is renewed with that refresh token, not with the used code.
//
// Threading: Request() is called by workers (any thread); everything else runs on the control
// thread. Every answer is published into the cache first, then the requesting workers are woken
// (Worker::NotifyCredentials).
//
// Secrets: tokens, client secrets, refresh tokens and codes never reach a log line. Log lines
// name the destination, tenant and grant, and quote the token service's OAuth error only.
#pragma once

#include <cstdint>
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "control/btp/destination_service.h"
#include "control/http_client.h"
#include "control/btp/service_key.h"
#include "core/credential_broker.h"
#include "core/clock.h"
#include "core/credential_cache.h"
#include "core/route.h"
#include "proto/oauth_token.h"

namespace mailring::core {
class Worker;
}

namespace mailring::control {

struct CredentialServiceOptions {
  double refresh_at_fraction = 0.8;  // of the token's lifetime
  double jitter_fraction = 0.1;      // ± on refresh delays, 0.5-1.5× on backoff delays
  absl::Duration min_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Seconds(60);
  absl::Duration http_timeout = absl::Seconds(10);
  // Lifetime assumed when a token response has no expires_in.
  absl::Duration default_lifetime = absl::Hours(1);
  // Tokens count as expired this much before the token service says (at most 10 % of the
  // lifetime), so that a session does not start a login with a token about to lapse.
  absl::Duration expiry_margin = absl::Seconds(30);
  // How long a failed exchange stays visible in the cache.
  absl::Duration failure_ttl = absl::Seconds(30);
  // Exchanged tokens kept at most (the oldest go first).
  size_t max_exchanges = 10'000;
  std::string ca_file;  // extra CA bundle for https token services
  // The Connectivity service's key, for the JWTs OnPremise sessions present to the
  // Connectivity Proxy (one per tenant); absent when no route is OnPremise.
  std::optional<ServiceKey> connectivity;
  // The clock of token expiry and refresh (milliseconds, monotonic, as core::Credential's
  // expires_at_ms is read by the workers); tests drive their own. Tick() is given the same time.
  std::function<int64_t()> now_ms = core::MonotonicMs;
};

// Read by the admin thread (metrics) as relaxed snapshots.
struct CredentialCounters {
  std::atomic<uint64_t> tokens_obtained{0};    // successful token requests (all grants)
  std::atomic<uint64_t> token_failures{0};     // failed token requests (all grants)
  std::atomic<uint64_t> exchanges{0};          // refresh-token / code exchanges started
};

class CredentialService : public core::CredentialBroker {
 public:
  CredentialService(std::shared_ptr<const core::RouteTable> routes, core::CredentialCache* cache,
                    HttpClient* http, CredentialServiceOptions options);
  ~CredentialService() override;

  // Before the control loop starts: the workers to wake when their answers are published.
  void SetWorkers(std::vector<core::Worker*> workers);
  // Cluster mode: routes from the Destination service (Route::destination_service_instance)
  // get their tokens through it (authTokens), as SAP's transparent proxy does.
  void SetDestinationService(DestinationServiceClient* client) { destination_service_ = client; }

  // core::CredentialBroker; thread-safe.
  void Request(core::CredentialRequest request) override;

  const CredentialCounters& counters() const { return counters_; }

  // --- control thread ---
  // Takes queued requests, starts due fetches, expires old exchanges. Returns the monotonic
  // millisecond time at which it wants to run again.
  int64_t Tick(int64_t now_ms);

 private:
  struct Grant;
  void StartFetch(Grant& grant, int64_t now_ms);
  void OnFetched(const std::string& key, absl::StatusOr<HttpResponse> response);
  void FetchThroughDestinationService(Grant& grant);
  void OnToken(const std::string& key, absl::StatusOr<proto::TokenResponse> token);
  void Publish(Grant& grant, core::Credential credential);
  void Handle(core::CredentialRequest request, int64_t now_ms);
  void Sweep(int64_t now_ms);
  int64_t Jitter(int64_t delay_ms, double low, double high);

  const std::shared_ptr<const core::RouteTable> routes_;
  core::CredentialCache* const cache_;
  HttpClient* const http_;
  DestinationServiceClient* destination_service_ = nullptr;
  const CredentialServiceOptions options_;
  std::vector<core::Worker*> workers_;

  absl::Mutex mutex_;
  std::vector<core::CredentialRequest> queue_ ABSL_GUARDED_BY(mutex_);

  // Control-thread state, one Grant per cache key.
  absl::flat_hash_map<std::string, std::unique_ptr<Grant>> grants_;
  int64_t next_sweep_ms_ = 0;
  std::mt19937_64 random_;
  CredentialCounters counters_;
};

}  // namespace mailring::control
