// mailring_fake_kube_apiserver: the fake Kubernetes API server as a program, for trying kubectl
// or mailring by hand and for shell-driven tests. Serves until SIGINT/SIGTERM.
//
//   mailring_fake_kube_apiserver [--port N] [--state-dir D] [--token T] [--bookmark-seconds S]
//
// Prints "url http://127.0.0.1:PORT" and "kubeconfig PATH" on stdout once it listens. With
// --state-dir it writes D/kubeconfig and D/port, and keeps every object in D/state.json (loaded
// again at start, so a restarted fake keeps its objects). Without it the kubeconfig goes to
// $TMPDIR/mailring-fake-kube-<port>.kubeconfig.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/time/time.h"
#include "tests/fakes/kube_apiserver.h"

namespace {

[[noreturn]] void Usage() {
  std::fprintf(stderr,
               "usage: mailring_fake_kube_apiserver [--port N] [--state-dir D] [--token T] "
               "[--bookmark-seconds S]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  mailring::fakes::FakeKubeApiServer::Options options;
  int port = 0;
  std::string state_dir;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) Usage();
    std::string value = argv[++i];
    if (flag == "--port") {
      if (!absl::SimpleAtoi(value, &port) || port < 0 || port > 65535) Usage();
    } else if (flag == "--state-dir") {
      state_dir = value;
    } else if (flag == "--token") {
      options.token = value;
    } else if (flag == "--bookmark-seconds") {
      int seconds = 0;
      if (!absl::SimpleAtoi(value, &seconds) || seconds <= 0) Usage();
      options.bookmark_interval = absl::Seconds(seconds);
    } else {
      Usage();
    }
  }
  if (!state_dir.empty()) options.state_file = state_dir + "/state.json";

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // before any thread starts

  mailring::fakes::FakeKubeApiServer server(options);
  if (absl::Status status = server.Start(static_cast<uint16_t>(port)); !status.ok()) {
    std::fprintf(stderr, "mailring_fake_kube_apiserver: %s\n", status.ToString().c_str());
    return 1;
  }
  std::string kubeconfig;
  if (!state_dir.empty()) {
    kubeconfig = state_dir + "/kubeconfig";
    std::ofstream(state_dir + "/port") << server.port() << "\n";
  } else {
    const char* tmp = std::getenv("TMPDIR");
    kubeconfig = std::string(tmp != nullptr ? tmp : "/tmp") + "/mailring-fake-kube-" +
                 std::to_string(server.port()) + ".kubeconfig";
  }
  if (absl::Status status = server.WriteKubeconfig(kubeconfig); !status.ok()) {
    std::fprintf(stderr, "mailring_fake_kube_apiserver: %s\n", status.ToString().c_str());
    return 1;
  }
  std::printf("url %s\nkubeconfig %s\n", server.Url().c_str(), kubeconfig.c_str());
  std::fflush(stdout);
  int signo = 0;
  sigwait(&signals, &signo);
  server.Stop();
  return 0;
}
