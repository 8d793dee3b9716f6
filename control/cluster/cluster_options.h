// ClusterOptions: cluster mode's settings (from flags, control/config.h), shared by the route
// watcher (every pod) and the reconciler (the leader).
#pragma once

#include <string>

#include "absl/time/time.h"
#include "control/standalone_routes.h"

namespace mailring::control {

struct ClusterOptions {
  std::string mailring_namespace = "mailring";
  std::string pod_name;
  std::string default_instance;
  std::string cluster_domain = "cluster.local";
  std::string listen_address = "0.0.0.0";
  int port_min = 20000;
  int port_max = 20999;
  absl::Duration destination_refresh = absl::Minutes(2);
  RouteOptions route_options;
};

}  // namespace mailring::control
