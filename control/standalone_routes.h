// Standalone routes: the --destinations file that maps listening addresses to destinations
// when mailring runs without a cluster.
//
//   {"routes": [{"listen": "127.0.0.1:1143", "tenant": "optional",
//                "destination": { SAP Destination-service MAIL destination, all values strings }}]}
//
// Every route is validated before any port is opened; the first problem found is returned as
// InvalidArgument naming the route and the field:
//   route 0 (listen 127.0.0.1:1143): field "mail.imap4.port": "14x3" is not a port number
// Host names are resolved here (blocking, on the main thread, before the workers start).
#pragma once

#include <optional>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/route.h"

namespace mailring::control {

// Process-wide settings routes depend on (from flags).
struct RouteOptions {
  // OnPremise destinations go through this Connectivity Proxy (--connectivity-proxy) and need
  // a Connectivity service key (--connectivity-service-key) for its JWTs.
  std::optional<core::SocketAddress> connectivity_proxy;
  bool has_connectivity_key = false;
  // --upstream-starttls=opportunistic: STARTTLS whenever the server offers it.
  bool starttls_opportunistic = false;
  // Cluster mode: destinations whose mail host is a loopback address are refused (SAP's
  // LoopbackUrlNotSupported) unless --allow-loopback-upstreams.
  bool reject_loopback_upstreams = false;
};

// Fills `route` (whose listen address and tenant are set) from `destination`: checks that it
// can be served, resolves the upstream (blocking), derives TLS settings. The error names the
// destination and the field.
absl::Status CompleteRoute(proto::Destination destination, const RouteOptions& options,
                           core::Route* route);

// Whether mailring can serve `destination` with `options`; the error names the field.
absl::Status CheckServable(const proto::Destination& destination,
                           const RouteOptions& options = {});

absl::StatusOr<core::RouteTable> ParseStandaloneRoutes(std::string_view json_text,
                                                       const RouteOptions& options = {});

absl::StatusOr<core::RouteTable> LoadStandaloneRoutes(std::string_view path,
                                                      const RouteOptions& options = {});

}  // namespace mailring::control
