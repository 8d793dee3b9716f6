// Destination: a MAIL destination in the SAP BTP Destination-service format.
//
// The Destination service returns every property as a JSON string ("mail.imap4.port": "143").
// ParseDestination reads such an object (as found in a standalone destinations file, or in
// `destinationConfiguration` of a Destination-service response) into typed fields, and keeps
// every property so later features can read the ones this struct does not name. Secrets
// (mail.password, clientSecret) are held as Secret.
//
// Contract: ParseDestination checks the JSON shape and the value syntax of the fields it
// types (port numbers, booleans, enums) and names the offending field in its error. Whether
// mailring can *serve* a well-formed destination (e.g. a type not supported yet) is the
// caller's decision: see control/route_config.h.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "proto/secret.h"

namespace mailring::proto {

enum class AuthenticationType {
  kNoAuthentication,
  kBasicAuthentication,
  kOAuth2ClientCredentials,
  kOAuth2RefreshToken,
  kOAuth2AuthorizationCode,
};
std::string_view AuthenticationTypeName(AuthenticationType type);

enum class ProxyType { kInternet, kOnPremise };
// mail.transport.protocol. The "s" variants speak TLS to the server from the first byte; the
// client side is plain in every case.
enum class MailProtocol { kImap4, kImap4s, kSmtp, kSmtps, kPop3, kPop3s };
enum class MailFamily { kImap, kSmtp, kPop3 };

// "imap4", "imap4s", "smtp", ...: the property value, and the middle of "mail.<key>.host".
std::string_view ProtocolKey(MailProtocol protocol);
MailFamily FamilyOf(MailProtocol protocol);
bool UsesImplicitTls(MailProtocol protocol);
// The mail server's port when the destination names none: 143, 993, 587, 465, 110, 995.
uint16_t DefaultUpstreamPort(MailProtocol protocol);
// The port SAP's Transparent Proxy gives the client Service of a destination of this protocol
// unless the CR sets one: 143, 993, 587, 465, 110, 995 (the same numbers: clients of the
// Service reach it as they would reach such a server, only in plain text).
uint16_t DefaultServicePort(MailProtocol protocol);

inline constexpr int kDefaultTokenServiceTimeoutSeconds = 10;
inline constexpr int kMaxTokenServiceConnectTimeoutSeconds = 60;
inline constexpr int kMaxTokenServiceReadTimeoutSeconds = 600;

struct Destination {
  std::string name;                 // "Name"
  std::string type;                 // "Type", "MAIL" for everything mailring serves
  AuthenticationType authentication = AuthenticationType::kNoAuthentication;
  ProxyType proxy_type = ProxyType::kInternet;
  MailProtocol protocol = MailProtocol::kImap4;  // "mail.transport.protocol"
  std::string host;                 // "mail.<protocol>.host"
  uint16_t port = 0;                // "mail.<protocol>.port", DefaultUpstreamPort() if absent
  bool login_on_behalf = true;      // "mail.<protocol>.auth" ("true" default)
  std::string user;                 // "mail.user"
  Secret password;                  // "mail.password"
  std::string token_service_url;    // "tokenServiceURL"
  std::string client_id;            // "clientId"
  Secret client_secret;             // "clientSecret"
  std::string cloud_connector_location_id;  // "CloudConnectorLocationId"
  // "tokenServiceURL.ConnectionTimeoutInSeconds" (0-60) and
  // "tokenServiceURL.SocketReadTimeoutInSeconds" (0-600), 10 when absent. 0 means "no limit of
  // its own": the HTTP client then uses the range's upper end, so that no token request waits
  // without bound (see control/btp/credential_service.cc).
  int token_service_connect_timeout_seconds = kDefaultTokenServiceTimeoutSeconds;
  int token_service_read_timeout_seconds = kDefaultTokenServiceTimeoutSeconds;
  std::map<std::string, std::string, std::less<>> properties;  // every property, verbatim

  // The property or "" when absent. Do not use for secrets in anything that is logged.
  std::string_view Property(std::string_view key) const;
};

// Parses one destination JSON object. Errors are InvalidArgument and read like
// `field "mail.imap4.port": "14x3" is not a port number (1-65535)`.
absl::StatusOr<Destination> ParseDestination(std::string_view json_object);

}  // namespace mailring::proto
