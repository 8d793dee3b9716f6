#include "proto/oauth_token.h"

#include <string>
#include <string_view>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "proto/absl_string_view.h"
#include "proto/sasl.h"

namespace mailring::proto {
namespace {

bool Contains(std::string_view haystack, std::string_view needle) {
  return absl::StrContains(AsAbsl(haystack), AsAbsl(needle));
}

std::string_view Message(const absl::Status& status) { return AsStd(status.message()); }


TEST(GrantTypeTest, NamesMatchRfc6749) {
  EXPECT_EQ(GrantTypeName(GrantType::kClientCredentials), "client_credentials");
  EXPECT_EQ(GrantTypeName(GrantType::kRefreshToken), "refresh_token");
  EXPECT_EQ(GrantTypeName(GrantType::kAuthorizationCode), "authorization_code");
}

TokenRequest ClientCredentials() {
  TokenRequest request;
  request.grant = GrantType::kClientCredentials;
  request.token_url = "https://login.example.com/oauth/token";
  request.client_id = "client-1";
  request.client_secret = Secret("s3cret&=+");
  return request;
}

TEST(TokenRequestTest, ClientCredentialsInTheBody) {
  TokenRequest request = ClientCredentials();
  request.scope = "mail.read offline";
  const EncodedTokenRequest encoded = EncodeTokenRequest(request);
  EXPECT_EQ(encoded.url, "https://login.example.com/oauth/token");
  EXPECT_EQ(encoded.body,
            "grant_type=client_credentials&scope=mail.read+offline&client_id=client-1"
            "&client_secret=s3cret%26%3D%2B");
  EXPECT_EQ(encoded.headers,
            (std::vector<std::string>{"Content-Type: application/x-www-form-urlencoded",
                                      "Accept: application/json"}));
}

TEST(TokenRequestTest, ClientCredentialsAsHttpBasicAreFormEncodedThenBase64) {
  TokenRequest request = ClientCredentials();
  request.client_id = "id:1";
  request.client_auth_basic = true;
  const EncodedTokenRequest encoded = EncodeTokenRequest(request);
  EXPECT_EQ(encoded.body, "grant_type=client_credentials");
  ASSERT_EQ(encoded.headers.size(), 3u);
  EXPECT_EQ(encoded.headers[2], "Authorization: Basic " + Base64Encode("id%3A1:s3cret%26%3D%2B"));
}

TEST(TokenRequestTest, RefreshTokenGrantCarriesTokenAndScope) {
  TokenRequest request = ClientCredentials();
  request.grant = GrantType::kRefreshToken;
  request.refresh_token = Secret("1//0rt/x");
  request.scope = "mail";
  EXPECT_EQ(EncodeTokenRequest(request).body,
            "grant_type=refresh_token&refresh_token=1%2F%2F0rt%2Fx&scope=mail"
            "&client_id=client-1&client_secret=s3cret%26%3D%2B");
}

TEST(TokenRequestTest, AuthorizationCodeGrantCarriesCodeAndRedirectUri) {
  TokenRequest request = ClientCredentials();
  request.grant = GrantType::kAuthorizationCode;
  request.code = Secret("4/code");
  request.redirect_uri = "https://app.example.com/cb?x=1";
  EXPECT_EQ(EncodeTokenRequest(request).body,
            "grant_type=authorization_code&code=4%2Fcode"
            "&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb%3Fx%3D1"
            "&client_id=client-1&client_secret=s3cret%26%3D%2B");
  request.redirect_uri.clear();
  request.client_secret = Secret();
  EXPECT_EQ(EncodeTokenRequest(request).body,
            "grant_type=authorization_code&code=4%2Fcode&client_id=client-1");
}

TEST(TokenResponseTest, ParsesTypicalResponse) {
  absl::StatusOr<TokenResponse> response = ParseTokenResponse(
      200, R"({"access_token":"AT-123","token_type":"bearer","expires_in":3599,"scope":"x",)"
           R"("refresh_token":"RT-456","jti":"abc"})");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->access_token.Reveal(), "AT-123");
  EXPECT_EQ(response->token_type, "bearer");
  EXPECT_EQ(response->expires_in_seconds, 3599);
  EXPECT_EQ(response->refresh_token.Reveal(), "RT-456");
}

TEST(TokenResponseTest, ExpiresInAsStringIsAccepted) {
  absl::StatusOr<TokenResponse> response =
      ParseTokenResponse(200, R"({"access_token":"AT","expires_in":"3600"})");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->expires_in_seconds, 3600);
}

TEST(TokenResponseTest, MissingExpiresInIsZero) {
  absl::StatusOr<TokenResponse> response = ParseTokenResponse(200, R"({"access_token":"AT"})");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->expires_in_seconds, 0);
  EXPECT_TRUE(response->refresh_token.empty());
  EXPECT_EQ(response->token_type, "");
}

TEST(TokenResponseTest, FractionalExpiresInIsTruncatedAndHugeOneClamped) {
  absl::StatusOr<TokenResponse> response =
      ParseTokenResponse(200, R"({"access_token":"AT","expires_in":59.9})");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->expires_in_seconds, 59);
  response = ParseTokenResponse(200, R"({"access_token":"AT","expires_in":18446744073709551615})");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_GT(response->expires_in_seconds, int64_t{365} * 24 * 3600);
  EXPECT_LT(response->expires_in_seconds, int64_t{1} << 40);
}

void ExpectError(int status, std::string_view body, absl::StatusCode code,
                 std::string_view expected_words) {
  absl::StatusOr<TokenResponse> response = ParseTokenResponse(status, body);
  ASSERT_FALSE(response.ok()) << body;
  EXPECT_EQ(response.status().code(), code) << response.status();
  EXPECT_TRUE(Contains(Message(response.status()), expected_words)) << response.status();
  EXPECT_FALSE(Contains(Message(response.status()), "SECRET")) << response.status();
}

TEST(TokenResponseTest, RejectsBadExpiresIn) {
  ExpectError(200, R"({"access_token":"SECRET","expires_in":-5})",
              absl::StatusCode::kInvalidArgument, "negative");
  ExpectError(200, R"({"access_token":"SECRET","expires_in":"36x"})",
              absl::StatusCode::kInvalidArgument, "expires_in");
  ExpectError(200, R"({"access_token":"SECRET","expires_in":true})",
              absl::StatusCode::kInvalidArgument, "expires_in");
}

TEST(TokenResponseTest, RejectsSuccessWithoutAccessToken) {
  ExpectError(200, R"({"token_type":"bearer","refresh_token":"SECRET"})",
              absl::StatusCode::kInvalidArgument, "no access_token");
  ExpectError(200, R"({"access_token":""})", absl::StatusCode::kInvalidArgument, "access_token");
  ExpectError(200, R"({"access_token":42})", absl::StatusCode::kInvalidArgument, "access_token");
}

TEST(TokenResponseTest, RejectsSuccessThatIsNotJsonObject) {
  ExpectError(200, "<html>SECRET</html>", absl::StatusCode::kInvalidArgument, "not valid JSON");
  ExpectError(200, "", absl::StatusCode::kInvalidArgument, "not valid JSON");
  ExpectError(200, R"(["SECRET"])", absl::StatusCode::kInvalidArgument, "not a JSON object");
  ExpectError(200, R"({"access_token":"SECRET")", absl::StatusCode::kInvalidArgument,
              "not valid JSON");
}

TEST(TokenResponseTest, OAuthErrorIsUnauthenticatedWithErrorAndDescription) {
  ExpectError(400, R"({"error":"invalid_grant","error_description":"code expired"})",
              absl::StatusCode::kUnauthenticated, "HTTP 400: invalid_grant: code expired");
  ExpectError(401, R"({"error":"invalid_client"})", absl::StatusCode::kUnauthenticated,
              "HTTP 401: invalid_client");
}

TEST(TokenResponseTest, ServerErrorsAndRateLimitAreUnavailable) {
  ExpectError(500, "Internal SECRET error", absl::StatusCode::kUnavailable, "HTTP 500");
  ExpectError(503, "", absl::StatusCode::kUnavailable, "HTTP 503");
  ExpectError(429, R"({"error":"slow_down"})", absl::StatusCode::kUnavailable,
              "HTTP 429: slow_down");
}

TEST(TokenResponseTest, OtherStatusesNameTheStatus) {
  ExpectError(404, "<html>SECRET</html>", absl::StatusCode::kFailedPrecondition, "HTTP 404");
  ExpectError(302, "", absl::StatusCode::kFailedPrecondition, "HTTP 302");
  ExpectError(403, R"({"error":"access_denied"})", absl::StatusCode::kPermissionDenied,
              "access_denied");
}

TEST(TokenResponseTest, ErrorBodyIsNeverQuotedVerbatim) {
  absl::StatusOr<TokenResponse> response =
      ParseTokenResponse(400, R"({"access_token":"SECRET","oops":"SECRET"})");
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(Message(response.status()), "token service answered HTTP 400");
}

TEST(TokenResponseTest, ErrorDescriptionIsBoundedAndPrintable) {
  const std::string body = R"({"error":"invalid_grant","error_description":"line1\r\nline2)" +
                           std::string(1000, 'x') + R"("})";
  absl::StatusOr<TokenResponse> response = ParseTokenResponse(400, body);
  ASSERT_FALSE(response.ok());
  const std::string_view message = Message(response.status());
  EXPECT_LE(message.size(), 250u);
  EXPECT_TRUE(Contains(message, "line1??line2xxx")) << message;
  for (char c : message) EXPECT_TRUE(c >= 0x20 && c < 0x7f);
}

TEST(TokenResponseTest, ErrorDescriptionQuotingATokenIsWithheld) {
  absl::StatusOr<TokenResponse> response =
      ParseTokenResponse(400, R"({"error":"bad","error_description":"token SECRET-RT-9 revoked",)"
                              R"("refresh_token":"SECRET-RT-9"})");
  ASSERT_FALSE(response.ok());
  EXPECT_FALSE(Contains(Message(response.status()), "SECRET-RT-9")) << response.status();
  EXPECT_TRUE(Contains(Message(response.status()), "HTTP 400")) << response.status();
}

TEST(TokenServiceUrlTest, DedicatedOrEmptyTypeKeepsTheUrl) {
  constexpr std::string_view kUrl = "https://provider.auth.example.com/oauth/token";
  EXPECT_EQ(*ResolveTokenServiceUrl(kUrl, "Dedicated", "t1"), kUrl);
  EXPECT_EQ(*ResolveTokenServiceUrl(kUrl, "dedicated", ""), kUrl);
  EXPECT_EQ(*ResolveTokenServiceUrl(kUrl, "", "t1"), kUrl);
  EXPECT_EQ(*ResolveTokenServiceUrl(kUrl, "Common", ""), kUrl);
  EXPECT_EQ(*ResolveTokenServiceUrl("http://127.0.0.1:8080/token", "Dedicated", "t1"),
            "http://127.0.0.1:8080/token");
}

TEST(TokenServiceUrlTest, CommonPrependsTheTenantAsANewFirstLabel) {
  EXPECT_EQ(*ResolveTokenServiceUrl("https://authentication.eu10.hana.ondemand.com/oauth/token",
                                    "Common", "tenant1"),
            "https://tenant1.authentication.eu10.hana.ondemand.com/oauth/token");
  EXPECT_EQ(*ResolveTokenServiceUrl("HTTPS://auth.example.com:8443", "common", "t-2"),
            "HTTPS://t-2.auth.example.com:8443");
  EXPECT_EQ(*ResolveTokenServiceUrl("https://u:p@example.com/x?h=a.b", "Common", "t1"),
            "https://u:p@t1.example.com/x?h=a.b");
  EXPECT_EQ(*ResolveTokenServiceUrl("https://localhost/token", "Common", "t1"),
            "https://t1.localhost/token");
}

TEST(TokenServiceUrlTest, CommonReplacesTheTenantPlaceholder) {
  EXPECT_EQ(*ResolveTokenServiceUrl("https://{tenant}.auth.example.com/oauth/token", "Common",
                                    "t1"),
            "https://t1.auth.example.com/oauth/token");
  EXPECT_EQ(*ResolveTokenServiceUrl("https://auth.example.com/{tenant}/token?z={tenant}",
                                    "Common", "t1"),
            "https://auth.example.com/t1/token?z=t1");
}

TEST(ServiceKeyUrlTest, SubscriberReplacesTheProvidersSubdomain) {
  EXPECT_EQ(*SubscriberUrlOfServiceKey(
                "https://provider.authentication.eu10.hana.ondemand.com", "tenant1"),
            "https://tenant1.authentication.eu10.hana.ondemand.com");
  EXPECT_EQ(*SubscriberUrlOfServiceKey("https://provider.auth.example.com/oauth/token", ""),
            "https://provider.auth.example.com/oauth/token")
      << "the provider itself: as is";
  absl::StatusOr<std::string> single = SubscriberUrlOfServiceKey("https://localhost/t", "t1");
  EXPECT_FALSE(single.ok()) << "no subdomain to replace";
  EXPECT_FALSE(SubscriberUrlOfServiceKey("https://10.0.0.1/t", "t1").ok());
  EXPECT_FALSE(SubscriberUrlOfServiceKey("https://a.example.com", "bad.tenant").ok());
}

void ExpectUrlError(std::string_view url, std::string_view type, std::string_view tenant,
                    std::string_view expected_words) {
  absl::StatusOr<std::string> resolved = ResolveTokenServiceUrl(url, type, tenant);
  ASSERT_FALSE(resolved.ok()) << url;
  EXPECT_EQ(resolved.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(Message(resolved.status()), expected_words)) << resolved.status();
}

TEST(TokenServiceUrlTest, RejectsUrlsThatAreNotHttp) {
  ExpectUrlError("ftp://h.example.com/token", "Dedicated", "", "http");
  ExpectUrlError("login.example.com/token", "", "", "http");
  ExpectUrlError("https:///token", "", "", "no host");
  ExpectUrlError("https://h.example.com/a b", "", "", "spaces");
}

TEST(TokenServiceUrlTest, RejectsCommonOnAnAddress) {
  ExpectUrlError("https://10.0.0.1/token", "Common", "t1", "IP address");
  ExpectUrlError("https://[::1]:8443/token", "Common", "t1", "IP address");
  ExpectUrlError("https://a.example.com/token", "Common", "bad.tenant", "DNS label");
  ExpectUrlError("https://a.example.com/token", "Shared", "t1", "tokenServiceURLType");
}

}  // namespace
}  // namespace mailring::proto
