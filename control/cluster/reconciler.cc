#include "control/cluster/reconciler.h"

#include <algorithm>
#include <utility>

#include "core/log.h"
#include "proto/str_cat.h"

namespace mailring::control {
namespace {

constexpr std::string_view kCrCollection = "/apis/destination.connectivity.api.sap/v1/destinations";
// An unavailable CR (e.g. the Destination service was down) is looked at again after this.
constexpr int64_t kUnavailableRetryMs = 10'000;

std::string Key(std::string_view ns, std::string_view name) { return StrCat(ns, "/", name); }

bool HasOurFinalizer(const DestinationCr& cr) {
  return std::find(cr.finalizers.begin(), cr.finalizers.end(), kFinalizer) != cr.finalizers.end();
}

// The parts of a CR whose change calls for a reconcile (status writes change none of them).
std::string Fingerprint(const DestinationCr& cr) {
  std::string out =
      StrCat(cr.generation, "|", cr.deleting ? "deleting" : "", "|", cr.tenants_error, "|");
  for (const std::string& tenant : cr.tenants) StrAppend(&out, tenant, ",");
  StrAppend(&out, "|", HasOurFinalizer(cr) ? "finalizer" : "");
  return out;
}

// Create answered: made, or there already (a create that raced another; the watch brings it).
bool Created(const absl::StatusOr<KubeResponse>& response) {
  return response.ok() || absl::IsAlreadyExists(response.status());
}

// The Service port of a CR for a destination: spec.service.port, else the protocol's default
// (SAP: IMAP 143, IMAPS 993, SMTP 587, SMTPS 465, POP3 110, POP3S 995).
int ServicePortFor(const DestinationCr& cr, proto::MailProtocol protocol) {
  return cr.port != 0 ? cr.port : proto::DefaultServicePort(protocol);
}

std::string PortNameFor(proto::MailProtocol protocol) {
  switch (proto::FamilyOf(protocol)) {
    case proto::MailFamily::kSmtp:
      return "smtp";
    case proto::MailFamily::kPop3:
      return "pop3";
    case proto::MailFamily::kImap:
      break;
  }
  return "imap";
}

// SAP's condition messages: "Technical connectivity is configured. …" / "… is not configured. …".
std::string ConfiguredMessage(const std::vector<TenantStatus>& tenants) {
  std::string names;
  for (const TenantStatus& tenant : tenants) {
    StrAppend(&names, names.empty() ? "" : ", ", "\"", tenant.service_name, "\"");
  }
  return tenants.size() == 1
             ? StrCat("Technical connectivity is configured. Kubernetes service with name ", names,
                      " is created.")
             : StrCat("Technical connectivity is configured. Kubernetes services with names ",
                      names, " are created.");
}

}  // namespace

// One reconcile of one CR, carried through the asynchronous steps.
struct Reconciler::Pass {
  DestinationCr cr;
  size_t next_tenant = 0;
  std::vector<TenantStatus> tenants;
  bool available = true;
  std::string reason = "ConfigurationSuccessful";
  std::string message;  // the first failure's (tenant: ...) when not available
  std::vector<std::string> failed_tenants;
};

// Step 2 of one tenant: the Services it needs.
struct Reconciler::TenantWork {
  std::shared_ptr<Pass> pass;
  std::string tenant;
  std::string client_name;  // the client Service in the CR's namespace
  ManagedServiceSpec spec;  // the managed Service in mailring's namespace

  std::string ClientPath() const {
    return StrCat("/api/v1/namespaces/", spec.cr_namespace, "/services/", client_name);
  }
};

Reconciler::Reconciler(KubeClient* kube, DestinationServiceClient* destinations,
                       const ClusterOptions* options,
                       const std::map<std::string, ManagedService>* managed)
    : kube_(kube), destinations_(destinations), options_(options), managed_(managed) {}

Reconciler::~Reconciler() = default;

std::string Reconciler::CrPath(const DestinationCr& cr) const {
  return StrCat("/apis/destination.connectivity.api.sap/v1/namespaces/", cr.namespace_name,
                "/destinations/", cr.name);
}

// --- watching -------------------------------------------------------------------------------

void Reconciler::SetLeader(bool leader) {
  leader_ = leader;
  if (leader) {
    StartWatch();
    return;
  }
  informer_.reset();
  crs_.clear();
  dirty_.clear();
}

void Reconciler::StartWatch() {
  KubeClient::Informer::Handler handler;
  handler.upsert = [this](std::string_view json) {
    absl::StatusOr<DestinationCr> cr = ParseDestinationCr(json);
    if (!cr.ok()) return;
    const std::string key = Key(cr->namespace_name, cr->name);
    const std::string fingerprint = Fingerprint(*cr);
    crs_[key] = *std::move(cr);
    if (reconciled_[key] != fingerprint) dirty_.insert(key);
  };
  handler.remove = [this](std::string_view json) {
    absl::StatusOr<DestinationCr> cr = ParseDestinationCr(json);
    if (!cr.ok()) return;
    crs_.erase(Key(cr->namespace_name, cr->name));
    reconciled_.erase(Key(cr->namespace_name, cr->name));
  };
  handler.error = [](const absl::Status& status) {
    MAILRING_LOG(kWarning, "watching Destination CRs: ", status.message(), " (retrying)");
  };
  informer_ = kube_->Watch(std::string(kCrCollection), std::move(handler));
}

void Reconciler::OnServiceUpserted(const ManagedService& service) {
  allocated_[service.name] = service.target_port;
}

void Reconciler::OnServiceRemoved(const ManagedService& service) { allocated_.erase(service.name); }

void Reconciler::OnDestinationResolved(const ManagedService& service,
                                       proto::MailProtocol protocol) {
  if (!leader_) return;
  const std::string key = Key(service.cr_namespace, service.cr_name);
  auto it = crs_.find(key);
  if (it == crs_.end() || it->second.port != 0) return;
  if (service.port != proto::DefaultServicePort(protocol)) dirty_.insert(key);
}

void Reconciler::Tick(int64_t now_ms) {
  now_ms_ = now_ms;
  for (auto it = retry_at_ms_.begin(); it != retry_at_ms_.end();) {
    if (now_ms < it->second) {
      ++it;
      continue;
    }
    dirty_.insert(it->first);
    it = retry_at_ms_.erase(it);
  }
  if (leader_ && informer_ != nullptr && informer_->synced() && !reconciling_ && !dirty_.empty()) {
    ReconcileNext();
  }
}

// --- one reconcile --------------------------------------------------------------------------

void Reconciler::ReconcileNext() {
  const std::string key = *dirty_.begin();
  dirty_.erase(dirty_.begin());
  auto it = crs_.find(key);
  if (it == crs_.end()) return;
  auto pass = std::make_shared<Pass>();
  pass->cr = it->second;
  reconciled_[key] = Fingerprint(pass->cr);
  reconciling_ = true;
  if (pass->cr.deleting) {
    Finalize(pass);
  } else if (!HasOurFinalizer(pass->cr)) {
    AddFinalizer(pass);
  } else if (!pass->cr.tenants_error.empty()) {
    pass->available = false;
    pass->reason = "ConfigurationError-MultitenancyAnnotation-Invalid";
    pass->message = pass->cr.tenants_error;
    WriteStatus(pass);
  } else {
    ReconcileTenant(pass);
  }
}

// Our finalizer first, so that a deletion waits for the Services to go. The update comes back
// through the watch and triggers the rest of the reconcile.
void Reconciler::AddFinalizer(std::shared_ptr<Pass> pass) {
  const DestinationCr& cr = pass->cr;
  std::vector<std::string> finalizers = cr.finalizers;
  finalizers.emplace_back(kFinalizer);
  const std::string key = Key(cr.namespace_name, cr.name);
  kube_->MergePatch(CrPath(cr), FinalizersPatchJson(cr.resource_version, finalizers),
                    [this, key](absl::StatusOr<KubeResponse> response) {
                      reconciling_ = false;
                      if (response.ok()) return;
                      ++errors_;
                      reconciled_.erase(key);
                      dirty_.insert(key);
                      MAILRING_LOG(kWarning, key,
                                   ": adding the finalizer failed: ", response.status().message());
                    });
}

void Reconciler::ReconcileTenant(std::shared_ptr<Pass> pass) {
  const DestinationCr& cr = pass->cr;
  if (pass->next_tenant >= cr.tenants.size()) {
    // Services of tenants no longer listed go away; then the status.
    std::set<std::string> keep(cr.tenants.begin(), cr.tenants.end());
    DeleteServicesOf(cr, keep, [this, pass] { WriteStatus(pass); });
    return;
  }
  std::string tenant = cr.tenants[pass->next_tenant++];
  absl::StatusOr<std::string> client_name = ClientServiceName(cr, tenant);
  if (!client_name.ok()) {
    TenantDone(pass, TenantStatus{tenant, "", "Error", std::string(client_name.status().message())},
               "ServiceCreationFailed");
    return;
  }
  DestinationLookup lookup;
  lookup.instance = cr.instance.empty() ? options_->default_instance : cr.instance;
  lookup.name = cr.destination_name;
  lookup.tenant = tenant;
  destinations_->Find(std::move(lookup), [this, pass, tenant, name = *std::move(client_name)](
                                             absl::StatusOr<FoundDestination> found) {
    CheckDestination(pass, tenant, name, std::move(found));
  });
}

void Reconciler::CheckDestination(std::shared_ptr<Pass> pass, std::string tenant,
                                  std::string client_name, absl::StatusOr<FoundDestination> found) {
  if (!found.ok()) {
    const bool not_found = absl::IsNotFound(found.status());
    TenantDone(pass,
               TenantStatus{tenant, client_name, "Error", std::string(found.status().message())},
               not_found ? "ConfigurationError-ReferencedDestination-NotFound"
                         : "FailedToApplyConfiguration");
    return;
  }
  core::Route probe;
  probe.tenant = tenant;
  if (absl::Status servable = CompleteRoute(found->destination, options_->route_options, &probe);
      !servable.ok()) {
    const std::string message(servable.message());
    const bool loopback = message.find("LoopbackUrlNotSupported") != std::string::npos;
    TenantDone(pass, TenantStatus{tenant, client_name, "Error", message},
               loopback ? "ConfigurationError-ReferencedDestination-LoopbackUrlNotSupported"
                        : "ConfigurationError-ReferencedDestination-TypeNotSupported");
    return;
  }
  EnsureServices(pass, tenant, found->destination.protocol);
}

void Reconciler::EnsureServices(std::shared_ptr<Pass> pass, const std::string& tenant,
                                proto::MailProtocol protocol) {
  const DestinationCr& cr = pass->cr;
  auto work = std::make_shared<TenantWork>();
  work->pass = pass;
  work->tenant = tenant;
  work->client_name = *ClientServiceName(cr, tenant);
  ManagedServiceSpec& spec = work->spec;
  spec.name = ManagedServiceName(cr.namespace_name, cr.name, tenant);
  spec.mailring_namespace = options_->mailring_namespace;
  spec.cr_namespace = cr.namespace_name;
  spec.cr_name = cr.name;
  spec.cr_uid = cr.uid;
  spec.tenant = tenant;
  spec.destination_name = cr.destination_name;
  spec.instance = cr.instance;
  spec.port = ServicePortFor(cr, protocol);
  spec.port_name = PortNameFor(protocol);
  auto allocated = allocated_.find(spec.name);
  spec.target_port = allocated != allocated_.end() ? allocated->second : AllocatePort();
  if (spec.target_port == 0) {
    TenantFailed(*work, "--port-range is exhausted", "ServiceCreationFailed");
    return;
  }
  allocated_[spec.name] = spec.target_port;
  auto existing = managed_->find(spec.name);
  if (existing == managed_->end()) {
    CreateManagedService(work);
  } else if (existing->second.port != spec.port) {
    PatchManagedService(work);
  } else {
    EnsureClientService(work);
  }
}

void Reconciler::CreateManagedService(std::shared_ptr<TenantWork> work) {
  kube_->Create(StrCat("/api/v1/namespaces/", options_->mailring_namespace, "/services"),
                ManagedServiceJson(work->spec), [this, work](absl::StatusOr<KubeResponse> created) {
                  if (Created(created)) {
                    EnsureClientService(work);
                  } else {
                    TenantFailed(
                        *work, StrCat("creating the managed Service: ", created.status().message()),
                        "ServiceCreationFailed");
                  }
                });
}

// The CR's port changed: replace the managed Service's port, keeping its targetPort.
void Reconciler::PatchManagedService(std::shared_ptr<TenantWork> work) {
  kube_->MergePatch(
      StrCat("/api/v1/namespaces/", options_->mailring_namespace, "/services/", work->spec.name),
      ServicePortsPatchJson(work->spec, /*target_port=*/true),
      [this, work](absl::StatusOr<KubeResponse> patched) {
        if (patched.ok()) {
          EnsureClientService(work);
        } else {
          // Reported (status False) and retried after the usual delay.
          TenantFailed(*work, StrCat("updating the managed Service: ", patched.status().message()),
                       "ServiceCreationFailed");
        }
      });
}

void Reconciler::EnsureClientService(std::shared_ptr<TenantWork> work) {
  kube_->Get(work->ClientPath(), [this, work](absl::StatusOr<KubeResponse> got) {
    OnClientServiceFetched(work, std::move(got));
  });
}

// It exists: ours (kept in line with the CR), or somebody else's (reported, never overwritten).
void Reconciler::OnClientServiceFetched(std::shared_ptr<TenantWork> work,
                                        absl::StatusOr<KubeResponse> got) {
  if (absl::IsNotFound(got.status())) {
    CreateClientService(work);
    return;
  }
  if (!got.ok()) {
    TenantFailed(*work, std::string(got.status().message()), "ServiceCreationFailed");
    return;
  }
  absl::StatusOr<ManagedService> existing = ParseManagedService(got->body);
  if (!existing.ok()) {
    TenantFailed(*work,
                 StrCat("a Service named ", work->client_name, " exists in ",
                        work->spec.cr_namespace, " and is not managed by mailring"),
                 "ConfigurationError-K8sResourceWithNameAlreadyPresent");
    return;
  }
  if (existing->port == work->spec.port) {
    TenantAvailable(*work);
    return;
  }
  PatchClientService(work);
}

void Reconciler::CreateClientService(std::shared_ptr<TenantWork> work) {
  kube_->Create(StrCat("/api/v1/namespaces/", work->spec.cr_namespace, "/services"),
                ClientServiceJson(work->spec, work->client_name, options_->cluster_domain),
                [this, work](absl::StatusOr<KubeResponse> created) {
                  if (Created(created)) {
                    TenantAvailable(*work);
                  } else {
                    TenantFailed(*work,
                                 StrCat("creating the Service: ", created.status().message()),
                                 "ServiceCreationFailed");
                  }
                });
}

void Reconciler::PatchClientService(std::shared_ptr<TenantWork> work) {
  kube_->MergePatch(work->ClientPath(), ServicePortsPatchJson(work->spec, /*target_port=*/false),
                    [this, work](absl::StatusOr<KubeResponse> patched) {
                      if (patched.ok()) {
                        TenantAvailable(*work);
                      } else {
                        TenantFailed(*work,
                                     StrCat("updating the Service: ", patched.status().message()),
                                     "ServiceCreationFailed");
                      }
                    });
}

void Reconciler::TenantAvailable(const TenantWork& work) {
  TenantDone(work.pass, TenantStatus{work.tenant, work.client_name, "Available", ""}, "");
}

void Reconciler::TenantFailed(const TenantWork& work, std::string message,
                              std::string_view reason) {
  TenantDone(work.pass, TenantStatus{work.tenant, work.client_name, "Error", std::move(message)},
             reason);
}

void Reconciler::TenantDone(std::shared_ptr<Pass> pass, TenantStatus status,
                            std::string_view reason) {
  if (status.status != "Available") {
    if (pass->available) {
      pass->available = false;
      pass->reason = std::string(reason);
      pass->message = status.name.empty() ? status.message
                                          : StrCat("tenant ", status.name, ": ", status.message);
    }
    if (!status.name.empty()) pass->failed_tenants.push_back(status.name);
  }
  pass->tenants.push_back(std::move(status));
  ReconcileTenant(pass);
}

void Reconciler::WriteStatus(std::shared_ptr<Pass> pass) {
  DestinationCr& cr = pass->cr;
  if (pass->available) {
    pass->message = ConfiguredMessage(pass->tenants);
  } else {
    ++errors_;
    if (!pass->failed_tenants.empty() &&
        pass->reason != "ConfigurationError-MultitenancyAnnotation-Invalid") {
      // SAP reports a multitenant CR's failure for the tenants, not for one cause.
      std::string list;
      for (const std::string& tenant : pass->failed_tenants) {
        StrAppend(&list, list.empty() ? "" : ", ", "\"", tenant, "\"");
      }
      pass->reason = "FailedToApplyConfiguration";
      pass->message =
          StrCat("Configuration failed for tenants: [", list, "] (", pass->message, ")");
    }
    pass->message = StrCat("Technical connectivity is not configured. ", pass->message);
  }
  // Status writes go with the resourceVersion last seen; on 409 the newest version comes
  // through the watch and the CR is reconciled again.
  const std::string key = Key(cr.namespace_name, cr.name);
  if (auto it = crs_.find(key); it != crs_.end()) {
    cr.resource_version = it->second.resource_version;
  }
  if (pass->available) {
    MAILRING_LOG(kInfo, key, ": ", pass->message);
  } else {
    MAILRING_LOG(kWarning, key, ": ", pass->reason, ": ", pass->message);
  }
  kube_->Replace(StrCat(CrPath(cr), "/status"),
                 StatusJson(cr, pass->available, pass->reason, pass->message, pass->tenants,
                            NowRfc3339Micro()),
                 [this, key, pass](absl::StatusOr<KubeResponse> response) {
                   reconciling_ = false;
                   if (!response.ok()) {
                     // A stale resourceVersion is no error: the newer CR is on its way.
                     if (!absl::IsAborted(response.status())) ++errors_;
                     if (!absl::IsNotFound(response.status())) dirty_.insert(key);
                   } else if (!pass->available) {
                     retry_at_ms_[key] = now_ms_ + kUnavailableRetryMs;
                   }
                 });
}

// --- deletion -------------------------------------------------------------------------------

void Reconciler::Finalize(std::shared_ptr<Pass> pass) {
  DeleteServicesOf(pass->cr, {}, [this, cr = pass->cr] { ReleaseFinalizer(cr); });
}

void Reconciler::ReleaseFinalizer(const DestinationCr& cr) {
  std::vector<std::string> finalizers;
  for (const std::string& finalizer : cr.finalizers) {
    if (finalizer != kFinalizer) finalizers.push_back(finalizer);
  }
  const std::string key = Key(cr.namespace_name, cr.name);
  kube_->MergePatch(CrPath(cr), FinalizersPatchJson("", finalizers),
                    [this, key](absl::StatusOr<KubeResponse> response) {
                      reconciling_ = false;
                      if (!response.ok() && !absl::IsNotFound(response.status())) {
                        ++errors_;
                        dirty_.insert(key);
                      } else {
                        MAILRING_LOG(kInfo, key, ": Services removed, finalizer released");
                      }
                    });
}

// Deletes the client and managed Services of `cr`'s tenants not in `keep_tenants`, then calls
// `done` (whatever the deletes answered: a Service that stays is found again next time).
void Reconciler::DeleteServicesOf(const DestinationCr& cr,
                                  const std::set<std::string>& keep_tenants,
                                  std::function<void()> done) {
  struct Pending {
    size_t count = 1;
    std::function<void()> done;
  };
  auto pending = std::make_shared<Pending>();
  pending->done = std::move(done);
  auto one_done = [pending] {
    if (--pending->count == 0) pending->done();
  };
  for (const auto& [name, service] : *managed_) {
    if (service.cr_namespace != cr.namespace_name || service.cr_name != cr.name) continue;
    if (keep_tenants.contains(service.tenant)) continue;
    pending->count += 2;
    if (absl::StatusOr<std::string> client = ClientServiceName(cr, service.tenant); client.ok()) {
      kube_->Delete(StrCat("/api/v1/namespaces/", cr.namespace_name, "/services/", *client),
                    [one_done](absl::StatusOr<KubeResponse>) { one_done(); });
    } else {
      one_done();
    }
    kube_->Delete(StrCat("/api/v1/namespaces/", options_->mailring_namespace, "/services/", name),
                  [one_done](absl::StatusOr<KubeResponse>) { one_done(); });
  }
  one_done();
}

int Reconciler::AllocatePort() const {
  std::set<int> used;
  for (const auto& [name, port] : allocated_) used.insert(port);
  for (int port = options_->port_min; port <= options_->port_max; ++port) {
    if (!used.contains(port)) return port;
  }
  return 0;
}

}  // namespace mailring::control
