#include "control/config.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "absl/strings/numbers.h"
#include "proto/str_cat.h"

namespace mailring::control {
namespace {

// The error `status` of the value of `flag`, as "--flag: message".
absl::Status FlagError(std::string_view flag, const absl::Status& status) {
  return absl::Status(status.code(), StrCat(flag, ": ", status.message()));
}

// "host", "host:port", "[v6]:port" → an address, resolving names (before the workers start).
absl::StatusOr<core::SocketAddress> ResolveHostPort(const std::string& text,
                                                    uint16_t default_port) {
  if (absl::StatusOr<core::SocketAddress> numeric = core::SocketAddress::ParseNumeric(text);
      numeric.ok()) {
    return numeric;
  }
  std::string host = text;
  uint16_t port = default_port;
  if (const size_t colon = text.rfind(':'); colon != std::string::npos && text.find(':') == colon) {
    int parsed = 0;
    if (!absl::SimpleAtoi(absl::string_view(text).substr(colon + 1), &parsed) || parsed <= 0 ||
        parsed > 65535) {
      return absl::InvalidArgumentError("\"" + text + "\" has no valid port");
    }
    host = text.substr(0, colon);
    port = static_cast<uint16_t>(parsed);
  }
  return core::SocketAddress::Resolve(host, port);
}

// --port-range FIRST-LAST into `options`.
absl::Status ParsePortRange(const std::string& range, ClusterOptions* options) {
  const size_t dash = range.find('-');
  if (dash == std::string::npos ||
      !absl::SimpleAtoi(absl::string_view(range).substr(0, dash), &options->port_min) ||
      !absl::SimpleAtoi(absl::string_view(range).substr(dash + 1), &options->port_max) ||
      options->port_min <= 0 || options->port_max > 65535 ||
      options->port_min > options->port_max) {
    return absl::InvalidArgumentError(
        StrCat("--port-range: \"", range, "\" is not FIRST-LAST within 1-65535"));
  }
  return absl::OkStatus();
}

// The cluster-mode flags; errors are prefixed "cluster mode: " as the daemon always printed them.
absl::StatusOr<Config::Cluster> ClusterFromFlags(const Flags& flags, const Environment& environment,
                                                 const RouteOptions& route_options) {
  Config::Cluster cluster;
  cluster.kubeconfig_file = flags.kubeconfig;
  for (const std::string& entry : flags.destination_service_keys) {
    const size_t equals = entry.find('=');
    if (equals == std::string::npos || equals == 0) {
      return absl::InvalidArgumentError(
          StrCat("--destination-service-key: \"", entry, "\" is not NAME=FILE"));
    }
    absl::StatusOr<ServiceKey> key = LoadServiceKey(entry.substr(equals + 1));
    if (!key.ok()) return key.status();
    cluster.instances.emplace(entry.substr(0, equals), *std::move(key));
  }
  ClusterOptions& options = cluster.options;
  options.mailring_namespace = flags.mailring_namespace;
  options.pod_name = flags.pod_name.empty() ? environment.hostname : flags.pod_name;
  options.default_instance = flags.default_instance;
  if (options.default_instance.empty() && cluster.instances.size() == 1) {
    options.default_instance = cluster.instances.begin()->first;
  }
  options.cluster_domain = flags.cluster_domain;
  options.listen_address = flags.listen_address;
  if (absl::Status status = ParsePortRange(flags.port_range, &options); !status.ok()) {
    return status;
  }
  options.route_options = route_options;
  return cluster;
}

absl::Status CheckWorkerLimits(const Flags& flags) {
  for (const auto& [name, value] :
       {std::pair{"--connect-timeout", flags.connect_timeout},
        std::pair{"--login-timeout", flags.login_timeout},
        std::pair{"--client-auth-timeout", flags.client_auth_timeout},
        std::pair{"--idle-timeout", flags.idle_timeout},
        // A zero drain timeout is allowed: sessions get BYE at once.
        std::pair{"--drain-timeout", flags.drain_timeout + absl::Milliseconds(1)}}) {
    if (value <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(StrCat(name, " must be positive"));
    }
  }
  const int recv_buffers = flags.recv_buffers;
  if (recv_buffers < 1 || recv_buffers > 32768 || (recv_buffers & (recv_buffers - 1)) != 0) {
    return absl::InvalidArgumentError("--recv-buffers must be a power of two from 1 to 32768");
  }
  if (flags.pipes_per_worker < 0 || flags.pipes_per_worker > 65536) {
    return absl::InvalidArgumentError("--pipes-per-worker must be between 0 and 65536");
  }
  if (flags.workers < 0 || flags.workers > 256) {
    return absl::InvalidArgumentError("--workers must be between 0 and 256");
  }
  return absl::OkStatus();
}

}  // namespace

Environment Environment::Current() {
  Environment environment;
  environment.in_pod = std::getenv("KUBERNETES_SERVICE_HOST") != nullptr;
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  environment.hostname = host;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    environment.cpus_available = std::max(1, CPU_COUNT(&set));
  }
  return environment;
}

absl::StatusOr<Config> Config::FromFlags(const Flags& flags, const Environment& environment) {
  Config config;
  absl::StatusOr<core::LogLevel> level = core::ParseLogLevel(flags.log_level);
  if (!level.ok()) return FlagError("--log-level", level.status());
  config.log_level = *level;
  absl::StatusOr<core::LogFormat> format = core::ParseLogFormat(flags.log_format);
  if (!format.ok()) return FlagError("--log-format", format.status());
  config.log_format = *format;

  const bool cluster_mode =
      flags.destinations.empty() && (!flags.kubeconfig.empty() || environment.in_pod);
  if (flags.destinations.empty() && !cluster_mode) {
    return absl::InvalidArgumentError(
        "--destinations FILE (standalone) or --kubeconfig FILE / a pod's service account "
        "(cluster mode) is required (see --help)");
  }
  config.destinations_file = cluster_mode ? "" : flags.destinations;

  RouteOptions& route_options = config.route_options;
  if (flags.upstream_starttls == "opportunistic") {
    route_options.starttls_opportunistic = true;
  } else if (flags.upstream_starttls != "destination") {
    return absl::InvalidArgumentError(
        "--upstream-starttls must be 'destination' or 'opportunistic'");
  }
  if (!flags.connectivity_service_key.empty()) {
    absl::StatusOr<ServiceKey> key = LoadServiceKey(flags.connectivity_service_key);
    if (!key.ok()) return FlagError("--connectivity-service-key", key.status());
    config.connectivity_key = *std::move(key);
    route_options.has_connectivity_key = true;
  }
  if (!flags.connectivity_proxy.empty()) {
    absl::StatusOr<core::SocketAddress> address = ResolveHostPort(flags.connectivity_proxy, 20004);
    if (!address.ok()) return FlagError("--connectivity-proxy", address.status());
    route_options.connectivity_proxy = *address;
  }
  if (cluster_mode) {
    route_options.reject_loopback_upstreams = !flags.allow_loopback_upstreams;
    absl::StatusOr<Cluster> cluster = ClusterFromFlags(flags, environment, route_options);
    if (!cluster.ok()) {
      return absl::Status(cluster.status().code(),
                          StrCat("cluster mode: ", cluster.status().message()));
    }
    config.cluster = *std::move(cluster);
  }

  if (absl::Status status = CheckWorkerLimits(flags); !status.ok()) return status;
  core::WorkerOptions& worker = config.worker_options;
  worker.connect_timeout = flags.connect_timeout;
  worker.login_timeout = flags.login_timeout;
  worker.idle_timeout = flags.idle_timeout;
  worker.client_auth_timeout = flags.client_auth_timeout;
  worker.ca_file = flags.ca_file;
  worker.tls_aes_ni = flags.tls_aes_ni;
  worker.tls_resumption = flags.tls_resumption;
  worker.tls_record_takeover = flags.tls_record_takeover;
  worker.ktls = flags.ktls;
  worker.recv_buffer_count = static_cast<uint32_t>(flags.recv_buffers);
  worker.max_pipes = static_cast<size_t>(flags.pipes_per_worker);
  config.worker_count = flags.workers == 0 ? environment.cpus_available : flags.workers;
  config.drain_timeout = flags.drain_timeout;

  if (!flags.admin_listen.empty()) {
    absl::StatusOr<core::SocketAddress> address =
        core::SocketAddress::ParseNumeric(flags.admin_listen);
    if (!address.ok()) return FlagError("--admin-listen", address.status());
    config.admin_listen = *address;
  }
  return config;
}

}  // namespace mailring::control
