#include "control/cluster/route_watcher.h"

#include <algorithm>
#include <utility>

#include "core/log.h"
#include "proto/str_cat.h"

namespace mailring::control {

RouteWatcher::RouteWatcher(KubeClient* kube, DestinationServiceClient* destinations,
                           const ClusterOptions* options, PublishRoutes publish, Listener listener)
    : kube_(kube),
      destinations_(destinations),
      options_(options),
      publish_(std::move(publish)),
      listener_(std::move(listener)) {}

void RouteWatcher::Start() {
  if (informer_ != nullptr) return;
  KubeClient::Informer::Handler handler;
  handler.upsert = [this](std::string_view json) {
    absl::StatusOr<ManagedService> service = ParseManagedService(json);
    if (!service.ok()) return;  // not ours
    if (listener_.service_upserted) listener_.service_upserted(*service);
    managed_[service->name] = *std::move(service);
    dirty_ = true;
  };
  handler.remove = [this](std::string_view json) {
    absl::StatusOr<ManagedService> service = ParseManagedService(json);
    if (!service.ok()) return;
    if (listener_.service_removed) listener_.service_removed(*service);
    managed_.erase(service->name);
    dirty_ = true;
  };
  handler.synced = [this] { dirty_ = true; };
  handler.error = [](const absl::Status& status) {
    MAILRING_LOG(kWarning, "watching managed Services: ", status.message(), " (retrying)");
  };
  informer_ =
      kube_->Watch(StrCat("/api/v1/namespaces/", options_->mailring_namespace,
                          "/services?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dmailring"),
                   std::move(handler));
}

void RouteWatcher::Tick(int64_t now_ms) {
  if (informer_ == nullptr || !informer_->synced() || building_) return;
  if (!dirty_ && now_ms < next_refresh_ms_) return;
  dirty_ = false;
  next_refresh_ms_ = now_ms + absl::ToInt64Milliseconds(options_->destination_refresh);
  BuildRoutes();
}

void RouteWatcher::BuildRoutes() {
  building_ = true;
  auto build = std::make_shared<Build>();
  build->generation = ++generation_;
  // A copy: the watch may change managed_ while the lookups run.
  std::vector<ManagedService> services;
  for (const auto& [name, service] : managed_) services.push_back(service);
  build->pending = services.size();
  if (services.empty()) {
    Publish(*build);
    return;
  }
  for (const ManagedService& service : services) {
    DestinationLookup lookup;
    lookup.instance = service.instance.empty() ? options_->default_instance : service.instance;
    lookup.name = service.destination_name;
    lookup.tenant = service.tenant;
    destinations_->Find(std::move(lookup),
                        [this, build, service](absl::StatusOr<FoundDestination> found) {
                          OnDestinationFound(build, service, std::move(found));
                        });
  }
}

void RouteWatcher::OnDestinationFound(const std::shared_ptr<Build>& build,
                                      const ManagedService& service,
                                      absl::StatusOr<FoundDestination> found) {
  if (build->generation != generation_) return;
  if (!found.ok()) {
    MAILRING_LOG(kWarning, "route for ", service.cr_namespace, "/", service.cr_name,
                 service.tenant.empty() ? "" : " tenant ", service.tenant,
                 " not served: ", found.status().message());
  } else {
    if (listener_.destination_resolved) {
      listener_.destination_resolved(service, found->destination.protocol);
    }
    absl::StatusOr<std::shared_ptr<core::Route>> route =
        RouteFor(service, std::move(found->destination));
    if (route.ok()) {
      build->routes.push_back(*std::move(route));
    } else {
      MAILRING_LOG(kWarning, "route for ", service.cr_namespace, "/", service.cr_name,
                   " not served: ", route.status().message());
    }
  }
  if (--build->pending == 0) Publish(*build);
}

absl::StatusOr<std::shared_ptr<core::Route>> RouteWatcher::RouteFor(
    const ManagedService& service, proto::Destination destination) const {
  absl::StatusOr<core::SocketAddress> listen =
      core::SocketAddress::ParseNumeric(StrCat(options_->listen_address, ":", service.target_port));
  if (!listen.ok()) {
    return absl::InvalidArgumentError(StrCat("--listen-address: ", listen.status().message()));
  }
  auto route = std::make_shared<core::Route>();
  route->tenant = service.tenant;
  route->destination_service_instance =
      service.instance.empty() ? options_->default_instance : service.instance;
  route->listen = *listen;
  if (absl::Status built =
          CompleteRoute(std::move(destination), options_->route_options, route.get());
      !built.ok()) {
    return built;
  }
  route->log_label = StrCat(route->log_label, " cr=", service.cr_namespace, "/", service.cr_name);
  return route;
}

void RouteWatcher::Publish(Build& build) {
  building_ = false;
  std::sort(build.routes.begin(), build.routes.end(),
            [](const auto& a, const auto& b) { return a->listen.port() < b->listen.port(); });
  core::RouteTable table;
  for (auto& route : build.routes) {
    route->index = table.size();
    table.push_back(std::move(route));
  }
  route_count_.store(table.size(), std::memory_order_relaxed);
  publish_(std::make_shared<const core::RouteTable>(std::move(table)));
  ready_.store(true, std::memory_order_release);
}

}  // namespace mailring::control
