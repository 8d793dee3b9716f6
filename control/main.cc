// mailring: the daemon's entry point. Standalone mode: routes from --destinations, one worker
// thread per CPU, the main thread waiting for SIGTERM/SIGINT to drain.
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <unistd.h>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/marshalling.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "proto/str_cat.h"
#include "absl/time/time.h"
#include "proto/str_cat.h"
#include "control/admin_server.h"
#include "control/build_info.h"
#include "control/io_uring_probe.h"
#include "control/cluster_control.h"
#include "control/kube_client.h"
#include "control/control_thread.h"
#include "control/metrics.h"
#include "control/service_key.h"
#include "control/standalone_routes.h"
#include "core/credential_cache.h"
#include "core/log.h"
#include "core/worker.h"

ABSL_FLAG(std::string, destinations, "",
          "JSON file of routes: {\"routes\": [{\"listen\": \"127.0.0.1:1143\", \"destination\": "
          "{...MAIL destination...}}]}");
ABSL_FLAG(int, workers, 0, "Worker threads; 0 means one per CPU this process may run on");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error");
ABSL_FLAG(std::string, log_format, "text",
          "'text' (one readable line per event) or 'json' (one JSON object per line: time, "
          "level, worker, session, route, destination, tenant, cr, message)");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(10),
          "On SIGTERM/SIGINT, how long open sessions may continue before they get BYE");
ABSL_FLAG(absl::Duration, connect_timeout, absl::Seconds(10), "Upstream TCP connect timeout");
ABSL_FLAG(absl::Duration, login_timeout, absl::Seconds(30),
          "From accept until the client is greeted (connect, upstream greeting and login)");
ABSL_FLAG(absl::Duration, client_auth_timeout, absl::Minutes(2),
          "How long a client may take, once greeted, before the relay starts: to authenticate "
          "(refresh-token / authorization-code destinations), or to send its first SMTP/POP3 "
          "command; each line it sends restarts the clock");
ABSL_FLAG(bool, tls_aes_ni, true,
          "TLS records (AES-GCM) on the CPU's AES-NI through libcrypto; false: wolfSSL's software "
          "AES, several times the CPU per GB");
ABSL_FLAG(bool, tls_resumption, true,
          "Resume upstream TLS sessions (TLS 1.3 tickets, TLS 1.2 sessions) kept per worker and "
          "destination; false: a full handshake for every session");
ABSL_FLAG(std::string, ca_file, "",
          "Extra PEM CA bundle trusted for upstream TLS and https token services, besides the "
          "system store");
ABSL_FLAG(std::string, upstream_starttls, "destination",
          "STARTTLS to the mail server: 'destination' (when the destination's "
          "mail.imap4.starttls.enable/required says so) or 'opportunistic' (also whenever the "
          "server offers it)");
ABSL_FLAG(std::string, admin_listen, "",
          "ADDRESS:PORT for /healthz, /readyz and /metrics (plain HTTP); empty: off");
ABSL_FLAG(std::string, kubeconfig, "",
          "Cluster mode from a kubeconfig file (development); in a pod the service account is "
          "used when --destinations is not given");
ABSL_FLAG(std::string, namespace, "mailring", "Cluster mode: mailring's own namespace");
ABSL_FLAG(std::string, pod_name, "", "Cluster mode: this pod's name (leader election identity)");
ABSL_FLAG(std::string, port_range, "20000-20999",
          "Cluster mode: FIRST-LAST, the ports the leader allocates to Destination CRs");
ABSL_FLAG(std::string, default_instance, "",
          "Cluster mode: Destination service instance for CRs that name none");
ABSL_FLAG(std::vector<std::string>, destination_service_key, {},
          "Cluster mode: NAME=FILE, a Destination service instance's key (repeatable, or "
          "comma-separated)");
ABSL_FLAG(std::string, listen_address, "0.0.0.0",
          "Cluster mode: the address the routes' ports are opened on");
ABSL_FLAG(std::string, cluster_domain, "cluster.local", "Cluster mode: the cluster DNS domain");
ABSL_FLAG(bool, allow_loopback_upstreams, false,
          "Cluster mode: serve destinations whose mail host is a loopback address");
ABSL_FLAG(std::string, connectivity_proxy, "",
          "HOST[:PORT] of SAP's Connectivity Proxy for OnPremise destinations (port 20004 by "
          "default)");
ABSL_FLAG(std::string, connectivity_service_key, "",
          "JSON file with the Connectivity service key (clientid, clientsecret, url or "
          "token_service_url): the proxy's JWTs are its client-credentials tokens");
ABSL_FLAG(absl::Duration, idle_timeout, absl::Minutes(30),
          "A relayed session with no traffic either way is closed after this long");
ABSL_FLAG(int, recv_buffers, 64,
          "Provided receive buffers (16 KiB each) per worker, shared by its sessions' logins and "
          "small relayed messages; a power of two. See mailring_recv_buffer_ring_empty_total");
ABSL_FLAG(int, pipes_per_worker, 512,
          "splice pipes (1 MiB each) a worker lends at once; a session that finds none relays "
          "through its copy path. Bounds the kernel memory clients that stop reading can pin "
          "(pipes x 1 MiB per worker); 0 never splices. See mailring_pipes_in_use");

namespace {

constexpr int kExitConfigError = 2;
// io_uring is blocked (seccomp or the kernel): the deployment, not mailring, needs fixing.
constexpr int kExitIoUringBlocked = 3;

// abseil spells flags with underscores; the documented spelling uses dashes. Accept both by
// rewriting "--drain-timeout=5s" to "--drain_timeout=5s" before parsing.
std::vector<char*> NormalizeFlagNames(int argc, char** argv, std::vector<std::string>& storage) {
  storage.assign(argv, argv + argc);
  std::vector<char*> out;
  for (std::string& arg : storage) {
    if (arg.size() > 2 && arg.compare(0, 2, "--") == 0) {
      const size_t end = std::min(arg.find('='), arg.size());
      for (size_t i = 2; i < end; ++i) {
        if (arg[i] == '-') arg[i] = '_';
      }
    }
    out.push_back(arg.data());
  }
  return out;
}

// "host", "host:port", "[v6]:port" → an address, resolving names (before the workers start).
absl::StatusOr<mailring::core::SocketAddress> ResolveHostPort(const std::string& text,
                                                             uint16_t default_port) {
  if (absl::StatusOr<mailring::core::SocketAddress> numeric =
          mailring::core::SocketAddress::ParseNumeric(text);
      numeric.ok()) {
    return numeric;
  }
  std::string host = text;
  uint16_t port = default_port;
  if (const size_t colon = text.rfind(':');
      colon != std::string::npos && text.find(':') == colon) {
    int parsed = 0;
    if (!absl::SimpleAtoi(absl::string_view(text).substr(colon + 1), &parsed) || parsed <= 0 ||
        parsed > 65535) {
      return absl::InvalidArgumentError("\"" + text + "\" has no valid port");
    }
    host = text.substr(0, colon);
    port = static_cast<uint16_t>(parsed);
  }
  return mailring::core::SocketAddress::Resolve(host, port);
}

struct ClusterSetup {
  mailring::control::KubeConfig kube;
  std::map<std::string, mailring::control::ServiceKey> instances;
  mailring::control::ClusterOptions options;
};

absl::StatusOr<std::unique_ptr<ClusterSetup>> LoadClusterSetup(
    const std::string& kubeconfig, const mailring::control::RouteOptions& route_options) {
  auto setup = std::make_unique<ClusterSetup>();
  absl::StatusOr<mailring::control::KubeConfig> kube =
      kubeconfig.empty() ? mailring::control::InClusterKubeConfig()
                         : mailring::control::LoadKubeconfig(kubeconfig);
  if (!kube.ok()) return kube.status();
  setup->kube = *std::move(kube);
  for (const std::string& entry : absl::GetFlag(FLAGS_destination_service_key)) {
    const size_t equals = entry.find('=');
    if (equals == std::string::npos || equals == 0) {
      return absl::InvalidArgumentError(mailring::StrCat(
          "--destination-service-key: \"", entry, "\" is not NAME=FILE"));
    }
    absl::StatusOr<mailring::control::ServiceKey> key =
        mailring::control::LoadServiceKey(entry.substr(equals + 1));
    if (!key.ok()) return key.status();
    setup->instances.emplace(entry.substr(0, equals), *std::move(key));
  }
  mailring::control::ClusterOptions& options = setup->options;
  options.mailring_namespace = absl::GetFlag(FLAGS_namespace);
  options.pod_name = absl::GetFlag(FLAGS_pod_name);
  if (options.pod_name.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    options.pod_name = host;
  }
  options.default_instance = absl::GetFlag(FLAGS_default_instance);
  if (options.default_instance.empty() && setup->instances.size() == 1) {
    options.default_instance = setup->instances.begin()->first;
  }
  options.cluster_domain = absl::GetFlag(FLAGS_cluster_domain);
  options.listen_address = absl::GetFlag(FLAGS_listen_address);
  const std::string range = absl::GetFlag(FLAGS_port_range);
  const size_t dash = range.find('-');
  if (dash == std::string::npos ||
      !absl::SimpleAtoi(absl::string_view(range).substr(0, dash), &options.port_min) ||
      !absl::SimpleAtoi(absl::string_view(range).substr(dash + 1), &options.port_max) ||
      options.port_min <= 0 || options.port_max > 65535 || options.port_min > options.port_max) {
    return absl::InvalidArgumentError(
        mailring::StrCat("--port-range: \"", range, "\" is not FIRST-LAST within 1-65535"));
  }
  options.route_options = route_options;
  return setup;
}

int CpusAvailable() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return 1;
}

// A proxy holds two sockets per session: take the whole fd allowance the system grants.
void RaiseFileLimit() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

int main(int argc, char** argv) {
  using mailring::core::LogLevel;
  absl::SetProgramUsageMessage(
      "IMAP proxy that logs in to the mail server of a MAIL destination on the "
      "client's behalf.\n\n  mailring --destinations FILE [--workers N] [--log-level LEVEL] "
      "[--drain-timeout DURATION]\n\nFlag names may be written with dashes or underscores.");
  absl::FlagsUsageConfig usage_config;
  // --help lists the daemon's own flags (defined in this file), not Abseil's internals.
  usage_config.contains_help_flags = [](absl::string_view path) {
    return absl::EndsWith(path, "control/main.cc");
  };
  usage_config.contains_helpshort_flags = usage_config.contains_help_flags;
  usage_config.version_string = [] { return mailring::control::BuildInfoLine() + "\n"; };
  absl::SetFlagsUsageConfig(usage_config);
  std::vector<std::string> storage;
  std::vector<char*> args = NormalizeFlagNames(argc, argv, storage);
  absl::ParseCommandLine(static_cast<int>(args.size()), args.data());

  absl::StatusOr<LogLevel> level = mailring::core::ParseLogLevel(absl::GetFlag(FLAGS_log_level));
  if (!level.ok()) {
    std::fprintf(stderr, "mailring: --log-level: %s\n", std::string(level.status().message()).c_str());
    return kExitConfigError;
  }
  mailring::core::SetLogLevel(*level);
  absl::StatusOr<mailring::core::LogFormat> log_format =
      mailring::core::ParseLogFormat(absl::GetFlag(FLAGS_log_format));
  if (!log_format.ok()) {
    std::fprintf(stderr, "mailring: --log-format: %s\n",
                 std::string(log_format.status().message()).c_str());
    return kExitConfigError;
  }
  mailring::core::SetLogFormat(*log_format);
  const std::string destinations = absl::GetFlag(FLAGS_destinations);
  const std::string kubeconfig = absl::GetFlag(FLAGS_kubeconfig);
  const bool cluster_mode =
      destinations.empty() && (!kubeconfig.empty() || std::getenv("KUBERNETES_SERVICE_HOST"));
  if (destinations.empty() && !cluster_mode) {
    std::fprintf(stderr,
                 "mailring: --destinations FILE (standalone) or --kubeconfig FILE / a pod's "
                 "service account (cluster mode) is required (see --help)\n");
    return kExitConfigError;
  }
  mailring::control::RouteOptions route_options;
  const std::string starttls = absl::GetFlag(FLAGS_upstream_starttls);
  if (starttls == "opportunistic") {
    route_options.starttls_opportunistic = true;
  } else if (starttls != "destination") {
    std::fprintf(stderr, "mailring: --upstream-starttls must be 'destination' or 'opportunistic'\n");
    return kExitConfigError;
  }
  std::optional<mailring::control::ServiceKey> connectivity_key;
  if (const std::string path = absl::GetFlag(FLAGS_connectivity_service_key); !path.empty()) {
    absl::StatusOr<mailring::control::ServiceKey> key = mailring::control::LoadServiceKey(path);
    if (!key.ok()) {
      std::fprintf(stderr, "mailring: --connectivity-service-key: %s\n",
                   std::string(key.status().message()).c_str());
      return kExitConfigError;
    }
    connectivity_key = *std::move(key);
    route_options.has_connectivity_key = true;
  }
  if (const std::string proxy = absl::GetFlag(FLAGS_connectivity_proxy); !proxy.empty()) {
    absl::StatusOr<mailring::core::SocketAddress> address = ResolveHostPort(proxy, 20004);
    if (!address.ok()) {
      std::fprintf(stderr, "mailring: --connectivity-proxy: %s\n",
                   std::string(address.status().message()).c_str());
      return kExitConfigError;
    }
    route_options.connectivity_proxy = *address;
  }
  absl::StatusOr<mailring::core::RouteTable> routes = mailring::core::RouteTable();
  std::unique_ptr<ClusterSetup> cluster;
  if (cluster_mode) {
    route_options.reject_loopback_upstreams = !absl::GetFlag(FLAGS_allow_loopback_upstreams);
    absl::StatusOr<std::unique_ptr<ClusterSetup>> setup = LoadClusterSetup(kubeconfig, route_options);
    if (!setup.ok()) {
      std::fprintf(stderr, "mailring: cluster mode: %s\n",
                   std::string(setup.status().message()).c_str());
      return kExitConfigError;
    }
    cluster = *std::move(setup);
  } else {
    routes = mailring::control::LoadStandaloneRoutes(destinations, route_options);
  }
  if (!routes.ok()) {
    std::fprintf(stderr, "mailring: invalid configuration: %s\n",
                 std::string(routes.status().message()).c_str());
    return kExitConfigError;
  }
  mailring::core::WorkerOptions options;
  options.connect_timeout = absl::GetFlag(FLAGS_connect_timeout);
  options.login_timeout = absl::GetFlag(FLAGS_login_timeout);
  options.idle_timeout = absl::GetFlag(FLAGS_idle_timeout);
  options.client_auth_timeout = absl::GetFlag(FLAGS_client_auth_timeout);
  options.ca_file = absl::GetFlag(FLAGS_ca_file);
  options.tls_aes_ni = absl::GetFlag(FLAGS_tls_aes_ni);
  options.tls_resumption = absl::GetFlag(FLAGS_tls_resumption);
  for (const auto& [name, value] :
       {std::pair{"--connect-timeout", options.connect_timeout},
        std::pair{"--login-timeout", options.login_timeout},
        std::pair{"--client-auth-timeout", options.client_auth_timeout},
        std::pair{"--idle-timeout", options.idle_timeout},
        std::pair{"--drain-timeout", absl::GetFlag(FLAGS_drain_timeout) + absl::Milliseconds(1)}}) {
    if (value <= absl::ZeroDuration()) {
      std::fprintf(stderr, "mailring: %s must be positive\n", name);
      return kExitConfigError;
    }
  }
  const int recv_buffers = absl::GetFlag(FLAGS_recv_buffers);
  if (recv_buffers < 1 || recv_buffers > 32768 || (recv_buffers & (recv_buffers - 1)) != 0) {
    std::fprintf(stderr, "mailring: --recv-buffers must be a power of two from 1 to 32768\n");
    return kExitConfigError;
  }
  options.recv_buffer_count = static_cast<uint32_t>(recv_buffers);
  const int pipes_per_worker = absl::GetFlag(FLAGS_pipes_per_worker);
  if (pipes_per_worker < 0 || pipes_per_worker > 65536) {
    std::fprintf(stderr, "mailring: --pipes-per-worker must be between 0 and 65536\n");
    return kExitConfigError;
  }
  options.max_pipes = static_cast<size_t>(pipes_per_worker);
  int worker_count = absl::GetFlag(FLAGS_workers);
  if (worker_count < 0 || worker_count > 256) {
    std::fprintf(stderr, "mailring: --workers must be between 0 and 256\n");
    return kExitConfigError;
  }
  if (worker_count == 0) worker_count = CpusAvailable();

  RaiseFileLimit();
  MAILRING_LOG(kInfo, mailring::control::BuildInfoLine(), " starting");
  // Before any thread starts: one clear line instead of every worker failing with a bare errno.
  if (absl::Status io_uring = mailring::control::ProbeIoUring(); !io_uring.ok()) {
    MAILRING_LOG(kError, io_uring.message());
    return absl::IsFailedPrecondition(io_uring) ? kExitIoUringBlocked : 1;
  }
  // Workers inherit this mask: only the main thread takes SIGTERM/SIGINT, via sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto table = std::make_shared<const mailring::core::RouteTable>(*std::move(routes));
  // The control thread owns token fetching and refresh; workers read what it publishes. Routes
  // that need no token (basic authentication, relay only) need neither, nor libcurl's memory.
  const bool needs_tokens = std::any_of(table->begin(), table->end(), [](const auto& route) {
    return route->via_connectivity_proxy || (route->destination.login_on_behalf &&
           (route->destination.authentication ==
                mailring::proto::AuthenticationType::kOAuth2ClientCredentials ||
            route->destination.authentication ==
                mailring::proto::AuthenticationType::kOAuth2RefreshToken ||
            route->destination.authentication ==
                mailring::proto::AuthenticationType::kOAuth2AuthorizationCode));
  });
  mailring::core::CredentialCache credentials(worker_count);
  std::unique_ptr<mailring::control::ControlThread> control;
  mailring::core::WorkerServices services;
  if (needs_tokens || cluster != nullptr) {
    mailring::control::CredentialServiceOptions credential_options;
    credential_options.ca_file = absl::GetFlag(FLAGS_ca_file);
    credential_options.connectivity = connectivity_key;
    control = std::make_unique<mailring::control::ControlThread>(table, &credentials,
                                                                 credential_options);
    services = {&credentials, control->broker()};
  }

  std::vector<std::unique_ptr<mailring::core::Worker>> workers;
  std::vector<mailring::core::Worker*> worker_pointers;
  for (int i = 0; i < worker_count; ++i) {
    workers.push_back(std::make_unique<mailring::core::Worker>(i, table, options, services));
    worker_pointers.push_back(workers.back().get());
  }
  std::unique_ptr<mailring::control::ClusterControl> cluster_control;
  if (cluster != nullptr) {
    cluster_control = std::make_unique<mailring::control::ClusterControl>(
        control->http(), std::move(cluster->kube), std::move(cluster->instances),
        std::move(cluster->options), [worker_pointers](auto table) {
          for (mailring::core::Worker* worker : worker_pointers) worker->UpdateRoutes(table);
        });
    control->AddTask([c = cluster_control.get()](int64_t now) { return c->Tick(now); });
    control->credential_service()->SetDestinationService(cluster_control->destination_service());
  }
  if (control != nullptr) {
    control->SetWorkers(worker_pointers);
    control->Start();
  }
  for (int i = 0; i < worker_count; ++i) {
    if (absl::Status status = workers[i]->Start(absl::GetFlag(FLAGS_drain_timeout));
        !status.ok()) {
      MAILRING_LOG(kError, "worker ", i, " failed to start: ", status.message());
      for (auto& worker : workers) worker->RequestDrain();
      workers.clear();  // joins
      if (control != nullptr) control->Stop();
      return 1;
    }
  }
  std::unique_ptr<mailring::control::AdminServer> admin;
  if (const std::string admin_listen = absl::GetFlag(FLAGS_admin_listen); !admin_listen.empty()) {
    absl::StatusOr<mailring::core::SocketAddress> address =
        mailring::core::SocketAddress::ParseNumeric(admin_listen);
    if (!address.ok()) {
      MAILRING_LOG(kError, "--admin-listen: ", address.status().message());
      for (auto& worker : workers) worker->RequestDrain();
      return kExitConfigError;
    }
    mailring::control::MetricsSources sources;
    for (const auto& worker : workers) sources.workers.push_back(worker.get());
    if (control != nullptr) sources.credentials = &control->credential_counters();
    if (cluster_control != nullptr) sources.reconcile_errors = &cluster_control->reconcile_errors();
    const size_t expected_listeners = table->size() * workers.size();
    const mailring::control::ClusterControl* cluster_state = cluster_control.get();
    mailring::control::AdminServer::Handlers handlers;
    handlers.metrics = [sources] { return mailring::control::RenderMetrics(sources); };
    handlers.readiness = [sources, expected_listeners, cluster_state]() -> std::string {
      size_t listening = 0;
      for (const auto* worker : sources.workers) listening += worker->listening();
      size_t expected = expected_listeners;
      if (cluster_state != nullptr) {
        if (!cluster_state->ready()) return "routes not built from the cluster yet";
        expected = cluster_state->routes() * sources.workers.size();
      }
      if (listening < expected) {
        return mailring::StrCat(listening, " of ", expected, " listeners open");
      }
      return {};
    };
    admin = std::make_unique<mailring::control::AdminServer>(*address, std::move(handlers));
    if (absl::Status status = admin->Start(); !status.ok()) {
      MAILRING_LOG(kError, status.message());
      for (auto& worker : workers) worker->RequestDrain();
      return 1;
    }
    MAILRING_LOG(kInfo, "admin endpoints on ", address->ToString(),
                 ": /healthz /readyz /metrics");
  }
  for (const auto& route : *table) {
    MAILRING_LOG(kInfo, "listening on ", route->listen.ToString(), " for destination ",
                 route->destination.name, " (upstream ", route->upstream.ToString(),
                 route->destination.login_on_behalf ? ", logging in on the client's behalf"
                                                    : ", relay only: clients log in themselves",
                 ")");
  }
  MAILRING_LOG(kInfo, "mailring ", mailring::control::GetBuildInfo().version, " ready: ",
               worker_count, " workers, ", table->size(), " routes");

  int received = 0;
  sigwait(&signals, &received);
  MAILRING_LOG(kInfo, "received ", strsignal(received), ": draining for up to ",
               absl::FormatDuration(absl::GetFlag(FLAGS_drain_timeout)));
  for (auto& worker : workers) worker->RequestDrain();
  for (auto& worker : workers) worker->Join();
  if (control != nullptr) control->Stop();
  cluster_control.reset();
  if (admin != nullptr) admin->Stop();
  MAILRING_LOG(kInfo, "mailring stopped");
  return 0;
}
