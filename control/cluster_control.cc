#include "control/cluster_control.h"

#include <algorithm>
#include <utility>

#include "core/clock.h"
#include "core/log.h"
#include "proto/str_cat.h"

namespace mailring::control {
namespace {

constexpr std::string_view kCrCollection = "/apis/destination.connectivity.api.sap/v1/destinations";

std::string Key(std::string_view ns, std::string_view name) { return mailring::StrCat(ns, "/", name); }

// The parts of a CR whose change calls for a reconcile (status writes change none of them).
std::string Fingerprint(const DestinationCr& cr) {
  std::string out = mailring::StrCat(cr.generation, "|", cr.deleting ? "deleting" : "", "|",
                                     cr.tenants_error, "|");
  for (const std::string& tenant : cr.tenants) mailring::StrAppend(&out, tenant, ",");
  const bool ours = std::find(cr.finalizers.begin(), cr.finalizers.end(), kFinalizer) !=
                    cr.finalizers.end();
  mailring::StrAppend(&out, "|", ours ? "finalizer" : "");
  return out;
}

std::string FinalizersJson(const std::vector<std::string>& finalizers) {
  std::string out = "[";
  for (size_t i = 0; i < finalizers.size(); ++i) {
    mailring::StrAppend(&out, i == 0 ? "" : ",", "\"", finalizers[i], "\"");
  }
  return out + "]";
}

bool IsSuccess(const absl::StatusOr<KubeResponse>& response) {
  return response.ok() && response->status >= 200 && response->status < 300;
}

std::string Describe(const absl::StatusOr<KubeResponse>& response) {
  if (!response.ok()) return std::string(response.status().message());
  return mailring::StrCat("HTTP ", response->status, " ", response->body.substr(0, 200));
}

}  // namespace

// One reconcile of one CR, carried through the asynchronous steps.
struct ClusterControl::Pass {
  DestinationCr cr;
  size_t next_tenant = 0;
  std::vector<TenantStatus> tenants;
  bool available = true;
  std::string reason = "ConfigurationSuccessful";
  std::string message;  // the first failure's (tenant: ...) when not available
  std::vector<std::string> failed_tenants;
};

namespace {

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
    mailring::StrAppend(&names, names.empty() ? "" : ", ", "\"", tenant.service_name, "\"");
  }
  return tenants.size() == 1
             ? mailring::StrCat("Technical connectivity is configured. Kubernetes service with "
                                "name ", names, " is created.")
             : mailring::StrCat("Technical connectivity is configured. Kubernetes services with "
                                "names ", names, " are created.");
}

}  // namespace

ClusterControl::ClusterControl(HttpClient* http, KubeConfig kube_config,
                               std::map<std::string, ServiceKey> instances,
                               ClusterOptions options, PublishRoutes publish)
    : http_(http),
      kube_(http, std::move(kube_config)),
      destinations_(http, std::move(instances)),
      options_(std::move(options)),
      publish_(std::move(publish)),
      election_(&kube_,
                LeaderElectionOptions{options_.mailring_namespace, "mailring-leader",
                                      options_.pod_name},
                [this](bool leader) { OnLeaderChange(leader); }) {}

ClusterControl::~ClusterControl() = default;

std::string ClusterControl::CrPath(const DestinationCr& cr) const {
  return mailring::StrCat("/apis/destination.connectivity.api.sap/v1/namespaces/",
                          cr.namespace_name, "/destinations/", cr.name);
}

void ClusterControl::StartInformers() {
  KubeClient::Informer::Handler services;
  services.upsert = [this](std::string_view json) {
    absl::StatusOr<ManagedService> service = ParseManagedService(json);
    if (!service.ok()) return;  // not ours
    allocated_[service->name] = service->target_port;
    managed_[service->name] = *std::move(service);
    routes_dirty_ = true;
  };
  services.remove = [this](std::string_view json) {
    absl::StatusOr<ManagedService> service = ParseManagedService(json);
    if (!service.ok()) return;
    allocated_.erase(service->name);
    managed_.erase(service->name);
    routes_dirty_ = true;
  };
  services.synced = [this] { routes_dirty_ = true; };
  services.error = [](const absl::Status& status) {
    MAILRING_LOG(kWarning, "watching managed Services: ", status.message(), " (retrying)");
  };
  services_informer_ = kube_.Watch(
      mailring::StrCat("/api/v1/namespaces/", options_.mailring_namespace,
                       "/services?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dmailring"),
      std::move(services));
}

void ClusterControl::OnLeaderChange(bool leader) {
  if (!leader) {
    crs_informer_.reset();
    crs_.clear();
    dirty_.clear();
    return;
  }
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
  crs_informer_ = kube_.Watch(std::string(kCrCollection), std::move(handler));
}

int64_t ClusterControl::Tick(int64_t now_ms) {
  if (!started_) {
    started_ = true;
    StartInformers();
  }
  int64_t next_ms = election_.Tick(now_ms);
  if (services_informer_ != nullptr && services_informer_->synced()) {
    if ((routes_dirty_ || now_ms >= next_route_refresh_ms_) && !building_routes_) {
      routes_dirty_ = false;
      next_route_refresh_ms_ =
          now_ms + absl::ToInt64Milliseconds(options_.destination_refresh);
      BuildRoutes();
    }
  }
  for (auto it = retry_at_ms_.begin(); it != retry_at_ms_.end();) {
    if (now_ms < it->second) {
      ++it;
      continue;
    }
    dirty_.insert(it->first);
    it = retry_at_ms_.erase(it);
  }
  if (election_.leader() && crs_informer_ != nullptr && crs_informer_->synced() &&
      !reconciling_ && !dirty_.empty()) {
    ReconcileNext(now_ms);
  }
  return std::min(next_ms, now_ms + 200);
}

// --- every pod: routes from the managed Services -------------------------------------------

void ClusterControl::BuildRoutes() {
  building_routes_ = true;
  const uint64_t generation = ++route_generation_;
  struct Build {
    size_t pending = 0;
    std::vector<std::shared_ptr<core::Route>> routes;  // still being filled in
  };
  auto build = std::make_shared<Build>();
  std::vector<ManagedService> services;
  for (const auto& [name, service] : managed_) services.push_back(service);
  build->pending = services.size();
  auto finish = [this, build, generation] {
    if (generation != route_generation_) return;
    building_routes_ = false;
    std::sort(build->routes.begin(), build->routes.end(),
              [](const auto& a, const auto& b) { return a->listen.port() < b->listen.port(); });
    core::RouteTable table;
    for (auto& route : build->routes) {
      route->index = table.size();
      table.push_back(std::move(route));
    }
    route_count_.store(table.size(), std::memory_order_relaxed);
    publish_(std::make_shared<const core::RouteTable>(std::move(table)));
    ready_.store(true, std::memory_order_release);
  };
  if (services.empty()) {
    finish();
    return;
  }
  for (const ManagedService& service : services) {
    DestinationLookup lookup;
    lookup.instance = service.instance.empty() ? options_.default_instance : service.instance;
    lookup.name = service.destination_name;
    lookup.tenant = service.tenant;
    destinations_.Find(std::move(lookup), [this, build, service, finish,
                                           generation](absl::StatusOr<FoundDestination> found) {
      if (generation != route_generation_) return;
      if (!found.ok()) {
        MAILRING_LOG(kWarning, "route for ", service.cr_namespace, "/", service.cr_name,
                     service.tenant.empty() ? "" : " tenant ", service.tenant,
                     " not served: ", found.status().message());
      } else {
        NoticeProtocolChange(service, found->destination.protocol);
        auto route = std::make_shared<core::Route>();
        absl::StatusOr<core::SocketAddress> listen = core::SocketAddress::ParseNumeric(
            mailring::StrCat(options_.listen_address, ":", service.target_port));
        route->tenant = service.tenant;
        route->destination_service_instance =
            service.instance.empty() ? options_.default_instance : service.instance;
        if (listen.ok()) {
          route->listen = *listen;
          absl::Status built =
              CompleteRoute(std::move(found->destination), options_.route_options, route.get());
          if (built.ok()) {
            route->log_label = mailring::StrCat(route->log_label, " cr=", service.cr_namespace,
                                                "/", service.cr_name);
            build->routes.push_back(std::move(route));
          } else {
            MAILRING_LOG(kWarning, "route for ", service.cr_namespace, "/", service.cr_name,
                         " not served: ", built.message());
          }
        }
      }
      if (--build->pending == 0) finish();
    });
  }
}

// --- the leader: Destination CRs into Services ---------------------------------------------

void ClusterControl::NoticeProtocolChange(const ManagedService& service,
                                          proto::MailProtocol protocol) {
  // A destination whose mail.transport.protocol changed moves its Service to the new protocol's
  // port unless the CR names one: the leader sees it at the route refresh and reconciles the CR.
  if (!election_.leader()) return;
  const std::string key = Key(service.cr_namespace, service.cr_name);
  auto it = crs_.find(key);
  if (it == crs_.end() || it->second.port != 0) return;
  if (service.port != proto::DefaultServicePort(protocol)) dirty_.insert(key);
}

int ClusterControl::AllocatePort() {
  std::set<int> used;
  for (const auto& [name, port] : allocated_) used.insert(port);
  for (int port = options_.port_min; port <= options_.port_max; ++port) {
    if (!used.contains(port)) return port;
  }
  return 0;
}

void ClusterControl::ReconcileNext(int64_t now_ms) {
  const std::string key = *dirty_.begin();
  dirty_.erase(dirty_.begin());
  auto it = crs_.find(key);
  if (it == crs_.end()) return;
  auto pass = std::make_shared<Pass>();
  pass->cr = it->second;
  reconciled_[key] = Fingerprint(pass->cr);
  reconciling_ = true;
  const DestinationCr& cr = pass->cr;
  if (cr.deleting) {
    Finalize(pass);
    return;
  }
  if (std::find(cr.finalizers.begin(), cr.finalizers.end(), kFinalizer) == cr.finalizers.end()) {
    // Our finalizer first, so that a deletion waits for the Services to go. The update comes
    // back through the watch and triggers the rest of the reconcile.
    std::vector<std::string> finalizers = cr.finalizers;
    finalizers.emplace_back(kFinalizer);
    kube_.MergePatch(CrPath(cr),
                     mailring::StrCat(R"({"metadata":{"resourceVersion":")", cr.resource_version,
                                      R"(","finalizers":)", FinalizersJson(finalizers), "}}"),
                     [this, key](absl::StatusOr<KubeResponse> response) {
                       reconciling_ = false;
                       if (!IsSuccess(response)) {
                         ++reconcile_errors_;
                         reconciled_.erase(key);
                         dirty_.insert(key);
                         MAILRING_LOG(kWarning, key, ": adding the finalizer failed: ",
                                      Describe(response));
                       }
                     });
    return;
  }
  if (!cr.tenants_error.empty()) {
    pass->available = false;
    pass->reason = "ConfigurationError-MultitenancyAnnotation-Invalid";
    pass->message = cr.tenants_error;
    Finish(pass);
    return;
  }
  ReconcileTenant(pass);
}

void ClusterControl::ReconcileTenant(std::shared_ptr<Pass> pass) {
  const DestinationCr& cr = pass->cr;
  if (pass->next_tenant >= cr.tenants.size()) {
    // Services of tenants no longer listed go away; then the status.
    std::set<std::string> keep(cr.tenants.begin(), cr.tenants.end());
    DeleteServicesOf(cr, keep, [this, pass] { Finish(pass); });
    return;
  }
  const std::string tenant = cr.tenants[pass->next_tenant++];
  absl::StatusOr<std::string> client_name = ClientServiceName(cr, tenant);
  if (!client_name.ok()) {
    TenantDone(pass, TenantStatus{tenant, "", "Error", std::string(client_name.status().message())},
               "ServiceCreationFailed");
    return;
  }
  DestinationLookup lookup;
  lookup.instance = cr.instance.empty() ? options_.default_instance : cr.instance;
  lookup.name = cr.destination_name;
  lookup.tenant = tenant;
  destinations_.Find(std::move(lookup), [this, pass, tenant, name = *client_name](
                                            absl::StatusOr<FoundDestination> found) {
    if (!found.ok()) {
      const bool not_found = found.status().code() == absl::StatusCode::kNotFound;
      TenantDone(pass, TenantStatus{tenant, name, "Error", std::string(found.status().message())},
                 not_found ? "ConfigurationError-ReferencedDestination-NotFound"
                           : "FailedToApplyConfiguration");
      return;
    }
    core::Route probe;
    probe.tenant = tenant;
    if (absl::Status servable = CompleteRoute(found->destination, options_.route_options, &probe);
        !servable.ok()) {
      const std::string message(servable.message());
      const bool loopback = message.find("LoopbackUrlNotSupported") != std::string::npos;
      TenantDone(pass, TenantStatus{tenant, name, "Error", message},
                 loopback ? "ConfigurationError-ReferencedDestination-LoopbackUrlNotSupported"
                          : "ConfigurationError-ReferencedDestination-TypeNotSupported");
      return;
    }
    EnsureServices(pass, tenant, found->destination.protocol);
  });
}

void ClusterControl::EnsureServices(std::shared_ptr<Pass> pass, const std::string& tenant,
                                    proto::MailProtocol protocol) {
  const DestinationCr& cr = pass->cr;
  ManagedServiceSpec spec;
  spec.name = ManagedServiceName(cr.namespace_name, cr.name, tenant);
  spec.mailring_namespace = options_.mailring_namespace;
  spec.cr_namespace = cr.namespace_name;
  spec.cr_name = cr.name;
  spec.cr_uid = cr.uid;
  spec.tenant = tenant;
  spec.destination_name = cr.destination_name;
  spec.instance = cr.instance;
  spec.port = ServicePortFor(cr, protocol);
  spec.port_name = PortNameFor(protocol);
  const std::string client_name = *ClientServiceName(cr, tenant);
  auto it = allocated_.find(spec.name);
  const bool exists = managed_.contains(spec.name);
  spec.target_port = it != allocated_.end() ? it->second : AllocatePort();
  if (spec.target_port == 0) {
    TenantDone(pass, TenantStatus{tenant, client_name, "Error", "--port-range is exhausted"},
               "ServiceCreationFailed");
    return;
  }
  allocated_[spec.name] = spec.target_port;
  auto ensure_client = [this, pass, spec, tenant, client_name] {
    const std::string path = mailring::StrCat("/api/v1/namespaces/", spec.cr_namespace,
                                              "/services/", client_name);
    kube_.Get(path, [this, pass, spec, tenant, client_name](absl::StatusOr<KubeResponse> got) {
      if (got.ok() && got->status == 404) {
        kube_.Create(mailring::StrCat("/api/v1/namespaces/", spec.cr_namespace, "/services"),
                     ClientServiceJson(spec, client_name, options_.cluster_domain),
                     [this, pass, tenant, client_name](absl::StatusOr<KubeResponse> created) {
                       if (IsSuccess(created) || (created.ok() && created->status == 409)) {
                         TenantDone(pass, TenantStatus{tenant, client_name, "Available", ""}, "");
                       } else {
                         TenantDone(pass,
                                    TenantStatus{tenant, client_name, "Error",
                                                 mailring::StrCat("creating the Service: ",
                                                                  Describe(created))},
                                    "ServiceCreationFailed");
                       }
                     });
        return;
      }
      if (!IsSuccess(got)) {
        TenantDone(pass, TenantStatus{tenant, client_name, "Error", Describe(got)},
                   "ServiceCreationFailed");
        return;
      }
      // It exists: ours (kept in line with the CR), or somebody else's (reported, never
      // overwritten).
      absl::StatusOr<ManagedService> existing = ParseManagedService(got->body);
      if (!existing.ok()) {
        TenantDone(pass,
                   TenantStatus{tenant, client_name, "Error",
                                mailring::StrCat("a Service named ", client_name, " exists in ",
                                                 spec.cr_namespace,
                                                 " and is not managed by mailring")},
                   "ConfigurationError-K8sResourceWithNameAlreadyPresent");
        return;
      }
      if (existing->port == spec.port) {
        TenantDone(pass, TenantStatus{tenant, client_name, "Available", ""}, "");
        return;
      }
      kube_.MergePatch(mailring::StrCat("/api/v1/namespaces/", spec.cr_namespace, "/services/",
                                        client_name),
                       mailring::StrCat(R"({"spec":{"ports":[{"name":")", spec.port_name,
                                        R"(","protocol":"TCP","port":)", spec.port, "}]}}"),
                       [this, pass, tenant, client_name](absl::StatusOr<KubeResponse> patched) {
                         if (IsSuccess(patched)) {
                           TenantDone(pass, TenantStatus{tenant, client_name, "Available", ""},
                                      "");
                         } else {
                           TenantDone(pass,
                                      TenantStatus{tenant, client_name, "Error",
                                                   mailring::StrCat("updating the Service: ",
                                                                    Describe(patched))},
                                      "ServiceCreationFailed");
                         }
                       });
    });
  };
  if (exists && managed_[spec.name].port == spec.port) {
    ensure_client();
    return;
  }
  const std::string managed_path =
      mailring::StrCat("/api/v1/namespaces/", options_.mailring_namespace, "/services");
  if (exists) {
    // The CR's port changed: replace the managed Service, keeping its targetPort.
    kube_.MergePatch(
        mailring::StrCat(managed_path, "/", spec.name),
        mailring::StrCat(R"({"spec":{"ports":[{"name":")", spec.port_name,
                         R"(","protocol":"TCP","port":)", spec.port, R"(,"targetPort":)",
                         spec.target_port, "}]}}"),
        [this, pass, tenant, client_name, ensure_client](absl::StatusOr<KubeResponse> patched) {
          if (IsSuccess(patched)) {
            ensure_client();
            return;
          }
          // Reported (status False) and retried after the usual delay.
          TenantDone(pass,
                     TenantStatus{tenant, client_name, "Error",
                                  mailring::StrCat("updating the managed Service: ",
                                                   Describe(patched))},
                     "ServiceCreationFailed");
        });
    return;
  }
  kube_.Create(managed_path, ManagedServiceJson(spec),
               [this, pass, tenant, client_name, ensure_client](
                   absl::StatusOr<KubeResponse> created) {
                 if (IsSuccess(created) || (created.ok() && created->status == 409)) {
                   ensure_client();
                   return;
                 }
                 TenantDone(pass,
                            TenantStatus{tenant, client_name, "Error",
                                         mailring::StrCat("creating the managed Service: ",
                                                          Describe(created))},
                            "ServiceCreationFailed");
               });
}

void ClusterControl::TenantDone(std::shared_ptr<Pass> pass, TenantStatus status,
                                std::string_view reason) {
  if (status.status != "Available") {
    if (pass->available) {
      pass->available = false;
      pass->reason = std::string(reason);
      pass->message = status.name.empty() ? status.message
                                          : mailring::StrCat("tenant ", status.name, ": ",
                                                             status.message);
    }
    if (!status.name.empty()) pass->failed_tenants.push_back(status.name);
  }
  pass->tenants.push_back(std::move(status));
  ReconcileTenant(pass);
}

void ClusterControl::Finish(std::shared_ptr<Pass> pass) {
  DestinationCr& cr = pass->cr;
  if (pass->available) {
    pass->message = ConfiguredMessage(pass->tenants);
  } else {
    ++reconcile_errors_;
    if (!pass->failed_tenants.empty() &&
        pass->reason != "ConfigurationError-MultitenancyAnnotation-Invalid") {
      // SAP reports a multitenant CR's failure for the tenants, not for one cause.
      std::string list;
      for (const std::string& tenant : pass->failed_tenants) {
        mailring::StrAppend(&list, list.empty() ? "" : ", ", "\"", tenant, "\"");
      }
      pass->reason = "FailedToApplyConfiguration";
      pass->message = mailring::StrCat("Configuration failed for tenants: [", list, "] (",
                                       pass->message, ")");
    }
    pass->message = mailring::StrCat("Technical connectivity is not configured. ", pass->message);
  }
  // Status writes go with the resourceVersion last seen; on 409 the newest version comes
  // through the watch and the CR is reconciled again.
  auto it = crs_.find(Key(cr.namespace_name, cr.name));
  if (it != crs_.end()) cr.resource_version = it->second.resource_version;
  const std::string key = Key(cr.namespace_name, cr.name);
  if (pass->available) {
    MAILRING_LOG(kInfo, key, ": ", pass->message);
  } else {
    MAILRING_LOG(kWarning, key, ": ", pass->reason, ": ", pass->message);
  }
  kube_.Replace(mailring::StrCat(CrPath(cr), "/status"),
                StatusJson(cr, pass->available, pass->reason, pass->message, pass->tenants,
                           NowRfc3339Micro()),
                [this, key, pass](absl::StatusOr<KubeResponse> response) {
                  reconciling_ = false;
                  if (!IsSuccess(response)) {
                    if (!(response.ok() && response->status == 409)) ++reconcile_errors_;
                    if (!(response.ok() && response->status == 404)) dirty_.insert(key);
                  } else if (!pass->available) {
                    // E.g. the Destination service was down: look again in a while.
                    retry_at_ms_[key] = core::MonotonicMs() + 10'000;
                  }
                });
}

void ClusterControl::DeleteServicesOf(const DestinationCr& cr,
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
  for (const auto& [name, service] : managed_) {
    if (service.cr_namespace != cr.namespace_name || service.cr_name != cr.name) continue;
    if (keep_tenants.contains(service.tenant)) continue;
    pending->count += 2;
    if (absl::StatusOr<std::string> client = ClientServiceName(cr, service.tenant); client.ok()) {
      kube_.Delete(mailring::StrCat("/api/v1/namespaces/", cr.namespace_name, "/services/", *client),
                   [one_done](absl::StatusOr<KubeResponse>) { one_done(); });
    } else {
      one_done();
    }
    kube_.Delete(mailring::StrCat("/api/v1/namespaces/", options_.mailring_namespace,
                                  "/services/", name),
                 [one_done](absl::StatusOr<KubeResponse>) { one_done(); });
  }
  one_done();
}

void ClusterControl::Finalize(std::shared_ptr<Pass> pass) {
  const DestinationCr cr = pass->cr;
  const std::string key = Key(cr.namespace_name, cr.name);
  DeleteServicesOf(cr, {}, [this, cr, key] {
    std::vector<std::string> finalizers;
    for (const std::string& f : cr.finalizers) {
      if (f != kFinalizer) finalizers.push_back(f);
    }
    kube_.MergePatch(CrPath(cr),
                     mailring::StrCat(R"({"metadata":{"finalizers":)", FinalizersJson(finalizers),
                                      "}}"),
                     [this, key](absl::StatusOr<KubeResponse> response) {
                       reconciling_ = false;
                       if (!IsSuccess(response) &&
                           !(response.ok() && response->status == 404)) {
                         ++reconcile_errors_;
                         dirty_.insert(key);
                       } else {
                         MAILRING_LOG(kInfo, key, ": Services removed, finalizer released");
                       }
                     });
  });
}

}  // namespace mailring::control
