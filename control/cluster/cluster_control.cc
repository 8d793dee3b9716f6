#include "control/cluster/cluster_control.h"

#include <algorithm>
#include <utility>

namespace mailring::control {

ClusterControl::ClusterControl(HttpClient* http, KubeConfig kube_config,
                               std::map<std::string, ServiceKey> instances,
                               ClusterOptions options, PublishRoutes publish)
    : kube_(http, std::move(kube_config)),
      destinations_(http, std::move(instances)),
      options_(std::move(options)),
      routes_(&kube_, &destinations_, &options_, std::move(publish),
              RouteWatcher::Listener{
                  .service_upserted =
                      [this](const ManagedService& service) {
                        reconciler_.OnServiceUpserted(service);
                      },
                  .service_removed =
                      [this](const ManagedService& service) {
                        reconciler_.OnServiceRemoved(service);
                      },
                  .destination_resolved =
                      [this](const ManagedService& service, proto::MailProtocol protocol) {
                        reconciler_.OnDestinationResolved(service, protocol);
                      }}),
      reconciler_(&kube_, &destinations_, &options_, &routes_.managed()),
      election_(&kube_,
                LeaderElectionOptions{options_.mailring_namespace, "mailring-leader",
                                      options_.pod_name},
                [this](bool leader) { reconciler_.SetLeader(leader); }) {}

ClusterControl::~ClusterControl() = default;

int64_t ClusterControl::Tick(int64_t now_ms) {
  routes_.Start();
  const int64_t next_ms = election_.Tick(now_ms);
  routes_.Tick(now_ms);
  reconciler_.Tick(now_ms);
  return std::min(next_ms, now_ms + 200);
}

}  // namespace mailring::control
