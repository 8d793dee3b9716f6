// CredentialService in cluster mode: tokens of routes that came from the Destination service are
// obtained through it (authTokens), with the client's refresh token as X-refresh-token.
#include "control/credential_service.h"

#include <map>
#include <memory>

#include "control/destination_service.h"
#include "control/http_client.h"
#include "control/service_key.h"
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

}  // namespace
}  // namespace mailring::control
