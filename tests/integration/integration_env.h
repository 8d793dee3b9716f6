// The processes and files an integration test runs against: a temp directory, free loopback
// ports, a throw-away Dovecot (dovecot_fixture.sh), the mailring daemon under test, a destinations
// file, and a silent upstream that accepts and never speaks.
//
// Where things come from (set by tests/integration/CMakeLists.txt through ctest, overridable):
//   MAILRING_BIN       the daemon binary (default: the build tree's mailring)
//   DOVECOT_FIXTURE    tests/integration/dovecot_fixture.sh
//   MAILRING_KEEP_TMP  if set, temp directories (configs, logs, mail) are kept for inspection
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace mailring::integration {

// A fresh directory under /tmp (short path: Dovecot puts unix sockets in it), removed on
// destruction unless MAILRING_KEEP_TMP is set. Mode 0755 so the fixture's unprivileged Dovecot
// user can reach subdirectories.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The environment variable `name`, or `fallback` when it is unset or empty.
std::string EnvOr(const char* name, const std::string& fallback);
// Single-quotes `arg` for /bin/sh.
std::string ShellQuote(const std::string& arg);

struct CommandResult {
  int exit_code = -1;   // -1 when the command could not run or was killed
  std::string output;  // stdout and stderr
};
// Runs `command` with /bin/sh and collects its output.
CommandResult RunCommand(const std::string& command);
// The kubectl the tests drive ($KUBECTL, else the one CMake found).
std::string KubectlBinary();
bool KubectlAvailable();
// The value at a JSON pointer: a string as is, anything else minified; "" when absent.
std::string JsonAt(const std::string& json, const std::string& pointer);

// A loopback port that was free a moment ago (bound to port 0, then released).
uint16_t PickFreeLoopbackPort();
// True when a TCP connect to 127.0.0.1:port succeeds right now.
bool PortAcceptsConnections(uint16_t port);

// Polls `condition` every `poll` until it holds or `timeout` passes; its last value. How the
// integration tests wait for something to happen: never a fixed sleep.
bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout = absl::Seconds(30),
             absl::Duration poll = absl::Milliseconds(100));

// GET `path` from mailring's admin endpoint on 127.0.0.1:`port`: the whole response, or "".
std::string AdminGet(uint16_t port, const std::string& path);
// The value of the sample `series` (a metric name with its labels, if any) in Prometheus text;
// -1 when absent.
int64_t MetricValue(const std::string& metrics, absl::string_view series);
// Waits (bounded) until mailring, whose admin endpoint is on `admin_port`, has accepted at least
// `accepted` sessions and has none open: e.g. its readiness probes' sessions have ended.
bool WaitForSessionsSettled(uint16_t admin_port, int64_t accepted,
                            absl::Duration timeout = absl::Seconds(10));
// The first of `count` consecutive ports that can be bound on every one of `addresses` right now,
// for a mailring --port-range; 0 if none. The ports lie below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), from 20000 up: an outgoing connection of another test or of
// mailring itself can never hold one of them, which a range inside it allowed (a route's
// listener then failed with EADDRINUSE until the connection ended).
int FindFreePortRange(int count, const std::vector<std::string>& addresses);

absl::StatusOr<std::string> ReadFile(const std::string& path);
absl::Status WriteFile(const std::string& path, const std::string& contents);

// Path of the dovecot binary, or empty when Dovecot is not installed.
std::string FindDovecot();

// The throw-away test CA of test_ca.sh (next to DOVECOT_FIXTURE), generated into `dir` for the
// host `names` (empty: localhost 127.0.0.1). Paths of its PEM files.
struct TestCa {
  std::string dir;
  std::string ca_pem() const { return dir + "/ca.pem"; }
  // server / expired / wronghost: "<kind>-chain.pem" (certificate + CA) and "<kind>.key".
  std::string chain(const std::string& kind) const { return dir + "/" + kind + "-chain.pem"; }
  std::string key(const std::string& kind) const { return dir + "/" + kind + ".key"; }
};
absl::StatusOr<TestCa> MakeTestCa(const std::string& dir, const std::vector<std::string>& names = {});

// How to start a fixture Dovecot (all optional).
struct DovecotOptions {
  // Non-empty: Dovecot also accepts XOAUTH2 and OAUTHBEARER and checks each bearer token with an
  // RFC 7662 POST to this URL (the fixture's --oauth2-introspection).
  std::string oauth2_introspection_url;
  // Both non-empty: `ssl = yes` with this certificate (PEM, may be a chain) and key: STARTTLS
  // offered on port(), IMAPS on imaps_port() (the fixture's --tls). Otherwise plaintext only,
  // no STARTTLS capability.
  std::string tls_cert;
  std::string tls_key;
  // Also POP3 (pop3_port(); with TLS also POP3S on pop3s_port()) and the SMTP submission
  // service (submission_port(); with TLS also submissions_port()), which relays what it accepts
  // to a sink whose messages SinkMessage() reads.
  bool pop3 = false;
  bool submission = false;
};

// A Dovecot started by dovecot_fixture.sh in its own temp dir; stopped on destruction.
class DovecotServer {
 public:
  static absl::StatusOr<std::unique_ptr<DovecotServer>> Start(const DovecotOptions& options);
  static absl::StatusOr<std::unique_ptr<DovecotServer>> Start(
      const std::string& oauth2_introspection_url = "") {
    DovecotOptions options;
    options.oauth2_introspection_url = oauth2_introspection_url;
    return Start(options);
  }
  ~DovecotServer();

  uint16_t port() const { return port_; }
  // The IMAPS port (TLS from the first byte); 0 without TLS.
  uint16_t imaps_port() const { return imaps_port_; }
  // The other protocols' ports (DovecotOptions::pop3, ::submission); 0 when not started.
  uint16_t pop3_port() const { return pop3_port_; }
  uint16_t pop3s_port() const { return pop3s_port_; }
  uint16_t submission_port() const { return submission_port_; }
  uint16_t submissions_port() const { return submissions_port_; }
  // Message `n` (from 1) the submission service relayed to the sink; NotFound until it arrived
  // (waits up to `wait` for it).
  absl::StatusOr<std::string> SinkMessage(int n, absl::Duration wait) const;
  const std::string& dir() const { return dir_.path(); }
  // Dovecot's log so far (DIR/dovecot.log).
  std::string Log() const;
  // SHA-256 (hex) and size of the ~20 MiB message, INBOX sequence number kBigMessage of alice.
  const std::string& big_sha256() const { return big_sha256_; }
  size_t big_size() const { return big_size_; }

  // Facts about the fixture (see dovecot_fixture.sh).
  static constexpr int kBigMessage = 4;
  static constexpr int kSmallMessages = 3;
  // Text body (BODY[TEXT]) of small message 1..3.
  static std::string SmallMessageText(int sequence);

  // Fault injection (tests/soak): Stop() is the fixture's stop (SIGTERM to the master, which ends
  // every session; idempotent); StartAgain() starts it again in the same directory on the same
  // ports with the same options (the mail is regenerated byte-identical, so big_sha256() holds).
  absl::Status Stop();
  absl::Status StartAgain();

 private:
  DovecotServer() = default;
  TempDir dir_;
  std::string start_command_;  // the fixture command line Start() ran
  uint16_t port_ = 0;
  uint16_t imaps_port_ = 0;
  uint16_t pop3_port_ = 0;
  uint16_t pop3s_port_ = 0;
  uint16_t submission_port_ = 0;
  uint16_t submissions_port_ = 0;
  std::string big_sha256_;
  size_t big_size_ = 0;
};

// One destination of the destinations file: the SAP Destination-service fields, all strings.
using Destination = std::map<std::string, std::string>;

// An Internet BasicAuthentication imap4 destination to 127.0.0.1:upstream_port.
Destination BasicDestination(const std::string& user, const std::string& password,
                             uint16_t upstream_port);

struct Route {
  std::string listen;  // "127.0.0.1:PORT"
  Destination destination;
};

// {"routes": [{"listen": ..., "destination": {...}}, ...]} with proper JSON string escaping.
std::string DestinationsFileJson(const std::vector<Route>& routes);

// The mailring daemon as a child process. stdout and stderr go to one log file that tests grep.
// The destructor kills it (SIGKILL) if it still runs.
class MailringProcess {
 public:
  // Writes `destinations_json` to DIR/destinations-N.json, starts MAILRING_BIN with
  // --destinations and `flags` (later flags win over the defaults: --workers 2
  // --log-level debug --drain-timeout 2s), and waits up to 10 s until every port in
  // `ready_ports` accepts TCP connections. Fails with the log if the process exits first.
  static absl::StatusOr<std::unique_ptr<MailringProcess>> Start(
      const std::string& dir, const std::string& destinations_json,
      const std::vector<uint16_t>& ready_ports, const std::vector<std::string>& flags = {});

  ~MailringProcess();

  pid_t pid() const { return pid_; }
  void Signal(int signo);
  // Waits for the process to exit; its exit code, or -signal if a signal killed it.
  absl::StatusOr<int> WaitExit(absl::Duration timeout);
  // Everything the process wrote to stdout/stderr so far.
  std::string Log() const;
  const std::string& log_path() const { return log_path_; }

 private:
  MailringProcess() = default;
  pid_t pid_ = -1;
  bool exited_ = false;
  int exit_code_ = 0;
  std::string log_path_;
};

// Runs mailring to completion (for configurations it must reject).
struct MailringExit {
  int exit_code = 0;  // or -signal
  std::string log;
  bool ports_accepted = false;  // some port of `watch_ports` accepted while mailring ran
};
absl::StatusOr<MailringExit> RunMailringToExit(const std::string& dir,
                                               const std::string& destinations_json,
                                               const std::vector<uint16_t>& watch_ports = {},
                                               absl::Duration timeout = absl::Seconds(10));

// A TCP listener on a free loopback port that accepts every connection and never sends a byte:
// an upstream whose greeting never comes (kHoldOpen) or that hangs up at once (kCloseAtOnce).
class SilentUpstream {
 public:
  enum class Behaviour { kHoldOpen, kCloseAtOnce };
  explicit SilentUpstream(Behaviour behaviour = Behaviour::kHoldOpen);
  ~SilentUpstream();
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }

 private:
  Behaviour behaviour_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::vector<int> held_;
  std::thread thread_;
};

}  // namespace mailring::integration
