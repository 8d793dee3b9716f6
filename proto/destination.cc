// ParseDestination: one pass over the JSON object (simdjson DOM, error codes only), then typed
// reads of the properties mailring acts on.
//
// Error messages name the field and echo the offending value only for fields whose values are
// not sensitive; anything whose key mentions a password, secret or token is never echoed, and
// echoed values are escaped and truncated so a stray control byte cannot forge a log line.
#include "proto/destination.h"

#include <array>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proto/absl_string_view.h"
#include "simdjson.h"

namespace mailring::proto {
namespace {

constexpr size_t kMaxEchoedBytes = 64;

constexpr std::array<std::pair<AuthenticationType, std::string_view>, 5> kAuthenticationNames = {{
    {AuthenticationType::kNoAuthentication, "NoAuthentication"},
    {AuthenticationType::kBasicAuthentication, "BasicAuthentication"},
    {AuthenticationType::kOAuth2ClientCredentials, "OAuth2ClientCredentials"},
    {AuthenticationType::kOAuth2RefreshToken, "OAuth2RefreshToken"},
    {AuthenticationType::kOAuth2AuthorizationCode, "OAuth2AuthorizationCode"},
}};

bool IsSensitiveKey(std::string_view key) {
  const std::string lower = absl::AsciiStrToLower(AsAbsl(key));
  return absl::StrContains(lower, "password") || absl::StrContains(lower, "secret") ||
         absl::StrContains(lower, "token");
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return absl::EqualsIgnoreCase(AsAbsl(a), AsAbsl(b));
}

// At most kMaxEchoedBytes characters *after* escaping (a byte may take four: "\\x01"), then
// "..." when cut, so that no error text grows with its input.
std::string Escaped(std::string_view text) {
  std::string escaped;
  for (size_t i = 0; i < text.size(); ++i) {
    const std::string one = absl::CHexEscape(AsAbsl(text.substr(i, 1)));
    if (escaped.size() + one.size() > kMaxEchoedBytes) return absl::StrCat(escaped, "...");
    escaped += one;
  }
  return escaped;
}

// `field "<key>": <problem>`.
absl::Status FieldError(std::string_view key, std::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("field \"", Escaped(key), "\": ", AsAbsl(problem)));
}

// `field "<key>": "<value>" <problem>`, with the value withheld for sensitive keys.
absl::Status FieldValueError(std::string_view key, std::string_view value,
                             std::string_view problem) {
  const std::string shown =
      IsSensitiveKey(key) ? std::string("<redacted>") : absl::StrCat("\"", Escaped(value), "\"");
  return FieldError(key, absl::StrCat(shown, " ", AsAbsl(problem)));
}

class Properties {
 public:
  explicit Properties(const std::map<std::string, std::string, std::less<>>& map) : map_(map) {}

  const std::string* Find(std::string_view key) const {
    auto it = map_.find(key);
    return it == map_.end() ? nullptr : &it->second;
  }
  std::string Get(std::string_view key) const {
    const std::string* value = Find(key);
    return value == nullptr ? std::string() : *value;
  }

 private:
  const std::map<std::string, std::string, std::less<>>& map_;
};

absl::StatusOr<std::string> Required(const Properties& properties, std::string_view key) {
  const std::string* value = properties.Find(key);
  if (value == nullptr || value->empty()) return FieldError(key, "is required");
  return *value;
}

absl::StatusOr<AuthenticationType> ParseAuthentication(const Properties& properties) {
  constexpr std::string_view kKey = "Authentication";
  const std::string* value = properties.Find(kKey);
  // Absent means no authentication, as in the Destination service itself.
  if (value == nullptr) return AuthenticationType::kNoAuthentication;
  std::vector<absl::string_view> allowed;
  for (const auto& [type, name] : kAuthenticationNames) {
    if (EqualsIgnoreCase(*value, name)) return type;
    allowed.push_back(AsAbsl(name));
  }
  return FieldValueError(kKey, *value,
                         absl::StrCat("is not one of ", absl::StrJoin(allowed, ", ")));
}

absl::StatusOr<ProxyType> ParseProxyType(const Properties& properties) {
  constexpr std::string_view kKey = "ProxyType";
  const std::string* value = properties.Find(kKey);
  if (value == nullptr || EqualsIgnoreCase(*value, "Internet")) return ProxyType::kInternet;
  if (EqualsIgnoreCase(*value, "OnPremise")) return ProxyType::kOnPremise;
  return FieldValueError(kKey, *value, "is not one of Internet, OnPremise");
}

constexpr MailProtocol kProtocols[] = {MailProtocol::kImap4, MailProtocol::kImap4s,
                                       MailProtocol::kSmtp,  MailProtocol::kSmtps,
                                       MailProtocol::kPop3,  MailProtocol::kPop3s};

absl::StatusOr<MailProtocol> ParseProtocol(const Properties& properties) {
  constexpr std::string_view kKey = "mail.transport.protocol";
  const std::string* value = properties.Find(kKey);
  if (value == nullptr) return MailProtocol::kImap4;
  for (MailProtocol protocol : kProtocols) {
    if (EqualsIgnoreCase(*value, ProtocolKey(protocol))) return protocol;
  }
  return FieldValueError(kKey, *value, "is not one of imap4, imap4s, smtp, smtps, pop3, pop3s");
}

// Digits only (no sign, no spaces), 1-65535; leading zeros are harmless.
absl::StatusOr<uint16_t> ParsePort(std::string_view key, std::string_view value) {
  uint32_t port = 0;
  bool ok = !value.empty() && value.size() <= 5;
  for (char c : value) {
    if (!ok) break;
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      ok = false;
      break;
    }
    port = port * 10 + static_cast<uint32_t>(c - '0');
  }
  if (!ok || port == 0 || port > 65535) {
    return FieldValueError(key, value, "is not a port number (1-65535)");
  }
  return static_cast<uint16_t>(port);
}

// Whole seconds, digits only, within [0, max]; absent means `default_seconds`.
absl::StatusOr<int> ParseSeconds(const Properties& properties, std::string_view key, int max,
                                 int default_seconds) {
  const std::string* value = properties.Find(key);
  if (value == nullptr) return default_seconds;
  int seconds = 0;
  bool ok = !value->empty() && value->size() <= 4;
  for (char c : *value) {
    if (!ok) break;
    ok = absl::ascii_isdigit(static_cast<unsigned char>(c));
    seconds = seconds * 10 + (c - '0');
  }
  if (!ok || seconds > max) {
    // Echoed although the key says "token": these values are numbers, never secrets.
    return FieldError(key, absl::StrCat("\"", Escaped(*value),
                                        "\" is not a whole number of seconds from 0 to ", max));
  }
  return seconds;
}

absl::StatusOr<bool> ParseBool(std::string_view key, std::string_view value) {
  if (EqualsIgnoreCase(value, "true")) return true;
  if (EqualsIgnoreCase(value, "false")) return false;
  return FieldValueError(key, value, "is not \"true\" or \"false\"");
}

// Reads the JSON object into `properties`; every value must be a string, keys must be unique.
absl::Status ReadProperties(std::string_view json,
                            std::map<std::string, std::string, std::less<>>* properties) {
  simdjson::dom::parser parser;
  simdjson::dom::element document;
  if (auto error = parser.parse(json.data(), json.size()).get(document); error) {
    return absl::InvalidArgumentError(
        absl::StrCat("destination is not valid JSON: ", simdjson::error_message(error)));
  }
  simdjson::dom::object object;
  if (document.get_object().get(object) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError("destination must be a JSON object");
  }
  for (simdjson::dom::key_value_pair field : object) {
    std::string_view value;
    if (field.value.get_string().get(value) != simdjson::SUCCESS) {
      return FieldError(field.key, "value must be a JSON string");
    }
    if (!properties->emplace(std::string(field.key), std::string(value)).second) {
      return FieldError(field.key, "appears more than once");
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view AuthenticationTypeName(AuthenticationType type) {
  for (const auto& [candidate, name] : kAuthenticationNames) {
    if (candidate == type) return name;
  }
  return "UnknownAuthentication";
}

std::string_view ProtocolKey(MailProtocol protocol) {
  switch (protocol) {
    case MailProtocol::kImap4:
      return "imap4";
    case MailProtocol::kImap4s:
      return "imap4s";
    case MailProtocol::kSmtp:
      return "smtp";
    case MailProtocol::kSmtps:
      return "smtps";
    case MailProtocol::kPop3:
      return "pop3";
    case MailProtocol::kPop3s:
      return "pop3s";
  }
  return "imap4";
}

MailFamily FamilyOf(MailProtocol protocol) {
  switch (protocol) {
    case MailProtocol::kSmtp:
    case MailProtocol::kSmtps:
      return MailFamily::kSmtp;
    case MailProtocol::kPop3:
    case MailProtocol::kPop3s:
      return MailFamily::kPop3;
    default:
      return MailFamily::kImap;
  }
}

bool UsesImplicitTls(MailProtocol protocol) {
  return protocol == MailProtocol::kImap4s || protocol == MailProtocol::kSmtps ||
         protocol == MailProtocol::kPop3s;
}

uint16_t DefaultUpstreamPort(MailProtocol protocol) {
  switch (protocol) {
    case MailProtocol::kImap4:
      return 143;
    case MailProtocol::kImap4s:
      return 993;
    case MailProtocol::kSmtp:
      return 587;
    case MailProtocol::kSmtps:
      return 465;
    case MailProtocol::kPop3:
      return 110;
    case MailProtocol::kPop3s:
      return 995;
  }
  return 143;
}

uint16_t DefaultServicePort(MailProtocol protocol) { return DefaultUpstreamPort(protocol); }

std::string_view Destination::Property(std::string_view key) const {
  auto it = properties.find(key);
  return it == properties.end() ? std::string_view() : std::string_view(it->second);
}

absl::StatusOr<Destination> ParseDestination(std::string_view json_object) {
  Destination destination;
  if (absl::Status status = ReadProperties(json_object, &destination.properties); !status.ok()) {
    return status;
  }
  const Properties properties(destination.properties);

  absl::StatusOr<std::string> name = Required(properties, "Name");
  if (!name.ok()) return name.status();
  destination.name = *std::move(name);
  absl::StatusOr<std::string> type = Required(properties, "Type");
  if (!type.ok()) return type.status();
  destination.type = *std::move(type);

  absl::StatusOr<AuthenticationType> authentication = ParseAuthentication(properties);
  if (!authentication.ok()) return authentication.status();
  destination.authentication = *authentication;
  absl::StatusOr<ProxyType> proxy_type = ParseProxyType(properties);
  if (!proxy_type.ok()) return proxy_type.status();
  destination.proxy_type = *proxy_type;
  absl::StatusOr<MailProtocol> protocol = ParseProtocol(properties);
  if (!protocol.ok()) return protocol.status();
  destination.protocol = *protocol;

  // Host, port and auth live under the protocol's own prefix ("mail.imap4s.host" for imap4s).
  const std::string prefix = absl::StrCat("mail.", AsAbsl(ProtocolKey(destination.protocol)), ".");
  const std::string host_key = prefix + "host";
  absl::StatusOr<std::string> host = Required(properties, host_key);
  if (!host.ok()) return host.status();
  destination.host = *std::move(host);

  const std::string port_key = prefix + "port";
  if (const std::string* port = properties.Find(port_key); port != nullptr) {
    absl::StatusOr<uint16_t> parsed = ParsePort(port_key, *port);
    if (!parsed.ok()) return parsed.status();
    destination.port = *parsed;
  } else {
    destination.port = DefaultUpstreamPort(destination.protocol);
  }

  const std::string auth_key = prefix + "auth";
  if (const std::string* auth = properties.Find(auth_key); auth != nullptr) {
    absl::StatusOr<bool> parsed = ParseBool(auth_key, *auth);
    if (!parsed.ok()) return parsed.status();
    destination.login_on_behalf = *parsed;
  }

  destination.user = properties.Get("mail.user");
  destination.password = Secret(properties.Get("mail.password"));
  destination.token_service_url = properties.Get("tokenServiceURL");
  destination.client_id = properties.Get("clientId");
  destination.client_secret = Secret(properties.Get("clientSecret"));
  destination.cloud_connector_location_id = properties.Get("CloudConnectorLocationId");

  absl::StatusOr<int> connect_timeout =
      ParseSeconds(properties, "tokenServiceURL.ConnectionTimeoutInSeconds",
                   kMaxTokenServiceConnectTimeoutSeconds, kDefaultTokenServiceTimeoutSeconds);
  if (!connect_timeout.ok()) return connect_timeout.status();
  destination.token_service_connect_timeout_seconds = *connect_timeout;
  absl::StatusOr<int> read_timeout =
      ParseSeconds(properties, "tokenServiceURL.SocketReadTimeoutInSeconds",
                   kMaxTokenServiceReadTimeoutSeconds, kDefaultTokenServiceTimeoutSeconds);
  if (!read_timeout.ok()) return read_timeout.status();
  destination.token_service_read_timeout_seconds = *read_timeout;
  return destination;
}

}  // namespace mailring::proto
