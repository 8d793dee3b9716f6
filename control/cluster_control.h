// ClusterControl: mailring's Kubernetes control plane, run by the control thread.
//
//  - Every pod: watches the managed Services in mailring's namespace (the record of port
//    allocation), resolves each one's destination through the Destination service and gives
//    the workers the resulting route table (Worker::UpdateRoutes): listen address
//    --listen-address:targetPort, the destination, the tenant. Refreshed when the Services
//    change and every --destination-ttl (credentials rotate in the Destination service).
//  - The leader (LeaderElection on a Lease) also watches the Destination CRs of all namespaces
//    and reconciles them one at a time: a finalizer on the CR; per tenant the destination is
//    looked up and checked, a managed Service is created with a targetPort from --port-range,
//    and the client Service (ExternalName, named after the CR) in the CR's namespace; Services of
//    tenants no longer listed are removed; the status subresource gets condition Available with
//    SAP's reasons. A deleted CR's Services are removed, then its finalizer.
//
// Contract: constructed on the main thread; Tick() and everything else on the control thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "control/destination_cr.h"
#include "control/destination_service.h"
#include "control/kube_client.h"
#include "control/leader_election.h"
#include "control/standalone_routes.h"
#include "core/route.h"
#include "proto/destination.h"

namespace mailring::control {

struct ClusterOptions {
  std::string mailring_namespace = "mailring";
  std::string pod_name;
  std::string default_instance;
  std::string cluster_domain = "cluster.local";
  std::string listen_address = "0.0.0.0";
  int port_min = 20000;
  int port_max = 20999;
  absl::Duration destination_refresh = absl::Minutes(2);
  RouteOptions route_options;
};

class ClusterControl {
 public:
  using PublishRoutes = std::function<void(std::shared_ptr<const core::RouteTable>)>;

  ClusterControl(HttpClient* http, KubeConfig kube_config,
                 std::map<std::string, ServiceKey> instances, ClusterOptions options,
                 PublishRoutes publish);
  ~ClusterControl();

  int64_t Tick(int64_t now_ms);

  // Thread-safe snapshots for /readyz and /metrics.
  bool ready() const { return ready_.load(std::memory_order_acquire); }
  const std::atomic<uint64_t>& reconcile_errors() const { return reconcile_errors_; }
  size_t routes() const { return route_count_.load(std::memory_order_relaxed); }
  DestinationServiceClient* destination_service() { return &destinations_; }

 private:
  struct Pass;
  void OnLeaderChange(bool leader);
  void StartInformers();
  void BuildRoutes();
  void NoticeProtocolChange(const ManagedService& service, proto::MailProtocol protocol);
  void ReconcileNext(int64_t now_ms);
  void ReconcileTenant(std::shared_ptr<Pass> pass);
  void EnsureServices(std::shared_ptr<Pass> pass, const std::string& tenant,
                      proto::MailProtocol protocol);
  void TenantDone(std::shared_ptr<Pass> pass, TenantStatus status, std::string_view reason);
  void Finish(std::shared_ptr<Pass> pass);
  void Finalize(std::shared_ptr<Pass> pass);
  void DeleteServicesOf(const DestinationCr& cr, const std::set<std::string>& keep_tenants,
                        std::function<void()> done);
  int AllocatePort();
  std::string CrPath(const DestinationCr& cr) const;

  HttpClient* http_;
  KubeClient kube_;
  DestinationServiceClient destinations_;
  ClusterOptions options_;
  PublishRoutes publish_;
  LeaderElection election_;
  std::unique_ptr<KubeClient::Informer> services_informer_;
  std::unique_ptr<KubeClient::Informer> crs_informer_;
  bool started_ = false;

  std::map<std::string, ManagedService> managed_;  // by Service name
  std::map<std::string, int> allocated_;           // Service name → targetPort, incl. pending
  std::map<std::string, DestinationCr> crs_;       // by namespace/name
  std::set<std::string> dirty_;                    // CR keys to reconcile
  // What of a CR was last reconciled (generation, tenants, deletion, finalizer): our own status
  // writes come back as MODIFIED events and must not trigger another reconcile.
  std::map<std::string, std::string> reconciled_;
  std::map<std::string, int64_t> retry_at_ms_;     // failed reconciles are tried again
  bool reconciling_ = false;
  bool routes_dirty_ = true;
  bool building_routes_ = false;
  int64_t next_route_refresh_ms_ = 0;
  uint64_t route_generation_ = 0;

  std::atomic<bool> ready_{false};
  std::atomic<uint64_t> reconcile_errors_{0};
  std::atomic<size_t> route_count_{0};
};

}  // namespace mailring::control
