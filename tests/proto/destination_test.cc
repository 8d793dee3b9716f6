#include "proto/destination.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "proto/absl_string_view.h"

namespace mailring::proto {
namespace {

// The seed's "OnPremise IMAP Mail Destination with BasicAuthentication", with the placeholders
// filled in.
constexpr std::string_view kBasicOnPremise = R"({
  "Name": "example-dest-imap",
  "Type": "MAIL",
  "Authentication": "BasicAuthentication",
  "mail.user": "alice",
  "mail.password": "s3cr3t-P4ss",
  "mail.transport.protocol": "imap4",
  "mail.imap4.host": "imap4",
  "mail.imap4.auth": "true",
  "mail.imap4.port": "143",
  "ProxyType": "OnPremise",
  "CloudConnectorLocationId": "loc1"
})";

// The seed's "Internet ... OAuth2RefreshToken" example.
constexpr std::string_view kRefreshTokenInternet = R"({
  "Name": "example-dest-imap",
  "Type": "MAIL",
  "Authentication": "OAuth2RefreshToken",
  "mail.user": "bob@example.com",
  "mail.transport.protocol": "imap4",
  "mail.imap4.host": "imap.example.com",
  "mail.imap4.auth": "true",
  "mail.imap4.port": "143",
  "ProxyType": "Internet",
  "tokenServiceURL": "https://login.example.com/oauth/token",
  "clientId": "client-1",
  "clientSecret": "very-secret-client-secret",
  "tokenServiceURLType": "Dedicated"
})";

std::string Replace(std::string_view json, std::string_view from, std::string_view to) {
  std::string out = absl::StrReplaceAll(AsAbsl(json), {{AsAbsl(from), AsAbsl(to)}});
  EXPECT_NE(out, json) << "replacement of " << from << " did not apply";
  return out;
}

// Expects InvalidArgument whose message names `field`.
void ExpectFieldError(const std::string& json, std::string_view field) {
  absl::StatusOr<Destination> destination = ParseDestination(json);
  ASSERT_FALSE(destination.ok()) << json;
  EXPECT_EQ(destination.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(destination.status().message(),
                                absl::StrCat("field \"", AsAbsl(field), "\"")))
      << destination.status();
}

TEST(DestinationTest, ParsesSeedBasicOnPremise) {
  absl::StatusOr<Destination> destination = ParseDestination(kBasicOnPremise);
  ASSERT_TRUE(destination.ok()) << destination.status();
  EXPECT_EQ(destination->name, "example-dest-imap");
  EXPECT_EQ(destination->type, "MAIL");
  EXPECT_EQ(destination->authentication, AuthenticationType::kBasicAuthentication);
  EXPECT_EQ(destination->proxy_type, ProxyType::kOnPremise);
  EXPECT_EQ(destination->protocol, MailProtocol::kImap4);
  EXPECT_EQ(destination->host, "imap4");
  EXPECT_EQ(destination->port, 143);
  EXPECT_TRUE(destination->login_on_behalf);
  EXPECT_EQ(destination->user, "alice");
  EXPECT_EQ(destination->password.Reveal(), "s3cr3t-P4ss");
  EXPECT_EQ(destination->cloud_connector_location_id, "loc1");
  EXPECT_EQ(destination->Property("mail.imap4.auth"), "true");
  EXPECT_EQ(destination->Property("absent"), "");
}

TEST(DestinationTest, ParsesSeedRefreshTokenInternet) {
  absl::StatusOr<Destination> destination = ParseDestination(kRefreshTokenInternet);
  ASSERT_TRUE(destination.ok()) << destination.status();
  EXPECT_EQ(destination->authentication, AuthenticationType::kOAuth2RefreshToken);
  EXPECT_EQ(destination->proxy_type, ProxyType::kInternet);
  EXPECT_EQ(destination->host, "imap.example.com");
  EXPECT_EQ(destination->token_service_url, "https://login.example.com/oauth/token");
  EXPECT_EQ(destination->client_id, "client-1");
  EXPECT_EQ(destination->client_secret.Reveal(), "very-secret-client-secret");
  EXPECT_TRUE(destination->password.empty());
  EXPECT_EQ(destination->Property("tokenServiceURLType"), "Dedicated");
}

TEST(DestinationTest, ParsesEveryAuthenticationType) {
  for (AuthenticationType type :
       {AuthenticationType::kNoAuthentication, AuthenticationType::kBasicAuthentication,
        AuthenticationType::kOAuth2ClientCredentials, AuthenticationType::kOAuth2RefreshToken,
        AuthenticationType::kOAuth2AuthorizationCode}) {
    const std::string json =
        absl::StrCat(R"({"Name": "d", "Type": "MAIL", "mail.imap4.host": "h", "Authentication": ")",
                     AsAbsl(AuthenticationTypeName(type)), "\"}");
    absl::StatusOr<Destination> destination = ParseDestination(json);
    ASSERT_TRUE(destination.ok()) << destination.status();
    EXPECT_EQ(destination->authentication, type);
  }
}

TEST(DestinationTest, DefaultsForOptionalFields) {
  absl::StatusOr<Destination> destination =
      ParseDestination(R"({"Name": "d", "Type": "MAIL", "mail.imap4.host": "h"})");
  ASSERT_TRUE(destination.ok()) << destination.status();
  EXPECT_EQ(destination->authentication, AuthenticationType::kNoAuthentication);
  EXPECT_EQ(destination->proxy_type, ProxyType::kInternet);
  EXPECT_EQ(destination->protocol, MailProtocol::kImap4);
  EXPECT_EQ(destination->port, 143);
  EXPECT_TRUE(destination->login_on_behalf);
  EXPECT_EQ(destination->token_service_connect_timeout_seconds, 10);
  EXPECT_EQ(destination->token_service_read_timeout_seconds, 10);
}

std::string WithTokenServiceTimeouts(std::string_view connect, std::string_view read) {
  return Replace(kRefreshTokenInternet, "\"tokenServiceURLType\"",
                 absl::StrCat("\"tokenServiceURL.ConnectionTimeoutInSeconds\": \"", AsAbsl(connect),
                              "\", \"tokenServiceURL.SocketReadTimeoutInSeconds\": \"",
                              AsAbsl(read), "\", \"tokenServiceURLType\""));
}

TEST(DestinationTest, ReadsTokenServiceTimeoutsWithinTheirRanges) {
  for (const auto& [connect, read] :
       {std::pair{0, 0}, std::pair{1, 1}, std::pair{60, 600}, std::pair{25, 30}}) {
    absl::StatusOr<Destination> destination =
        ParseDestination(WithTokenServiceTimeouts(absl::StrCat(connect), absl::StrCat(read)));
    ASSERT_TRUE(destination.ok()) << destination.status();
    EXPECT_EQ(destination->token_service_connect_timeout_seconds, connect);
    EXPECT_EQ(destination->token_service_read_timeout_seconds, read);
  }
  absl::StatusOr<Destination> padded = ParseDestination(WithTokenServiceTimeouts("007", "0600"));
  ASSERT_TRUE(padded.ok()) << padded.status();
  EXPECT_EQ(padded->token_service_connect_timeout_seconds, 7);
  EXPECT_EQ(padded->token_service_read_timeout_seconds, 600);
}

TEST(DestinationTest, BadTokenServiceTimeoutsAreNamedWithTheirRange) {
  for (std::string_view bad : {"61", "-1", "", " 5", "5s", "1.5", "99999", "abc"}) {
    absl::StatusOr<Destination> destination =
        ParseDestination(WithTokenServiceTimeouts(bad, "10"));
    ASSERT_FALSE(destination.ok()) << bad;
    EXPECT_EQ(destination.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(
        destination.status().message(),
        absl::StrCat("field \"tokenServiceURL.ConnectionTimeoutInSeconds\": \"", AsAbsl(bad),
                     "\" is not a whole number of seconds from 0 to 60")))
        << destination.status();
  }
  for (std::string_view bad : {"601", "1000", "ten"}) {
    absl::StatusOr<Destination> destination =
        ParseDestination(WithTokenServiceTimeouts("10", bad));
    ASSERT_FALSE(destination.ok()) << bad;
    EXPECT_TRUE(absl::StrContains(destination.status().message(),
                                  "field \"tokenServiceURL.SocketReadTimeoutInSeconds\""))
        << destination.status();
    EXPECT_TRUE(absl::StrContains(destination.status().message(), "from 0 to 600"))
        << destination.status();
  }
}

TEST(DestinationTest, Imap4sReadsItsOwnKeysAndDefaultsTo993) {
  absl::StatusOr<Destination> destination = ParseDestination(
      R"({"Name": "d", "Type": "MAIL", "mail.transport.protocol": "imap4s",
          "mail.imap4.host": "plain", "mail.imap4s.host": "tls", "mail.imap4s.auth": "FALSE"})");
  ASSERT_TRUE(destination.ok()) << destination.status();
  EXPECT_EQ(destination->protocol, MailProtocol::kImap4s);
  EXPECT_EQ(destination->host, "tls");
  EXPECT_EQ(destination->port, 993);
  EXPECT_FALSE(destination->login_on_behalf);
}

TEST(DestinationTest, Imap4sWithoutItsHostNamesImap4sHost) {
  ExpectFieldError(R"({"Name": "d", "Type": "MAIL", "mail.transport.protocol": "imap4s",
                       "mail.imap4.host": "plain"})",
                   "mail.imap4s.host");
}

// SAP's MAIL family: each protocol reads its own "mail.<protocol>." keys and has its default
// port (SMTP submission 587, SMTPS 465, POP3 110, POP3S 995).
TEST(DestinationTest, SmtpAndPop3ReadTheirOwnKeysWithTheirDefaultPorts) {
  struct Case {
    std::string_view key;
    MailProtocol protocol;
    MailFamily family;
    bool implicit_tls;
    uint16_t port;
  };
  for (const Case& c : {Case{"smtp", MailProtocol::kSmtp, MailFamily::kSmtp, false, 587},
                        Case{"smtps", MailProtocol::kSmtps, MailFamily::kSmtp, true, 465},
                        Case{"pop3", MailProtocol::kPop3, MailFamily::kPop3, false, 110},
                        Case{"pop3s", MailProtocol::kPop3s, MailFamily::kPop3, true, 995},
                        Case{"imap4", MailProtocol::kImap4, MailFamily::kImap, false, 143},
                        Case{"imap4s", MailProtocol::kImap4s, MailFamily::kImap, true, 993}}) {
    const std::string json = absl::StrCat(
        R"({"Name":"d","Type":"MAIL","Authentication":"BasicAuthentication","mail.user":"u",)",
        R"("mail.password":"p","mail.transport.protocol":")", AsAbsl(c.key), R"(","mail.)",
        AsAbsl(c.key), R"(.host":"mail.example.org"})");
    absl::StatusOr<Destination> destination = ParseDestination(json);
    ASSERT_TRUE(destination.ok()) << c.key << ": " << destination.status();
    EXPECT_EQ(destination->protocol, c.protocol) << c.key;
    EXPECT_EQ(ProtocolKey(destination->protocol), c.key);
    EXPECT_EQ(FamilyOf(c.protocol), c.family) << c.key;
    EXPECT_EQ(UsesImplicitTls(c.protocol), c.implicit_tls) << c.key;
    EXPECT_EQ(destination->host, "mail.example.org") << c.key;
    EXPECT_EQ(destination->port, c.port) << c.key;
    EXPECT_EQ(DefaultServicePort(c.protocol), c.port) << c.key;
  }
}

TEST(DestinationTest, UnknownProtocolListsTheSixKnownOnes) {
  absl::StatusOr<Destination> destination =
      ParseDestination(R"({"Name":"d","Type":"MAIL","mail.transport.protocol":"nntp"})");
  ASSERT_FALSE(destination.ok());
  EXPECT_TRUE(absl::StrContains(destination.status().message(),
                                "is not one of imap4, imap4s, smtp, smtps, pop3, pop3s"))
      << destination.status();
}

TEST(DestinationTest, PortBoundaries) {
  for (std::string_view port : {"1", "65535", "00993"}) {
    absl::StatusOr<Destination> destination = ParseDestination(
        Replace(kBasicOnPremise, "\"143\"", absl::StrCat("\"", AsAbsl(port), "\"")));
    ASSERT_TRUE(destination.ok()) << port << ": " << destination.status();
  }
}

TEST(DestinationTest, BadPortIsNamedWithItsValue) {
  absl::StatusOr<Destination> destination =
      ParseDestination(Replace(kBasicOnPremise, "\"143\"", "\"14x3\""));
  ASSERT_FALSE(destination.ok());
  EXPECT_EQ(destination.status().message(),
            "field \"mail.imap4.port\": \"14x3\" is not a port number (1-65535)");
  for (std::string_view port : {"0", "65536", "", "-1", "+143", " 143", "1430000", "99999"}) {
    ExpectFieldError(Replace(kBasicOnPremise, "\"143\"", absl::StrCat("\"", AsAbsl(port), "\"")),
                     "mail.imap4.port");
  }
}

TEST(DestinationTest, EachBadFieldIsNamed) {
  ExpectFieldError(Replace(kBasicOnPremise, "\"Name\": \"example-dest-imap\",", ""), "Name");
  ExpectFieldError(Replace(kBasicOnPremise, "\"example-dest-imap\"", "\"\""), "Name");
  ExpectFieldError(Replace(kBasicOnPremise, "\"Type\": \"MAIL\",", ""), "Type");
  ExpectFieldError(Replace(kBasicOnPremise, "\"BasicAuthentication\"", "\"Basic\""),
                   "Authentication");
  ExpectFieldError(Replace(kBasicOnPremise, "\"OnPremise\"", "\"Intranet\""), "ProxyType");
  ExpectFieldError(Replace(kBasicOnPremise, "\"imap4\",\n  \"mail.imap4.host\"",
                           "\"nntp\",\n  \"mail.imap4.host\""),
                   "mail.transport.protocol");
  ExpectFieldError(Replace(kBasicOnPremise, "\"mail.imap4.host\": \"imap4\",", ""),
                   "mail.imap4.host");
  ExpectFieldError(
      Replace(kBasicOnPremise, "\"mail.imap4.host\": \"imap4\"", "\"mail.imap4.host\": \"\""),
      "mail.imap4.host");
  ExpectFieldError(Replace(kBasicOnPremise, "\"true\"", "\"yes\""), "mail.imap4.auth");
}

TEST(DestinationTest, AuthenticationErrorListsAllowedValues) {
  absl::StatusOr<Destination> destination =
      ParseDestination(Replace(kBasicOnPremise, "\"BasicAuthentication\"", "\"SAML\""));
  ASSERT_FALSE(destination.ok());
  EXPECT_EQ(destination.status().message(),
            "field \"Authentication\": \"SAML\" is not one of NoAuthentication, "
            "BasicAuthentication, OAuth2ClientCredentials, OAuth2RefreshToken, "
            "OAuth2AuthorizationCode");
}

TEST(DestinationTest, NonStringValueIsNamed) {
  ExpectFieldError(Replace(kBasicOnPremise, "\"143\"", "143"), "mail.imap4.port");
  ExpectFieldError(Replace(kBasicOnPremise, "\"true\"", "true"), "mail.imap4.auth");
  ExpectFieldError(Replace(kBasicOnPremise, "\"loc1\"", "{\"a\": \"b\"}"),
                   "CloudConnectorLocationId");
  ExpectFieldError(Replace(kBasicOnPremise, "\"alice\"", "null"), "mail.user");
}

TEST(DestinationTest, DuplicateKeyIsNamed) {
  ExpectFieldError(
      Replace(kBasicOnPremise, "\"Type\": \"MAIL\",", "\"Type\": \"MAIL\", \"Type\": \"HTTP\","),
      "Type");
}

TEST(DestinationTest, NotJsonOrNotAnObjectIsInvalidArgument) {
  for (std::string_view json : {"", "{", "[]", "\"MAIL\"", "{\"Name\": \"x\",}", "nul"}) {
    absl::StatusOr<Destination> destination = ParseDestination(json);
    ASSERT_FALSE(destination.ok()) << json;
    EXPECT_EQ(destination.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(DestinationTest, SecretsNeverAppearInErrors) {
  const std::string password = "s3cr3t-P4ss";
  const std::string client_secret = "very-secret-client-secret";
  // Every error a destination carrying secrets can produce, including secrets in the wrong
  // type and secret values put where a typed value belongs.
  const std::vector<std::string> bad = {
      Replace(kBasicOnPremise, "\"143\"", "\"14x3\""),
      Replace(kBasicOnPremise, "\"imap4\",\n  \"mail.imap4.host\": \"imap4\"",
              "\"imap4\",\n  \"mail.imap4.host\": \"\""),
      Replace(kBasicOnPremise, "\"s3cr3t-P4ss\"", "[\"s3cr3t-P4ss\"]"),
      Replace(kRefreshTokenInternet, "\"very-secret-client-secret\"",
              "{\"v\": \"very-secret-client-secret\"}"),
      Replace(kBasicOnPremise, "\"Type\": \"MAIL\",", ""),
      Replace(kBasicOnPremise, "\"Type\": \"MAIL\",",
              "\"Type\": \"MAIL\", \"mail.password\": \"s3cr3t-P4ss\","),
      Replace(kBasicOnPremise, "}", ",}"),
      Replace(kRefreshTokenInternet, "}", "x"),
  };
  for (const std::string& json : bad) {
    absl::StatusOr<Destination> destination = ParseDestination(json);
    ASSERT_FALSE(destination.ok()) << json;
    EXPECT_FALSE(absl::StrContains(destination.status().ToString(), password)) << json;
    EXPECT_FALSE(absl::StrContains(destination.status().ToString(), client_secret)) << json;
  }
}

TEST(DestinationTest, EchoedValuesAreEscapedAndTruncated) {
  absl::StatusOr<Destination> destination =
      ParseDestination(Replace(kBasicOnPremise, "\"143\"", "\"1\\r\\n* OK forged\""));
  ASSERT_FALSE(destination.ok());
  EXPECT_FALSE(absl::StrContains(destination.status().message(), "\n"));
  const std::string long_value(500, 'x');
  destination = ParseDestination(
      Replace(kBasicOnPremise, "\"OnPremise\"", absl::StrCat("\"", long_value, "\"")));
  ASSERT_FALSE(destination.ok());
  EXPECT_LT(destination.status().message().size(), 200u);
  // Escaping may not lengthen the echo either: 500 control bytes still give a short text.
  destination = ParseDestination(
      Replace(kBasicOnPremise, "\"OnPremise\"", absl::StrCat("\"", std::string(500, '\x01'), "\"")));
  ASSERT_FALSE(destination.ok());
  EXPECT_LT(destination.status().message().size(), 200u) << destination.status();
}

TEST(DestinationTest, SecretsAreRedactedWhenPrinted) {
  absl::StatusOr<Destination> destination = ParseDestination(kRefreshTokenInternet);
  ASSERT_TRUE(destination.ok());
  EXPECT_EQ(absl::StrCat(destination->client_secret), "<redacted>");
}

}  // namespace
}  // namespace mailring::proto
