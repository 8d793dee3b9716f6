// Cluster mode end to end: the real kubectl drives a fake Kubernetes API server
// (tests/fakes/kube_apiserver.h), a fake Destination service (tests/fakes/destination_service.h)
// answers the lookups, a real Dovecot is the mail server, and mailring runs as a pod of the
// DaemonSet would (--kubeconfig instead of the service account).
//
// One API server, one Destination service, one Dovecot and one mailring ("pod-a") per suite;
// each test applies its own CRs (their names differ), so the tests do not depend on each other
// beyond sharing the daemon. Every wait is bounded (WaitFor, kWait); waits read the
// fake's store in-process, and the final state is checked with kubectl as a user would.
//
// What is asserted is what control/cluster/cluster_control.h, control/cluster/destination_cr.h and
// issue 5 document: a CR becomes a managed Service in namespace mailring (targetPort from
// --port-range) and an ExternalName Service named after the CR (or <cr>-<tenant>) in the CR's
// namespace; the port accepts and the session is PREAUTH, logged in as the destination's user; the
// status condition Available carries SAP's reasons; deletion removes both Services, closes the
// listener and releases the finalizer; one Lease holder; every pod listens on the same targetPort.
// No password of the fixture's users and no token or client secret appears in mailring's log.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "simdjson.h"
#include "tests/fakes/destination_service.h"
#include "tests/fakes/kube_apiserver.h"
#include "tests/integration/mailring_test.h"

namespace mailring::integration {
namespace {

using fakes::FakeDestinationService;
using fakes::FakeKubeApiServer;

constexpr absl::Duration kWait = absl::Seconds(30);
constexpr int kPortCount = 20;
constexpr char kAppNamespace[] = "apps";
constexpr char kDestinationName[] = "example-dest-imap";
constexpr char kImapsDestinationName[] = "example-dest-imaps";
constexpr char kTenantAnnotation[] = "transparent-proxy.connectivity.api.sap/tenant-subdomains";
constexpr char kFinalizer[] = "destination.connectivity.api.sap/mailring";

// The fixture's users (tests/integration/dovecot_fixture.sh).
constexpr char kAlicePassword[] = "secret";
constexpr char kBobPassword[] = "b\"o b";

std::string CrdPath() {
#ifdef MAILRING_DESTINATION_CRD
  return EnvOr("MAILRING_DESTINATION_CRD", MAILRING_DESTINATION_CRD);
#else
  return EnvOr("MAILRING_DESTINATION_CRD", "k8s/destination-crd.yaml");
#endif
}

std::string JsonQuote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// A JSON pointer token: "/" becomes "~1".
std::string PointerKey(const std::string& key) {
  return absl::StrReplaceAll(key, {{"~", "~0"}, {"/", "~1"}});
}

// Connects to address:port; the socket, or -errno.
int ConnectTo(const std::string& address, uint16_t port, absl::Duration timeout) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  timeval tv{static_cast<time_t>(absl::ToInt64Seconds(timeout)), 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, address.c_str(), &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int error = errno;
    close(fd);
    return -error;
  }
  return fd;
}

bool Accepts(const std::string& address, uint16_t port) {
  const int fd = ConnectTo(address, port, absl::Seconds(2));
  if (fd < 0) return false;
  close(fd);
  return true;
}

bool Refused(const std::string& address, uint16_t port) {
  const int fd = ConnectTo(address, port, absl::Seconds(2));
  if (fd >= 0) close(fd);
  return fd == -ECONNREFUSED;
}

// The first line (without CRLF) the server at address:port sends, read within 10 s.
absl::StatusOr<std::string> FirstLine(const std::string& address, uint16_t port) {
  const int fd = ConnectTo(address, port, absl::Seconds(10));
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("connect to ", address, ":", port, ": ", std::strerror(-fd)));
  }
  std::string line;
  char c;
  while (line.size() < 4096) {
    const ssize_t n = read(fd, &c, 1);
    if (n <= 0) break;
    line += c;
    if (absl::EndsWith(line, "\r\n")) {
      line.resize(line.size() - 2);
      close(fd);
      return line;
    }
  }
  close(fd);
  return absl::UnavailableError(
      absl::StrCat("no complete line from ", address, ":", port, " (got \"", line, "\")"));
}

// An HTTP GET on 127.0.0.1:port; the status line and body.
std::string HttpGet(uint16_t port, const std::string& path) {
  const int fd = ConnectTo("127.0.0.1", port, absl::Seconds(5));
  if (fd < 0) return "";
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  (void)!write(fd, request.data(), request.size());
  std::string response;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) response.append(buf, n);
  close(fd);
  return response;
}

// A BasicAuthentication imap4 destination as the Destination service stores it.
std::string DestinationJson(const std::string& name, const std::string& user,
                            const std::string& password, uint16_t port) {
  return absl::StrCat(R"({"Name":)", JsonQuote(name),
                      R"(,"Type":"MAIL","Authentication":"BasicAuthentication","mail.user":)",
                      JsonQuote(user), R"(,"mail.password":)", JsonQuote(password),
                      R"(,"mail.transport.protocol":"imap4","mail.imap4.host":"127.0.0.1",)",
                      R"("mail.imap4.port":")", port,
                      R"(","mail.imap4.auth":"true","ProxyType":"Internet"})");
}

struct CrOptions {
  std::string destination = kDestinationName;
  std::string tenants;  // the annotation's value, as written; "" = no annotation
  int port = 0;         // spec.service.port; 0 = not set (the protocol's default)
};

CrOptions WithTenants(const std::string& tenants) {
  CrOptions options;
  options.tenants = tenants;
  return options;
}
CrOptions WithDestination(const std::string& destination) {
  CrOptions options;
  options.destination = destination;
  return options;
}
CrOptions WithPort(int port) {
  CrOptions options;
  options.port = port;
  return options;
}

std::string CrYaml(const std::string& name, const CrOptions& options) {
  std::string yaml = absl::StrCat(
      "apiVersion: destination.connectivity.api.sap/v1\nkind: Destination\nmetadata:\n  name: ",
      name, "\n  namespace: ", kAppNamespace, "\n");
  if (!options.tenants.empty()) {
    absl::StrAppend(&yaml, "  annotations:\n    ", kTenantAnnotation, ": '", options.tenants,
                    "'\n");
  }
  absl::StrAppend(&yaml, "spec:\n  destinationRef:\n    name: ", options.destination, "\n");
  if (options.port != 0) absl::StrAppend(&yaml, "  service:\n    port: ", options.port, "\n");
  return yaml;
}

// The last `lines` lines of `text`.
std::string Tail(const std::string& text, size_t lines) {
  size_t pos = text.size();
  for (size_t i = 0; i <= lines && pos > 0; ++i) {
    pos = text.rfind('\n', pos - 1);
    if (pos == std::string::npos) return text;
  }
  return text.substr(pos + 1);
}

// True when `password` occurs in `log` as a token of its own (not inside a longer word such as
// "clientsecret"): what a leaked password would look like.
bool ContainsPassword(const std::string& log, const std::string& password) {
  auto word = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  };
  for (size_t pos = log.find(password); pos != std::string::npos;
       pos = log.find(password, pos + 1)) {
    const bool left = pos == 0 || !word(log[pos - 1]);
    const size_t end = pos + password.size();
    const bool right = end >= log.size() || !word(log[end]);
    if (left && right) return true;
  }
  return false;
}

class ClusterTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    skip_reason_.clear();
    setup_error_.clear();
    if (!KubectlAvailable()) {
      skip_reason_ = absl::StrCat("kubectl is not on PATH (", KubectlBinary(), ")");
      return;
    }
    if (FindDovecot().empty()) {
      skip_reason_ =
          "dovecot is not installed (apt-get install dovecot-imapd; scripts/test.sh does)";
      return;
    }
    setup_error_ = StartEverything();
  }

  // Everything of SetUpTestSuite that can fail; the error, or "".
  static std::string StartEverything() {
    dir_ = new TempDir();
    // TLS too, so that an imap4s destination's Service (993) serves over the TLS leg.
    absl::StatusOr<TestCa> ca = MakeTestCa(dir_->path() + "/ca");
    if (!ca.ok()) return ca.status().ToString();
    ca_file_ = ca->ca_pem();
    DovecotOptions dovecot_options;
    dovecot_options.tls_cert = ca->chain("server");
    dovecot_options.tls_key = ca->key("server");
    absl::StatusOr<std::unique_ptr<DovecotServer>> server = DovecotServer::Start(dovecot_options);
    if (!server.ok()) return server.status().ToString();
    dovecot_ = server->release();

    // No token: kubectl sends a kubeconfig's credentials only over TLS (see kube_apiserver.h).
    api_ = new FakeKubeApiServer();
    if (absl::Status status = api_->Start(); !status.ok()) {
      return absl::StrCat("starting the fake API server: ", status.ToString());
    }
    kubeconfig_ = dir_->path() + "/kubeconfig";
    if (absl::Status status = api_->WriteKubeconfig(kubeconfig_); !status.ok()) {
      return status.ToString();
    }
    for (const char* ns : {"mailring", kAppNamespace}) {
      CommandResult r = Kubectl(absl::StrCat("create namespace ", ns));
      if (r.exit_code != 0) return absl::StrCat("kubectl create namespace ", ns, ": ", r.output);
    }
    CommandResult r = Kubectl(absl::StrCat("apply -f ", ShellQuote(CrdPath())));
    if (r.exit_code != 0) return absl::StrCat("kubectl apply -f ", CrdPath(), ": ", r.output);

    destinations_ = new FakeDestinationService();
    if (absl::Status status = destinations_->Start(); !status.ok()) {
      return absl::StrCat("starting the fake Destination service: ", status.ToString());
    }
    const uint16_t imap_port = dovecot_->port();
    for (const auto& [tenant, user, password] :
         std::vector<std::tuple<std::string, std::string, std::string>>{
             {"", "alice", kAlicePassword},
             {"t1", "alice", kAlicePassword},
             {"t2", "bob", kBobPassword}}) {
      if (absl::Status status = destinations_->AddDestination(
              tenant, DestinationJson(kDestinationName, user, password, imap_port));
          !status.ok()) {
        return status.ToString();
      }
    }
    if (absl::Status status = destinations_->AddDestination(
            "", absl::StrCat(R"({"Name":)", JsonQuote(kImapsDestinationName),
                             R"(,"Type":"MAIL","Authentication":"BasicAuthentication",)",
                             R"("mail.user":"alice","mail.password":)", JsonQuote(kAlicePassword),
                             R"(,"mail.transport.protocol":"imap4s",)",
                             R"("mail.imap4s.host":"127.0.0.1","mail.imap4s.port":")",
                             dovecot_->imaps_port(), R"(","ProxyType":"Internet"})"));
        !status.ok()) {
      return status.ToString();
    }
    key_file_ = dir_->path() + "/destination-service-key.json";
    if (absl::Status status = WriteFile(key_file_, destinations_->ServiceKeyJson()); !status.ok()) {
      return status.ToString();
    }

    port_first_ = FindFreePortRange(kPortCount, {"127.0.0.1", "127.0.0.2"});
    if (port_first_ == 0) return "no 20 consecutive free ports below the ephemeral range";
    admin_port_ = PickFreeLoopbackPort();
    absl::StatusOr<std::unique_ptr<MailringProcess>> pod =
        StartPod("pod-a", "127.0.0.1", admin_port_);
    if (!pod.ok()) return pod.status().ToString();
    pod_a_ = pod->release();
    return "";
  }

  static void TearDownTestSuite() {
    if (pod_a_ != nullptr) {
      pod_a_->Signal(SIGTERM);
      absl::StatusOr<int> exit_code = pod_a_->WaitExit(absl::Seconds(10));
      if (!exit_code.ok() || *exit_code != 0) {
        ADD_FAILURE() << "pod-a did not exit cleanly after SIGTERM: "
                      << (exit_code.ok() ? absl::StrCat(*exit_code)
                                         : exit_code.status().ToString());
      }
      CheckNoSecretsIn(pod_a_->Log(), "pod-a");
    }
    delete pod_a_;
    pod_a_ = nullptr;
    delete destinations_;
    destinations_ = nullptr;
    if (api_ != nullptr) api_->Stop();
    delete api_;
    api_ = nullptr;
    delete dovecot_;
    dovecot_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }

  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    ASSERT_TRUE(setup_error_.empty()) << "suite setup: " << setup_error_;
    ASSERT_NE(pod_a_, nullptr);
  }

  void TearDown() override {
    if (pod_a_ == nullptr) return;
    CheckNoSecretsIn(pod_a_->Log(), "pod-a");
    if (HasFailure()) {
      std::cerr << "---- pod-a log (" << pod_a_->log_path() << "), last 80 lines ----\n"
                << Tail(pod_a_->Log(), 80) << "---- end of pod-a log ----\n";
    }
  }

  // No fixture password, no token the Destination service issued and not its client secret.
  static void CheckNoSecretsIn(const std::string& log, const std::string& who) {
    EXPECT_FALSE(ContainsPassword(log, kAlicePassword))
        << "alice's password appears in " << who << "'s log";
    EXPECT_FALSE(absl::StrContains(log, kBobPassword))
        << "bob's password appears in " << who << "'s log";
    if (destinations_ == nullptr) return;
    EXPECT_FALSE(absl::StrContains(log, destinations_->client_secret()))
        << "the Destination service's client secret appears in " << who << "'s log";
    for (const std::string& token : destinations_->IssuedTokens()) {
      EXPECT_FALSE(absl::StrContains(log, token))
          << "a token (" << token.substr(0, 6) << "...) appears in " << who << "'s log";
    }
  }

  static std::string PortRange() {
    return absl::StrCat(port_first_, "-", port_first_ + kPortCount - 1);
  }

  static absl::StatusOr<std::unique_ptr<MailringProcess>> StartPod(const std::string& pod,
                                                                   const std::string& address,
                                                                   uint16_t admin_port = 0) {
    std::vector<std::string> flags = {
        // MailringProcess passes --destinations=FILE; an empty one (later flags win) is cluster
        // mode with --kubeconfig.
        "--destinations=",
        "--kubeconfig=" + kubeconfig_,
        "--namespace=mailring",
        "--pod-name=" + pod,
        "--port-range=" + PortRange(),
        "--destination-service-key=default=" + key_file_,
        "--default-instance=default",
        "--listen-address=" + address,
        "--allow-loopback-upstreams",
        "--ca-file=" + ca_file_,
        "--log-level=debug",
    };
    if (admin_port != 0) flags.push_back(absl::StrCat("--admin-listen=127.0.0.1:", admin_port));
    absl::StatusOr<std::unique_ptr<MailringProcess>> process =
        MailringProcess::Start(dir_->path(), "{\"routes\": []}\n", {}, flags);
    if (!process.ok()) return process.status();
    // Up = it did not exit at once (a configuration error exits with a code).
    absl::SleepFor(absl::Milliseconds(200));
    const int pid = (*process)->pid();
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return absl::InternalError(
          absl::StrCat(pod, " exited at once; its log:\n", (*process)->Log()));
    }
    return process;
  }

  static CommandResult Kubectl(const std::string& args) {
    return RunCommand(absl::StrCat("timeout 25 ", ShellQuote(KubectlBinary()), " --kubeconfig ",
                                   ShellQuote(kubeconfig_), " --cache-dir ",
                                   ShellQuote(dir_->path() + "/kube-cache"),
                                   " --request-timeout=10s ", args));
  }

  // Writes `yaml` to a file and `kubectl apply -f`s it.
  static CommandResult Apply(const std::string& name, const std::string& yaml) {
    const std::string path = absl::StrCat(dir_->path(), "/", name, ".yaml");
    if (!WriteFile(path, yaml).ok()) return {-1, "cannot write " + path};
    return Kubectl(absl::StrCat("apply -f ", ShellQuote(path)));
  }

  // The managed Service of (CR in kAppNamespace, tenant) from the API server's store.
  static std::optional<std::string> ManagedServiceOf(const std::string& cr,
                                                     const std::string& tenant = "") {
    for (const std::string& service : api_->Objects("services", "mailring")) {
      const std::string a = "/metadata/annotations/";
      if (JsonAt(service, a + PointerKey("mailring.io/cr-namespace")) == kAppNamespace &&
          JsonAt(service, a + PointerKey("mailring.io/cr-name")) == cr &&
          JsonAt(service, a + PointerKey("mailring.io/tenant")) == tenant) {
        return service;
      }
    }
    return std::nullopt;
  }
  static int ManagedServiceCount(const std::string& cr) {
    int count = 0;
    for (const std::string& service : api_->Objects("services", "mailring")) {
      if (JsonAt(service, "/metadata/annotations/" + PointerKey("mailring.io/cr-name")) == cr &&
          JsonAt(service, "/metadata/annotations/" + PointerKey("mailring.io/cr-namespace")) ==
              kAppNamespace) {
        ++count;
      }
    }
    return count;
  }
  static int TargetPort(const std::string& service_json) {
    int port = 0;
    return absl::SimpleAtoi(JsonAt(service_json, "/spec/ports/0/targetPort"), &port) ? port : 0;
  }

  static std::optional<std::string> Cr(const std::string& name) {
    return api_->Object("destinations", kAppNamespace, name);
  }
  // Polls the CR until a status for its current generation carries reason `want`; the last
  // reason seen ("" when none was written).
  static std::string WaitForReason(const std::string& name, const std::string& want) {
    std::string reason;
    WaitFor([&] {
      std::optional<std::string> cr = Cr(name);
      if (!cr.has_value()) return false;
      if (JsonAt(*cr, "/status/observedGeneration") != JsonAt(*cr, "/metadata/generation")) {
        return false;
      }
      reason = JsonAt(*cr, "/status/conditions/0/reason");
      return reason == want;
    });
    return reason;
  }

  // Applies a CR for `tenant` (single-tenant: "") and waits until its managed Service exists
  // and the targetPort accepts on 127.0.0.1; the targetPort, or 0 (with a test failure).
  int ApplyAndWaitServed(const std::string& name, const CrOptions& options = {},
                         const std::string& tenant = "") {
    CommandResult r = Apply(name, CrYaml(name, options));
    EXPECT_EQ(r.exit_code, 0) << r.output;
    if (r.exit_code != 0) return 0;
    int port = 0;
    const bool served = WaitFor([&] {
      std::optional<std::string> service = ManagedServiceOf(name, tenant);
      port = service.has_value() ? TargetPort(*service) : 0;
      return port != 0 && PortAcceptsConnections(static_cast<uint16_t>(port));
    });
    EXPECT_TRUE(served) << "CR " << name << " (tenant \"" << tenant << "\") not served within "
                        << kWait << "; managed targetPort " << port
                        << "; CR: " << Cr(name).value_or("(absent)");
    return served ? port : 0;
  }

  // A session on 127.0.0.1:port: PREAUTH, then SELECT INBOX; the number of messages (EXISTS),
  // or -1 with a test failure.
  static int LoggedInInboxSize(uint16_t port, const std::string& who) {
    absl::StatusOr<std::unique_ptr<ImapTestClient>> client = ImapTestClient::Connect(port);
    EXPECT_TRUE(client.ok()) << who << ": " << client.status();
    if (!client.ok()) return -1;
    absl::StatusOr<ImapResponse> greeting = (*client)->ReadResponse();
    EXPECT_TRUE(greeting.ok()) << who << ": " << greeting.status();
    if (!greeting.ok()) return -1;
    EXPECT_TRUE(absl::StartsWith(greeting->text, "* PREAUTH")) << who << ": " << greeting->text;
    if (!absl::StartsWith(greeting->text, "* PREAUTH")) return -1;
    absl::StatusOr<std::vector<ImapResponse>> select = (*client)->Command("S", "SELECT INBOX");
    EXPECT_TRUE(select.ok()) << who << ": " << select.status();
    if (!select.ok()) return -1;
    EXPECT_EQ(select->back().Status(), "OK") << who << ": " << Transcript(*select);
    for (const ImapResponse& response : *select) {
      int exists = 0;
      absl::string_view text = response.text;
      if (absl::ConsumePrefix(&text, "* ") && absl::ConsumeSuffix(&text, " EXISTS") &&
          absl::SimpleAtoi(text, &exists)) {
        return exists;
      }
    }
    ADD_FAILURE() << who << ": no EXISTS in " << Transcript(*select);
    return -1;
  }

  static TempDir* dir_;
  static std::string ca_file_;
  static DovecotServer* dovecot_;
  static FakeKubeApiServer* api_;
  static FakeDestinationService* destinations_;
  static MailringProcess* pod_a_;
  static std::string kubeconfig_;
  static std::string key_file_;
  static int port_first_;
  static uint16_t admin_port_;
  static std::string skip_reason_;
  static std::string setup_error_;
};

TempDir* ClusterTest::dir_ = nullptr;
std::string ClusterTest::ca_file_;
DovecotServer* ClusterTest::dovecot_ = nullptr;
FakeKubeApiServer* ClusterTest::api_ = nullptr;
FakeDestinationService* ClusterTest::destinations_ = nullptr;
MailringProcess* ClusterTest::pod_a_ = nullptr;
std::string ClusterTest::kubeconfig_;
std::string ClusterTest::key_file_;
int ClusterTest::port_first_ = 0;
uint16_t ClusterTest::admin_port_ = 0;
std::string ClusterTest::skip_reason_;
std::string ClusterTest::setup_error_;

// kubectl apply of a Destination CR → the client Service (ExternalName) in the CR's namespace,
// the managed Service in mailring's, a port that is logged in as the destination's user, and
// the status Available True / ConfigurationSuccessful.
TEST_F(ClusterTest, AppliedCrServesLoggedInSession) {
  const std::string name = "example-imap";
  const std::string path = absl::StrCat(dir_->path(), "/", name, ".yaml");
  MR_ASSERT_OK(WriteFile(path, CrYaml(name, {})));
  const absl::Time start = absl::Now();
  CommandResult r = Kubectl(absl::StrCat("apply -f ", ShellQuote(path)));
  const absl::Time applied = absl::Now();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "destination.connectivity.api.sap/example-imap created"))
      << r.output;
  int target_port = 0;
  // A finer poll than WaitFor's default: this wait is the latency measurement.
  ASSERT_TRUE(WaitFor(
      [&] {
        std::optional<std::string> service = ManagedServiceOf(name);
        target_port = service.has_value() ? TargetPort(*service) : 0;
        return target_port != 0 && PortAcceptsConnections(static_cast<uint16_t>(target_port));
      },
      kWait, absl::Milliseconds(5)))
      << "no listening port for " << name << " within " << kWait;
  const absl::Time listening = absl::Now();
  std::cout << "[ latency  ] kubectl apply -> port accepting: "
            << absl::ToDoubleMilliseconds(listening - start) << " ms (kubectl apply itself "
            << absl::ToDoubleMilliseconds(applied - start) << " ms; after it returned "
            << absl::ToDoubleMilliseconds(listening - applied) << " ms)" << std::endl;
  EXPECT_GE(target_port, port_first_);
  EXPECT_LT(target_port, port_first_ + kPortCount);

  // The Services, as kubectl shows them.
  r = Kubectl(absl::StrCat("get svc -n ", kAppNamespace, " ", name, " -o json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(JsonAt(r.output, "/spec/type"), "ExternalName") << r.output;
  EXPECT_EQ(JsonAt(r.output, "/spec/ports/0/port"), "143") << r.output;
  const std::string managed_name = JsonAt(*ManagedServiceOf(name), "/metadata/name");
  EXPECT_TRUE(absl::StartsWith(JsonAt(r.output, "/spec/externalName"),
                               absl::StrCat(managed_name, ".mailring.svc.")))
      << r.output;
  r = Kubectl(absl::StrCat("get svc -n mailring ", managed_name, " -o json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(JsonAt(r.output, "/spec/ports/0/port"), "143") << r.output;
  EXPECT_EQ(JsonAt(r.output, "/spec/ports/0/targetPort"), absl::StrCat(target_port)) << r.output;
  EXPECT_EQ(JsonAt(r.output, "/metadata/labels/" + PointerKey("app.kubernetes.io/managed-by")),
            "mailring")
      << r.output;
  r = Kubectl(absl::StrCat("get svc -n ", kAppNamespace));
  EXPECT_TRUE(absl::StrContains(r.output, "143/TCP")) << r.output;

  // A session: PREAUTH, logged in as alice.
  MR_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ImapTestClient> client,
                          ImapTestClient::Connect(static_cast<uint16_t>(target_port)));
  MR_ASSERT_OK_AND_ASSIGN(ImapResponse greeting, client->ReadResponse());
  ASSERT_TRUE(absl::StartsWith(greeting.text, "* PREAUTH")) << greeting.text;
  MR_ASSERT_OK_AND_ASSIGN(auto list, client->Command("2", "LIST \"\" \"*\""));
  EXPECT_EQ(list.back().Status(), "OK") << Transcript(list);
  MR_ASSERT_OK_AND_ASSIGN(auto select, client->Command("3", "SELECT INBOX"));
  ASSERT_EQ(select.back().Status(), "OK") << Transcript(select);
  EXPECT_TRUE(absl::StrContains(Transcript(select),
                                absl::StrCat("* ", DovecotServer::kBigMessage, " EXISTS")))
      << Transcript(select);
  MR_ASSERT_OK_AND_ASSIGN(auto fetch, client->Command("4", "FETCH 1 BODY[TEXT]"));
  ASSERT_EQ(fetch.back().Status(), "OK") << Transcript(fetch);
  ASSERT_FALSE(fetch.front().literals.empty()) << Transcript(fetch);
  EXPECT_EQ(fetch.front().literals[0], DovecotServer::SmallMessageText(1));

  // The status, as kubectl shows it.
  EXPECT_EQ(WaitForReason(name, "ConfigurationSuccessful"), "ConfigurationSuccessful");
  r = Kubectl(absl::StrCat("get dst -n ", kAppNamespace, " ", name, " -o json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(JsonAt(r.output, "/status/conditions/0/type"), "Available") << r.output;
  EXPECT_EQ(JsonAt(r.output, "/status/conditions/0/status"), "True") << r.output;
  EXPECT_EQ(JsonAt(r.output, "/status/conditions/0/reason"), "ConfigurationSuccessful") << r.output;
  EXPECT_EQ(JsonAt(r.output, "/status/conditions/0/message"),
            "Technical connectivity is configured. Kubernetes service with name \"example-imap\" "
            "is created.")
      << r.output;
  EXPECT_FALSE(JsonAt(r.output, "/status/conditions/0/lastUpdateTime").empty()) << r.output;
  EXPECT_EQ(JsonAt(r.output, "/metadata/finalizers/0"), kFinalizer) << r.output;

  // Ready once the routes are built and the listeners open.
  EXPECT_TRUE(absl::StartsWith(HttpGet(admin_port_, "/readyz"), "HTTP/1.1 200"))
      << HttpGet(admin_port_, "/readyz");
}

// An imap4s destination and a CR without spec.service.port: the Services are on 993 (SAP's port
// for IMAPS), `kubectl get dst` shows SAP's columns, and the port serves PREAUTH sessions over
// the TLS leg to Dovecot's IMAPS port.
TEST_F(ClusterTest, ImapsDestinationGetsItsServiceOn993AndServesOverTls) {
  const std::string name = "example-imaps";
  CommandResult r = Apply(name, CrYaml(name, WithDestination(kImapsDestinationName)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  int target_port = 0;
  ASSERT_TRUE(WaitFor([&] {
    std::optional<std::string> service = ManagedServiceOf(name);
    target_port = service.has_value() ? TargetPort(*service) : 0;
    return target_port != 0 && PortAcceptsConnections(static_cast<uint16_t>(target_port));
  })) << "CR: " << Cr(name).value_or("(absent)");
  EXPECT_EQ(JsonAt(*ManagedServiceOf(name), "/spec/ports/0/port"), "993");
  r = Kubectl(absl::StrCat("get svc -n ", kAppNamespace, " ", name, " -o json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(JsonAt(r.output, "/spec/ports/0/port"), "993") << r.output;

  MR_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ImapTestClient> client,
                          ImapTestClient::Connect(static_cast<uint16_t>(target_port)));
  MR_ASSERT_OK_AND_ASSIGN(ImapResponse greeting, client->ReadResponse());
  ASSERT_TRUE(absl::StartsWith(greeting.text, "* PREAUTH")) << greeting.text;
  MR_ASSERT_OK_AND_ASSIGN(auto select, client->Command("1", "SELECT INBOX"));
  EXPECT_EQ(select.back().Status(), "OK") << Transcript(select);
  EXPECT_TRUE(absl::StrContains(pod_a_->Log(), "TLS established with upstream"));

  EXPECT_EQ(WaitForReason(name, "ConfigurationSuccessful"), "ConfigurationSuccessful");
  r = Kubectl(absl::StrCat("get dst -n ", kAppNamespace, " ", name));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* column : {"AGE", "DESTINATIONREF", "FRAGMENTREF",
                             "DESTINATIONSERVICEINSTANCENAME", "SERVICEPORT",
                             "ACCESSCONTROLSCOPE", "CHAINREF", "STATUS"}) {
    EXPECT_TRUE(absl::StrContains(r.output, column)) << column << " in:\n" << r.output;
  }
  EXPECT_TRUE(absl::StrContains(r.output, "ConfigurationSuccessful")) << r.output;
}

// Two tenants in the annotation → two client Services <cr>-t1, <cr>-t2, each logged in with its
// own tenant's destination: t1 as alice (the fixture's INBOX of 4 messages), t2 as bob (empty).
TEST_F(ClusterTest, TenantAnnotationGivesIsolatedServicePerTenant) {
  const std::string name = "shared-imap";
  CommandResult r = Apply(name, CrYaml(name, WithTenants(R"(["t1","t2"])")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  int port_t1 = 0;
  int port_t2 = 0;
  ASSERT_TRUE(WaitFor([&] {
    std::optional<std::string> t1 = ManagedServiceOf(name, "t1");
    std::optional<std::string> t2 = ManagedServiceOf(name, "t2");
    port_t1 = t1.has_value() ? TargetPort(*t1) : 0;
    port_t2 = t2.has_value() ? TargetPort(*t2) : 0;
    return port_t1 != 0 && port_t2 != 0 && PortAcceptsConnections(port_t1) &&
           PortAcceptsConnections(port_t2);
  })) << "ports "
      << port_t1 << ", " << port_t2 << "; CR: " << Cr(name).value_or("(absent)");
  EXPECT_NE(port_t1, port_t2);
  EXPECT_EQ(ManagedServiceCount(name), 2);
  for (const char* tenant : {"t1", "t2"}) {
    r = Kubectl(absl::StrCat("get svc -n ", kAppNamespace, " ", name, "-", tenant, " -o json"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(JsonAt(r.output, "/spec/type"), "ExternalName") << r.output;
  }
  r = Kubectl(absl::StrCat("get svc -n ", kAppNamespace, " ", name, " -o json"));
  EXPECT_NE(r.exit_code, 0) << "a Service named after a multitenant CR itself: " << r.output;

  EXPECT_EQ(LoggedInInboxSize(port_t1, "tenant t1"), DovecotServer::kBigMessage);
  EXPECT_EQ(LoggedInInboxSize(port_t2, "tenant t2"), 0);
  // The Destination service was asked per tenant (tenant tokens, not the provider's).
  bool asked_t1 = false;
  bool asked_t2 = false;
  for (const FakeDestinationService::Request& request : destinations_->requests()) {
    if (request.name != kDestinationName || request.status != 200) continue;
    asked_t1 = asked_t1 || request.tenant == "t1";
    asked_t2 = asked_t2 || request.tenant == "t2";
  }
  EXPECT_TRUE(asked_t1 && asked_t2);

  EXPECT_EQ(WaitForReason(name, "ConfigurationSuccessful"), "ConfigurationSuccessful");
  r = Kubectl(absl::StrCat("get dst -n ", kAppNamespace, " ", name, " -o json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(JsonAt(r.output, "/status/conditions/0/status"), "True") << r.output;
  // SAP's CRD: each entry is {tenantSubdomain}; tooling written against SAP reads that.
  EXPECT_EQ(JsonAt(r.output, "/status/tenants/0/tenantSubdomain"), "t1") << r.output;
  EXPECT_EQ(JsonAt(r.output, "/status/tenants/1/tenantSubdomain"), "t2") << r.output;
  EXPECT_EQ(JsonAt(r.output, "/status/tenants/0/serviceName"), name + "-t1") << r.output;

  // t2 leaves the annotation: its Services and its listener go, t1 stays.
  r = Apply(name, CrYaml(name, WithTenants(R"(["t1"])")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(WaitFor([&] {
    return !ManagedServiceOf(name, "t2").has_value() &&
           !api_->Object("services", kAppNamespace, name + "-t2").has_value() &&
           Refused("127.0.0.1", port_t2);
  })) << "tenant t2's Services or listener outlived its removal from the annotation";
  EXPECT_EQ(WaitForReason(name, "ConfigurationSuccessful"), "ConfigurationSuccessful");
  EXPECT_EQ(LoggedInInboxSize(port_t1, "tenant t1"), DovecotServer::kBigMessage);
}

// spec.service.port changed → the managed Service (and the client Service) follow, the
// targetPort stays, and the port still serves.
TEST_F(ClusterTest, ChangedCrPortIsFollowed) {
  const std::string name = "moving-imap";
  const int target_port = ApplyAndWaitServed(name);
  ASSERT_NE(target_port, 0);
  EXPECT_EQ(WaitForReason(name, "ConfigurationSuccessful"), "ConfigurationSuccessful");

  CommandResult r = Apply(name, CrYaml(name, WithPort(1143)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "configured")) << r.output;
  ASSERT_TRUE(WaitFor([&] {
    std::optional<std::string> service = ManagedServiceOf(name);
    return service.has_value() && JsonAt(*service, "/spec/ports/0/port") == "1143";
  })) << "managed Service: "
      << ManagedServiceOf(name).value_or("(absent)");
  EXPECT_EQ(WaitForReason(name, "ConfigurationSuccessful"), "ConfigurationSuccessful");
  const std::string managed_name = JsonAt(*ManagedServiceOf(name), "/metadata/name");
  r = Kubectl(absl::StrCat("get svc -n mailring ", managed_name, " -o json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(JsonAt(r.output, "/spec/ports/0/port"), "1143") << r.output;
  EXPECT_EQ(JsonAt(r.output, "/spec/ports/0/targetPort"), absl::StrCat(target_port)) << r.output;
  EXPECT_EQ(ManagedServiceCount(name), 1);
  // The client Service is a CNAME to the managed one; issue 5: "change the CR → Services follow".
  r = Kubectl(absl::StrCat("get svc -n ", kAppNamespace, " ", name, " -o json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(JsonAt(r.output, "/spec/ports/0/port"), "1143")
      << "the client Service kept the old port: " << r.output;
  EXPECT_EQ(LoggedInInboxSize(target_port, name), DovecotServer::kBigMessage);
}

// The managed Service's update for a port change fails once (HTTP 500): the reconcile must not
// report success with the old port in place; failed reconciles are tried again
// (cluster_control.h), so the Service reaches the new port.
TEST_F(ClusterTest, FailedServiceUpdateIsRetried) {
  const std::string name = "retried-imap";
  const int target_port = ApplyAndWaitServed(name);
  ASSERT_NE(target_port, 0);
  EXPECT_EQ(WaitForReason(name, "ConfigurationSuccessful"), "ConfigurationSuccessful");

  api_->FailNextRequests("services", 1, 500, "patch");
  CommandResult r = Apply(name, CrYaml(name, WithPort(2143)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(WaitFor(
      [&] {
        std::optional<std::string> service = ManagedServiceOf(name);
        return service.has_value() && JsonAt(*service, "/spec/ports/0/port") == "2143";
      },
      absl::Seconds(15)))
      << "the managed Service kept its old port after one failed update; managed Service: "
      << ManagedServiceOf(name).value_or("(absent)") << "\nCR: " << Cr(name).value_or("");
  // Never "successful" while the Service still has the old port.
  std::optional<std::string> cr = Cr(name);
  ASSERT_TRUE(cr.has_value());
  if (JsonAt(*cr, "/status/conditions/0/reason") == "ConfigurationSuccessful") {
    EXPECT_EQ(JsonAt(*ManagedServiceOf(name), "/spec/ports/0/port"), "2143")
        << "status says ConfigurationSuccessful but the managed Service has the old port: " << *cr;
  }
}

// kubectl delete → both Services gone, the finalizer released (the CR is gone), the listener
// closed.
TEST_F(ClusterTest, DeletedCrRemovesServicesAndClosesListener) {
  const std::string name = "doomed-imap";
  const int target_port = ApplyAndWaitServed(name);
  ASSERT_NE(target_port, 0);
  EXPECT_EQ(WaitForReason(name, "ConfigurationSuccessful"), "ConfigurationSuccessful");
  const std::string managed_name = JsonAt(*ManagedServiceOf(name), "/metadata/name");

  const absl::Time start = absl::Now();
  CommandResult r =
      Kubectl(absl::StrCat("delete dst -n ", kAppNamespace, " ", name, " --timeout=25s"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(WaitFor([&] { return !Cr(name).has_value(); }))
      << "the CR is still there (finalizer not released): " << Cr(name).value_or("");
  EXPECT_TRUE(WaitFor([&] { return Refused("127.0.0.1", target_port); }))
      << "port " << target_port << " still accepts";
  std::cout << "[ latency  ] kubectl delete -> CR gone and port refused: "
            << absl::ToDoubleMilliseconds(absl::Now() - start) << " ms" << std::endl;
  r = Kubectl(absl::StrCat("get dst -n ", kAppNamespace, " ", name));
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "NotFound")) << r.output;
  r = Kubectl(absl::StrCat("get svc -n ", kAppNamespace, " ", name));
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "NotFound")) << r.output;
  r = Kubectl(absl::StrCat("get svc -n mailring ", managed_name));
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "NotFound")) << r.output;
  EXPECT_EQ(ManagedServiceCount(name), 0);
}

// A destination the Destination service does not know, and an invalid tenant annotation: the
// status says so, no Service is created.
TEST_F(ClusterTest, MissingDestinationAndInvalidAnnotationAreReported) {
  CommandResult r = Apply("missing-imap", CrYaml("missing-imap", WithDestination("no-such-dest")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = Apply("badtenants-imap", CrYaml("badtenants-imap", WithTenants(R"(["T_1", "t2"])")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = Apply("notjson-imap", CrYaml("notjson-imap", WithTenants("t1,t2")));
  ASSERT_EQ(r.exit_code, 0) << r.output;

  EXPECT_EQ(WaitForReason("missing-imap", "ConfigurationError-ReferencedDestination-NotFound"),
            "ConfigurationError-ReferencedDestination-NotFound");
  EXPECT_EQ(WaitForReason("badtenants-imap", "ConfigurationError-MultitenancyAnnotation-Invalid"),
            "ConfigurationError-MultitenancyAnnotation-Invalid");
  EXPECT_EQ(WaitForReason("notjson-imap", "ConfigurationError-MultitenancyAnnotation-Invalid"),
            "ConfigurationError-MultitenancyAnnotation-Invalid");
  for (const std::string name : {"missing-imap", "badtenants-imap", "notjson-imap"}) {
    r = Kubectl(absl::StrCat("get dst -n ", kAppNamespace, " ", name, " -o json"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(JsonAt(r.output, "/status/conditions/0/type"), "Available") << r.output;
    EXPECT_EQ(JsonAt(r.output, "/status/conditions/0/status"), "False") << r.output;
    EXPECT_TRUE(absl::StartsWith(JsonAt(r.output, "/status/conditions/0/message"),
                                 "Technical connectivity is not configured. "))
        << r.output;
    EXPECT_EQ(ManagedServiceCount(name), 0) << name;
    r = Kubectl(absl::StrCat("get svc -n ", kAppNamespace, " ", name));
    EXPECT_TRUE(absl::StrContains(r.output, "NotFound")) << r.output;
  }
  r = Kubectl(absl::StrCat("get dst -n ", kAppNamespace, " missing-imap -o json"));
  EXPECT_TRUE(absl::StrContains(JsonAt(r.output, "/status/conditions/0/message"), "no-such-dest"))
      << r.output;
  // Invalid means no tenant is guessed: neither "t2" nor anything else got a Service.
  EXPECT_FALSE(ManagedServiceOf("badtenants-imap", "t2").has_value());
}

// A watch broken mid-stream, and a watch resumed from a resourceVersion the server no longer has
// (410 Expired after the history was compacted): the CRs applied meanwhile are served.
TEST_F(ClusterTest, DroppedWatchAndExpiredHistoryMissNothing) {
  const int watches = api_->OpenWatches();
  EXPECT_GE(watches, 2) << "expected the Services and CR watches to be open";
  api_->DropWatches();
  const int after_drop = ApplyAndWaitServed("afterdrop-imap");
  ASSERT_NE(after_drop, 0);
  EXPECT_EQ(LoggedInInboxSize(after_drop, "afterdrop-imap"), DovecotServer::kBigMessage);

  // The CR watch cannot come back for a while (its next reconnects fail); meanwhile a CR is
  // applied and the history compacted, so the resumed watch gets 410 and must list again.
  const int lists_before = api_->RequestCount("list", "destinations");
  const std::string log_before = pod_a_->Log();
  api_->FailNextRequests("destinations", 2, 503, "watch");
  api_->DropWatches();
  const std::string name = "aftercompact-imap";
  CommandResult r = Apply(name, CrYaml(name, {}));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  api_->CompactHistory();
  int target_port = 0;
  ASSERT_TRUE(WaitFor([&] {
    std::optional<std::string> service = ManagedServiceOf(name);
    target_port = service.has_value() ? TargetPort(*service) : 0;
    return target_port != 0 && PortAcceptsConnections(target_port);
  })) << "CR "
      << name << " applied while the watch was down was not served";
  EXPECT_EQ(LoggedInInboxSize(target_port, name), DovecotServer::kBigMessage);
  EXPECT_EQ(WaitForReason(name, "ConfigurationSuccessful"), "ConfigurationSuccessful");
  EXPECT_GT(api_->RequestCount("list", "destinations"), lists_before)
      << "the CRs were not listed again after the history was compacted";
  const std::string new_log =
      pod_a_->Log().substr(std::min(log_before.size(), pod_a_->Log().size()));
  EXPECT_TRUE(absl::StrContains(new_log, "expired, listing again")) << new_log;
  // And a change after all that still arrives over the re-established watch.
  const int later = ApplyAndWaitServed("afterrelist-imap");
  EXPECT_NE(later, 0);
}

// A second mailring (pod-b, on 127.0.0.2): pod-a keeps the Lease, pod-b does not write, and both
// listen on the same targetPort, each on its own address.
TEST_F(ClusterTest, TwoPodsOneLeaderSamePorts) {
  const std::string name = "twopods-imap";
  const int target_port = ApplyAndWaitServed(name);
  ASSERT_NE(target_port, 0);

  MR_ASSERT_OK_AND_ASSIGN(std::unique_ptr<MailringProcess> pod_b, StartPod("pod-b", "127.0.0.2"));
  EXPECT_TRUE(WaitFor([&] { return Accepts("127.0.0.2", target_port); }))
      << "pod-b does not listen on 127.0.0.2:" << target_port << "; its log:\n"
      << Tail(pod_b->Log(), 40);
  absl::StatusOr<std::string> greeting_b = FirstLine("127.0.0.2", target_port);
  ASSERT_TRUE(greeting_b.ok()) << greeting_b.status();
  EXPECT_TRUE(absl::StartsWith(*greeting_b, "* PREAUTH")) << *greeting_b;
  absl::StatusOr<std::string> greeting_a = FirstLine("127.0.0.1", target_port);
  ASSERT_TRUE(greeting_a.ok()) << greeting_a.status();
  EXPECT_TRUE(absl::StartsWith(*greeting_a, "* PREAUTH")) << *greeting_a;

  // pod-b serves a CR applied while both run on the same port as pod-a.
  const int second = ApplyAndWaitServed("twopods2-imap");
  ASSERT_NE(second, 0);
  EXPECT_TRUE(WaitFor([&] { return Accepts("127.0.0.2", second); }));

  // Longer than the retry period (2 s): pod-b had time to try for the Lease. Real time: pod-b is
  // a process of its own on the real clock, and this checks that nothing happens in that time.
  absl::SleepFor(absl::Milliseconds(2500));
  CommandResult r = Kubectl("get lease -n mailring mailring-leader -o json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(JsonAt(r.output, "/spec/holderIdentity"), "pod-a") << r.output;
  EXPECT_EQ(api_->Objects("leases").size(), 1u);
  const std::string log_b = pod_b->Log();
  EXPECT_TRUE(absl::StrContains(pod_a_->Log(), "pod-a is now the leader"));
  EXPECT_FALSE(absl::StrContains(log_b, "is now the leader")) << Tail(log_b, 40);

  pod_b->Signal(SIGTERM);
  absl::StatusOr<int> exit_code = pod_b->WaitExit(absl::Seconds(10));
  EXPECT_TRUE(exit_code.ok() && *exit_code == 0)
      << (exit_code.ok() ? absl::StrCat("exit ", *exit_code) : exit_code.status().ToString());
  CheckNoSecretsIn(pod_b->Log(), "pod-b");
  if (HasFailure()) std::cerr << "---- pod-b log, last 60 lines ----\n" << Tail(pod_b->Log(), 60);
  // pod-a still serves after pod-b left.
  EXPECT_TRUE(Accepts("127.0.0.1", target_port));
}

// The Destination service goes away: routes already built keep logging in; a CR whose
// destination was never looked up gets Available False with FailedToApplyConfiguration; once the
// service is back, the failed CR is retried and becomes available.
TEST_F(ClusterTest, DestinationServiceDownKeepsRoutesAndReportsWhy) {
  const std::string name = "steady-imap";
  const int target_port = ApplyAndWaitServed(name);
  ASSERT_NE(target_port, 0);
  MR_ASSERT_OK(destinations_->AddDestination(
      "", DestinationJson("late-dest", "alice", kAlicePassword, dovecot_->port())));

  destinations_->Stop();
  struct Restart {
    ~Restart() { (void)destinations_->Start(); }
  } restart;
  EXPECT_EQ(LoggedInInboxSize(target_port, "existing route"), DovecotServer::kBigMessage);

  const std::string late = "late-imap";
  CommandResult r = Apply(late, CrYaml(late, WithDestination("late-dest")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(WaitForReason(late, "FailedToApplyConfiguration"), "FailedToApplyConfiguration");
  r = Kubectl(absl::StrCat("get dst -n ", kAppNamespace, " ", late, " -o json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(JsonAt(r.output, "/status/conditions/0/status"), "False") << r.output;
  EXPECT_TRUE(absl::StrContains(JsonAt(r.output, "/status/conditions/0/message"), "unreachable"))
      << r.output;
  EXPECT_EQ(ManagedServiceCount(late), 0);
  // Still served while the service is down.
  EXPECT_EQ(LoggedInInboxSize(target_port, "existing route"), DovecotServer::kBigMessage);

  MR_ASSERT_OK(destinations_->Start());
  int late_port = 0;
  EXPECT_TRUE(WaitFor([&] {
    std::optional<std::string> service = ManagedServiceOf(late);
    late_port = service.has_value() ? TargetPort(*service) : 0;
    return late_port != 0 && PortAcceptsConnections(late_port);
  })) << "the failed CR was not retried after the Destination service came back: "
      << Cr(late).value_or("");
  EXPECT_EQ(WaitForReason(late, "ConfigurationSuccessful"), "ConfigurationSuccessful");
}

}  // namespace
}  // namespace mailring::integration
