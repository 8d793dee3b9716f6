// mailring_soak: a fault-injection soak (issue 15). N concurrent IMAP sessions read the fixture's
// mail through mailring, byte-checked, while a fault schedule restarts the upstream, flaps the
// token service and, in cluster mode, breaks the API server's watches and moves the leader Lease.
//
//   mailring_soak [--duration=60] [--sessions=40] [--mode=both|standalone|cluster] [--seed=1]
//                 [--faults=KIND,...] [--report=FILE] [--sessions-log=FILE]
//
// --duration is the whole soak in seconds (sessions start until then; the ones running finish);
// it defaults to the environment's MAILRING_SOAK_SECONDS if set, else 60. ctest runs this form
// (label `soak`; scripts/test.sh after the integration tests, MAILRING_SOAK_SECONDS=0 skips it).
// The long form is opt-in: --duration=1800 or more (docs/OPERATIONS.md, "Soak"). --faults keeps
// only the named kinds; --sessions-log writes one tab-separated line per session (route, start
// and end in seconds from the start, outcome, stage, bytes verified, line). Exit 0: pass; 1: fail;
// 2: usage or set-up error; 77: nothing to run (no Dovecot; or --mode=cluster without kubectl).
//
// What runs: one real Dovecot (tests/integration/dovecot_fixture.sh, ~20 MiB message 4), the fake
// OAuth server (tests/fakes/oauth_server.h; 4 s tokens, so mailring refreshes every ~3 s and a
// token fault shows within seconds) behind a FaultForwarder (slow / down), and
//   standalone  mailring with a destinations file: route "basic" (BasicAuthentication, alice) and
//               route "oauth" (OAuth2ClientCredentials at the fake; Dovecot introspects).
//   cluster     a second mailring as pod "pod-a" against the fake Kubernetes API server
//               (tests/fakes/kube_apiserver.h) and the fake Destination service, serving the
//               Destination CR "soak-imap" (BasicAuthentication, alice): route "cluster".
//   both        (default) both daemons at once, in front of the same Dovecot.
// Each of --sessions client threads loops until the end: connect to the next route (round
// robin), run one session (tests/soak/soak_session.h: greeting PREAUTH, SELECT, FETCH of the 3
// small messages, 3 FETCHes of the ~20 MiB one, LOGOUT), record its outcome, reconnect (after
// 200 ms if it failed, so an outage is not a busy loop).
//
// The fault schedule (deterministic from --seed: the order of kinds, shuffled per round, and
// every length): 3 s quiet, then faults one at a time, each followed by a 1.5-2.5 s quiet gap,
// none in the last max(10 s, duration/6) so that the end shows recovery.
//   upstream-restart  Dovecot stopped (the fixture's stop: SIGTERM to the master; an IMAP
//                     process says "* BYE Server shutting down." and ends, but one busy with a
//                     FETCH finishes it first), down 0.5-1.5 s, started again on the same ports
//                     with byte-identical mail.                          affects every route
//   upstream-kill     the same with SIGKILL to every Dovecot process: every connection ends at
//                     once, mid-literal for the sessions that were fetching.   every route
//   token-5xx         every token request answers 500, for 4-5 s.       affects "oauth"
//   token-slow        every token request is held 2-4 s by the forwarder, for 4-6 s.  "oauth"
//   token-down        the token listener and the forwarder closed (connections refused), the
//                     fake's introspection (Dovecot's side) stays up, for 4-5 s.     "oauth"
//   watch-drop        every open watch stream cut mid-stream.            affects "cluster"
//   watch-410         the watch history compacted, then every watch cut: the first watch request
//                     that comes back is answered HTTP 410 Gone, the others get an ERROR event
//                     with code 410 (Expired); each must list again.    affects "cluster"
//   lease-move        the leader Lease mailring-leader given to "soak-intruder" (renewed every
//                     second), for 3-5 s, then given back to pod-a.      affects "cluster"
//
// How each session ended (the rules; soak_session.h reports the facts):
//   completed        LOGOUT answered OK, every literal complete and byte-identical to the
//                    reference. "SHA-checked": the reference is the fixture's big.eml, whose
//                    SHA-256 is checked against big.sha256 at start; each delivered byte is then
//                    compared with the reference at its offset (stronger than hashing a copy:
//                    it also says where a difference is).
//   clear failure    (a) a failure line: "* BYE ..." (a greeting or any later untagged BYE other
//                    than LOGOUT's) or a tagged NO/BAD to one of the session's commands,
//                    recorded verbatim. This includes a literal cut short whose delivered bytes
//                    were a correct prefix, followed (after an optional CRLF) by a BYE or tagged
//                    NO/BAD line and then the close: the proxy delivered what it had, then said
//                    why.
//                    (b) an orderly close (EOF, no line) after the PREAUTH greeting, every
//                    delivered byte correct (a literal may have been cut: a correct prefix), and
//                    the session ended during an upstream restart or kill (from 1 s before
//                    Dovecot was stopped to 5 s after it was up again). Once a session relays,
//                    mailring no longer parses the server's stream, so it cannot add a line there:
//                    it must deliver everything the server sent and close in order, which is this.
//   MISMATCH         a delivered literal byte differs from the reference (lost, reordered,
//                    duplicated or altered bytes), or a literal's announced size differs, and
//                    what follows is not (a)'s correct-prefix-then-line case.
//   UNCLEAR          a failure without a line outside (b): connection refused by mailring (its
//                    listener must stay up through every fault), reset (RST), closed before any
//                    greeting, an orderly close without a line outside an upstream restart, an
//                    unexpected greeting, a FETCH answered OK without its literals.
//   HANG             no byte for 30 s, or a session past 300 s.
// Pass: 0 MISMATCH, 0 UNCLEAR, 0 HANG, at least one fault injected, every injection succeeded,
// both daemons still running at the end, a completed session on every route, and after every
// fault a session that started after the fault ended completed on every route the fault affects
// (recovery). The report prints sessions per route and outcome, bytes verified, every fault with
// its recovery time (start of the first later session that completed) and what became of the
// sessions in flight when it began, every failure line with its count, and each
// MISMATCH/UNCLEAR/HANG. soak_session_test proves the classifier sees what these rules name.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "simdjson.h"
#include "tests/fakes/destination_service.h"
#include "tests/fakes/kube_apiserver.h"
#include "tests/fakes/oauth_server.h"
#include "tests/integration/integration_env.h"
#include "tests/integration/sha256.h"
#include "tests/soak/fault_forwarder.h"
#include "tests/soak/soak_session.h"

namespace mailring::soak {
namespace {

using fakes::FakeDestinationService;
using fakes::FakeKubeApiServer;
using fakes::FakeOAuthServer;
using integration::CommandResult;
using integration::DovecotServer;
using integration::EnvOr;
using integration::JsonAt;
using integration::KubectlAvailable;
using integration::KubectlBinary;
using integration::MailringProcess;
using integration::RunCommand;
using integration::ShellQuote;
using integration::WaitFor;

constexpr char kOAuthClientId[] = "mailring-soak-client";
constexpr char kOAuthClientSecret[] = "soak-client-secret-Zq81";
constexpr char kAlicePassword[] = "secret";
constexpr char kCrName[] = "soak-imap";
constexpr char kDestinationName[] = "soak-dest-imap";
constexpr char kAppNamespace[] = "apps";
constexpr char kPodName[] = "pod-a";
constexpr char kLeasePath[] =
    "/apis/coordination.k8s.io/v1/namespaces/mailring/leases/mailring-leader";
constexpr int kPortCount = 20;
constexpr int kTokenLifetimeSeconds = 4;
// A session closed without a line counts as an upstream-restart cut within this window.
constexpr absl::Duration kRestartSlackBefore = absl::Seconds(1);
constexpr absl::Duration kRestartSlackAfter = absl::Seconds(5);

enum class Mode { kBoth, kStandalone, kCluster };

struct Flags {
  absl::Duration duration = absl::Seconds(60);
  int sessions = 40;
  Mode mode = Mode::kBoth;
  uint64_t seed = 1;
  std::vector<std::string> faults;  // only these kinds (empty: every kind of the mode)
  std::string report_path;
  std::string sessions_log_path;  // one line per session
};

std::optional<Flags> ParseFlags(int argc, char** argv) {
  Flags flags;
  int64_t env_seconds = 0;
  if (absl::SimpleAtoi(EnvOr("MAILRING_SOAK_SECONDS", ""), &env_seconds) && env_seconds > 0) {
    flags.duration = absl::Seconds(env_seconds);
  }
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : arg.substr(eq + 1);
    int64_t number = 0;
    if (name == "--duration" && absl::SimpleAtoi(absl::StripSuffix(value, "s"), &number) &&
        number > 0) {
      flags.duration = absl::Seconds(number);
    } else if (name == "--sessions" && absl::SimpleAtoi(value, &number) && number > 0 &&
               number <= 1000) {
      flags.sessions = static_cast<int>(number);
    } else if (name == "--seed" && absl::SimpleAtoi(value, &flags.seed)) {
    } else if (name == "--mode" &&
               (value == "both" || value == "standalone" || value == "cluster")) {
      flags.mode = value == "both"         ? Mode::kBoth
                   : value == "standalone" ? Mode::kStandalone
                                           : Mode::kCluster;
    } else if (name == "--faults" && !value.empty()) {
      flags.faults = absl::StrSplit(value, ',');
    } else if (name == "--sessions-log" && !value.empty()) {
      flags.sessions_log_path = value;
    } else if (name == "--report" && !value.empty()) {
      flags.report_path = value;
    } else {
      std::cerr << "mailring_soak: bad argument '" << arg << "'\n"
                << "usage: mailring_soak [--duration=SECONDS] [--sessions=N] "
                   "[--mode=both|standalone|cluster] [--seed=N] [--faults=KIND,...] "
                   "[--report=FILE] [--sessions-log=FILE]\n";
      return std::nullopt;
    }
  }
  return flags;
}

// --- Cluster helpers (the way tests/integration/cluster_test.cc drives the fakes) ------------

std::string Rfc3339Micro(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone());
}

// The pids of `root`'s descendants, from /proc (a snapshot).
std::vector<pid_t> Descendants(pid_t root) {
  std::map<pid_t, std::vector<pid_t>> children;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    pid_t pid = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid)) continue;
    absl::StatusOr<std::string> stat = integration::ReadFile(entry.path().string() + "/stat");
    if (!stat.ok()) continue;
    // "pid (comm) state ppid ...": comm may contain spaces and parentheses; the last ')' ends it.
    const size_t close = stat->rfind(')');
    if (close == std::string::npos) continue;
    std::vector<std::string> fields = absl::StrSplit(stat->substr(close + 2), ' ');
    pid_t ppid = 0;
    if (fields.size() > 1 && absl::SimpleAtoi(fields[1], &ppid)) children[ppid].push_back(pid);
  }
  std::vector<pid_t> found;
  std::vector<pid_t> queue = {root};
  while (!queue.empty() && found.size() < 10000) {
    const pid_t pid = queue.back();
    queue.pop_back();
    for (pid_t child : children[pid]) {
      found.push_back(child);
      queue.push_back(child);
    }
  }
  return found;
}

// SIGKILLs the fixture Dovecot in `dir` (its master and every process under it, which the soak
// started through the fixture): every connection it had ends at once, mid-stream. Then the
// fixture's stop cleans up.
absl::Status KillDovecot(DovecotServer& dovecot) {
  absl::StatusOr<std::string> pid_text = integration::ReadFile(dovecot.dir() + "/run/master.pid");
  pid_t master = 0;
  if (!pid_text.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*pid_text), &master) ||
      master <= 1) {
    return absl::FailedPreconditionError("no Dovecot master pid");
  }
  std::vector<pid_t> victims = Descendants(master);
  victims.push_back(master);
  for (pid_t pid : victims) kill(pid, SIGKILL);
  return dovecot.Stop();
}

// --- The environment -------------------------------------------------------------------------

enum RouteGroup { kBasic = 0, kOAuth = 1, kCluster = 2 };
constexpr const char* kGroupNames[] = {"basic", "oauth", "cluster"};

struct Route {
  RouteGroup group;
  uint16_t port;
};

class Environment {
 public:
  // Everything the soak runs against; an error names what could not start.
  absl::Status Start(Mode mode) {
    // Many sessions, each a few descriptors in every process.
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
      limit.rlim_cur = limit.rlim_max;
      setrlimit(RLIMIT_NOFILE, &limit);
    }
    if (absl::Status status = oauth_.Start(); !status.ok()) return status;
    oauth_.RegisterClient(kOAuthClientId, kOAuthClientSecret, "alice");
    oauth_.SetExpiresIn(kTokenLifetimeSeconds);
    token_forwarder_ = std::make_unique<FaultForwarder>(oauth_.token_port());
    if (absl::Status status = token_forwarder_->Start(); !status.ok()) return status;

    integration::DovecotOptions options;
    options.oauth2_introspection_url = oauth_.IntrospectionUrl();
    absl::StatusOr<std::unique_ptr<DovecotServer>> dovecot = DovecotServer::Start(options);
    if (!dovecot.ok()) return dovecot.status();
    dovecot_ = *std::move(dovecot);
    if (absl::Status status = LoadReference(); !status.ok()) return status;

    if (mode != Mode::kCluster) {
      if (absl::Status status = StartStandalone(); !status.ok()) return status;
    }
    if (mode != Mode::kStandalone) {
      if (absl::Status status = StartCluster(); !status.ok()) return status;
    }
    return absl::OkStatus();
  }

  ~Environment() {
    standalone_.reset();
    pod_.reset();
    if (api_ != nullptr) api_->Stop();
  }

  const ReferenceMail& reference() const { return reference_; }
  const std::vector<Route>& routes() const { return routes_; }
  DovecotServer& dovecot() { return *dovecot_; }
  FakeOAuthServer& oauth() { return oauth_; }
  FaultForwarder& token_forwarder() { return *token_forwarder_; }
  FakeKubeApiServer* api() { return api_.get(); }
  bool has_group(RouteGroup group) const {
    return std::any_of(routes_.begin(), routes_.end(),
                       [group](const Route& r) { return r.group == group; });
  }
  // mailring's logs, for a failed run.
  std::vector<std::pair<std::string, std::string>> Logs() const {
    std::vector<std::pair<std::string, std::string>> logs;
    if (standalone_) logs.emplace_back("standalone mailring", standalone_->log_path());
    if (pod_) logs.emplace_back("cluster mailring (pod-a)", pod_->log_path());
    return logs;
  }
  // True while both daemons still run (a crash is a failure of its own).
  std::string DeadDaemons() {
    std::string dead;
    for (MailringProcess* process : {standalone_.get(), pod_.get()}) {
      if (process == nullptr) continue;
      int status = 0;
      if (waitpid(process->pid(), &status, WNOHANG) == process->pid()) {
        absl::StrAppend(&dead, "mailring pid ", process->pid(), " exited (status ", status,
                        "); log ", process->log_path(), "\n");
      }
    }
    return dead;
  }

 private:
  absl::Status LoadReference() {
    absl::StatusOr<std::string> big = integration::ReadFile(dovecot_->dir() + "/big.eml");
    if (!big.ok()) return big.status();
    if (big->size() != dovecot_->big_size() ||
        integration::Sha256Hex(*big) != dovecot_->big_sha256()) {
      return absl::InternalError("big.eml does not match the fixture's big.sha256 / big.size");
    }
    reference_.big = *std::move(big);
    for (int i = 1; i <= DovecotServer::kSmallMessages; ++i) {
      reference_.small_text.push_back(DovecotServer::SmallMessageText(i));
    }
    return absl::OkStatus();
  }

  absl::Status StartStandalone() {
    integration::Destination oauth = {
        {"Name", "soak-oauth"},
        {"Type", "MAIL"},
        {"Authentication", "OAuth2ClientCredentials"},
        {"mail.user", "alice"},
        {"mail.transport.protocol", "imap4"},
        {"mail.imap4.host", "127.0.0.1"},
        {"mail.imap4.port", absl::StrCat(dovecot_->port())},
        {"mail.imap4.auth", "true"},
        {"ProxyType", "Internet"},
        {"tokenServiceURL",
         absl::StrCat("http://127.0.0.1:", token_forwarder_->port(), "/oauth/token")},
        {"tokenServiceURLType", "Dedicated"},
        {"clientId", kOAuthClientId},
        {"clientSecret", kOAuthClientSecret}};
    integration::Destination basic =
        integration::BasicDestination("alice", kAlicePassword, dovecot_->port());
    basic["Name"] = "soak-basic";
    const uint16_t basic_port = integration::PickFreeLoopbackPort();
    uint16_t oauth_port = basic_port;
    while (oauth_port == basic_port) oauth_port = integration::PickFreeLoopbackPort();
    const std::string json =
        integration::DestinationsFileJson({{absl::StrCat("127.0.0.1:", basic_port), basic},
                                           {absl::StrCat("127.0.0.1:", oauth_port), oauth}});
    absl::StatusOr<std::unique_ptr<MailringProcess>> process =
        MailringProcess::Start(dir_.path(), json, {basic_port, oauth_port}, {"--log-level=info"});
    if (!process.ok()) return process.status();
    standalone_ = *std::move(process);
    routes_.push_back({kBasic, basic_port});
    routes_.push_back({kOAuth, oauth_port});
    return absl::OkStatus();
  }

  CommandResult Kubectl(const std::string& args) {
    return RunCommand(absl::StrCat(
        "timeout 25 ", ShellQuote(KubectlBinary()), " --kubeconfig ", ShellQuote(kubeconfig_),
        " --cache-dir ", ShellQuote(dir_.path() + "/kube-cache"), " --request-timeout=10s ", args));
  }

  absl::Status StartCluster() {
    api_ = std::make_unique<FakeKubeApiServer>();
    if (absl::Status status = api_->Start(); !status.ok()) return status;
    kubeconfig_ = dir_.path() + "/kubeconfig";
    if (absl::Status status = api_->WriteKubeconfig(kubeconfig_); !status.ok()) return status;
    for (const char* ns : {"mailring", kAppNamespace}) {
      CommandResult r = Kubectl(absl::StrCat("create namespace ", ns));
      if (r.exit_code != 0) return absl::InternalError("kubectl create namespace: " + r.output);
    }
    const std::string crd = EnvOr("MAILRING_DESTINATION_CRD", MAILRING_DESTINATION_CRD);
    CommandResult r = Kubectl(absl::StrCat("apply -f ", ShellQuote(crd)));
    if (r.exit_code != 0) return absl::InternalError("kubectl apply (CRD): " + r.output);

    if (absl::Status status = destinations_.Start(); !status.ok()) return status;
    if (absl::Status status = destinations_.AddDestination(
            "",
            absl::StrCat(R"({"Name":")", kDestinationName,
                         R"(","Type":"MAIL","Authentication":"BasicAuthentication",)",
                         R"("mail.user":"alice","mail.password":")", kAlicePassword,
                         R"(","mail.transport.protocol":"imap4","mail.imap4.host":"127.0.0.1",)",
                         R"("mail.imap4.port":")", dovecot_->port(),
                         R"(","mail.imap4.auth":"true","ProxyType":"Internet"})"));
        !status.ok()) {
      return status;
    }
    const std::string key_file = dir_.path() + "/destination-service-key.json";
    if (absl::Status status = integration::WriteFile(key_file, destinations_.ServiceKeyJson());
        !status.ok()) {
      return status;
    }
    const int first = integration::FindFreePortRange(kPortCount, {"127.0.0.1"});
    if (first == 0) return absl::UnavailableError("no 20 consecutive free ports below the ephemeral range");
    absl::StatusOr<std::unique_ptr<MailringProcess>> pod = MailringProcess::Start(
        dir_.path(), "{\"routes\": []}\n", {},
        {"--destinations=", "--kubeconfig=" + kubeconfig_, "--namespace=mailring",
         absl::StrCat("--pod-name=", kPodName),
         absl::StrCat("--port-range=", first, "-", first + kPortCount - 1),
         "--destination-service-key=default=" + key_file, "--default-instance=default",
         "--listen-address=127.0.0.1", "--allow-loopback-upstreams", "--log-level=info"});
    if (!pod.ok()) return pod.status();
    pod_ = *std::move(pod);

    const std::string cr_path = dir_.path() + "/cr.yaml";
    if (absl::Status status = integration::WriteFile(
            cr_path,
            absl::StrCat("apiVersion: destination.connectivity.api.sap/v1\n"
                         "kind: Destination\nmetadata:\n  name: ",
                         kCrName, "\n  namespace: ", kAppNamespace,
                         "\nspec:\n  destinationRef:\n    name: ", kDestinationName, "\n"));
        !status.ok()) {
      return status;
    }
    r = Kubectl(absl::StrCat("apply -f ", ShellQuote(cr_path)));
    if (r.exit_code != 0) return absl::InternalError("kubectl apply (CR): " + r.output);
    int port = 0;
    const bool served = WaitFor(
        [&] {
          for (const std::string& service : api_->Objects("services", "mailring")) {
            absl::SimpleAtoi(JsonAt(service, "/spec/ports/0/targetPort"), &port);
          }
          return port != 0 && integration::PortAcceptsConnections(static_cast<uint16_t>(port));
        },
        absl::Seconds(30));
    if (!served) {
      return absl::DeadlineExceededError(
          absl::StrCat("the CR was not served within 30 s; pod-a's log: ", pod_->log_path()));
    }
    if (!WaitFor([&] { return api_->Object("leases", "mailring", "mailring-leader").has_value(); },
                 absl::Seconds(10))) {
      return absl::DeadlineExceededError("pod-a took no Lease within 10 s");
    }
    routes_.push_back({kCluster, static_cast<uint16_t>(port)});
    return absl::OkStatus();
  }

  integration::TempDir dir_;
  FakeOAuthServer oauth_;
  std::unique_ptr<FaultForwarder> token_forwarder_;
  std::unique_ptr<DovecotServer> dovecot_;
  ReferenceMail reference_;
  std::unique_ptr<MailringProcess> standalone_;
  std::unique_ptr<FakeKubeApiServer> api_;
  FakeDestinationService destinations_;
  std::string kubeconfig_;
  std::unique_ptr<MailringProcess> pod_;
  std::vector<Route> routes_;
};

// --- Faults ----------------------------------------------------------------------------------

struct FaultRecord {
  std::string kind;
  std::string detail;
  absl::Time start;
  absl::Time end;
  std::vector<RouteGroup> affects;
  bool upstream_restart = false;
  std::string error;  // the injection itself failed
};

struct FaultKind {
  std::string name;
  std::vector<RouteGroup> affects;
  // Injects the fault (blocking for its length); fills detail/error.
  std::function<void(std::mt19937_64&, FaultRecord&)> inject;
};

// A length in [low, high) seconds, in whole tenths (so that reports read well).
absl::Duration UniformSeconds(std::mt19937_64& random, double low, double high) {
  const double seconds = std::uniform_real_distribution<double>(low, high)(random);
  return absl::Milliseconds(static_cast<int64_t>(seconds * 10) * 100);
}

std::vector<FaultKind> FaultKinds(Environment& env, Mode mode) {
  std::vector<FaultKind> kinds;
  std::vector<RouteGroup> all;
  for (const Route& route : env.routes()) all.push_back(route.group);
  kinds.push_back({"upstream-restart", all, [&env](std::mt19937_64& random, FaultRecord& record) {
                     const absl::Duration down = UniformSeconds(random, 0.5, 1.5);
                     record.upstream_restart = true;
                     record.detail = absl::StrCat("SIGTERM, down ", absl::FormatDuration(down));
                     if (absl::Status s = env.dovecot().Stop(); !s.ok())
                       record.error = s.ToString();
                     absl::SleepFor(down);
                     if (absl::Status s = env.dovecot().StartAgain(); !s.ok()) {
                       record.error = s.ToString();
                     }
                   }});
  kinds.push_back({"upstream-kill", all, [&env](std::mt19937_64& random, FaultRecord& record) {
                     const absl::Duration down = UniformSeconds(random, 0.5, 1.5);
                     record.upstream_restart = true;
                     record.detail = absl::StrCat("SIGKILL, down ", absl::FormatDuration(down));
                     if (absl::Status s = KillDovecot(env.dovecot()); !s.ok()) {
                       record.error = s.ToString();
                     }
                     absl::SleepFor(down);
                     if (absl::Status s = env.dovecot().StartAgain(); !s.ok()) {
                       record.error = s.ToString();
                     }
                   }});
  if (mode != Mode::kCluster) {
    kinds.push_back({"token-5xx", {kOAuth}, [&env](std::mt19937_64& random, FaultRecord& record) {
                       const absl::Duration length = UniformSeconds(random, 4, 5);
                       record.detail = absl::StrCat("HTTP 500 for ", absl::FormatDuration(length));
                       env.oauth().FailNextTokenRequests(1000000, FakeOAuthServer::Fault::kHttp500);
                       absl::SleepFor(length);
                       env.oauth().FailNextTokenRequests(0, FakeOAuthServer::Fault::kHttp500);
                     }});
    kinds.push_back({"token-slow", {kOAuth}, [&env](std::mt19937_64& random, FaultRecord& record) {
                       const absl::Duration delay = UniformSeconds(random, 2, 4);
                       const absl::Duration length = UniformSeconds(random, 4, 6);
                       record.detail =
                           absl::StrCat("each request held ", absl::FormatDuration(delay), ", for ",
                                        absl::FormatDuration(length));
                       env.token_forwarder().SetDelay(delay);
                       absl::SleepFor(length);
                       env.token_forwarder().SetDelay(absl::ZeroDuration());
                     }});
    kinds.push_back({"token-down", {kOAuth}, [&env](std::mt19937_64& random, FaultRecord& record) {
                       const absl::Duration length = UniformSeconds(random, 4, 5);
                       record.detail = absl::StrCat("refused for ", absl::FormatDuration(length));
                       env.token_forwarder().GoDown();
                       env.oauth().Stop();
                       absl::SleepFor(length);
                       if (absl::Status s = env.oauth().Start(); !s.ok())
                         record.error = s.ToString();
                       if (absl::Status s = env.token_forwarder().Start(); !s.ok()) {
                         record.error = s.ToString();
                       }
                     }});
  }
  if (mode != Mode::kStandalone) {
    FakeKubeApiServer* api = env.api();
    kinds.push_back({"watch-drop", {kCluster}, [api](std::mt19937_64&, FaultRecord& record) {
                       record.detail = absl::StrCat(api->OpenWatches(), " watches cut");
                       api->DropWatches();
                     }});
    kinds.push_back(
        {"watch-410", {kCluster}, [api](std::mt19937_64&, FaultRecord& record) {
           const int lists = api->RequestCount("list");
           api->CompactHistory();
           record.detail = absl::StrCat(api->OpenWatches(),
                                        " watches cut after compaction, 1st re-watch HTTP 410");
           // Both ways a real API server says 410: the first watch request that comes back is
           // answered HTTP 410 Gone; the others get an ERROR event with code 410 (Expired).
           api->FailNextRequests("", 1, 410, "watch");
           api->DropWatches();
           // Either way the resumed watch must list again.
           if (!WaitFor([&] { return api->RequestCount("list") > lists; }, absl::Seconds(10))) {
             record.error = "no list within 10 s after 410 Expired";
           }
         }});
    kinds.push_back({"lease-move", {kCluster}, [api](std::mt19937_64& random, FaultRecord& record) {
                       const absl::Duration length = UniformSeconds(random, 3, 5);
                       record.detail = absl::StrCat("held by soak-intruder for ",
                                                    absl::FormatDuration(length), ", then pod-a");
                       const auto give = [&](const std::string& holder) {
                         const FakeKubeApiServer::Response response =
                             api->Request("PATCH", kLeasePath,
                                          absl::StrCat(R"({"spec":{"holderIdentity":")", holder,
                                                       R"(","renewTime":")",
                                                       Rfc3339Micro(absl::Now()), R"("}})"),
                                          "application/merge-patch+json");
                         if (response.status != 200) {
                           record.error = absl::StrCat("PATCH lease: HTTP ", response.status, " ",
                                                       response.body);
                         }
                       };
                       const absl::Time end = absl::Now() + length;
                       while (absl::Now() < end) {
                         give("soak-intruder");
                         absl::SleepFor(std::min(absl::Seconds(1), end - absl::Now()));
                       }
                       give(kPodName);
                     }});
  }
  return kinds;
}

// Runs faults from `start` + 3 s until `quiet_from`; the records of what it did.
std::vector<FaultRecord> RunFaultSchedule(std::vector<FaultKind> kinds, uint64_t seed,
                                          absl::Time start, absl::Time quiet_from,
                                          const std::atomic<bool>& abort) {
  std::mt19937_64 random(seed);
  std::vector<FaultRecord> records;
  absl::SleepFor(start + absl::Seconds(3) - absl::Now());
  std::vector<size_t> order;
  // A fault that could not end before the quiet tail is not started (most last 5 s at most).
  while (!abort.load() && absl::Now() + absl::Seconds(5) < quiet_from) {
    if (order.empty()) {
      for (size_t i = 0; i < kinds.size(); ++i) order.push_back(i);
      std::shuffle(order.begin(), order.end(), random);
      std::reverse(order.begin(), order.end());  // popped from the back: the shuffled order
    }
    const FaultKind& kind = kinds[order.back()];
    order.pop_back();
    FaultRecord record;
    record.kind = kind.name;
    record.affects = kind.affects;
    record.start = absl::Now();
    kind.inject(random, record);
    record.end = absl::Now();
    std::cout << absl::StrFormat("[soak] +%5.1fs %-16s %s%s\n",
                                 absl::ToDoubleSeconds(record.start - start), record.kind,
                                 record.detail,
                                 record.error.empty() ? "" : " ERROR: " + record.error)
              << std::flush;
    records.push_back(std::move(record));
    absl::SleepFor(UniformSeconds(random, 1.5, 2.5));
  }
  return records;
}

// --- Sessions and the report -----------------------------------------------------------------

struct RecordedSession {
  RouteGroup group;
  SessionOutcome outcome;
  bool clear = false;  // a failure that meets the rules (for kClosedNoLine: in a restart window)
};

bool InRestartWindow(const SessionOutcome& outcome, const std::vector<FaultRecord>& faults) {
  for (const FaultRecord& fault : faults) {
    if (fault.upstream_restart && outcome.ended >= fault.start - kRestartSlackBefore &&
        outcome.ended <= fault.end + kRestartSlackAfter) {
      return true;
    }
  }
  return false;
}

std::string GiB(uint64_t bytes) { return absl::StrFormat("%.2f GiB", bytes / 1073741824.0); }

int Run(const Flags& flags) {
  if (integration::FindDovecot().empty()) {
    std::cout << "mailring_soak: SKIP: dovecot is not installed (apt-get install dovecot-imapd)\n";
    return 77;
  }
  Mode mode = flags.mode;
  std::string note;
  if (mode != Mode::kStandalone && !KubectlAvailable()) {
    if (mode == Mode::kCluster) {
      std::cout << "mailring_soak: SKIP: kubectl is not on PATH (cluster mode needs it)\n";
      return 77;
    }
    mode = Mode::kStandalone;
    note = "cluster mode skipped: kubectl is not on PATH\n";
  }
  signal(SIGPIPE, SIG_IGN);
  Environment env;
  if (absl::Status status = env.Start(mode); !status.ok()) {
    std::cerr << "mailring_soak: set-up failed: " << status << "\n";
    return 2;
  }

  const absl::Time start = absl::Now();
  const absl::Time end = start + flags.duration;
  const absl::Time quiet_from = end - std::max(absl::Seconds(10), flags.duration / 6);
  std::atomic<bool> abort{false};
  std::vector<FaultRecord> faults;
  std::thread fault_thread([&] {
    std::vector<FaultKind> kinds = FaultKinds(env, mode);
    if (!flags.faults.empty()) {
      std::erase_if(kinds, [&](const FaultKind& kind) {
        return std::find(flags.faults.begin(), flags.faults.end(), kind.name) == flags.faults.end();
      });
    }
    if (kinds.empty()) return;
    faults = RunFaultSchedule(std::move(kinds), flags.seed, start, quiet_from, abort);
  });

  absl::Mutex mutex;
  std::vector<RecordedSession> sessions;
  std::vector<std::thread> clients;
  for (int i = 0; i < flags.sessions; ++i) {
    clients.emplace_back([&, i] {
      const std::vector<Route>& routes = env.routes();
      for (size_t n = static_cast<size_t>(i); absl::Now() < end; ++n) {
        const Route& route = routes[n % routes.size()];
        SessionOptions options;
        options.port = route.port;
        SessionOutcome outcome = RunSession(options, env.reference());
        const bool failed = outcome.end != SessionEnd::kCompleted;
        {
          absl::MutexLock lock(&mutex);
          sessions.push_back({route.group, std::move(outcome)});
        }
        if (failed) absl::SleepFor(absl::Milliseconds(200));
      }
    });
  }
  for (std::thread& client : clients) client.join();
  abort.store(true);
  fault_thread.join();
  const absl::Duration took = absl::Now() - start;

  // Classification (the rules in the header).
  int completed = 0, clear = 0, mismatches = 0, unclear = 0, hangs = 0, big_verified = 0;
  uint64_t verified = 0;
  std::map<std::string, int> lines;
  std::map<std::string, std::map<std::string, int>> per_route;
  std::vector<std::string> bad;
  for (RecordedSession& s : sessions) {
    const SessionOutcome& o = s.outcome;
    verified += o.verified_bytes;
    big_verified += o.big_verified;
    std::string key = SessionEndName(o.end);
    switch (o.end) {
      case SessionEnd::kCompleted:
        ++completed;
        break;
      case SessionEnd::kProtocolLine:
        ++clear;
        s.clear = true;
        ++lines[o.line];
        break;
      case SessionEnd::kClosedNoLine:
        if (InRestartWindow(o, faults)) {
          ++clear;
          s.clear = true;
          ++lines[absl::StrCat("(orderly close during an upstream restart, at ", o.stage, ")")];
          key = "closed during a restart";
        } else {
          ++unclear;
          key = "UNCLEAR";
          bad.push_back(absl::StrCat("UNCLEAR ", kGroupNames[s.group], " at ", o.stage, ": ",
                                     o.line, " (outside every upstream restart)"));
        }
        break;
      case SessionEnd::kMismatch:
        ++mismatches;
        bad.push_back(absl::StrCat("MISMATCH ", kGroupNames[s.group], ": ", o.line));
        break;
      case SessionEnd::kUnclear:
        ++unclear;
        bad.push_back(
            absl::StrCat("UNCLEAR ", kGroupNames[s.group], " at ", o.stage, ": ", o.line));
        break;
      case SessionEnd::kHang:
        ++hangs;
        bad.push_back(absl::StrCat("HANG ", kGroupNames[s.group], " at ", o.stage, ": ", o.line));
        break;
    }
    ++per_route[kGroupNames[s.group]][key];
  }

  if (!flags.sessions_log_path.empty()) {
    std::ostringstream log;
    log << "route\tstart_s\tend_s\toutcome\tstage\tverified_bytes\tline\n";
    for (const RecordedSession& s : sessions) {
      log << absl::StrFormat("%s\t%.3f\t%.3f\t%s\t%s\t%d\t%s\n", kGroupNames[s.group],
                             absl::ToDoubleSeconds(s.outcome.started - start),
                             absl::ToDoubleSeconds(s.outcome.ended - start),
                             SessionEndName(s.outcome.end), s.outcome.stage,
                             s.outcome.verified_bytes, s.outcome.line);
    }
    if (absl::Status status = integration::WriteFile(flags.sessions_log_path, log.str());
        !status.ok()) {
      std::cerr << "mailring_soak: " << status << "\n";
    }
  }

  // Recovery: after each fault, a session that started after it completed on each route it
  // affects.
  std::vector<std::string> failures;
  std::ostringstream fault_lines;
  for (const FaultRecord& fault : faults) {
    std::string recovery;
    for (RouteGroup group : fault.affects) {
      std::optional<absl::Time> first;
      for (const RecordedSession& s : sessions) {
        if (s.group == group && s.outcome.end == SessionEnd::kCompleted &&
            s.outcome.started >= fault.end && (!first || s.outcome.started < *first)) {
          first = s.outcome.started;
        }
      }
      if (first) {
        absl::StrAppend(&recovery, " ", kGroupNames[group], " +",
                        absl::StrFormat("%.1fs", absl::ToDoubleSeconds(*first - fault.end)));
      } else {
        absl::StrAppend(&recovery, " ", kGroupNames[group], " NEVER");
        failures.push_back(absl::StrCat(
            "no session on ", kGroupNames[group], " completed after the ", fault.kind, " at +",
            absl::FormatDuration(absl::Trunc(fault.start - start, absl::Milliseconds(100)))));
      }
    }
    // Sessions running when the fault began: what the fault did to them (a session that ended
    // after the next fault began is not this fault's).
    const size_t index = static_cast<size_t>(&fault - faults.data());
    const absl::Time next_start =
        index + 1 < faults.size() ? faults[index + 1].start : absl::InfiniteFuture();
    std::map<std::string, int> caught;
    int in_flight = 0;
    for (const RecordedSession& s : sessions) {
      if (s.outcome.started < fault.start && s.outcome.ended > fault.start) {
        ++in_flight;
        const std::string stage = s.outcome.stage.substr(0, s.outcome.stage.find(" ("));
        ++caught[s.outcome.ended > next_start              ? "ended after the next fault began"
                 : s.outcome.end == SessionEnd::kCompleted ? "completed"
                                                           : absl::StrCat("failed at ", stage)];
      }
    }
    absl::StrAppend(&recovery, "\n            in flight at its start: ", in_flight);
    for (const auto& [what, count] : caught) absl::StrAppend(&recovery, ", ", what, " ", count);
    if (!fault.error.empty()) {
      failures.push_back(absl::StrCat("injecting ", fault.kind, " failed: ", fault.error));
    }
    fault_lines << absl::StrFormat(
        "  +%5.1fs %-16s %-50s recovered (start of the first later session that completed):%s\n",
        absl::ToDoubleSeconds(fault.start - start), fault.kind, fault.detail, recovery);
  }
  if (faults.empty()) failures.push_back("no fault was injected (duration too short?)");
  for (const Route& route : env.routes()) {
    if (per_route[kGroupNames[route.group]]["completed"] == 0) {
      failures.push_back(absl::StrCat("no session completed on route ", kGroupNames[route.group]));
    }
  }
  if (mismatches > 0) failures.push_back(absl::StrCat(mismatches, " mismatches"));
  if (unclear > 0) failures.push_back(absl::StrCat(unclear, " unclear failures"));
  if (hangs > 0) failures.push_back(absl::StrCat(hangs, " hangs"));
  const std::string dead = env.DeadDaemons();
  if (!dead.empty()) failures.push_back(dead);

  std::ostringstream report;
  const char* mode_name = mode == Mode::kBoth         ? "both (standalone + cluster)"
                          : mode == Mode::kStandalone ? "standalone"
                                                      : "cluster";
  report << "==== mailring soak report ====\n"
         << note << "mode " << mode_name << ", " << flags.sessions << " concurrent sessions, "
         << absl::FormatDuration(flags.duration) << " (ran "
         << absl::FormatDuration(absl::Trunc(took, absl::Milliseconds(100))) << "), seed "
         << flags.seed << "\n"
         << "sessions: " << sessions.size() << "  completed: " << completed
         << "  clear failures: " << clear << "  MISMATCHES: " << mismatches
         << "  UNCLEAR: " << unclear << "  HANGS: " << hangs << "\n"
         << "bytes verified: " << verified << " (" << GiB(verified) << "), whole ~20 MiB messages "
         << "verified: " << big_verified << "\n"
         << "per route:\n";
  for (const auto& [route, counts] : per_route) {
    report << "  " << route << ":";
    for (const auto& [key, count] : counts) report << "  " << key << " " << count;
    report << "\n";
  }
  report << "faults injected: " << faults.size() << "\n" << fault_lines.str();
  report << "clear failures by client-visible line (" << lines.size() << " distinct):\n";
  for (const auto& [line, count] : lines) report << absl::StrFormat("  %6d  %s\n", count, line);
  if (!bad.empty()) {
    report << "sessions that break the pass condition (" << bad.size() << "):\n";
    for (size_t i = 0; i < bad.size() && i < 200; ++i) report << "  " << bad[i] << "\n";
  }
  if (failures.empty()) {
    report << "RESULT: PASS\n";
  } else {
    report << "RESULT: FAIL\n";
    for (const std::string& failure : failures) report << "  - " << failure << "\n";
    for (const auto& [who, path] : env.Logs()) {
      absl::StatusOr<std::string> log = integration::ReadFile(path);
      std::string text = log.ok() ? *log : "(unreadable)";
      size_t from = text.size();
      for (int n = 0; n < 40 && from > 0; ++n) from = text.rfind('\n', from - 1);
      report << "---- " << who << " log " << path << " (kept with MAILRING_KEEP_TMP=1), last "
             << "lines ----\n"
             << text.substr(from == std::string::npos ? 0 : from + 1);
    }
  }
  std::cout << report.str() << std::flush;
  if (!flags.report_path.empty()) {
    if (absl::Status status = integration::WriteFile(flags.report_path, report.str());
        !status.ok()) {
      std::cerr << "mailring_soak: " << status << "\n";
    }
  }
  return failures.empty() ? 0 : 1;
}

}  // namespace
}  // namespace mailring::soak

int main(int argc, char** argv) {
  std::optional<mailring::soak::Flags> flags = mailring::soak::ParseFlags(argc, argv);
  if (!flags) return 2;
  return mailring::soak::Run(*flags);
}
