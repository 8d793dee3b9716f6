// Route: what one listening address serves: a destination (and tenant) and the resolved
// upstream address. Routes are immutable once the workers start; every worker reads the same
// RouteTable without locks because nothing writes to it after publication.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/socket_address.h"
#include "proto/destination.h"

namespace mailring::core {

struct Route {
  size_t index = 0;
  SocketAddress listen;
  // Where the session connects: the mail server (resolved from destination.host/port before
  // the workers start), or for OnPremise destinations the Connectivity Proxy, which reaches
  // destination.host (a virtual host of the Cloud Connector) on mailring's behalf.
  SocketAddress upstream;
  bool via_connectivity_proxy = false;
  // TLS to the mail server: from the first byte (imap4s), or STARTTLS before the login.
  enum class Tls : uint8_t { kNone, kImplicit, kStartTlsIfOffered, kStartTlsRequired };
  Tls tls = Tls::kNone;
  bool tls_verify = true;  // false: the destination trusts any certificate (logged loudly)
  std::string tenant;      // empty for single-tenant routes
  proto::Destination destination;
  std::string log_label;   // "route=127.0.0.1:1143 dest=example-dest-imap", for log lines
  // Cluster mode: the Destination service instance the destination came from; its OAuth
  // tokens are then obtained through that service. Empty in standalone mode.
  std::string destination_service_instance;
};

using RouteTable = std::vector<std::shared_ptr<const Route>>;

}  // namespace mailring::core
