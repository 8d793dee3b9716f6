// RouteWatcher: every pod's half of cluster mode. Watches the managed Services in mailring's
// namespace (the record of which CR and tenant got which targetPort), resolves each one's
// destination through the Destination service and gives the workers the resulting route table:
// listen address --listen-address:targetPort, the destination, the tenant. Rebuilt when the
// Services change and every destination_refresh (credentials rotate in the Destination
// service). A destination that cannot be looked up or served is left out and logged.
//
// Contract: control thread only, except ready() and routes(), which are thread-safe snapshots
// for /readyz.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "control/cluster/cluster_options.h"
#include "control/cluster/destination_cr.h"
#include "control/btp/destination_service.h"
#include "control/kube/kube_client.h"
#include "core/route.h"

namespace mailring::control {

class RouteWatcher {
 public:
  using PublishRoutes = std::function<void(std::shared_ptr<const core::RouteTable>)>;
  // What the reconciler learns from the watch (all optional).
  struct Listener {
    std::function<void(const ManagedService&)> service_upserted;
    std::function<void(const ManagedService&)> service_removed;
    // A route build looked up `service`'s destination: its protocol is now `protocol`.
    std::function<void(const ManagedService& service, proto::MailProtocol protocol)>
        destination_resolved;
  };

  RouteWatcher(KubeClient* kube, DestinationServiceClient* destinations,
               const ClusterOptions* options, PublishRoutes publish, Listener listener);

  // Starts the watch (once).
  void Start();
  // Rebuilds the routes when the Services changed or the refresh is due, and no build runs.
  void Tick(int64_t now_ms);

  bool ready() const { return ready_.load(std::memory_order_acquire); }
  size_t routes() const { return route_count_.load(std::memory_order_relaxed); }
  // Managed Services by name, as last seen.
  const std::map<std::string, ManagedService>& managed() const { return managed_; }

 private:
  // One route table being built: one Destination-service lookup per managed Service.
  struct Build {
    uint64_t generation = 0;
    size_t pending = 0;
    std::vector<std::shared_ptr<core::Route>> routes;
  };

  void BuildRoutes();
  void OnDestinationFound(const std::shared_ptr<Build>& build, const ManagedService& service,
                          absl::StatusOr<FoundDestination> found);
  // The route of `service` to `destination`, or why it cannot be served.
  absl::StatusOr<std::shared_ptr<core::Route>> RouteFor(const ManagedService& service,
                                                        proto::Destination destination) const;
  void Publish(Build& build);

  KubeClient* kube_;
  DestinationServiceClient* destinations_;
  const ClusterOptions* options_;
  PublishRoutes publish_;
  Listener listener_;
  std::unique_ptr<KubeClient::Informer> informer_;

  std::map<std::string, ManagedService> managed_;  // by Service name
  bool dirty_ = true;
  bool building_ = false;
  int64_t next_refresh_ms_ = 0;
  uint64_t generation_ = 0;  // of the newest build; older builds' answers are dropped

  std::atomic<bool> ready_{false};
  std::atomic<size_t> route_count_{0};
};

}  // namespace mailring::control
