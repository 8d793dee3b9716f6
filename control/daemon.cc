#include "control/daemon.h"

#include <sys/resource.h>

#include <algorithm>
#include <utility>

#include "control/build_info.h"
#include "control/io_uring_probe.h"
#include "control/metrics.h"
#include "control/standalone_routes.h"
#include "core/log.h"
#include "proto/str_cat.h"

namespace mailring::control {
namespace {

// A proxy holds two sockets per session: take the whole fd allowance the system grants.
void RaiseFileLimit() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

bool NeedsToken(const core::Route& route) {
  if (route.via_connectivity_proxy) return true;
  if (!route.destination.login_on_behalf) return false;
  switch (route.destination.authentication) {
    case proto::AuthenticationType::kOAuth2ClientCredentials:
    case proto::AuthenticationType::kOAuth2RefreshToken:
    case proto::AuthenticationType::kOAuth2AuthorizationCode:
      return true;
    default:
      return false;
  }
}

}  // namespace

Daemon::Daemon(Config config) : config_(std::move(config)) {}

Daemon::~Daemon() { Stop(); }

absl::Status Daemon::LoadRoutes() {
  if (config_.cluster_mode()) {
    const std::string& file = config_.cluster->kubeconfig_file;
    absl::StatusOr<KubeConfig> kube = file.empty() ? InClusterKubeConfig() : LoadKubeconfig(file);
    if (!kube.ok()) {
      return absl::Status(kube.status().code(), StrCat("cluster mode: ", kube.status().message()));
    }
    kube_config_ = *std::move(kube);
    table_ = std::make_shared<const core::RouteTable>();
    return absl::OkStatus();
  }
  absl::StatusOr<core::RouteTable> routes =
      LoadStandaloneRoutes(config_.destinations_file, config_.route_options);
  if (!routes.ok()) {
    return absl::Status(routes.status().code(),
                        StrCat("invalid configuration: ", routes.status().message()));
  }
  table_ = std::make_shared<const core::RouteTable>(*std::move(routes));
  return absl::OkStatus();
}

absl::Status Daemon::ProbeKernel() {
  RaiseFileLimit();
  MAILRING_LOG(kInfo, BuildInfoLine(), " starting");
  return ProbeIoUring();
}

absl::Status Daemon::Start() {
  CreateControlThread();
  CreateWorkers();
  if (config_.cluster_mode()) CreateClusterControl();
  if (control_ != nullptr) control_->Start();
  if (absl::Status status = StartWorkers(); !status.ok()) return status;
  if (absl::Status status = StartAdminServer(); !status.ok()) return status;
  LogRoutes();
  MAILRING_LOG(kInfo, "mailring ", GetBuildInfo().version, " ready: ", workers_.size(),
               " workers, ", table_->size(), " routes");
  return absl::OkStatus();
}

bool Daemon::NeedsTokens() const {
  return std::any_of(table_->begin(), table_->end(),
                     [](const auto& route) { return NeedsToken(*route); });
}

// The control thread owns token fetching and refresh; workers read what it publishes. Routes
// that need no token (basic authentication, relay only) need neither, nor libcurl's memory.
void Daemon::CreateControlThread() {
  credentials_ = std::make_unique<core::CredentialCache>(config_.worker_count);
  if (!NeedsTokens() && !config_.cluster_mode()) return;
  CredentialServiceOptions options;
  options.ca_file = config_.worker_options.ca_file;
  options.connectivity = config_.connectivity_key;
  control_ = std::make_unique<ControlThread>(table_, credentials_.get(), options);
}

void Daemon::CreateWorkers() {
  core::WorkerServices services;
  if (control_ != nullptr) services = {credentials_.get(), control_->broker()};
  std::vector<core::Worker*> pointers;
  for (int i = 0; i < config_.worker_count; ++i) {
    workers_.push_back(std::make_unique<core::Worker>(i, table_, config_.worker_options, services));
    pointers.push_back(workers_.back().get());
  }
  if (control_ != nullptr) control_->SetWorkers(pointers);
}

void Daemon::CreateClusterControl() {
  std::vector<core::Worker*> workers;
  for (const auto& worker : workers_) workers.push_back(worker.get());
  Config::Cluster& cluster = *config_.cluster;
  cluster_control_ = std::make_unique<ClusterControl>(
      control_->http(), *std::move(kube_config_), std::move(cluster.instances),
      std::move(cluster.options), [workers](std::shared_ptr<const core::RouteTable> table) {
        for (core::Worker* worker : workers) worker->UpdateRoutes(table);
      });
  control_->AddTask([c = cluster_control_.get()](int64_t now) { return c->Tick(now); });
  control_->credential_service()->SetDestinationService(cluster_control_->destination_service());
}

absl::Status Daemon::StartWorkers() {
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (absl::Status status = workers_[i]->Start(config_.drain_timeout); !status.ok()) {
      return absl::Status(status.code(),
                          StrCat("worker ", i, " failed to start: ", status.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status Daemon::StartAdminServer() {
  if (!config_.admin_listen.has_value()) return absl::OkStatus();
  MetricsSources sources;
  for (const auto& worker : workers_) sources.workers.push_back(worker.get());
  if (control_ != nullptr) sources.credentials = &control_->credential_counters();
  if (cluster_control_ != nullptr) {
    sources.reconcile_errors = &cluster_control_->reconcile_errors();
  }
  const size_t expected_listeners = table_->size() * workers_.size();
  const ClusterControl* cluster_state = cluster_control_.get();
  AdminServer::Handlers handlers;
  handlers.metrics = [sources] { return RenderMetrics(sources); };
  handlers.readiness = [sources, expected_listeners, cluster_state]() -> std::string {
    size_t listening = 0;
    for (const auto* worker : sources.workers) listening += worker->listening();
    size_t expected = expected_listeners;
    if (cluster_state != nullptr) {
      if (!cluster_state->ready()) return "routes not built from the cluster yet";
      expected = cluster_state->routes() * sources.workers.size();
    }
    if (listening < expected) return StrCat(listening, " of ", expected, " listeners open");
    return {};
  };
  admin_ = std::make_unique<AdminServer>(*config_.admin_listen, std::move(handlers));
  if (absl::Status status = admin_->Start(); !status.ok()) return status;
  MAILRING_LOG(kInfo, "admin endpoints on ", config_.admin_listen->ToString(),
               ": /healthz /readyz /metrics");
  return absl::OkStatus();
}

void Daemon::LogRoutes() const {
  for (const auto& route : *table_) {
    MAILRING_LOG(kInfo, "listening on ", route->listen.ToString(), " for destination ",
                 route->destination.name, " (upstream ", route->upstream.ToString(),
                 route->destination.login_on_behalf ? ", logging in on the client's behalf"
                                                    : ", relay only: clients log in themselves",
                 ")");
  }
}

void Daemon::Stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& worker : workers_) worker->RequestDrain();
  for (auto& worker : workers_) worker->Join();
  if (control_ != nullptr) control_->Stop();
  cluster_control_.reset();
  if (admin_ != nullptr) admin_->Stop();
}

}  // namespace mailring::control
