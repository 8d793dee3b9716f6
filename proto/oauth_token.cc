// Token endpoint requests (form-urlencoded) and responses (JSON via simdjson DOM, error codes
// only), and the tenant-specific token service URL.
//
// Status mapping of ParseTokenResponse, for callers deciding between "tell the client NO" and
// "retry later":
//   2xx with a usable body             → TokenResponse
//   2xx with anything else             → InvalidArgument
//   400, 401                           → Unauthenticated (bad grant, bad client credentials)
//   403                                → PermissionDenied
//   429, 5xx, no HTTP status (0)       → Unavailable (try again later)
//   any other status (3xx, 404, ...)   → FailedPrecondition (the destination is misconfigured)
// Messages quote the HTTP status and the OAuth "error" / "error_description" strings reduced to
// printable ASCII and kMaxQuotedBytes; never the body, and never a token the body carries.
#include "proto/oauth_token.h"

#include <cmath>
#include <limits>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "proto/absl_string_view.h"
#include "proto/percent_encoding.h"
#include "proto/sasl.h"
#include "proto/str_cat.h"
#include "simdjson.h"

namespace mailring::proto {
namespace {

constexpr size_t kMaxQuotedBytes = 200;

// Lifetimes beyond ten years are read as "does not expire soon": clamped, so later arithmetic
// on deadlines cannot overflow.
constexpr int64_t kMaxExpiresInSeconds = int64_t{10} * 365 * 24 * 3600;

// Printable ASCII only (a control byte could forge a log line), at most `limit` bytes.
std::string Printable(std::string_view text, size_t limit) {
  std::string out;
  for (char c : text) {
    if (out.size() >= limit) break;
    const unsigned char u = static_cast<unsigned char>(c);
    out.push_back(u >= 0x20 && u < 0x7f ? c : '?');
  }
  return out;
}

struct ParsedBody {
  std::optional<std::string_view> access_token;  // present and a string
  bool access_token_present = false;             // present with any type
  std::optional<std::string_view> refresh_token;
  std::optional<std::string_view> token_type;
  bool token_type_present = false;
  simdjson::dom::element expires_in;
  bool expires_in_present = false;
  std::optional<std::string_view> error;
  std::optional<std::string_view> error_description;
};

std::optional<std::string_view> StringField(simdjson::dom::object object, std::string_view key,
                                            bool* present = nullptr) {
  simdjson::dom::element element;
  if (object.at_key(key).get(element) != simdjson::SUCCESS) return std::nullopt;
  if (present != nullptr) *present = true;
  std::string_view value;
  if (element.get_string().get(value) != simdjson::SUCCESS) return std::nullopt;
  return value;
}

// Fills `parsed` from the top-level object; views point into `parser`.
simdjson::error_code ReadBody(simdjson::dom::parser& parser, std::string_view body,
                              ParsedBody* parsed) {
  if (body.empty()) return simdjson::EMPTY;
  simdjson::dom::element document;
  if (auto error = parser.parse(body.data(), body.size()).get(document); error) return error;
  simdjson::dom::object object;
  if (auto error = document.get_object().get(object); error) return error;
  parsed->access_token = StringField(object, "access_token", &parsed->access_token_present);
  parsed->refresh_token = StringField(object, "refresh_token");
  parsed->token_type = StringField(object, "token_type", &parsed->token_type_present);
  parsed->expires_in_present =
      object.at_key("expires_in").get(parsed->expires_in) == simdjson::SUCCESS;
  parsed->error = StringField(object, "error");
  parsed->error_description = StringField(object, "error_description");
  return simdjson::SUCCESS;
}

// `message` followed by open "invalid_grant: code expired" close, the OAuth error bounded; just
// `message` when the body names no OAuth error. A server that echoes a token in its error text
// gets its text withheld (checked on the whole message, so a token cannot hide across the seam).
std::string WithOAuthError(std::string message, const ParsedBody& parsed, std::string_view open,
                           std::string_view close) {
  std::string text;
  if (parsed.error.has_value() && !parsed.error->empty()) {
    text = Printable(*parsed.error, kMaxQuotedBytes);
  }
  if (parsed.error_description.has_value() && !parsed.error_description->empty() &&
      text.size() + 2 < kMaxQuotedBytes) {
    if (!text.empty()) text += ": ";
    text += Printable(*parsed.error_description, kMaxQuotedBytes - text.size());
  }
  if (text.empty()) return message;
  std::string full = StrCat(message, open, text, close);
  for (const std::optional<std::string_view>& token : {parsed.access_token, parsed.refresh_token}) {
    if (token.has_value() && !token->empty() && absl::StrContains(full, AsAbsl(*token))) {
      return StrCat(message, open, "error text withheld: it quotes a token", close);
    }
  }
  return full;
}

absl::Status HttpError(int http_status, const ParsedBody& parsed) {
  const std::string message =
      WithOAuthError(StrCat("token service answered HTTP ", http_status), parsed, ": ", "");
  if (http_status == 400 || http_status == 401) return absl::UnauthenticatedError(message);
  if (http_status == 403) return absl::PermissionDeniedError(message);
  if (http_status == 429 || http_status >= 500) return absl::UnavailableError(message);
  return absl::FailedPreconditionError(message);
}

// expires_in: a non-negative integer, as a JSON number or a string of digits (some servers
// quote it). A JSON number with a fraction is truncated.
absl::StatusOr<int64_t> ReadExpiresIn(simdjson::dom::element element) {
  int64_t seconds = 0;
  switch (element.type()) {
    case simdjson::dom::element_type::INT64: {
      seconds = element.get_int64().value_unsafe();
      break;
    }
    case simdjson::dom::element_type::UINT64: {
      seconds = kMaxExpiresInSeconds;  // above INT64_MAX
      break;
    }
    case simdjson::dom::element_type::DOUBLE: {
      const double value = element.get_double().value_unsafe();
      if (!std::isfinite(value)) return absl::InvalidArgumentError("expires_in is not finite");
      seconds = value >= static_cast<double>(kMaxExpiresInSeconds) ? kMaxExpiresInSeconds
                : value <= -1                                      ? -1
                                                                   : static_cast<int64_t>(value);
      break;
    }
    case simdjson::dom::element_type::STRING: {
      const std::string_view text = element.get_string().value_unsafe();
      if (text.empty() || text.size() > 18) {
        return absl::InvalidArgumentError(
            "token response: expires_in is a string but not a number of seconds");
      }
      for (char c : text) {
        if (c < '0' || c > '9') {
          return absl::InvalidArgumentError(
              "token response: expires_in is a string but not a number of seconds");
        }
        seconds = seconds * 10 + (c - '0');
      }
      break;
    }
    case simdjson::dom::element_type::NULL_VALUE:
      return 0;  // as if absent
    default:
      return absl::InvalidArgumentError("token response: expires_in is not a number");
  }
  if (seconds < 0) return absl::InvalidArgumentError("token response: expires_in is negative");
  return std::min(seconds, kMaxExpiresInSeconds);
}

bool IsDnsLabel(std::string_view label) {
  if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
    return false;
  }
  for (char c : label) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
  }
  return true;
}

}  // namespace

std::string_view GrantTypeName(GrantType grant) {
  switch (grant) {
    case GrantType::kClientCredentials:
      return "client_credentials";
    case GrantType::kRefreshToken:
      return "refresh_token";
    case GrantType::kAuthorizationCode:
      return "authorization_code";
  }
  return "client_credentials";
}

EncodedTokenRequest EncodeTokenRequest(const TokenRequest& request) {
  EncodedTokenRequest encoded;
  encoded.url = request.token_url;
  encoded.headers = {"Content-Type: application/x-www-form-urlencoded", "Accept: application/json"};
  std::string& body = encoded.body;
  auto add = [&body](std::string_view name, std::string_view value) {
    if (!body.empty()) body.push_back('&');
    StrAppend(&body, name, "=", PercentEncode(value, PercentStyle::kForm));
  };
  add("grant_type", GrantTypeName(request.grant));
  switch (request.grant) {
    case GrantType::kClientCredentials:
      break;
    case GrantType::kRefreshToken:
      add("refresh_token", request.refresh_token.Reveal());
      break;
    case GrantType::kAuthorizationCode:
      add("code", request.code.Reveal());
      if (!request.redirect_uri.empty()) add("redirect_uri", request.redirect_uri);
      break;
  }
  if (!request.scope.empty()) add("scope", request.scope);
  if (request.client_auth_basic) {
    // RFC 6749 2.3.1: each part form-urlencoded, then "id:secret" base64-encoded.
    encoded.headers.push_back(StrCat(
        "Authorization: Basic ",
        Base64Encode(StrCat(PercentEncode(request.client_id, PercentStyle::kForm), ":",
                            PercentEncode(request.client_secret.Reveal(), PercentStyle::kForm)))));
  } else {
    if (!request.client_id.empty()) add("client_id", request.client_id);
    if (!request.client_secret.empty()) add("client_secret", request.client_secret.Reveal());
  }
  return encoded;
}

absl::StatusOr<TokenResponse> ParseTokenResponse(int http_status, std::string_view body) {
  simdjson::dom::parser parser;
  ParsedBody parsed;
  const simdjson::error_code json_error = ReadBody(parser, body, &parsed);

  if (http_status < 200 || http_status > 299) {
    if (http_status <= 0) return absl::UnavailableError("token service gave no HTTP status");
    return HttpError(http_status, parsed);
  }
  if (json_error != simdjson::SUCCESS) {
    return absl::InvalidArgumentError(
        json_error == simdjson::INCORRECT_TYPE
            ? std::string("token response is not a JSON object")
            : StrCat("token response is not valid JSON: ", simdjson::error_message(json_error)));
  }
  if (!parsed.access_token.has_value() || parsed.access_token->empty()) {
    return absl::InvalidArgumentError(WithOAuthError(
        parsed.access_token_present ? "token response: access_token is not a non-empty string"
                                    : "token response has no access_token",
        parsed, " (", ")"));
  }
  TokenResponse response;
  if (parsed.expires_in_present) {
    absl::StatusOr<int64_t> expires_in = ReadExpiresIn(parsed.expires_in);
    if (!expires_in.ok()) return expires_in.status();
    response.expires_in_seconds = *expires_in;
  }
  if (parsed.token_type_present && !parsed.token_type.has_value()) {
    return absl::InvalidArgumentError("token response: token_type is not a string");
  }
  response.access_token = Secret(std::string(*parsed.access_token));
  if (parsed.token_type.has_value()) response.token_type = std::string(*parsed.token_type);
  if (parsed.refresh_token.has_value()) {
    response.refresh_token = Secret(std::string(*parsed.refresh_token));
  }
  return response;
}

namespace {

// Where the host of an http(s) URL starts and ends, after validating the URL.
struct HostSpan {
  size_t begin = 0;  // offset of the host in the URL
  size_t size = 0;   // without the port
};

absl::StatusOr<HostSpan> FindHost(std::string_view url, std::string_view what) {
  // scheme "://" [userinfo "@"] host [":" port] [path-abempty] ["?" query] ["#" fragment]
  const size_t scheme_end = url.find("://");
  const std::string_view scheme =
      scheme_end == std::string_view::npos ? std::string_view() : url.substr(0, scheme_end);
  if (!absl::EqualsIgnoreCase(AsAbsl(scheme), "http") &&
      !absl::EqualsIgnoreCase(AsAbsl(scheme), "https")) {
    return absl::InvalidArgumentError(StrCat(what, " is not an http:// or https:// URL"));
  }
  const size_t authority_begin = scheme_end + 3;
  const size_t authority_end = std::min(url.find_first_of("/?#", authority_begin), url.size());
  const std::string_view authority = url.substr(authority_begin, authority_end - authority_begin);
  const size_t at = authority.rfind('@');
  const size_t host_begin = at == std::string_view::npos ? 0 : at + 1;
  const std::string_view host_and_port = authority.substr(host_begin);
  if (host_and_port.empty() || host_and_port.front() == ':') {
    return absl::InvalidArgumentError(StrCat(what, " has no host"));
  }
  for (char c : url) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) {
      return absl::InvalidArgumentError(StrCat(what, " has spaces or control characters"));
    }
  }
  HostSpan span;
  span.begin = authority_begin + host_begin;
  span.size = host_and_port.front() == '['
                  ? host_and_port.find(']') + 1
                  : std::min(host_and_port.find(':'), host_and_port.size());
  return span;
}

absl::Status CheckNamedHost(std::string_view host, std::string_view what) {
  bool numeric = true;
  for (char c : host) {
    numeric = numeric && (absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '.');
  }
  if (host.front() == '[' || numeric) {
    return absl::InvalidArgumentError(StrCat(what, " needs a host name, not an IP address"));
  }
  return absl::OkStatus();
}

constexpr std::string_view kTenantPlaceholder = "{tenant}";

}  // namespace

absl::StatusOr<std::string> ResolveTokenServiceUrl(std::string_view url, std::string_view url_type,
                                                   std::string_view tenant) {
  constexpr std::string_view kWhat = "tokenServiceURL";
  absl::StatusOr<HostSpan> host = FindHost(url, kWhat);
  if (!host.ok()) return host.status();
  const bool common = absl::EqualsIgnoreCase(AsAbsl(url_type), "Common");
  if (!common && !url_type.empty() && !absl::EqualsIgnoreCase(AsAbsl(url_type), "Dedicated")) {
    return absl::InvalidArgumentError("tokenServiceURLType is not one of Dedicated, Common");
  }
  if (!common || tenant.empty()) return std::string(url);
  if (!IsDnsLabel(tenant)) return absl::InvalidArgumentError("tenant subdomain is not a DNS label");
  if (url.find(kTenantPlaceholder) != std::string_view::npos) {
    std::string resolved(url);
    for (size_t at = resolved.find(kTenantPlaceholder); at != std::string::npos;
         at = resolved.find(kTenantPlaceholder, at + tenant.size())) {
      resolved.replace(at, kTenantPlaceholder.size(), tenant);
    }
    return resolved;
  }
  const std::string_view host_name = url.substr(host->begin, host->size);
  if (absl::Status named = CheckNamedHost(host_name, "tokenServiceURLType Common"); !named.ok()) {
    return named;
  }
  return StrCat(url.substr(0, host->begin), tenant, ".", url.substr(host->begin));
}

absl::StatusOr<std::string> SubscriberUrlOfServiceKey(std::string_view url,
                                                      std::string_view tenant) {
  constexpr std::string_view kWhat = "the service key's url";
  absl::StatusOr<HostSpan> host = FindHost(url, kWhat);
  if (!host.ok()) return host.status();
  if (tenant.empty()) return std::string(url);
  if (!IsDnsLabel(tenant)) return absl::InvalidArgumentError("tenant subdomain is not a DNS label");
  const std::string_view host_name = url.substr(host->begin, host->size);
  if (absl::Status named = CheckNamedHost(host_name, kWhat); !named.ok()) return named;
  const size_t first_dot = host_name.find('.');
  if (first_dot == std::string_view::npos || first_dot == 0 || first_dot + 1 == host_name.size()) {
    return absl::InvalidArgumentError(
        StrCat(kWhat, " needs a host whose first label is the provider's subdomain"));
  }
  return StrCat(url.substr(0, host->begin), tenant, url.substr(host->begin + first_dot));
}

}  // namespace mailring::proto
