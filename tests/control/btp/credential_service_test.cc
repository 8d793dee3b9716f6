// CredentialService in cluster mode: tokens of routes that came from the Destination service are
// obtained through it (authTokens), with the client's refresh token as X-refresh-token.
#include "control/btp/credential_service.h"

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "control/btp/destination_service.h"
#include "control/http_client.h"
#include "control/btp/service_key.h"
#include "core/clock.h"
#include "gtest/gtest.h"
#include "tests/fakes/destination_service.h"

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

}  // namespace
}  // namespace mailring::control
