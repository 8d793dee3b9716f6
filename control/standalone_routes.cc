#include "control/standalone_routes.h"

#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "proto/oauth_token.h"
#include "proto/str_cat.h"
#include "simdjson.h"

namespace mailring::control {
namespace {

// Credentials go into one login line; bound them well below the server's line limits.
constexpr size_t kMaxCredentialBytes = 1024;

std::string RouteName(size_t index, std::string_view listen) {
  return listen.empty() ? mailring::StrCat("route ", index)
                        : mailring::StrCat("route ", index, " (listen ", listen, ")");
}

absl::Status RouteError(size_t index, std::string_view listen, std::string_view message) {
  return absl::InvalidArgumentError(mailring::StrCat(RouteName(index, listen), ": ", message));
}

bool IsTrue(std::string_view value) {
  return absl::EqualsIgnoreCase(absl::string_view(value.data(), value.size()), "true");
}

// "mail.imap4", "mail.smtps", ...: the prefix of the protocol's own properties.
std::string ProtocolKey(const proto::Destination& destination) {
  return mailring::StrCat("mail.", proto::ProtocolKey(destination.protocol));
}

std::string HostField(const proto::Destination& destination) {
  return mailring::StrCat(ProtocolKey(destination), ".host");
}

// JavaMail's ssl.trust: "*" trusts every host, else a space-separated list of trusted hosts.
bool TrustsAnyCertificate(const proto::Destination& destination) {
  const std::string prefix = ProtocolKey(destination);
  const std::string_view check = destination.Property(prefix + ".ssl.checkserveridentity");
  if (absl::EqualsIgnoreCase(absl::string_view(check.data(), check.size()), "false")) return true;
  const std::string_view trust = destination.Property(prefix + ".ssl.trust");
  if (trust == "*") return true;
  for (absl::string_view host : absl::StrSplit(absl::string_view(trust.data(), trust.size()), ' ',
                                               absl::SkipEmpty())) {
    if (absl::EqualsIgnoreCase(host, destination.host)) return true;
  }
  return false;
}

core::Route::Tls TlsModeOf(const proto::Destination& destination, const RouteOptions& options) {
  if (proto::UsesImplicitTls(destination.protocol)) return core::Route::Tls::kImplicit;
  const std::string prefix = ProtocolKey(destination);
  if (IsTrue(destination.Property(prefix + ".starttls.required"))) {
    return core::Route::Tls::kStartTlsRequired;
  }
  if (IsTrue(destination.Property(prefix + ".starttls.enable")) ||
      options.starttls_opportunistic) {
    return core::Route::Tls::kStartTlsIfOffered;
  }
  return core::Route::Tls::kNone;
}

}  // namespace

absl::Status CheckServable(const proto::Destination& destination, const RouteOptions& options) {
  if (destination.type != "MAIL") {
    return absl::InvalidArgumentError(mailring::StrCat(
        "field \"Type\": \"", destination.type, "\" is not served by mailring (only MAIL)"));
  }
  if (destination.proxy_type == proto::ProxyType::kOnPremise) {
    if (!options.connectivity_proxy.has_value()) {
      return absl::InvalidArgumentError(
          "field \"ProxyType\": OnPremise needs the Connectivity Proxy's address "
          "(--connectivity-proxy HOST:PORT)");
    }
    if (!options.has_connectivity_key) {
      return absl::InvalidArgumentError(
          "field \"ProxyType\": OnPremise needs the Connectivity service key "
          "(--connectivity-service-key FILE) for the proxy's JWT");
    }
  }
  if (!destination.login_on_behalf && !proto::UsesImplicitTls(destination.protocol) &&
      TlsModeOf(destination, options) != core::Route::Tls::kNone) {
    return absl::InvalidArgumentError(mailring::StrCat(
        "field \"", ProtocolKey(destination),
        ".auth\": \"false\" (the client logs in itself) cannot be combined with STARTTLS: "
        "mailring would have to run STARTTLS inside the client's session; use the TLS protocol "
        "(imap4s, smtps, pop3s) or let mailring log in"));
  }
  switch (destination.authentication) {
    case proto::AuthenticationType::kNoAuthentication:
      return absl::OkStatus();
    case proto::AuthenticationType::kBasicAuthentication:
      if (!destination.login_on_behalf) return absl::OkStatus();
      if (destination.user.empty()) {
        return absl::InvalidArgumentError(
            "field \"mail.user\": required for BasicAuthentication");
      }
      if (destination.password.empty()) {
        return absl::InvalidArgumentError(
            "field \"mail.password\": required for BasicAuthentication");
      }
      if (destination.user.size() > kMaxCredentialBytes) {
        return absl::InvalidArgumentError(
            mailring::StrCat("field \"mail.user\": longer than ", kMaxCredentialBytes, " bytes"));
      }
      if (destination.password.size() > kMaxCredentialBytes) {
        return absl::InvalidArgumentError(
            mailring::StrCat("field \"mail.password\": longer than ", kMaxCredentialBytes, " bytes"));
      }
      return absl::OkStatus();
    case proto::AuthenticationType::kOAuth2ClientCredentials:
    case proto::AuthenticationType::kOAuth2RefreshToken:
    case proto::AuthenticationType::kOAuth2AuthorizationCode: {
      if (!destination.login_on_behalf) return absl::OkStatus();
      if (destination.token_service_url.empty()) {
        return absl::InvalidArgumentError(mailring::StrCat(
            "field \"tokenServiceURL\": required for ",
            proto::AuthenticationTypeName(destination.authentication)));
      }
      if (absl::StatusOr<std::string> url = proto::ResolveTokenServiceUrl(
              destination.token_service_url, destination.Property("tokenServiceURLType"), "");
          !url.ok()) {
        return absl::InvalidArgumentError(
            mailring::StrCat("field \"tokenServiceURL\": ", url.status().message()));
      }
      const bool basic_client = !destination.Property("tokenServiceUser").empty();
      if (destination.client_id.empty() && !basic_client) {
        return absl::InvalidArgumentError(mailring::StrCat(
            "field \"clientId\": required for ",
            proto::AuthenticationTypeName(destination.authentication)));
      }
      if (destination.authentication == proto::AuthenticationType::kOAuth2ClientCredentials) {
        if (destination.client_secret.empty() && !basic_client) {
          return absl::InvalidArgumentError(
              "field \"clientSecret\": required for OAuth2ClientCredentials");
        }
        if (destination.user.empty()) {
          return absl::InvalidArgumentError(
              "field \"mail.user\": required for OAuth2ClientCredentials (the XOAUTH2 user)");
        }
      }
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError("field \"Authentication\": unknown type");
}

absl::Status CompleteRoute(proto::Destination destination, const RouteOptions& options,
                           core::Route* route) {
  if (absl::Status servable = CheckServable(destination, options); !servable.ok()) {
    return absl::InvalidArgumentError(
        mailring::StrCat("destination \"", destination.name, "\": ", servable.message()));
  }
  if (destination.proxy_type == proto::ProxyType::kOnPremise) {
    // The host is a virtual host of the Cloud Connector: only the proxy resolves it.
    route->upstream = *options.connectivity_proxy;
    route->via_connectivity_proxy = true;
  } else {
    absl::StatusOr<core::SocketAddress> upstream =
        core::SocketAddress::Resolve(destination.host, destination.port);
    if (!upstream.ok()) {
      return absl::InvalidArgumentError(
          mailring::StrCat("destination \"", destination.name, "\": field \"",
                           HostField(destination), "\": ", upstream.status().message()));
    }
    if (upstream->IsLoopback() && options.reject_loopback_upstreams) {
      return absl::InvalidArgumentError(mailring::StrCat(
          "destination \"", destination.name, "\": field \"", HostField(destination),
          "\": LoopbackUrlNotSupported: ", destination.host,
          " is a loopback address (--allow-loopback-upstreams permits it)"));
    }
    route->upstream = *upstream;
  }
  route->tls = TlsModeOf(destination, options);
  route->tls_verify = !TrustsAnyCertificate(destination);
  route->log_label = mailring::StrCat("route=", route->listen.ToString(), " dest=", destination.name,
                                      route->tenant.empty() ? "" : " tenant=", route->tenant);
  route->destination = std::move(destination);
  return absl::OkStatus();
}

absl::StatusOr<core::RouteTable> ParseStandaloneRoutes(std::string_view json_text,
                                                       const RouteOptions& options) {
  simdjson::dom::parser parser;
  const simdjson::padded_string padded(json_text);
  simdjson::dom::element document;
  if (auto error = parser.parse(padded).get(document); error) {
    return absl::InvalidArgumentError(
        mailring::StrCat("not valid JSON: ", simdjson::error_message(error)));
  }
  simdjson::dom::array routes;
  if (document["routes"].get_array().get(routes) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError("expected an object with a \"routes\" array");
  }
  core::RouteTable table;
  absl::flat_hash_map<std::string, size_t> listen_owner;
  size_t index = 0;
  for (simdjson::dom::element element : routes) {
    simdjson::dom::object route_object;
    if (element.get_object().get(route_object) != simdjson::SUCCESS) {
      return RouteError(index, "", "expected an object");
    }
    std::string_view listen;
    if (route_object["listen"].get_string().get(listen) != simdjson::SUCCESS) {
      return RouteError(index, "", "field \"listen\": required, a string \"address:port\"");
    }
    auto route = std::make_shared<core::Route>();
    route->index = index;
    absl::StatusOr<core::SocketAddress> listen_address = core::SocketAddress::ParseNumeric(listen);
    if (!listen_address.ok()) {
      return RouteError(index, listen,
                        mailring::StrCat("field \"listen\": ", listen_address.status().message()));
    }
    route->listen = *listen_address;
    const std::string listen_key = route->listen.ToString();
    if (auto [it, inserted] = listen_owner.emplace(listen_key, index); !inserted) {
      return RouteError(index, listen,
                        mailring::StrCat("field \"listen\": ", listen_key, " is already used by route ",
                                     it->second));
    }
    simdjson::dom::element tenant;
    if (route_object["tenant"].get(tenant) == simdjson::SUCCESS) {
      std::string_view tenant_text;
      if (tenant.get_string().get(tenant_text) != simdjson::SUCCESS) {
        return RouteError(index, listen, "field \"tenant\": must be a string");
      }
      route->tenant = std::string(tenant_text);
    }
    simdjson::dom::object destination_object;
    if (route_object["destination"].get_object().get(destination_object) != simdjson::SUCCESS) {
      return RouteError(index, listen, "field \"destination\": required, a destination object");
    }
    absl::StatusOr<proto::Destination> destination =
        proto::ParseDestination(simdjson::minify(destination_object));
    if (!destination.ok()) {
      return RouteError(index, listen,
                        mailring::StrCat("destination: ", destination.status().message()));
    }
    absl::Status built = CompleteRoute(*std::move(destination), options, route.get());
    if (!built.ok()) return RouteError(index, listen, mailring::StrCat(built.message()));
    table.push_back(std::move(route));
    ++index;
  }
  if (table.empty()) return absl::InvalidArgumentError("\"routes\" is empty: nothing to serve");
  return table;
}

absl::StatusOr<core::RouteTable> LoadStandaloneRoutes(std::string_view path,
                                                      const RouteOptions& options) {
  std::ifstream file{std::string(path)};
  if (!file) {
    return absl::NotFoundError(mailring::StrCat("cannot read destinations file ", path));
  }
  std::stringstream contents;
  contents << file.rdbuf();
  absl::StatusOr<core::RouteTable> routes = ParseStandaloneRoutes(contents.str(), options);
  if (!routes.ok()) {
    return absl::Status(routes.status().code(),
                        mailring::StrCat(path, ": ", routes.status().message()));
  }
  return routes;
}

}  // namespace mailring::control
