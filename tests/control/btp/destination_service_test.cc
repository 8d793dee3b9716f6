// DestinationServiceClient against the fake Destination service (with its XSUAA token
// endpoint) and the fake OAuth server (the destinations' own token service), on loopback.
//
// Tenants on loopback: the service key's url is http://provider.localhost:<port>; the client
// asks http://<tenant>.localhost:<port>/oauth/token for a tenant's token (libcurl resolves
// *.localhost to 127.0.0.1 itself) and the fake tells tenants apart by the Host header.
#include "control/btp/destination_service.h"

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "core/log.h"
#include "gtest/gtest.h"
#include "proto/str_cat.h"
#include "tests/fakes/destination_service.h"
#include "tests/fakes/oauth_server.h"

namespace mailring::control {
namespace {

using fakes::FakeDestinationService;
using fakes::FakeOAuthServer;

constexpr char kInstance[] = "dest-instance";
constexpr char kMailClientId[] = "mail-client";
constexpr char kMailClientSecret[] = "mail-client-secret-d41d8cd9";
constexpr char kMailPassword[] = "mail-password-8f00b204";
constexpr char kRefreshToken[] = "refresh-token-e9800998ecf8";
constexpr char kCode[] = "auth-code-427e3a0b5f";

std::string BasicDestination(const std::string& name, const std::string& host,
                             const std::string& user) {
  return StrCat(R"({"Name":")", name, R"(","Type":"MAIL","Authentication":"BasicAuthentication",)",
                R"("mail.user":")", user, R"(","mail.password":")", kMailPassword,
                R"(","mail.transport.protocol":"imap4","mail.imap4.host":")", host,
                R"(","mail.imap4.port":"143","mail.imap4.auth":"true","ProxyType":"Internet"})");
}

std::string OAuthDestination(const std::string& name, const std::string& authentication,
                             const std::string& token_url, const std::string& extra = "") {
  return StrCat(R"({"Name":")", name, R"(","Type":"MAIL","Authentication":")", authentication,
                R"(","mail.user":"alice","mail.transport.protocol":"imap4",)",
                R"("mail.imap4.host":"imap.example.com","mail.imap4.port":"143",)",
                R"("ProxyType":"Internet","tokenServiceURL":")", token_url,
                R"(","tokenServiceURLType":"Dedicated","clientId":")", kMailClientId,
                R"(","clientSecret":")", kMailClientSecret, "\"", extra, "}");
}

DestinationLookup Lookup(const std::string& name, const std::string& tenant = "") {
  DestinationLookup lookup;
  lookup.instance = kInstance;
  lookup.name = name;
  lookup.tenant = tenant;
  return lookup;
}

class DestinationServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(oauth_.Start().ok());
    ASSERT_TRUE(fake_.Start().ok());
    oauth_.RegisterClient(kMailClientId, kMailClientSecret, "alice");
  }

  ServiceKey Key() {
    absl::StatusOr<ServiceKey> key = ParseServiceKey(fake_.ServiceKeyJson());
    EXPECT_TRUE(key.ok()) << key.status();
    return key.ok() ? *key : ServiceKey();
  }

  // Every client runs on the test's clock: TTLs and token lifetimes pass when a test says so
  // (Advance), never by sleeping, so a loaded machine cannot make them flaky.
  std::unique_ptr<DestinationServiceClient> MakeClient(DestinationServiceOptions options = {},
                                                       std::optional<ServiceKey> key = {}) {
    options.now_ms = [this] { return now_ms_; };
    std::map<std::string, ServiceKey> instances;
    instances.emplace(kInstance, key.has_value() ? *key : Key());
    return std::make_unique<DestinationServiceClient>(&http_, std::move(instances),
                                                      std::move(options));
  }

  void Advance(absl::Duration by) { now_ms_ += absl::ToInt64Milliseconds(by); }

  // Polls the loop until `done` holds, at most `limit`.
  bool PollUntil(const std::function<bool()>& done, absl::Duration limit = absl::Seconds(10)) {
    const absl::Time deadline = absl::Now() + limit;
    while (!done() && absl::Now() < deadline) http_.Poll(absl::Milliseconds(20));
    return done();
  }

  absl::StatusOr<FoundDestination> FindAndWait(DestinationServiceClient& client,
                                               DestinationLookup lookup) {
    std::optional<absl::StatusOr<FoundDestination>> result;
    client.Find(std::move(lookup),
                [&result](absl::StatusOr<FoundDestination> found) { result = std::move(found); });
    if (!PollUntil([&result] { return result.has_value(); })) {
      return absl::DeadlineExceededError("test: no answer within 10 s");
    }
    return *std::move(result);
  }

  FakeOAuthServer oauth_;
  FakeDestinationService fake_;
  HttpClient http_;
  int64_t now_ms_ = 1'000'000;  // the clients' clock (Advance)
};

TEST_F(DestinationServiceTest, FindsBasicAuthenticationDestination) {
  ASSERT_TRUE(fake_.AddDestination("", BasicDestination("mail", "imap.example.com", "bob")).ok());
  auto client = MakeClient();
  absl::StatusOr<FoundDestination> found = FindAndWait(*client, Lookup("mail"));
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->destination.name, "mail");
  EXPECT_EQ(found->destination.authentication, proto::AuthenticationType::kBasicAuthentication);
  EXPECT_EQ(found->destination.host, "imap.example.com");
  EXPECT_EQ(found->destination.port, 143);
  EXPECT_EQ(found->destination.user, "bob");
  EXPECT_EQ(found->destination.password.Reveal(), kMailPassword);
  EXPECT_TRUE(found->auth_tokens.empty());
  ASSERT_EQ(fake_.requests().size(), 1u);
  EXPECT_EQ(fake_.requests()[0].headers.count("x-refresh-token"), 0u);
  EXPECT_EQ(fake_.instance_tokens_issued(""), 1);
}

TEST_F(DestinationServiceTest, ClientCredentialsDestinationCarriesTheExchangedToken) {
  ASSERT_TRUE(
      fake_.AddDestination("", OAuthDestination("cc", "OAuth2ClientCredentials", oauth_.TokenUrl()))
          .ok());
  auto client = MakeClient();
  absl::StatusOr<FoundDestination> found = FindAndWait(*client, Lookup("cc"));
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->destination.authentication, proto::AuthenticationType::kOAuth2ClientCredentials);
  EXPECT_EQ(found->destination.client_secret.Reveal(), kMailClientSecret);
  ASSERT_EQ(found->auth_tokens.size(), 1u);
  const DestinationAuthToken& token = found->auth_tokens[0];
  EXPECT_EQ(token.type, "Bearer");
  EXPECT_TRUE(token.error.empty()) << token.error;
  ASSERT_EQ(oauth_.IssuedAccessTokens().size(), 1u);
  EXPECT_EQ(token.value.Reveal(), oauth_.IssuedAccessTokens()[0]);
  EXPECT_EQ(token.expires_in_seconds, 3599);  // "3599", a string on the wire
  EXPECT_EQ(oauth_.client_credentials_grants(), 1);
}

TEST_F(DestinationServiceTest, RefreshTokenIsSentAsXRefreshTokenAndExchanged) {
  oauth_.RegisterRefreshToken(kRefreshToken, "alice");
  ASSERT_TRUE(
      fake_.AddDestination("", OAuthDestination("rt", "OAuth2RefreshToken", oauth_.TokenUrl()))
          .ok());
  auto client = MakeClient();
  DestinationLookup lookup = Lookup("rt");
  lookup.refresh_token = proto::Secret(kRefreshToken);
  absl::StatusOr<FoundDestination> found = FindAndWait(*client, lookup);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->auth_tokens.size(), 1u);
  EXPECT_TRUE(found->auth_tokens[0].error.empty()) << found->auth_tokens[0].error;
  ASSERT_EQ(oauth_.IssuedAccessTokens().size(), 1u);
  EXPECT_EQ(found->auth_tokens[0].value.Reveal(), oauth_.IssuedAccessTokens()[0]);
  EXPECT_EQ(oauth_.refresh_token_grants(), 1);
  ASSERT_EQ(fake_.requests().size(), 1u);
  EXPECT_EQ(fake_.requests()[0].headers.at("x-refresh-token"), kRefreshToken);

  // A lookup with a user secret is not answered from a cache: its token is that user's.
  absl::StatusOr<FoundDestination> again = FindAndWait(*client, lookup);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(fake_.destination_requests(), 2);
  EXPECT_EQ(oauth_.refresh_token_grants(), 2);
  EXPECT_EQ(fake_.instance_tokens_issued(), 1);  // the instance token is shared still
}

TEST_F(DestinationServiceTest, AuthorizationCodeIsSentAsXCodeWithRedirectUri) {
  oauth_.RegisterCode(kCode, "alice", "https://app.example.com/callback");
  ASSERT_TRUE(
      fake_.AddDestination("", OAuthDestination("ac", "OAuth2AuthorizationCode", oauth_.TokenUrl()))
          .ok());
  auto client = MakeClient();
  DestinationLookup lookup = Lookup("ac");
  lookup.code = proto::Secret(kCode);
  lookup.redirect_uri = "https://app.example.com/callback";
  absl::StatusOr<FoundDestination> found = FindAndWait(*client, lookup);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->auth_tokens.size(), 1u);
  EXPECT_TRUE(found->auth_tokens[0].error.empty()) << found->auth_tokens[0].error;
  EXPECT_EQ(found->auth_tokens[0].value.Reveal(), oauth_.IssuedAccessTokens().at(0));
  EXPECT_EQ(oauth_.authorization_code_grants(), 1);
  const std::map<std::string, std::string> headers = fake_.requests().at(0).headers;
  EXPECT_EQ(headers.at("x-code"), kCode);
  EXPECT_EQ(headers.at("x-redirect-uri"), "https://app.example.com/callback");

  // Codes are single-use: the service reports the failed exchange in authTokens[].error.
  absl::StatusOr<FoundDestination> reused = FindAndWait(*client, lookup);
  ASSERT_TRUE(reused.ok()) << reused.status();
  ASSERT_EQ(reused->auth_tokens.size(), 1u);
  EXPECT_TRUE(reused->auth_tokens[0].value.empty());
  EXPECT_NE(reused->auth_tokens[0].error.find("invalid_grant"), std::string::npos)
      << reused->auth_tokens[0].error;
}

TEST_F(DestinationServiceTest, MintedTokensForEveryOAuthType) {
  fake_.SetTokenMode(FakeDestinationService::TokenMode::kMint);
  fake_.SetMintedTokenExpiresIn(600);
  for (const char* type :
       {"OAuth2ClientCredentials", "OAuth2RefreshToken", "OAuth2AuthorizationCode"}) {
    ASSERT_TRUE(
        fake_.AddDestination("", OAuthDestination(type, type, "http://unused.invalid")).ok());
  }
  auto client = MakeClient();
  DestinationLookup cc = Lookup("OAuth2ClientCredentials");
  DestinationLookup rt = Lookup("OAuth2RefreshToken");
  rt.refresh_token = proto::Secret(kRefreshToken);
  DestinationLookup ac = Lookup("OAuth2AuthorizationCode");
  ac.code = proto::Secret(kCode);
  for (const DestinationLookup& lookup : {cc, rt, ac}) {
    absl::StatusOr<FoundDestination> found = FindAndWait(*client, lookup);
    ASSERT_TRUE(found.ok()) << lookup.name << ": " << found.status();
    ASSERT_EQ(found->auth_tokens.size(), 1u) << lookup.name;
    EXPECT_EQ(found->auth_tokens[0].expires_in_seconds, 599) << lookup.name;
    EXPECT_FALSE(found->auth_tokens[0].value.empty()) << lookup.name;
  }
  EXPECT_EQ(fake_.token_exchanges(), 3);
  EXPECT_EQ(oauth_.token_requests(), 0);

  // Without the user's secret the service cannot exchange and says why.
  absl::StatusOr<FoundDestination> plain = FindAndWait(*client, Lookup("OAuth2RefreshToken"));
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_EQ(plain->auth_tokens.size(), 1u);
  EXPECT_NE(plain->auth_tokens[0].error.find("X-refresh-token"), std::string::npos);
}

TEST_F(DestinationServiceTest, TenantsSeeOnlyTheirOwnDestinations) {
  ASSERT_TRUE(fake_.AddDestination("t1", BasicDestination("mail", "imap.t1.example", "u1")).ok());
  ASSERT_TRUE(fake_.AddDestination("t2", BasicDestination("mail", "imap.t2.example", "u2")).ok());
  auto client = MakeClient();
  absl::StatusOr<FoundDestination> t1 = FindAndWait(*client, Lookup("mail", "t1"));
  absl::StatusOr<FoundDestination> t2 = FindAndWait(*client, Lookup("mail", "t2"));
  ASSERT_TRUE(t1.ok()) << t1.status();
  ASSERT_TRUE(t2.ok()) << t2.status();
  EXPECT_EQ(t1->destination.host, "imap.t1.example");
  EXPECT_EQ(t1->destination.user, "u1");
  EXPECT_EQ(t2->destination.host, "imap.t2.example");
  EXPECT_EQ(t2->destination.user, "u2");
  EXPECT_EQ(fake_.instance_tokens_issued("t1"), 1);
  EXPECT_EQ(fake_.instance_tokens_issued("t2"), 1);

  // The provider has no destination of that name, and a cached tenant entry is not its.
  absl::StatusOr<FoundDestination> provider = FindAndWait(*client, Lookup("mail"));
  EXPECT_TRUE(absl::IsNotFound(provider.status())) << provider.status();
  // Served from the cache, still per tenant.
  EXPECT_EQ(FindAndWait(*client, Lookup("mail", "t2"))->destination.user, "u2");
  EXPECT_EQ(FindAndWait(*client, Lookup("mail", "t1"))->destination.user, "u1");
  EXPECT_EQ(fake_.destination_requests(), 3);
}

TEST_F(DestinationServiceTest, CachedWithinTtlWithOneRequest) {
  ASSERT_TRUE(fake_.AddDestination("", BasicDestination("mail", "imap.example.com", "bob")).ok());
  auto client = MakeClient();
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<FoundDestination> found = FindAndWait(*client, Lookup("mail"));
    ASSERT_TRUE(found.ok()) << found.status();
    EXPECT_EQ(found->destination.user, "bob");
  }
  EXPECT_EQ(fake_.destination_requests(), 1);
  EXPECT_EQ(fake_.token_requests(), 1);
}

TEST_F(DestinationServiceTest, CachedEntryIsRefetchedBeforeItsAuthTokenExpires) {
  fake_.SetTokenMode(FakeDestinationService::TokenMode::kMint);
  fake_.SetMintedTokenExpiresIn(4);  // reported "3"; usable while more than 1 s is left
  ASSERT_TRUE(fake_
                  .AddDestination("", OAuthDestination("cc", "OAuth2ClientCredentials",
                                                       "http://unused.invalid"))
                  .ok());
  auto client = MakeClient();
  absl::StatusOr<FoundDestination> first = FindAndWait(*client, Lookup("cc"));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->auth_tokens.at(0).expires_in_seconds, 3);
  Advance(absl::Milliseconds(1100));
  absl::StatusOr<FoundDestination> cached = FindAndWait(*client, Lookup("cc"));
  ASSERT_TRUE(cached.ok()) << cached.status();
  EXPECT_EQ(cached->auth_tokens.at(0).expires_in_seconds, 2);  // aged with the entry
  EXPECT_EQ(cached->auth_tokens.at(0).value.Reveal(), first->auth_tokens.at(0).value.Reveal());
  EXPECT_EQ(fake_.destination_requests(), 1);
  Advance(absl::Milliseconds(1000));
  absl::StatusOr<FoundDestination> renewed = FindAndWait(*client, Lookup("cc"));
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_NE(renewed->auth_tokens.at(0).value.Reveal(), first->auth_tokens.at(0).value.Reveal());
  EXPECT_EQ(fake_.destination_requests(), 2);
}

TEST_F(DestinationServiceTest, AnswersRunInsidePollNeverInsideFind) {
  ASSERT_TRUE(fake_.AddDestination("", BasicDestination("mail", "imap.example.com", "bob")).ok());
  auto client = MakeClient();
  ASSERT_TRUE(FindAndWait(*client, Lookup("mail")).ok());
  DestinationLookup unknown = Lookup("mail");
  unknown.instance = "no-such-instance";
  int answered = 0;
  for (const DestinationLookup& lookup : {Lookup("mail"), unknown, Lookup("")}) {
    client->Find(lookup, [&answered](absl::StatusOr<FoundDestination>) { ++answered; });
  }
  EXPECT_EQ(answered, 0);  // a cache hit and two errors at hand, all posted
  ASSERT_TRUE(PollUntil([&answered] { return answered == 3; }));

  // Posted answers of a client destroyed meanwhile are dropped.
  client->Find(Lookup("mail"), [&answered](absl::StatusOr<FoundDestination>) { ++answered; });
  client.reset();
  PollUntil([] { return false; }, absl::Milliseconds(100));
  EXPECT_EQ(answered, 3);
}

TEST_F(DestinationServiceTest, RefetchedAfterTtl) {
  ASSERT_TRUE(fake_.AddDestination("", BasicDestination("mail", "imap.example.com", "bob")).ok());
  DestinationServiceOptions options;
  options.destination_ttl = absl::Milliseconds(300);
  auto client = MakeClient(options);
  ASSERT_EQ(FindAndWait(*client, Lookup("mail"))->destination.user, "bob");
  ASSERT_TRUE(fake_.AddDestination("", BasicDestination("mail", "imap.example.com", "carol")).ok());
  EXPECT_EQ(FindAndWait(*client, Lookup("mail"))->destination.user, "bob");  // cached
  Advance(absl::Milliseconds(400));
  absl::StatusOr<FoundDestination> refreshed = FindAndWait(*client, Lookup("mail"));
  ASSERT_TRUE(refreshed.ok()) << refreshed.status();
  EXPECT_EQ(refreshed->destination.user, "carol");
  EXPECT_EQ(fake_.destination_requests(), 2);
  EXPECT_EQ(fake_.token_requests(), 1);  // the instance token outlives the entry
}

TEST_F(DestinationServiceTest, ServesLastGoodEntryWhileServiceIsDown) {
  core::SetLogLevel(core::LogLevel::kInfo);
  ASSERT_TRUE(fake_.AddDestination("", BasicDestination("mail", "imap.example.com", "bob")).ok());
  DestinationServiceOptions options;
  options.destination_ttl = absl::Milliseconds(200);
  auto client = MakeClient(options);
  ASSERT_TRUE(FindAndWait(*client, Lookup("mail")).ok());
  fake_.Stop();
  Advance(absl::Milliseconds(300));
  testing::internal::CaptureStderr();
  absl::StatusOr<FoundDestination> stale = FindAndWait(*client, Lookup("mail"));
  const std::string log = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(stale.ok()) << stale.status();
  EXPECT_EQ(stale->destination.user, "bob");
  EXPECT_NE(log.find("serving the last good entry"), std::string::npos) << log;
  EXPECT_NE(log.find("destination=mail"), std::string::npos) << log;

  // A 5xx is "down" too.
  ASSERT_TRUE(fake_.Start().ok());
  fake_.FailNextRequests(1, 503);
  Advance(absl::Milliseconds(300));
  absl::StatusOr<FoundDestination> after_503 = FindAndWait(*client, Lookup("mail"));
  ASSERT_TRUE(after_503.ok()) << after_503.status();
  EXPECT_EQ(after_503->destination.user, "bob");

  // Back up: the next refresh gets the current entry.
  ASSERT_TRUE(fake_.AddDestination("", BasicDestination("mail", "imap.example.com", "dave")).ok());
  Advance(absl::Milliseconds(300));
  EXPECT_EQ(FindAndWait(*client, Lookup("mail"))->destination.user, "dave");
}

TEST_F(DestinationServiceTest, UnavailableWhenServiceIsDownAndNothingIsCached) {
  ASSERT_TRUE(fake_.AddDestination("", BasicDestination("mail", "imap.example.com", "bob")).ok());
  auto client = MakeClient();
  fake_.Stop();
  absl::StatusOr<FoundDestination> found = FindAndWait(*client, Lookup("mail"));
  EXPECT_TRUE(absl::IsUnavailable(found.status())) << found.status();

  ASSERT_TRUE(fake_.Start().ok());
  fake_.FailNextRequests(1, 502);
  found = FindAndWait(*client, Lookup("mail"));
  EXPECT_TRUE(absl::IsUnavailable(found.status())) << found.status();
  EXPECT_TRUE(FindAndWait(*client, Lookup("mail")).ok());  // errors are not cached
}

TEST_F(DestinationServiceTest, UnreachableTokenServiceIsUnavailable) {
  ServiceKey key = Key();
  key.token_url = "http://provider.localhost:1/oauth/token";  // nothing listens on port 1
  auto client = MakeClient({}, key);
  absl::StatusOr<FoundDestination> found = FindAndWait(*client, Lookup("mail"));
  EXPECT_TRUE(absl::IsUnavailable(found.status())) << found.status();
  fake_.FailNextTokenRequests(1, 503);
  auto other = MakeClient();
  found = FindAndWait(*other, Lookup("mail"));
  EXPECT_TRUE(absl::IsUnavailable(found.status())) << found.status();
}

TEST_F(DestinationServiceTest, UnknownDestinationIsNotFound) {
  auto client = MakeClient();
  absl::StatusOr<FoundDestination> found = FindAndWait(*client, Lookup("nope"));
  ASSERT_TRUE(absl::IsNotFound(found.status())) << found.status();
  EXPECT_EQ(found.status().message(), "destination nope not found in instance dest-instance");
  found = FindAndWait(*client, Lookup("nope", "t1"));
  EXPECT_TRUE(absl::IsNotFound(found.status())) << found.status();
}

TEST_F(DestinationServiceTest, DeletedDestinationIsNotFoundAfterTtl) {
  ASSERT_TRUE(fake_.AddDestination("", BasicDestination("mail", "imap.example.com", "bob")).ok());
  DestinationServiceOptions options;
  options.destination_ttl = absl::Milliseconds(100);
  auto client = MakeClient(options);
  ASSERT_TRUE(FindAndWait(*client, Lookup("mail")).ok());
  ASSERT_TRUE(fake_.RemoveDestination("", "mail"));
  Advance(absl::Milliseconds(200));
  EXPECT_TRUE(absl::IsNotFound(FindAndWait(*client, Lookup("mail")).status()));
  // Nothing stale survives a 404, even when the service goes down afterwards.
  fake_.Stop();
  EXPECT_TRUE(absl::IsUnavailable(FindAndWait(*client, Lookup("mail")).status()));
}

TEST_F(DestinationServiceTest, ForbiddenIsPermissionDenied) {
  ASSERT_TRUE(fake_.AddDestination("", BasicDestination("mail", "imap.example.com", "bob")).ok());
  auto client = MakeClient();
  fake_.FailNextRequests(1, 403, R"({"ErrorMessage":"Forbidden"})");
  absl::StatusOr<FoundDestination> found = FindAndWait(*client, Lookup("mail"));
  EXPECT_TRUE(absl::IsPermissionDenied(found.status())) << found.status();
}

TEST_F(DestinationServiceTest, WrongClientSecretIsPermissionDenied) {
  ServiceKey key = Key();
  key.client_secret = proto::Secret("wrong-secret-0cc175b9c0f1");
  auto client = MakeClient({}, key);
  absl::StatusOr<FoundDestination> found = FindAndWait(*client, Lookup("mail"));
  EXPECT_TRUE(absl::IsPermissionDenied(found.status())) << found.status();
  EXPECT_EQ(found.status().message().find("wrong-secret"), std::string::npos);
}

TEST_F(DestinationServiceTest, BadJsonIsInvalidArgument) {
  auto client = MakeClient();
  fake_.FailNextRequests(1, 200, "{\"destinationConfiguration\": ");
  EXPECT_TRUE(absl::IsInvalidArgument(FindAndWait(*client, Lookup("mail")).status()));
  fake_.FailNextRequests(1, 200, R"({"owner":{}})");
  EXPECT_TRUE(absl::IsInvalidArgument(FindAndWait(*client, Lookup("mail")).status()));
  fake_.FailNextRequests(1, 200,
                         R"({"destinationConfiguration":{"Name":"mail","Type":"MAIL",)"
                         R"("mail.imap4.host":"h","mail.imap4.port":"14x3"}})");
  absl::StatusOr<FoundDestination> bad_port = FindAndWait(*client, Lookup("mail"));
  EXPECT_TRUE(absl::IsInvalidArgument(bad_port.status())) << bad_port.status();
  EXPECT_NE(bad_port.status().message().find("mail.imap4.port"), std::string::npos);
  fake_.FailNextRequests(1, 200,
                         R"({"destinationConfiguration":{"Name":"mail","Type":"MAIL",)"
                         R"("mail.imap4.host":"h"},"authTokens":[{"type":"Bearer",)"
                         R"("value":"v","expires_in":"soon"}]})");
  EXPECT_TRUE(absl::IsInvalidArgument(FindAndWait(*client, Lookup("mail")).status()));
}

TEST_F(DestinationServiceTest, InstanceTokenIsReusedAcrossLookups) {
  for (const char* name : {"a", "b", "c"}) {
    ASSERT_TRUE(fake_.AddDestination("", BasicDestination(name, "imap.example.com", name)).ok());
  }
  auto client = MakeClient();
  for (const char* name : {"a", "b", "c"}) {
    absl::StatusOr<FoundDestination> found = FindAndWait(*client, Lookup(name));
    ASSERT_TRUE(found.ok()) << found.status();
  }
  EXPECT_EQ(fake_.destination_requests(), 3);
  EXPECT_EQ(fake_.token_requests(), 1);
}

TEST_F(DestinationServiceTest, ExpiringInstanceTokenIsRenewed) {
  fake_.SetInstanceTokenExpiresIn(2);  // usable for 1 s: the margin is at most half the lifetime
  for (const char* name : {"a", "b"}) {
    ASSERT_TRUE(fake_.AddDestination("", BasicDestination(name, "imap.example.com", name)).ok());
  }
  auto client = MakeClient();
  ASSERT_TRUE(FindAndWait(*client, Lookup("a")).ok());
  Advance(absl::Milliseconds(1200));
  ASSERT_TRUE(FindAndWait(*client, Lookup("b")).ok());
  EXPECT_EQ(fake_.token_requests(), 2);
}

TEST_F(DestinationServiceTest, RevokedInstanceTokenIsReplacedOnce) {
  for (const char* name : {"a", "b"}) {
    ASSERT_TRUE(fake_.AddDestination("", BasicDestination(name, "imap.example.com", name)).ok());
  }
  auto client = MakeClient();
  ASSERT_TRUE(FindAndWait(*client, Lookup("a")).ok());
  fake_.RevokeInstanceTokens();
  absl::StatusOr<FoundDestination> found = FindAndWait(*client, Lookup("b"));
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(fake_.token_requests(), 2);
  EXPECT_EQ(fake_.destination_requests(), 3);  // a, b (401), b again
}

TEST_F(DestinationServiceTest, ConcurrentLookupsShareOneTokenAndOneDestinationRequest) {
  ASSERT_TRUE(fake_.AddDestination("", BasicDestination("mail", "imap.example.com", "bob")).ok());
  ASSERT_TRUE(fake_.AddDestination("", BasicDestination("other", "imap.example.com", "eve")).ok());
  auto client = MakeClient();
  std::vector<absl::StatusOr<FoundDestination>> results;
  for (int i = 0; i < 8; ++i) {
    client->Find(Lookup(i % 4 == 3 ? "other" : "mail"),
                 [&results](absl::StatusOr<FoundDestination> found) {
                   results.push_back(std::move(found));
                 });
  }
  ASSERT_TRUE(PollUntil([&results] { return results.size() == 8; }));
  for (const auto& result : results) EXPECT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(fake_.token_requests(), 1);
  EXPECT_EQ(fake_.destination_requests(), 2);  // one per name

  // And per tenant: one token request per tenant, however many lookups wait for it.
  ASSERT_TRUE(fake_.AddDestination("t1", BasicDestination("mail", "imap.t1.example", "u1")).ok());
  int done = 0;
  for (int i = 0; i < 4; ++i) {
    client->Find(Lookup("mail", "t1"), [&done](absl::StatusOr<FoundDestination> found) {
      EXPECT_TRUE(found.ok()) << found.status();
      ++done;
    });
  }
  ASSERT_TRUE(PollUntil([&done] { return done == 4; }));
  EXPECT_EQ(fake_.instance_tokens_issued("t1"), 1);
  EXPECT_EQ(fake_.destination_requests(), 3);
}

TEST_F(DestinationServiceTest, NameIsPercentEncodedInThePath) {
  ASSERT_TRUE(fake_.AddDestination("", BasicDestination("a b/ü?", "imap.example.com", "x")).ok());
  auto client = MakeClient();
  absl::StatusOr<FoundDestination> found = FindAndWait(*client, Lookup("a b/ü?"));
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(fake_.requests().at(0).name, "a b/ü?");
}

TEST_F(DestinationServiceTest, UnknownInstanceIsFailedPrecondition) {
  auto client = MakeClient();
  DestinationLookup lookup = Lookup("mail");
  lookup.instance = "no-such-instance";
  EXPECT_TRUE(absl::IsFailedPrecondition(FindAndWait(*client, lookup).status()));
  EXPECT_EQ(fake_.token_requests(), 0);
}

TEST_F(DestinationServiceTest, ControlCharactersInUserSecretsAreRejected) {
  auto client = MakeClient();
  DestinationLookup lookup = Lookup("mail");
  lookup.refresh_token = proto::Secret("abc\r\nX-Injected: 1");
  absl::StatusOr<FoundDestination> found = FindAndWait(*client, lookup);
  EXPECT_TRUE(absl::IsInvalidArgument(found.status())) << found.status();
  EXPECT_EQ(found.status().message().find("abc"), std::string::npos);
  EXPECT_EQ(fake_.destination_requests(), 0);
}

TEST_F(DestinationServiceTest, SecretsNeverReachErrorsOrLogs) {
  core::SetLogLevel(core::LogLevel::kDebug);
  oauth_.RegisterRefreshToken(kRefreshToken, "alice");
  ASSERT_TRUE(
      fake_.AddDestination("", OAuthDestination("rt", "OAuth2RefreshToken", oauth_.TokenUrl()))
          .ok());
  ASSERT_TRUE(fake_.AddDestination("", BasicDestination("mail", "imap.example.com", "bob")).ok());
  DestinationServiceOptions options;
  options.destination_ttl = absl::Milliseconds(50);
  testing::internal::CaptureStderr();
  std::vector<std::string> errors;
  {
    auto client = MakeClient(options);
    auto note = [&errors](const absl::StatusOr<FoundDestination>& found) {
      if (!found.ok()) errors.emplace_back(found.status().ToString());
      if (found.ok()) {
        for (const DestinationAuthToken& token : found->auth_tokens) {
          errors.push_back(token.error);
        }
      }
    };
    DestinationLookup rt = Lookup("rt");
    rt.refresh_token = proto::Secret(kRefreshToken);
    note(FindAndWait(*client, rt));  // success
    DestinationLookup bad_rt = Lookup("rt");
    bad_rt.refresh_token = proto::Secret(StrCat(kRefreshToken, "-unknown"));
    note(FindAndWait(*client, bad_rt));  // exchange fails: authTokens[].error
    note(FindAndWait(*client, Lookup("mail")));
    fake_.FailNextRequests(1, 500);
    Advance(absl::Milliseconds(100));
    note(FindAndWait(*client, Lookup("mail")));  // stale served, logged
    fake_.FailNextRequests(1, 401);
    note(FindAndWait(*client, rt));  // 401 with a cached token: retried
    fake_.FailNextRequests(2, 401);
    note(FindAndWait(*client, rt));  // PermissionDenied
    fake_.Stop();
    note(FindAndWait(*client, rt));  // Unavailable
    DestinationLookup code = Lookup("rt");
    code.code = proto::Secret(kCode);
    note(FindAndWait(*client, code));
    ServiceKey key = Key();
    key.client_secret = proto::Secret("wrong-client-secret-92eb5ffe");
    auto wrong = MakeClient(options, key);
    note(FindAndWait(*wrong, Lookup("mail")));
  }
  const std::string log = testing::internal::GetCapturedStderr();
  core::SetLogLevel(core::LogLevel::kInfo);
  EXPECT_GE(errors.size(), 6u);
  std::vector<std::string> secrets = fake_.IssuedTokens();
  secrets.insert(secrets.end(), {kRefreshToken, kCode, kMailClientSecret, kMailPassword,
                                 fake_.client_secret(), "wrong-client-secret-92eb5ffe"});
  for (const std::string& secret : secrets) {
    EXPECT_EQ(log.find(secret), std::string::npos) << "log leaks a secret:\n" << log;
    for (const std::string& error : errors) {
      EXPECT_EQ(error.find(secret), std::string::npos) << "error leaks a secret: " << error;
    }
  }
  EXPECT_FALSE(log.empty());
}

TEST_F(DestinationServiceTest, CallbackMayDestroyTheClient) {
  ASSERT_TRUE(fake_.AddDestination("", BasicDestination("mail", "imap.example.com", "bob")).ok());
  auto client = MakeClient();
  int calls = 0;
  for (int i = 0; i < 3; ++i) {
    client->Find(Lookup("mail"), [&](absl::StatusOr<FoundDestination>) {
      ++calls;
      client.reset();
    });
  }
  PollUntil([&calls] { return calls > 0; });
  PollUntil([] { return false; }, absl::Milliseconds(200));
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace mailring::control
