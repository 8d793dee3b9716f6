// CredentialService in cluster mode: tokens of routes that came from the Destination service are
// obtained through it (authTokens), with the client's refresh token as X-refresh-token. In
// standalone mode, against the fake OAuth server on the injected clock: the refresh, expiry and
// exchange logic that tests/integration/oauth_test.cc checks end to end on real time.
#include "control/btp/credential_service.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "control/btp/destination_service.h"
#include "control/btp/service_key.h"
#include "control/http_client.h"
#include "core/clock.h"
#include "gtest/gtest.h"
#include "tests/fakes/destination_service.h"
#include "tests/fakes/oauth_server.h"

namespace mailring::control {
namespace {

TEST(CredentialServiceTest, ClusterRoutesGetTokensFromTheDestinationService) {
  fakes::FakeDestinationService service;
  ASSERT_TRUE(service.Start().ok());
  service.SetTokenMode(fakes::FakeDestinationService::TokenMode::kMint);
  ASSERT_TRUE(service
                  .AddDestination("", R"({"Name":"oauth-dest","Type":"MAIL",
      "Authentication":"OAuth2RefreshToken","mail.imap4.host":"127.0.0.1",
      "tokenServiceURL":"http://127.0.0.1:9/oauth/token","clientId":"c"})")
                  .ok());
  absl::StatusOr<ServiceKey> key = ParseServiceKey(service.ServiceKeyJson());
  ASSERT_TRUE(key.ok()) << key.status();

  HttpClient http;
  DestinationServiceClient destinations(&http, {{"default", *key}});
  auto route = std::make_shared<core::Route>();
  route->destination.name = "oauth-dest";
  route->destination.authentication = proto::AuthenticationType::kOAuth2RefreshToken;
  route->destination_service_instance = "default";
  auto table = std::make_shared<core::RouteTable>();
  table->push_back(route);
  core::CredentialCache cache(1);
  cache.SetOnline(0, true);
  CredentialService credentials(table, &cache, &http, {});
  credentials.SetDestinationService(&destinations);

  core::CredentialRequest request;
  request.kind = core::CredentialRequest::Kind::kRefreshToken;
  request.route = route;
  request.key = core::CredentialKey("oauth-dest", "", "subject");
  request.grant_secret = proto::Secret("user-refresh-token");
  credentials.Request(request);
  const core::Credential* credential = nullptr;
  const int64_t deadline = core::MonotonicMs() + 10'000;
  while (core::MonotonicMs() < deadline) {
    credentials.Tick(core::MonotonicMs());
    http.Poll(absl::Milliseconds(20));
    cache.Quiescent(0);
    credential = cache.Find(0, request.key);
    if (credential != nullptr) break;
  }
  ASSERT_NE(credential, nullptr);
  EXPECT_TRUE(credential->UsableAt(core::MonotonicMs())) << credential->failure;
  // The fake minted the token the Destination service handed out, and it saw the client's
  // refresh token as X-refresh-token.
  const std::vector<std::string> issued = service.IssuedTokens();
  EXPECT_NE(std::find(issued.begin(), issued.end(), credential->access_token.Reveal()),
            issued.end());
  bool saw_refresh_header = false;
  for (const auto& seen : service.requests()) {
    auto it = seen.headers.find("x-refresh-token");
    if (it != seen.headers.end() && it->second == "user-refresh-token") saw_refresh_header = true;
  }
  EXPECT_TRUE(saw_refresh_header);
  cache.SetOnline(0, false);
}


// The service's time is the injected clock: a token's expiry and its refresh follow it, so the
// refresh is reached by moving the clock, not by waiting. The loops below wait only for the
// fake Destination service's HTTP answers (bounded by a real deadline and a count).
TEST(CredentialServiceTest, ExpiryAndRefreshFollowTheInjectedClock) {
  fakes::FakeDestinationService service;
  ASSERT_TRUE(service.Start().ok());
  service.SetTokenMode(fakes::FakeDestinationService::TokenMode::kMint);
  service.SetMintedTokenExpiresIn(600);
  ASSERT_TRUE(service
                  .AddDestination("", R"({"Name":"cc-dest","Type":"MAIL",
      "Authentication":"OAuth2ClientCredentials","mail.imap4.host":"127.0.0.1",
      "tokenServiceURL":"http://127.0.0.1:9/oauth/token","clientId":"c","clientSecret":"s"})")
                  .ok());
  absl::StatusOr<ServiceKey> key = ParseServiceKey(service.ServiceKeyJson());
  ASSERT_TRUE(key.ok()) << key.status();

  // Ten days ahead of the real monotonic clock: any use of the real clock shows.
  constexpr int64_t kTenDaysMs = int64_t{10} * 24 * 3600 * 1000;
  int64_t fake_now_ms = core::MonotonicMs() + kTenDaysMs;
  auto clock = [&fake_now_ms] { return fake_now_ms; };
  HttpClient http;
  DestinationServiceOptions destination_options;
  destination_options.now_ms = clock;
  DestinationServiceClient destinations(&http, {{"default", *key}}, destination_options);
  auto route = std::make_shared<core::Route>();
  route->destination.name = "cc-dest";
  route->destination.authentication = proto::AuthenticationType::kOAuth2ClientCredentials;
  route->destination_service_instance = "default";
  auto table = std::make_shared<core::RouteTable>();
  table->push_back(route);
  core::CredentialCache cache(1);
  cache.SetOnline(0, true);
  CredentialServiceOptions options;
  options.now_ms = clock;
  CredentialService credentials(table, &cache, &http, options);
  credentials.SetDestinationService(&destinations);

  core::CredentialRequest request;
  request.kind = core::CredentialRequest::Kind::kClientCredentials;
  request.route = route;
  request.key = core::CredentialKey("cc-dest", "", "");
  credentials.Request(request);
  // The access token published under the key once it differs from `previous`.
  auto await_token = [&](const std::string& previous) -> std::optional<core::Credential> {
    const int64_t deadline = core::MonotonicMs() + 10'000;
    for (int round = 0; round < 1000 && core::MonotonicMs() < deadline; ++round) {
      credentials.Tick(fake_now_ms);
      http.Poll(absl::Milliseconds(20));
      cache.Quiescent(0);
      const core::Credential* found = cache.Find(0, request.key);
      if (found != nullptr && !found->access_token.empty() &&
          found->access_token.Reveal() != previous) {
        return *found;
      }
    }
    return std::nullopt;
  };

  std::optional<core::Credential> first = await_token("");
  ASSERT_TRUE(first.has_value());
  EXPECT_TRUE(first->UsableAt(fake_now_ms)) << first->failure;
  // Expiry is counted from the injected clock: within the token's 600 s of fake_now_ms.
  EXPECT_GT(first->expires_at_ms, fake_now_ms + 500'000);
  EXPECT_LE(first->expires_at_ms, fake_now_ms + 600'000);
  EXPECT_FALSE(first->UsableAt(fake_now_ms + 600'000));

  // Refreshed at 80 % (± 10 % jitter) of the lifetime: not yet at 60 %, surely at 95 %. (The
  // fake's issued tokens include the instance token the Destination service is called with.)
  const size_t issued = service.IssuedTokens().size();
  fake_now_ms += 360'000;
  credentials.Tick(fake_now_ms);
  http.Poll(absl::Milliseconds(20));
  cache.Quiescent(0);
  EXPECT_EQ(service.IssuedTokens().size(), issued);
  fake_now_ms += 210'000;
  std::optional<core::Credential> second = await_token(std::string(first->access_token.Reveal()));
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(service.IssuedTokens().size(), issued + 1);
  EXPECT_GT(second->expires_at_ms, first->expires_at_ms);
  cache.SetOnline(0, false);
}

// Standalone routes (tokenServiceURL in the destinations file) against the fake OAuth server.
// Tokens live 600 s; the expiry margin is then 30 s, so a token is usable for 570 s after it
// arrived on the injected clock.
class StandaloneCredentialServiceTest : public ::testing::Test {
 protected:
  static constexpr int64_t kLifetimeMs = 600'000;
  static constexpr int64_t kUsableMs = kLifetimeMs - 30'000;

  void SetUp() override {
    ASSERT_TRUE(oauth_.Start().ok());
    oauth_.SetExpiresIn(kLifetimeMs / 1000);
    oauth_.RegisterClient("c", "s", "alice");
  }
  void TearDown() override { cache_.SetOnline(0, false); }

  std::shared_ptr<core::Route> Route(proto::AuthenticationType authentication) {
    auto route = std::make_shared<core::Route>();
    route->destination.name = "dest";
    route->destination.authentication = authentication;
    route->destination.token_service_url = oauth_.TokenUrl();
    route->destination.client_id = "c";
    route->destination.client_secret = proto::Secret("s");
    return route;
  }
  // Builds the service over one route (a client-credentials route starts fetching at once).
  void StartService(std::shared_ptr<const core::Route> route) {
    auto table = std::make_shared<core::RouteTable>();
    table->push_back(std::move(route));
    cache_.SetOnline(0, true);
    CredentialServiceOptions options;
    options.now_ms = [this] { return now_ms_; };
    service_ = std::make_unique<CredentialService>(table, &cache_, &http_, options);
  }
  // Ticks at the current (injected) time and polls until `done` holds for what the cache has
  // under `key`; only the HTTP round trips to the fake take real time, bounded here.
  std::optional<core::Credential> AwaitCredential(
      const std::string& key, const std::function<bool(const core::Credential&)>& done) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      service_->Tick(now_ms_);
      http_.Poll(absl::Milliseconds(20));
      cache_.Quiescent(0);
      const core::Credential* found = cache_.Find(0, key);
      if (found != nullptr && done(*found)) return *found;
    }
    return std::nullopt;
  }
  std::optional<core::Credential> AwaitToken(const std::string& key, std::string_view other_than) {
    return AwaitCredential(key, [other_than](const core::Credential& credential) {
      return !credential.access_token.empty() && credential.access_token.Reveal() != other_than;
    });
  }
  // Starts the service over a route of `authentication` and has a worker ask for the exchange
  // of `secret` (a refresh token or code): the request (to ask again) and the first token.
  std::pair<core::CredentialRequest, std::optional<core::Credential>> StartAndExchange(
      proto::AuthenticationType authentication, core::CredentialRequest::Kind kind,
      const std::string& secret) {
    core::CredentialRequest request;
    request.kind = kind;
    request.route = Route(authentication);
    request.key = core::CredentialKey("dest", "", "alice");
    request.grant_secret = proto::Secret(secret);
    StartService(request.route);
    service_->Request(request);
    return {request, AwaitToken(request.key, "")};
  }

  // Ten days ahead of the real monotonic clock: any use of the real clock shows.
  int64_t now_ms_ = core::MonotonicMs() + int64_t{10} * 24 * 3600 * 1000;
  fakes::FakeOAuthServer oauth_;
  HttpClient http_;
  core::CredentialCache cache_{1};
  std::unique_ptr<CredentialService> service_;
};

TEST_F(StandaloneCredentialServiceTest, ClientCredentialsRefreshedAtEightyPercentOfTheLifetime) {
  StartService(Route(proto::AuthenticationType::kOAuth2ClientCredentials));
  const std::string key = core::CredentialKey("dest", "");
  std::optional<core::Credential> first = AwaitToken(key, "");
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->expires_at_ms, now_ms_ + kUsableMs);
  EXPECT_EQ(oauth_.client_credentials_grants(), 1);
  // 80 % ± 10 % jitter: not yet at 70 %, surely by 90 %.
  now_ms_ += kLifetimeMs * 70 / 100;
  for (int i = 0; i < 5; ++i) service_->Tick(now_ms_), http_.Poll(absl::Milliseconds(20));
  EXPECT_EQ(oauth_.token_requests(), 1) << "refreshed before 72 % of the lifetime";
  now_ms_ += kLifetimeMs * 20 / 100;
  std::optional<core::Credential> second = AwaitToken(key, first->access_token.Reveal());
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(oauth_.client_credentials_grants(), 2);
  EXPECT_EQ(second->expires_at_ms, now_ms_ + kUsableMs);
}

TEST_F(StandaloneCredentialServiceTest, TokenServiceDownServesTheCachedTokenUntilItExpires) {
  StartService(Route(proto::AuthenticationType::kOAuth2ClientCredentials));
  const std::string key = core::CredentialKey("dest", "");
  std::optional<core::Credential> first = AwaitToken(key, "");
  ASSERT_TRUE(first.has_value());
  oauth_.Stop();
  // Past the refresh (at most 88 %), before the end of the usable time (95 %): the refresh
  // fails, and the cache still holds the token, with the failure noted beside it.
  now_ms_ += kLifetimeMs * 90 / 100;
  std::optional<core::Credential> during =
      AwaitCredential(key, [](const core::Credential& c) { return !c.failure.empty(); });
  ASSERT_TRUE(during.has_value());
  EXPECT_EQ(during->access_token.Reveal(), first->access_token.Reveal());
  EXPECT_TRUE(during->UsableAt(now_ms_)) << "the cached token stays until it expires";
  EXPECT_GE(service_->counters().token_failures.load(), 1u);
  // After the expiry nothing usable is left: sessions get the clear BYE then.
  now_ms_ = first->expires_at_ms;
  for (int i = 0; i < 5; ++i) service_->Tick(now_ms_), http_.Poll(absl::Milliseconds(20));
  cache_.Quiescent(0);
  const core::Credential* after = cache_.Find(0, key);
  ASSERT_NE(after, nullptr);
  EXPECT_FALSE(after->UsableAt(now_ms_));
  EXPECT_FALSE(after->failure.empty());
  EXPECT_EQ(oauth_.client_credentials_grants(), 1);
  // The token service comes back: within the longest backoff (60 s × 1.5) there is a new token.
  ASSERT_TRUE(oauth_.Start().ok());
  now_ms_ += 90'000;
  std::optional<core::Credential> recovered = AwaitToken(key, first->access_token.Reveal());
  ASSERT_TRUE(recovered.has_value());
  EXPECT_TRUE(recovered->UsableAt(now_ms_));
  EXPECT_EQ(oauth_.client_credentials_grants(), 2);
}

TEST_F(StandaloneCredentialServiceTest, RefreshTokenExchangeIsReusedUntilItExpiresThenRedone) {
  oauth_.RegisterRefreshToken("rt-alice", "alice");
  const auto [request, first] =
      StartAndExchange(proto::AuthenticationType::kOAuth2RefreshToken,
                       core::CredentialRequest::Kind::kRefreshToken, "rt-alice");
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(oauth_.refresh_token_grants(), 1);
  // Asked again while the token is usable: answered from what it has.
  now_ms_ += kUsableMs - 1;
  service_->Request(request);
  for (int i = 0; i < 5; ++i) service_->Tick(now_ms_), http_.Poll(absl::Milliseconds(20));
  EXPECT_EQ(oauth_.refresh_token_grants(), 1);
  // Asked once it expired: exchanged again.
  now_ms_ += 1;
  service_->Request(request);
  std::optional<core::Credential> second = AwaitToken(request.key, first->access_token.Reveal());
  ASSERT_TRUE(second.has_value());
  EXPECT_TRUE(second->UsableAt(now_ms_));
  EXPECT_EQ(oauth_.refresh_token_grants(), 2);
}

TEST_F(StandaloneCredentialServiceTest, AuthorizationCodeIsRenewedWithItsRefreshTokenAfterExpiry) {
  oauth_.RegisterCode("code-alice", "alice");
  const auto [request, first] =
      StartAndExchange(proto::AuthenticationType::kOAuth2AuthorizationCode,
                       core::CredentialRequest::Kind::kAuthorizationCode, "code-alice");
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(oauth_.authorization_code_grants(), 1);
  // The same client comes back with its (used) code after the token expired: renewed with the
  // refresh token the code exchange returned, the code is not sent again.
  now_ms_ += kUsableMs;
  service_->Request(request);
  std::optional<core::Credential> second = AwaitToken(request.key, first->access_token.Reveal());
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(oauth_.authorization_code_grants(), 1);
  EXPECT_EQ(oauth_.refresh_token_grants(), 1);
  EXPECT_EQ(oauth_.failed_token_requests(), 0) << "the used code was sent again";
}

}  // namespace
}  // namespace mailring::control
