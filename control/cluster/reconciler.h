// Reconciler: the leader's half of cluster mode. Watches the Destination CRs of all namespaces
// and reconciles them one at a time:
//   1. our finalizer on the CR (the update comes back through the watch and goes on at 2);
//   2. per tenant: the destination is looked up and checked, a managed Service is created (or
//      its port corrected) in mailring's namespace with a targetPort from --port-range, then the
//      client Service (ExternalName, named after the CR) in the CR's namespace;
//   3. Services of tenants no longer listed are removed;
//   4. the status subresource gets condition Available with SAP's reasons.
// A deleted CR's Services are removed, then its finalizer. A failed reconcile is tried again.
//
// Contract: control thread only, except errors(), a thread-safe counter for /metrics. The
// managed Services come from the RouteWatcher (every pod watches them); the reconciler is told
// of their changes through OnServiceUpserted/OnServiceRemoved, which keep the port allocation.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "control/cluster/cluster_options.h"
#include "control/cluster/destination_cr.h"
#include "control/btp/destination_service.h"
#include "control/kube/kube_client.h"
#include "control/kube/leader_election.h"

namespace mailring::control {

class Reconciler {
 public:
  // `managed`: the managed Services by name (RouteWatcher::managed()), outliving this.
  Reconciler(KubeClient* kube, DestinationServiceClient* destinations,
             const ClusterOptions* options, const std::map<std::string, ManagedService>* managed);
  ~Reconciler();

  // Leadership won: watch the CRs. Lost: forget them.
  void SetLeader(bool leader);
  // Schedules due retries and starts the next reconcile when none runs.
  void Tick(int64_t now_ms);

  // From the managed-Services watch.
  void OnServiceUpserted(const ManagedService& service);
  void OnServiceRemoved(const ManagedService& service);
  // A destination whose mail.transport.protocol changed moves its Service to the new protocol's
  // port unless the CR names one: the leader sees it at the route refresh and reconciles the CR.
  void OnDestinationResolved(const ManagedService& service, proto::MailProtocol protocol);

  const std::atomic<uint64_t>& errors() const { return errors_; }

 private:
  struct Pass;
  struct TenantWork;

  void StartWatch();
  void ReconcileNext();
  void AddFinalizer(std::shared_ptr<Pass> pass);
  void ReconcileTenant(std::shared_ptr<Pass> pass);
  void CheckDestination(std::shared_ptr<Pass> pass, std::string tenant, std::string client_name,
                        absl::StatusOr<FoundDestination> found);
  // Step 2 for one tenant, flat: managed Service (create or patch), then the client Service
  // (get, then create or patch). Each step ends in the next or in TenantDone.
  void EnsureServices(std::shared_ptr<Pass> pass, const std::string& tenant,
                      proto::MailProtocol protocol);
  void CreateManagedService(std::shared_ptr<TenantWork> work);
  void PatchManagedService(std::shared_ptr<TenantWork> work);
  void EnsureClientService(std::shared_ptr<TenantWork> work);
  void OnClientServiceFetched(std::shared_ptr<TenantWork> work, absl::StatusOr<KubeResponse> got);
  void CreateClientService(std::shared_ptr<TenantWork> work);
  void PatchClientService(std::shared_ptr<TenantWork> work);
  void TenantAvailable(const TenantWork& work);
  void TenantFailed(const TenantWork& work, std::string message, std::string_view reason);
  void TenantDone(std::shared_ptr<Pass> pass, TenantStatus status, std::string_view reason);
  void WriteStatus(std::shared_ptr<Pass> pass);
  void Finalize(std::shared_ptr<Pass> pass);
  void ReleaseFinalizer(const DestinationCr& cr);
  void DeleteServicesOf(const DestinationCr& cr, const std::set<std::string>& keep_tenants,
                        std::function<void()> done);
  int AllocatePort() const;
  std::string CrPath(const DestinationCr& cr) const;

  KubeClient* kube_;
  DestinationServiceClient* destinations_;
  const ClusterOptions* options_;
  const std::map<std::string, ManagedService>* managed_;
  bool leader_ = false;
  std::unique_ptr<KubeClient::Informer> informer_;
  int64_t now_ms_ = 0;  // of the last Tick

  std::map<std::string, int> allocated_;      // Service name → targetPort, incl. pending
  std::map<std::string, DestinationCr> crs_;  // by namespace/name
  std::set<std::string> dirty_;               // CR keys to reconcile
  // What of a CR was last reconciled (generation, tenants, deletion, finalizer): our own status
  // writes come back as MODIFIED events and must not trigger another reconcile.
  std::map<std::string, std::string> reconciled_;
  std::map<std::string, int64_t> retry_at_ms_;  // unavailable CRs are looked at again
  bool reconciling_ = false;

  std::atomic<uint64_t> errors_{0};
};

}  // namespace mailring::control
