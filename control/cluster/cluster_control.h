// ClusterControl: mailring's Kubernetes control plane, run by the control thread. It owns the
// API client, the Destination-service client and the leader election, and composes
//  - the RouteWatcher (control/cluster/route_watcher.h), on every pod: managed Services → the workers'
//    route table;
//  - the Reconciler (control/cluster/reconciler.h), on the leader (a Lease): Destination CRs →
//    Services and CR status.
//
// Contract: constructed on the main thread; Tick() and everything else on the control thread,
// except the thread-safe snapshots for /readyz and /metrics.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "control/cluster/cluster_options.h"
#include "control/btp/destination_service.h"
#include "control/kube/kube_client.h"
#include "control/kube/leader_election.h"
#include "control/cluster/reconciler.h"
#include "control/cluster/route_watcher.h"
#include "core/route.h"

namespace mailring::control {

class ClusterControl {
 public:
  using PublishRoutes = RouteWatcher::PublishRoutes;

  ClusterControl(HttpClient* http, KubeConfig kube_config,
                 std::map<std::string, ServiceKey> instances, ClusterOptions options,
                 PublishRoutes publish);
  ~ClusterControl();

  int64_t Tick(int64_t now_ms);

  // Thread-safe snapshots for /readyz and /metrics.
  bool ready() const { return routes_.ready(); }
  const std::atomic<uint64_t>& reconcile_errors() const { return reconciler_.errors(); }
  size_t routes() const { return routes_.routes(); }
  DestinationServiceClient* destination_service() { return &destinations_; }

 private:
  KubeClient kube_;
  DestinationServiceClient destinations_;
  ClusterOptions options_;
  RouteWatcher routes_;
  Reconciler reconciler_;
  LeaderElection election_;
};

}  // namespace mailring::control
