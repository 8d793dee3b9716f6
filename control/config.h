// Config: the daemon's settings, read from its command-line flags and validated once.
//
// main.cc copies the abseil flags into a plain `Flags` value (so that this file, and its test,
// need no global flag state) and calls Config::FromFlags(). Every error names the flag it is
// about ("--port-range: \"20-10\" is not FIRST-LAST within 1-65535") and is what the daemon
// prints after "mailring: " before exiting with code 2. Files a flag names that are small and
// part of the configuration (service keys) are read here; the routes file and the kubeconfig
// are loaded by the Daemon (control/daemon.h), which reports their errors the same way.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "control/cluster/cluster_options.h"
#include "control/btp/service_key.h"
#include "control/standalone_routes.h"
#include "core/log.h"
#include "core/socket_address.h"
#include "core/worker_options.h"

namespace mailring::control {

// The flags as given, with the defaults main.cc declares. Documentation: main.cc's ABSL_FLAGs.
struct Flags {
  std::string destinations;
  int workers = 0;
  std::string log_level = "info";
  std::string log_format = "text";
  absl::Duration drain_timeout = absl::Seconds(10);
  absl::Duration connect_timeout = absl::Seconds(10);
  absl::Duration login_timeout = absl::Seconds(30);
  absl::Duration client_auth_timeout = absl::Minutes(2);
  absl::Duration idle_timeout = absl::Minutes(30);
  bool tls_aes_ni = true;
  bool tls_resumption = true;
  bool tls_record_takeover = true;
  bool ktls = true;  // try kTLS for upstream TLS relays, fall back to mailring's record path
  std::string ca_file;
  std::string upstream_starttls = "destination";
  std::string admin_listen;
  std::string kubeconfig;
  std::string mailring_namespace = "mailring";
  std::string pod_name;
  std::string port_range = "20000-20999";
  std::string default_instance;
  std::vector<std::string> destination_service_keys;
  std::string listen_address = "0.0.0.0";
  std::string cluster_domain = "cluster.local";
  bool allow_loopback_upstreams = false;
  std::string connectivity_proxy;
  std::string connectivity_service_key;
  int recv_buffers = 64;
  int pipes_per_worker = 512;
};

// What the flags' defaults depend on besides the flags.
struct Environment {
  bool in_pod = false;     // KUBERNETES_SERVICE_HOST is set: cluster mode without --kubeconfig
  std::string hostname;    // the pod name when --pod-name is empty
  int cpus_available = 1;  // the worker count when --workers is 0

  static Environment Current();
};

struct Config {
  core::LogLevel log_level = core::LogLevel::kInfo;
  core::LogFormat log_format = core::LogFormat::kText;

  // Standalone mode: the routes file. Empty in cluster mode.
  std::string destinations_file;
  // Cluster mode: where the cluster's API server and credentials come from.
  struct Cluster {
    std::string kubeconfig_file;                  // empty: the pod's service account
    std::map<std::string, ServiceKey> instances;  // --destination-service-key, by name
    ClusterOptions options;
  };
  std::optional<Cluster> cluster;

  RouteOptions route_options;
  std::optional<ServiceKey> connectivity_key;
  core::WorkerOptions worker_options;
  int worker_count = 1;  // resolved: never 0
  absl::Duration drain_timeout = absl::Seconds(10);
  std::optional<core::SocketAddress> admin_listen;

  bool cluster_mode() const { return cluster.has_value(); }

  // Validates `flags` in the order the daemon always has (logging first, then the mode, the
  // route options, cluster settings, worker limits); the first problem is returned as
  // InvalidArgument (or the service-key loader's error) with a message that names the flag.
  // Resolves --connectivity-proxy (blocking DNS) and reads the service-key files.
  static absl::StatusOr<Config> FromFlags(const Flags& flags, const Environment& environment);
};

}  // namespace mailring::control
