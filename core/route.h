// Route: what one listening address serves: a destination (and tenant) and the resolved
// upstream address. Routes are immutable once the workers start; every worker reads the same
// RouteTable without locks because nothing writes to it after publication.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/socket_address.h"
#include "proto/destination.h"

namespace mailring::core {

struct Route {
  size_t index = 0;
  SocketAddress listen;
  SocketAddress upstream;  // resolved from destination.host/port before the workers start
  std::string tenant;      // empty for single-tenant routes
  proto::Destination destination;
  std::string log_label;   // "route=127.0.0.1:1143 dest=example-dest-imap", for log lines
};

using RouteTable = std::vector<std::shared_ptr<const Route>>;

}  // namespace mailring::core
