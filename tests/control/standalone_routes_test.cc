#include "control/standalone_routes.h"

#include <string>

#include "gtest/gtest.h"

namespace mailring::control {
namespace {

std::string Route(const std::string& listen, const std::string& destination_fields) {
  return R"({"listen": ")" + listen + R"(", "destination": {)" + destination_fields + "}}";
}

std::string Basic(const std::string& extra = "") {
  return R"("Name": "example-dest-imap", "Type": "MAIL",
      "Authentication": "BasicAuthentication", "mail.user": "alice",
      "mail.password": "s3cr3t-pw", "mail.transport.protocol": "imap4",
      "mail.imap4.host": "127.0.0.1", "mail.imap4.port": "143", "mail.imap4.auth": "true",
      "ProxyType": "Internet")" +
         extra;
}

std::string File(const std::string& routes) { return R"({"routes": [)" + routes + "]}"; }

std::string ErrorOf(const std::string& json) {
  absl::StatusOr<core::RouteTable> table = ParseStandaloneRoutes(json);
  EXPECT_FALSE(table.ok()) << json;
  return table.ok() ? "" : std::string(table.status().message());
}

TEST(StandaloneRoutesTest, SeedBasicDestinationIsServed) {
  absl::StatusOr<core::RouteTable> table =
      ParseStandaloneRoutes(File(Route("127.0.0.1:1143", Basic())));
  ASSERT_TRUE(table.ok()) << table.status();
  ASSERT_EQ(table->size(), 1u);
  const core::Route& route = *(*table)[0];
  EXPECT_EQ(route.listen.ToString(), "127.0.0.1:1143");
  EXPECT_EQ(route.upstream.ToString(), "127.0.0.1:143");
  EXPECT_EQ(route.destination.user, "alice");
  EXPECT_TRUE(route.destination.login_on_behalf);
  EXPECT_EQ(route.log_label, "route=127.0.0.1:1143 dest=example-dest-imap");
}

TEST(StandaloneRoutesTest, TenantIsCarried) {
  absl::StatusOr<core::RouteTable> table = ParseStandaloneRoutes(
      File(R"({"listen": "127.0.0.1:1143", "tenant": "t1", "destination": {)" + Basic() + "}}"));
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ((*table)[0]->tenant, "t1");
}

TEST(StandaloneRoutesTest, AuthFalseMeansPureRelayWithoutCredentials) {
  absl::StatusOr<core::RouteTable> table = ParseStandaloneRoutes(File(Route(
      "127.0.0.1:1143", R"("Name": "relay", "Type": "MAIL", "Authentication": "BasicAuthentication",
      "mail.imap4.host": "127.0.0.1", "mail.imap4.auth": "false")")));
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_FALSE((*table)[0]->destination.login_on_behalf);
}

TEST(StandaloneRoutesTest, Pop3sSpeaksTlsFromTheFirstByteOnItsDefaultPort) {
  absl::StatusOr<core::RouteTable> table = ParseStandaloneRoutes(File(Route(
      "127.0.0.1:1110", R"("Name": "p", "Type": "MAIL", "Authentication": "BasicAuthentication",
      "mail.user": "alice", "mail.password": "pw", "mail.transport.protocol": "pop3s",
      "mail.pop3s.host": "127.0.0.1")")));
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ((*table)[0]->tls, core::Route::Tls::kImplicit);
  EXPECT_EQ((*table)[0]->upstream.ToString(), "127.0.0.1:995");
}

TEST(StandaloneRoutesTest, Pop3StarttlsRequiredIsReadFromItsOwnKeys) {
  absl::StatusOr<core::RouteTable> table = ParseStandaloneRoutes(File(Route(
      "127.0.0.1:1110", R"("Name": "p", "Type": "MAIL", "Authentication": "BasicAuthentication",
      "mail.user": "alice", "mail.password": "pw", "mail.transport.protocol": "pop3",
      "mail.pop3.host": "127.0.0.1", "mail.pop3.starttls.required": "true")")));
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ((*table)[0]->tls, core::Route::Tls::kStartTlsRequired);
  EXPECT_EQ((*table)[0]->upstream.ToString(), "127.0.0.1:110");
}

TEST(StandaloneRoutesTest, ErrorsNameRouteAndField) {
  EXPECT_NE(ErrorOf("{").find("not valid JSON"), std::string::npos);
  EXPECT_NE(ErrorOf(R"({"routes": []})").find("empty"), std::string::npos);
  EXPECT_NE(ErrorOf(R"({"nope": 1})").find("\"routes\""), std::string::npos);

  const std::string bad_listen = ErrorOf(File(Route("127.0.0.1", Basic())));
  EXPECT_NE(bad_listen.find("route 0"), std::string::npos) << bad_listen;
  EXPECT_NE(bad_listen.find("\"listen\""), std::string::npos) << bad_listen;

  const std::string duplicate =
      ErrorOf(File(Route("127.0.0.1:1143", Basic()) + "," + Route("127.0.0.1:1143", Basic())));
  EXPECT_NE(duplicate.find("route 1 (listen 127.0.0.1:1143)"), std::string::npos) << duplicate;
  EXPECT_NE(duplicate.find("already used by route 0"), std::string::npos) << duplicate;

  const std::string bad_port = ErrorOf(File(Route(
      "127.0.0.1:1143", R"("Name": "d", "Type": "MAIL", "Authentication": "BasicAuthentication",
      "mail.user": "u", "mail.password": "p", "mail.imap4.host": "h", "mail.imap4.port": "14x3")")));
  EXPECT_NE(bad_port.find("mail.imap4.port"), std::string::npos) << bad_port;

  const std::string no_host = ErrorOf(File(Route(
      "127.0.0.1:1143", R"("Name": "d", "Type": "MAIL", "Authentication": "BasicAuthentication",
      "mail.user": "u", "mail.password": "p")")));
  EXPECT_NE(no_host.find("mail.imap4.host"), std::string::npos) << no_host;

  const std::string unresolvable = ErrorOf(File(Route(
      "127.0.0.1:1143", R"("Name": "d", "Type": "MAIL", "Authentication": "BasicAuthentication",
      "mail.user": "u", "mail.password": "p", "mail.imap4.host": "no-such-host.invalid")")));
  EXPECT_NE(unresolvable.find("mail.imap4.host"), std::string::npos) << unresolvable;

  const std::string no_password = ErrorOf(File(Route(
      "127.0.0.1:1143", R"("Name": "d", "Type": "MAIL", "Authentication": "BasicAuthentication",
      "mail.user": "u", "mail.imap4.host": "127.0.0.1")")));
  EXPECT_NE(no_password.find("mail.password"), std::string::npos) << no_password;
}

TEST(StandaloneRoutesTest, TlsModesFollowTheDestination) {
  absl::StatusOr<core::RouteTable> table = ParseStandaloneRoutes(File(Route(
      "127.0.0.1:1143", R"("Name": "d", "Type": "MAIL", "Authentication": "BasicAuthentication",
      "mail.user": "u", "mail.password": "p", "mail.transport.protocol": "imap4s",
      "mail.imap4s.host": "127.0.0.1")")));
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ((*table)[0]->tls, core::Route::Tls::kImplicit);
  EXPECT_EQ((*table)[0]->upstream.port(), 993);
  EXPECT_TRUE((*table)[0]->tls_verify);

  table = ParseStandaloneRoutes(File(Route("127.0.0.1:1143",
                                           Basic(R"(, "mail.imap4.starttls.required": "true")"))));
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ((*table)[0]->tls, core::Route::Tls::kStartTlsRequired);

  table = ParseStandaloneRoutes(File(Route("127.0.0.1:1143",
                                           Basic(R"(, "mail.imap4.starttls.enable": "true")"))));
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ((*table)[0]->tls, core::Route::Tls::kStartTlsIfOffered);

  table = ParseStandaloneRoutes(File(Route("127.0.0.1:1143", Basic())));
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ((*table)[0]->tls, core::Route::Tls::kNone);
  RouteOptions opportunistic;
  opportunistic.starttls_opportunistic = true;
  table = ParseStandaloneRoutes(File(Route("127.0.0.1:1143", Basic())), opportunistic);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ((*table)[0]->tls, core::Route::Tls::kStartTlsIfOffered);
}

TEST(StandaloneRoutesTest, SslTrustOptsOutOfVerification) {
  for (const char* trust : {R"("mail.imap4s.ssl.trust": "*")",
                            R"("mail.imap4s.ssl.trust": "other.example 127.0.0.1")",
                            R"("mail.imap4s.ssl.checkserveridentity": "false")"}) {
    absl::StatusOr<core::RouteTable> table = ParseStandaloneRoutes(File(Route(
        "127.0.0.1:1143",
        std::string(R"("Name": "d", "Type": "MAIL", "Authentication": "BasicAuthentication",
      "mail.user": "u", "mail.password": "p", "mail.transport.protocol": "imap4s",
      "mail.imap4s.host": "127.0.0.1", )") + trust)));
    ASSERT_TRUE(table.ok()) << table.status();
    EXPECT_FALSE((*table)[0]->tls_verify) << trust;
  }
}

TEST(StandaloneRoutesTest, RelayOnlyWithStartTlsIsRefused) {
  const std::string error = ErrorOf(File(Route(
      "127.0.0.1:1143", R"("Name": "d", "Type": "MAIL", "Authentication": "BasicAuthentication",
      "mail.imap4.host": "127.0.0.1", "mail.imap4.auth": "false",
      "mail.imap4.starttls.required": "true")")));
  EXPECT_NE(error.find("STARTTLS"), std::string::npos) << error;
}

TEST(StandaloneRoutesTest, OnPremiseNeedsTheConnectivityProxyAndKey) {
  const std::string on_premise = R"("Name": "d", "Type": "MAIL",
      "Authentication": "BasicAuthentication", "mail.user": "u", "mail.password": "p",
      "mail.imap4.host": "virtual-imap", "ProxyType": "OnPremise",
      "CloudConnectorLocationId": "loc1")";
  const std::string no_proxy = ErrorOf(File(Route("127.0.0.1:1143", on_premise)));
  EXPECT_NE(no_proxy.find("--connectivity-proxy"), std::string::npos) << no_proxy;
  RouteOptions options;
  options.connectivity_proxy = *core::SocketAddress::ParseNumeric("127.0.0.1:20004");
  const std::string no_key = ErrorOf(File(Route("127.0.0.1:1143", on_premise)));
  absl::StatusOr<core::RouteTable> missing_key =
      ParseStandaloneRoutes(File(Route("127.0.0.1:1143", on_premise)), options);
  ASSERT_FALSE(missing_key.ok());
  EXPECT_NE(missing_key.status().message().find("--connectivity-service-key"),
            absl::string_view::npos);
  options.has_connectivity_key = true;
  // The virtual host is not resolved: only the proxy knows it.
  absl::StatusOr<core::RouteTable> table =
      ParseStandaloneRoutes(File(Route("127.0.0.1:1143", on_premise)), options);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_TRUE((*table)[0]->via_connectivity_proxy);
  EXPECT_EQ((*table)[0]->upstream.ToString(), "127.0.0.1:20004");
  EXPECT_EQ((*table)[0]->destination.cloud_connector_location_id, "loc1");
}

TEST(StandaloneRoutesTest, OAuth2DestinationsAreServedWhenComplete) {
  absl::StatusOr<core::RouteTable> table = ParseStandaloneRoutes(File(Route(
      "127.0.0.1:1143", R"("Name": "d", "Type": "MAIL", "Authentication": "OAuth2ClientCredentials",
      "mail.user": "u", "mail.imap4.host": "127.0.0.1", "tokenServiceURL": "http://127.0.0.1:9/t",
      "clientId": "c", "clientSecret": "cs", "tokenServiceURLType": "Dedicated")")));
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ((*table)[0]->destination.authentication,
            proto::AuthenticationType::kOAuth2ClientCredentials);
  // Refresh-token destinations need no mail.user (the client's user= is used) nor a secret.
  table = ParseStandaloneRoutes(File(Route(
      "127.0.0.1:1143", R"("Name": "d", "Type": "MAIL", "Authentication": "OAuth2RefreshToken",
      "mail.imap4.host": "127.0.0.1", "tokenServiceURL": "http://127.0.0.1:9/t",
      "clientId": "c")")));
  ASSERT_TRUE(table.ok()) << table.status();
}

TEST(StandaloneRoutesTest, IncompleteOAuth2DestinationsNameTheMissingField) {
  const std::string no_url = ErrorOf(File(Route(
      "127.0.0.1:1143", R"("Name": "d", "Type": "MAIL", "Authentication": "OAuth2ClientCredentials",
      "mail.user": "u", "mail.imap4.host": "127.0.0.1", "clientId": "c", "clientSecret": "cs")")));
  EXPECT_NE(no_url.find("tokenServiceURL"), std::string::npos) << no_url;
  const std::string bad_url = ErrorOf(File(Route(
      "127.0.0.1:1143", R"("Name": "d", "Type": "MAIL", "Authentication": "OAuth2RefreshToken",
      "mail.imap4.host": "127.0.0.1", "tokenServiceURL": "ftp://x", "clientId": "c")")));
  EXPECT_NE(bad_url.find("tokenServiceURL"), std::string::npos) << bad_url;
  const std::string no_secret = ErrorOf(File(Route(
      "127.0.0.1:1143", R"("Name": "d", "Type": "MAIL", "Authentication": "OAuth2ClientCredentials",
      "mail.user": "u", "mail.imap4.host": "127.0.0.1", "tokenServiceURL": "http://t/x",
      "clientId": "c")")));
  EXPECT_NE(no_secret.find("clientSecret"), std::string::npos) << no_secret;
  const std::string no_user = ErrorOf(File(Route(
      "127.0.0.1:1143", R"("Name": "d", "Type": "MAIL", "Authentication": "OAuth2ClientCredentials",
      "mail.imap4.host": "127.0.0.1", "tokenServiceURL": "http://t/x", "clientId": "c",
      "clientSecret": "cs")")));
  EXPECT_NE(no_user.find("mail.user"), std::string::npos) << no_user;
}

TEST(StandaloneRoutesTest, ErrorsNeverContainThePassword) {
  const std::string error = ErrorOf(File(Route("127.0.0.1:1143", Basic(R"(, "Type": 5)"))));
  EXPECT_EQ(error.find("s3cr3t-pw"), std::string::npos) << error;
}

}  // namespace
}  // namespace mailring::control
