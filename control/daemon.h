// Daemon: mailring's threads wired from a Config. Standalone mode serves the routes of
// --destinations; cluster mode starts with no route and lets ClusterControl publish them. One
// worker per --workers; a control thread when some route needs tokens or in cluster mode; the
// admin endpoints when --admin-listen is set.
//
// Contract: everything runs on the main thread, in the order LoadRoutes(), ProbeKernel(),
// Start(), then Stop() (or the destructor, which stops what was started). The caller blocks
// SIGTERM/SIGINT before Start() so that the threads it starts inherit the mask.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "control/admin_server.h"
#include "control/cluster/cluster_control.h"
#include "control/config.h"
#include "control/control_thread.h"
#include "control/kube/kubeconfig.h"
#include "core/credential_cache.h"
#include "core/route.h"
#include "core/worker.h"

namespace mailring::control {

class Daemon {
 public:
  explicit Daemon(Config config);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Loads what the configuration names: the routes file (blocking DNS) or the kubeconfig. An
  // error is a configuration error, worded "invalid configuration: ..." or "cluster mode: ...".
  absl::Status LoadRoutes();
  // Whether io_uring can be used at all, before any thread starts: one clear line instead of
  // every worker failing with a bare errno. FailedPrecondition: blocked by seccomp or the kernel.
  absl::Status ProbeKernel();
  // Starts the control thread, the workers and the admin endpoints, then logs what listens.
  absl::Status Start();
  // Drains the workers (each gives its sessions up to --drain-timeout) and stops the rest.
  void Stop();

  absl::Duration drain_timeout() const { return config_.drain_timeout; }

 private:
  bool NeedsTokens() const;
  void CreateControlThread();
  void CreateWorkers();
  void CreateClusterControl();
  absl::Status StartWorkers();
  absl::Status StartAdminServer();
  void LogRoutes() const;

  Config config_;
  std::optional<KubeConfig> kube_config_;  // cluster mode
  std::shared_ptr<const core::RouteTable> table_;
  std::unique_ptr<core::CredentialCache> credentials_;
  // Declared so that destruction runs in a safe order: admin, cluster, workers, control thread.
  std::unique_ptr<ControlThread> control_;
  std::vector<std::unique_ptr<core::Worker>> workers_;
  std::unique_ptr<ClusterControl> cluster_control_;
  std::unique_ptr<AdminServer> admin_;
  bool stopped_ = false;
};

}  // namespace mailring::control
