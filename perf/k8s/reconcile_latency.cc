// Reconcile latency of mailring's cluster mode: from creating N Destination CRs to N ports
// accepting connections, against the fake Kubernetes API server and the fake Destination
// service (tests/fakes). A benchmark, not a test: it prints a table and never fails on speed.
//
//   mailring_reconcile_latency --mailring build/mailring [--crs 1,100,1000] [--port-base 41000]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "control/cluster/destination_cr.h"
#include "simdjson.h"
#include "tests/fakes/destination_service.h"
#include "tests/fakes/kube_apiserver.h"

namespace {

using Clock = std::chrono::steady_clock;

constexpr char kCrd[] = R"({"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
 "metadata":{"name":"destinations.destination.connectivity.api.sap"},
 "spec":{"group":"destination.connectivity.api.sap","scope":"Namespaced",
  "names":{"kind":"Destination","listKind":"DestinationList","plural":"destinations",
           "singular":"destination","shortNames":["dst"]},
  "versions":[{"name":"v1","served":true,"storage":true,"subresources":{"status":{}},
   "schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}]}})";

bool Accepts(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  ::close(fd);
  return ok;
}

std::vector<int> TargetPorts(const mailring::fakes::FakeKubeApiServer& api) {
  std::vector<int> ports;
  for (const std::string& json : api.Objects("services", "mailring")) {
    absl::StatusOr<mailring::control::ManagedService> service =
        mailring::control::ParseManagedService(json);
    if (service.ok()) ports.push_back(service->target_port);
  }
  return ports;
}

int Run(const std::string& mailring, int crs, int port_base) {
  mailring::fakes::FakeKubeApiServer::Options options;
  options.require_namespaces = false;
  options.history_limit = 100000;
  mailring::fakes::FakeKubeApiServer api(options);
  if (!api.Start().ok()) return 1;
  if (api.Request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", kCrd).status >=
      300) {
    std::fprintf(stderr, "CRD not accepted\n");
    return 1;
  }
  mailring::fakes::FakeDestinationService destinations;
  if (!destinations.Start().ok()) return 1;
  if (!destinations
           .AddDestination("", R"({"Name":"bench","Type":"MAIL",
    "Authentication":"BasicAuthentication","mail.user":"u","mail.password":"p",
    "mail.imap4.host":"127.0.0.1","mail.imap4.port":"143","ProxyType":"Internet"})")
           .ok()) {
    std::fprintf(stderr, "the fake Destination service refused the destination\n");
    return 1;
  }
  char dir_template[] = "/tmp/mailring-reconcile-XXXXXX";
  const std::string dir = ::mkdtemp(dir_template);
  const std::string kubeconfig = dir + "/kubeconfig";
  const std::string key = dir + "/key.json";
  if (absl::Status written = api.WriteKubeconfig(kubeconfig); !written.ok()) {
    std::fprintf(stderr, "kubeconfig: %s\n", std::string(written.message()).c_str());
    return 1;
  }
  std::ofstream(key) << destinations.ServiceKeyJson();
  const std::string range = std::to_string(port_base) + "-" + std::to_string(port_base + crs + 50);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const std::string log = dir + "/mailring.log";
    std::freopen(log.c_str(), "w", stderr);
    ::execl(mailring.c_str(), mailring.c_str(), "--kubeconfig", kubeconfig.c_str(),
            "--namespace", "mailring", "--pod-name", "bench", "--port-range", range.c_str(),
            ("--destination-service-key=default=" + key).c_str(), "--listen-address",
            "127.0.0.1", "--allow-loopback-upstreams", "--workers", "1", "--log-level",
            "warning", static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  // Wait (bounded) until the pod holds the Lease: it then watches the CRs.
  for (int i = 0; i < 100 && api.Objects("leases", "mailring").empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const auto start = Clock::now();
  for (int i = 0; i < crs; ++i) {
    const std::string name = "cr-" + std::to_string(i);
    api.Request("POST", "/apis/destination.connectivity.api.sap/v1/namespaces/apps/destinations",
                R"({"apiVersion":"destination.connectivity.api.sap/v1","kind":"Destination",
                   "metadata":{"name":")" + name + R"(","namespace":"apps"},
                   "spec":{"destinationRef":{"name":"bench"}}})");
  }
  double services_s = -1, listening_s = -1;
  const auto deadline = start + std::chrono::seconds(120);
  std::set<int> open;
  while (Clock::now() < deadline) {
    const std::vector<int> ports = TargetPorts(api);
    if (services_s < 0 && static_cast<int>(ports.size()) >= crs) {
      services_s = std::chrono::duration<double>(Clock::now() - start).count();
    }
    for (int port : ports) {
      if (!open.contains(port) && Accepts(port)) open.insert(port);
    }
    if (static_cast<int>(open.size()) >= crs) {
      listening_s = std::chrono::duration<double>(Clock::now() - start).count();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid, SIGTERM);
  ::waitpid(pid, nullptr, 0);
  std::printf("| %5d | %8.3f | %8.3f | %6.2f |\n", crs, services_s, listening_s,
              listening_s > 0 ? listening_s * 1000.0 / crs : -1.0);
  std::fflush(stdout);
  return listening_s > 0 ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mailring = "build/mailring";
  std::vector<int> counts = {1, 100, 1000};
  int port_base = 41000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--mailring") mailring = argv[i + 1];
    if (flag == "--port-base") port_base = std::atoi(argv[i + 1]);
    if (flag == "--crs") {
      counts.clear();
      std::string list = argv[i + 1];
      for (size_t p = 0; p < list.size();) {
        const size_t comma = list.find(',', p);
        counts.push_back(std::atoi(list.substr(p, comma - p).c_str()));
        p = comma == std::string::npos ? list.size() : comma + 1;
      }
    }
  }
  std::printf("| CRs | all Services (s) | all ports listening (s) | ms per CR |\n|---|---|---|---|\n");
  int rc = 0;
  for (int crs : counts) rc |= Run(mailring, crs, port_base);
  return rc;
}
