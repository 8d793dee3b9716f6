#include "tests/integration/integration_env.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "proto/json_quote.h"
#include "simdjson.h"

extern char** environ;

namespace mailring::integration {

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

// Single-quotes `arg` for /bin/sh.
std::string ShellQuote(const std::string& arg) {
  std::string quoted = "'";
  for (char c : arg) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

CommandResult RunCommand(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) result.output.append(buf, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string KubectlBinary() {
#ifdef MAILRING_DEFAULT_KUBECTL
  return EnvOr("KUBECTL", MAILRING_DEFAULT_KUBECTL);
#else
  return EnvOr("KUBECTL", "kubectl");
#endif
}

bool KubectlAvailable() {
  const std::string binary = KubectlBinary();
  if (binary.find('/') != std::string::npos) return access(binary.c_str(), X_OK) == 0;
  return RunCommand(absl::StrCat("command -v ", ShellQuote(binary))).exit_code == 0;
}

std::string JsonAt(const std::string& json, const std::string& pointer) {
  simdjson::dom::parser parser;
  simdjson::dom::element root, value;
  if (parser.parse(json).get(root) != simdjson::SUCCESS) return "";
  if (root.at_pointer(pointer).get(value) != simdjson::SUCCESS) return "";
  std::string_view text;
  if (value.get_string().get(text) == simdjson::SUCCESS) return std::string(text);
  return simdjson::minify(value);
}

namespace {

using proto::JsonQuote;


std::string MailringBinary() {
#ifdef MAILRING_DEFAULT_BIN
  return EnvOr("MAILRING_BIN", MAILRING_DEFAULT_BIN);
#else
  return EnvOr("MAILRING_BIN", "mailring");
#endif
}

std::string FixtureScript() {
#ifdef MAILRING_DEFAULT_DOVECOT_FIXTURE
  return EnvOr("DOVECOT_FIXTURE", MAILRING_DEFAULT_DOVECOT_FIXTURE);
#else
  return EnvOr("DOVECOT_FIXTURE", "tests/integration/dovecot_fixture.sh");
#endif
}



// Spawns `argv` with stdin from /dev/null and stdout+stderr appended to `log_path`.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, const std::string& log_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char*> raw;
  for (const std::string& arg : argv) raw.push_back(const_cast<char*>(arg.c_str()));
  raw.push_back(nullptr);
  pid_t pid = -1;
  int err = posix_spawn(&pid, raw[0], &actions, nullptr, raw.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) {
    return absl::UnavailableError(absl::StrCat("spawn ", argv[0], ": ", std::strerror(err)));
  }
  return pid;
}

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return -1000;
}

std::vector<std::string> MailringArgv(const std::string& destinations_path,
                                      const std::vector<std::string>& flags) {
  std::vector<std::string> argv = {MailringBinary(), "--destinations=" + destinations_path,
                                   "--workers=2", "--log-level=debug", "--drain-timeout=2s"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return argv;
}

std::string NextDestinationsPath(const std::string& dir) {
  static std::atomic<int> counter{0};
  return absl::StrCat(dir, "/destinations-", counter.fetch_add(1), ".json");
}

}  // namespace

TempDir::TempDir() {
  char templ[] = "/tmp/mailring-it-XXXXXX";
  char* made = mkdtemp(templ);
  if (made == nullptr) {
    std::perror("mkdtemp");
    std::abort();
  }
  path_ = made;
  chmod(path_.c_str(), 0755);
}

TempDir::~TempDir() {
  if (std::getenv("MAILRING_KEEP_TMP") != nullptr) return;
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

uint16_t PickFreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("PickFreeLoopbackPort");
    std::abort();
  }
  close(fd);
  return ntohs(addr.sin_port);
}

// GET `path` from mailring's admin endpoint on 127.0.0.1:port: the whole response, or "".
std::string AdminGet(uint16_t port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
    const std::string request =
        absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    (void)!write(fd, request.data(), request.size());
    char buffer[4096];
    for (int reads = 0; reads < 1000; ++reads) {  // bounded; the endpoint closes after its answer
      const ssize_t n = read(fd, buffer, sizeof(buffer));
      if (n <= 0) break;
      response.append(buffer, static_cast<size_t>(n));
    }
  }
  close(fd);
  return response;
}

// The value of the sample `series` (a metric name with its labels, if any) in Prometheus text;
// -1 when absent.
int64_t MetricValue(const std::string& metrics, absl::string_view series) {
  const std::string prefix = absl::StrCat(series, " ");
  for (absl::string_view line : absl::StrSplit(metrics, '\n')) {
    int64_t value = -1;
    if (absl::StartsWith(line, prefix) && absl::SimpleAtoi(line.substr(prefix.size()), &value)) {
      return value;
    }
  }
  return -1;
}

bool WaitForSessionsSettled(uint16_t admin_port, int64_t accepted, absl::Duration timeout) {
  return WaitFor(
      [&] {
        const std::string metrics = AdminGet(admin_port, "/metrics");
        return MetricValue(metrics, "mailring_sessions_open") == 0 &&
               MetricValue(metrics, "mailring_sessions_total") >= accepted;
      },
      timeout, absl::Milliseconds(20));
}

bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout, absl::Duration poll) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() >= deadline) return condition();
    absl::SleepFor(poll);
  }
  return true;
}

bool PortAcceptsConnections(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

namespace {

bool CanBind(const std::string& address, int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = inet_pton(AF_INET, address.c_str(), &addr.sin_addr) == 1 &&
                  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

// The lowest port the kernel picks for outgoing connections (32768 when unreadable).
int EphemeralRangeStart() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  return (in >> low) && low > 1024 ? low : 32768;
}

}  // namespace

int FindFreePortRange(int count, const std::vector<std::string>& addresses) {
  constexpr int kLowest = 20000;
  const int end = std::max(EphemeralRangeStart(), kLowest + 1000);
  const int span = end - kLowest - count;
  if (count <= 0 || span <= 0) return 0;
  const int start = static_cast<int>(getpid() * 7919 % span);
  for (int attempt = 0; attempt < 200; ++attempt) {
    const int first = kLowest + (start + attempt * 97) % span;
    bool free = true;
    for (int port = first; port < first + count && free; ++port) {
      for (const std::string& address : addresses) free = free && CanBind(address, port);
    }
    if (free) return first;
  }
  return 0;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

absl::Status WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  out.close();
  if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

std::string FindDovecot() {
  std::string path = EnvOr("PATH", "/usr/bin:/bin");
  for (absl::string_view dir : {"/usr/sbin", "/usr/local/sbin", "/sbin"}) {
    path += absl::StrCat(":", dir);
  }
  std::stringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = dir + "/dovecot";
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

absl::StatusOr<TestCa> MakeTestCa(const std::string& dir, const std::vector<std::string>& names) {
  const std::string fixture = FixtureScript();
  const size_t slash = fixture.rfind('/');
  const std::string script =
      (slash == std::string::npos ? std::string(".") : fixture.substr(0, slash)) + "/test_ca.sh";
  std::string command = absl::StrCat("bash ", ShellQuote(script), " ", ShellQuote(dir));
  for (const std::string& name : names) absl::StrAppend(&command, " ", ShellQuote(name));
  const std::string out_path = dir + ".test_ca.out";
  absl::StrAppend(&command, " >", ShellQuote(out_path), " 2>&1");
  int status = std::system(command.c_str());
  if (status != 0) {
    absl::StatusOr<std::string> out = ReadFile(out_path);
    return absl::InternalError(absl::StrCat("'", command, "' failed (status ", status,
                                            "): ", out.ok() ? *out : "(no output)"));
  }
  std::remove(out_path.c_str());
  return TestCa{dir};
}

absl::StatusOr<std::unique_ptr<DovecotServer>> DovecotServer::Start(
    const DovecotOptions& options) {
  std::unique_ptr<DovecotServer> server(new DovecotServer());
  std::set<uint16_t> taken;
  const auto pick = [&taken] {
    uint16_t port = 0;
    do {
      port = PickFreeLoopbackPort();
    } while (!taken.insert(port).second);
    return port;
  };
  server->port_ = pick();
  std::string extra_options =
      options.oauth2_introspection_url.empty()
          ? ""
          : absl::StrCat(" --oauth2-introspection ", ShellQuote(options.oauth2_introspection_url));
  const bool tls = !options.tls_cert.empty() && !options.tls_key.empty();
  if (tls) {
    server->imaps_port_ = pick();
    absl::StrAppend(&extra_options, " --tls ", ShellQuote(options.tls_cert), " ",
                    ShellQuote(options.tls_key), " ", server->imaps_port_);
  }
  if (options.pop3) {
    server->pop3_port_ = pick();
    absl::StrAppend(&extra_options, " --pop3 ", server->pop3_port_);
    if (tls) {
      server->pop3s_port_ = pick();
      absl::StrAppend(&extra_options, " --pop3s ", server->pop3s_port_);
    }
  }
  if (options.submission) {
    server->submission_port_ = pick();
    absl::StrAppend(&extra_options, " --submission ", server->submission_port_, " ", pick());
    if (tls) {
      server->submissions_port_ = pick();
      absl::StrAppend(&extra_options, " --submissions ", server->submissions_port_);
    }
  }
  std::string command =
      absl::StrCat(ShellQuote(FixtureScript()), " start ", ShellQuote(server->dir()), " ",
                   server->port_, extra_options, " >",
                   ShellQuote(server->dir() + "/fixture.out"), " 2>&1");
  server->start_command_ = command;
  if (absl::Status status = server->StartAgain(); !status.ok()) return status;
  absl::StatusOr<std::string> sha = ReadFile(server->dir() + "/big.sha256");
  absl::StatusOr<std::string> size = ReadFile(server->dir() + "/big.size");
  if (!sha.ok()) return sha.status();
  if (!size.ok()) return size.status();
  server->big_sha256_ = std::string(absl::StripAsciiWhitespace(*sha));
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*size), &server->big_size_)) {
    return absl::InternalError("fixture wrote an unreadable big.size");
  }
  return server;
}

absl::StatusOr<std::string> DovecotServer::SinkMessage(int n, absl::Duration wait) const {
  const std::string path = absl::StrCat(dir(), "/sink/", n, ".eml");
  const absl::Time deadline = absl::Now() + wait;
  while (true) {
    absl::StatusOr<std::string> message = ReadFile(path);
    if (message.ok() || absl::Now() >= deadline) return message;
    absl::SleepFor(absl::Milliseconds(50));
  }
}

absl::Status DovecotServer::StartAgain() {
  int status = std::system(start_command_.c_str());
  if (status != 0) {
    absl::StatusOr<std::string> out = ReadFile(dir() + "/fixture.out");
    return absl::InternalError(absl::StrCat("'", start_command_, "' failed (status ", status,
                                            "): ", out.ok() ? *out : "(no output)"));
  }
  return absl::OkStatus();
}

absl::Status DovecotServer::Stop() {
  std::string command =
      absl::StrCat(ShellQuote(FixtureScript()), " stop ", ShellQuote(dir()), " >/dev/null 2>&1");
  if (int status = std::system(command.c_str()); status != 0) {
    return absl::InternalError(absl::StrCat("'", command, "' failed (status ", status, ")"));
  }
  return absl::OkStatus();
}

std::string DovecotServer::Log() const {
  absl::StatusOr<std::string> log = ReadFile(dir() + "/dovecot.log");
  return log.ok() ? *log : "";
}

DovecotServer::~DovecotServer() { (void)Stop(); }

std::string DovecotServer::SmallMessageText(int sequence) {
  switch (sequence) {
    case 1:
      return "Hello from the mailring test fixture.\r\n";
    case 2:
      return "The second fixture message.\r\n";
    case 3:
      return "The third fixture message.\r\n";
  }
  return "";
}

Destination BasicDestination(const std::string& user, const std::string& password,
                             uint16_t upstream_port) {
  return {{"Name", "example-dest-imap"},
          {"Type", "MAIL"},
          {"Authentication", "BasicAuthentication"},
          {"mail.user", user},
          {"mail.password", password},
          {"mail.transport.protocol", "imap4"},
          {"mail.imap4.host", "127.0.0.1"},
          {"mail.imap4.port", absl::StrCat(upstream_port)},
          {"mail.imap4.auth", "true"},
          {"ProxyType", "Internet"}};
}

std::string DestinationsFileJson(const std::vector<Route>& routes) {
  std::vector<std::string> route_json;
  for (const Route& route : routes) {
    std::vector<std::string> fields;
    for (const auto& [key, value] : route.destination) {
      fields.push_back(absl::StrCat(JsonQuote(key), ": ", JsonQuote(value)));
    }
    route_json.push_back(absl::StrCat("{\"listen\": ", JsonQuote(route.listen),
                                      ", \"destination\": {", absl::StrJoin(fields, ", "), "}}"));
  }
  return absl::StrCat("{\"routes\": [\n  ", absl::StrJoin(route_json, ",\n  "), "\n]}\n");
}

absl::StatusOr<std::unique_ptr<MailringProcess>> MailringProcess::Start(
    const std::string& dir, const std::string& destinations_json,
    const std::vector<uint16_t>& ready_ports, const std::vector<std::string>& flags) {
  std::string destinations_path = NextDestinationsPath(dir);
  if (absl::Status status = WriteFile(destinations_path, destinations_json); !status.ok()) {
    return status;
  }
  std::unique_ptr<MailringProcess> process(new MailringProcess());
  process->log_path_ = absl::StrCat(destinations_path, ".log");
  absl::StatusOr<pid_t> pid = Spawn(MailringArgv(destinations_path, flags), process->log_path_);
  if (!pid.ok()) return pid.status();
  process->pid_ = *pid;

  // Ready = every route port accepts a TCP connection (what a Kubernetes TCP probe would check).
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  size_t ready = 0;
  while (ready < ready_ports.size()) {
    if (PortAcceptsConnections(ready_ports[ready])) {
      ++ready;
      continue;
    }
    int status = 0;
    if (waitpid(process->pid_, &status, WNOHANG) == process->pid_) {
      process->exited_ = true;
      process->exit_code_ = DecodeWaitStatus(status);
      return absl::InternalError(absl::StrCat("mailring exited with ", process->exit_code_,
                                              " before listening; its log:\n", process->Log()));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("mailring did not accept on 127.0.0.1:", ready_ports[ready],
                       " within 10s; its log:\n", process->Log()));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return process;
}

MailringProcess::~MailringProcess() {
  if (pid_ > 0 && !exited_) {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
}

void MailringProcess::Signal(int signo) {
  if (pid_ > 0 && !exited_) kill(pid_, signo);
}

absl::StatusOr<int> MailringProcess::WaitExit(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (!exited_) {
    int status = 0;
    pid_t got = waitpid(pid_, &status, WNOHANG);
    if (got == pid_) {
      exited_ = true;
      exit_code_ = DecodeWaitStatus(status);
      break;
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("mailring still running after ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return exit_code_;
}

std::string MailringProcess::Log() const {
  absl::StatusOr<std::string> log = ReadFile(log_path_);
  return log.ok() ? *log : "(no log)";
}

absl::StatusOr<MailringExit> RunMailringToExit(const std::string& dir,
                                               const std::string& destinations_json,
                                               const std::vector<uint16_t>& watch_ports,
                                               absl::Duration timeout) {
  std::string destinations_path = NextDestinationsPath(dir);
  if (absl::Status status = WriteFile(destinations_path, destinations_json); !status.ok()) {
    return status;
  }
  std::string log_path = absl::StrCat(destinations_path, ".log");
  absl::StatusOr<pid_t> pid = Spawn(MailringArgv(destinations_path, {}), log_path);
  if (!pid.ok()) return pid.status();
  absl::Time deadline = absl::Now() + timeout;
  MailringExit result;
  while (true) {
    int status = 0;
    if (waitpid(*pid, &status, WNOHANG) == *pid) {
      result.exit_code = DecodeWaitStatus(status);
      break;
    }
    for (uint16_t port : watch_ports) {
      if (PortAcceptsConnections(port)) result.ports_accepted = true;
    }
    if (absl::Now() > deadline) {
      kill(*pid, SIGKILL);
      waitpid(*pid, &status, 0);
      absl::StatusOr<std::string> log = ReadFile(log_path);
      return absl::DeadlineExceededError(
          absl::StrCat("mailring kept running for ", absl::FormatDuration(timeout),
                       " with an invalid destinations file; its log:\n", log.ok() ? *log : ""));
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  absl::StatusOr<std::string> log = ReadFile(log_path);
  result.log = log.ok() ? *log : "";
  return result;
}

SilentUpstream::SilentUpstream(Behaviour behaviour) : behaviour_(behaviour) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listen_fd_ < 0 || bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listen_fd_, 64) != 0 ||
      getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("SilentUpstream");
    std::abort();
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] {
    while (!stop_.load()) {
      pollfd pfd{listen_fd_, POLLIN, 0};
      if (poll(&pfd, 1, 50) <= 0) continue;
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      accepted_.fetch_add(1);
      if (behaviour_ == Behaviour::kCloseAtOnce) {
        close(fd);
      } else {
        held_.push_back(fd);  // hold it open, say nothing
      }
    }
  });
}

SilentUpstream::~SilentUpstream() {
  stop_.store(true);
  thread_.join();
  for (int fd : held_) close(fd);
  close(listen_fd_);
}

}  // namespace mailring::integration
