// mailring: the daemon's entry point: the flags (this file is what --help lists), the Config
// they make (control/config.h), the Daemon it wires (control/daemon.h), and the main thread
// waiting for SIGTERM/SIGINT to drain.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/marshalling.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "control/build_info.h"
#include "control/config.h"
#include "control/daemon.h"
#include "core/log.h"

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
ABSL_FLAG(bool, tls_record_takeover, true,
          "After a TLS 1.3 AES-GCM handshake, protect the records in mailring itself and free "
          "wolfSSL's per-connection state (about 74 KiB per session); false: wolfSSL keeps them "
          "(for a server that sends TLS KeyUpdates, which the take-over cannot follow)");
ABSL_FLAG(bool, ktls, true,
          "Hand upstream TLS 1.3 AES-GCM records to the kernel (kTLS) when the relay starts, so "
          "the TLS leg is spliced like a plain one; falls back to mailring's own record path "
          "where the kernel has no TLS (mailring_ktls_fallbacks_total says why)");
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

void ParseCommandLine(int argc, char** argv) {
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
}

mailring::control::Flags ReadFlags() {
  mailring::control::Flags flags;
  flags.destinations = absl::GetFlag(FLAGS_destinations);
  flags.workers = absl::GetFlag(FLAGS_workers);
  flags.log_level = absl::GetFlag(FLAGS_log_level);
  flags.log_format = absl::GetFlag(FLAGS_log_format);
  flags.drain_timeout = absl::GetFlag(FLAGS_drain_timeout);
  flags.connect_timeout = absl::GetFlag(FLAGS_connect_timeout);
  flags.login_timeout = absl::GetFlag(FLAGS_login_timeout);
  flags.client_auth_timeout = absl::GetFlag(FLAGS_client_auth_timeout);
  flags.idle_timeout = absl::GetFlag(FLAGS_idle_timeout);
  flags.tls_aes_ni = absl::GetFlag(FLAGS_tls_aes_ni);
  flags.tls_resumption = absl::GetFlag(FLAGS_tls_resumption);
  flags.tls_record_takeover = absl::GetFlag(FLAGS_tls_record_takeover);
  flags.ktls = absl::GetFlag(FLAGS_ktls);
  flags.ca_file = absl::GetFlag(FLAGS_ca_file);
  flags.upstream_starttls = absl::GetFlag(FLAGS_upstream_starttls);
  flags.admin_listen = absl::GetFlag(FLAGS_admin_listen);
  flags.kubeconfig = absl::GetFlag(FLAGS_kubeconfig);
  flags.mailring_namespace = absl::GetFlag(FLAGS_namespace);
  flags.pod_name = absl::GetFlag(FLAGS_pod_name);
  flags.port_range = absl::GetFlag(FLAGS_port_range);
  flags.default_instance = absl::GetFlag(FLAGS_default_instance);
  flags.destination_service_keys = absl::GetFlag(FLAGS_destination_service_key);
  flags.listen_address = absl::GetFlag(FLAGS_listen_address);
  flags.cluster_domain = absl::GetFlag(FLAGS_cluster_domain);
  flags.allow_loopback_upstreams = absl::GetFlag(FLAGS_allow_loopback_upstreams);
  flags.connectivity_proxy = absl::GetFlag(FLAGS_connectivity_proxy);
  flags.connectivity_service_key = absl::GetFlag(FLAGS_connectivity_service_key);
  flags.recv_buffers = absl::GetFlag(FLAGS_recv_buffers);
  flags.pipes_per_worker = absl::GetFlag(FLAGS_pipes_per_worker);
  return flags;
}

int ConfigError(const absl::Status& status) {
  std::fprintf(stderr, "mailring: %s\n", std::string(status.message()).c_str());
  return kExitConfigError;
}

// Workers inherit this mask: only the main thread takes SIGTERM/SIGINT, via sigwait.
sigset_t BlockTerminationSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return signals;
}

}  // namespace

int main(int argc, char** argv) {
  ParseCommandLine(argc, argv);
  absl::StatusOr<mailring::control::Config> config =
      mailring::control::Config::FromFlags(ReadFlags(), mailring::control::Environment::Current());
  if (!config.ok()) return ConfigError(config.status());
  mailring::core::SetLogLevel(config->log_level);
  mailring::core::SetLogFormat(config->log_format);

  mailring::control::Daemon daemon(*std::move(config));
  if (absl::Status status = daemon.LoadRoutes(); !status.ok()) return ConfigError(status);
  if (absl::Status status = daemon.ProbeKernel(); !status.ok()) {
    MAILRING_LOG(kError, status.message());
    return absl::IsFailedPrecondition(status) ? kExitIoUringBlocked : 1;
  }
  const sigset_t signals = BlockTerminationSignals();
  if (absl::Status status = daemon.Start(); !status.ok()) {
    MAILRING_LOG(kError, status.message());
    daemon.Stop();
    return 1;
  }

  int received = 0;
  sigwait(&signals, &received);
  MAILRING_LOG(kInfo, "received ", strsignal(received), ": draining for up to ",
               absl::FormatDuration(daemon.drain_timeout()));
  daemon.Stop();
  MAILRING_LOG(kInfo, "mailring stopped");
  return 0;
}
