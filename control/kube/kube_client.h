// KubeClient: mailring's Kubernetes REST client, on the control thread's HttpClient (libcurl
// multi, never blocking). JSON is parsed with simdjson by the callers.
//
//  - KubeConfig (control/kube/kubeconfig.h): where the API server is and how to authenticate; the
//    bearer token is re-read from its file whenever that changes (service-account rotation).
//  - Requests: GET, POST (create), PUT (replace, 409 on a stale resourceVersion), PATCH
//    (application/merge-patch+json), DELETE; a 2xx response as status + body, anything else
//    as the absl::Status that KubeApiStatus (control/kube/kube_status.h) maps it to.
//  - Informer: list + watch of one collection with resourceVersion and allowWatchBookmarks;
//    on 410 Gone (HTTP 410 or an ERROR event with code 410) it relists and reports the
//    difference (objects that vanished while the watch was down are reported deleted), so no
//    event is lost across a dropped watch; a broken or ended stream reconnects with jittered
//    exponential backoff from the last resourceVersion.
//
// Contract: control thread only. Tokens never reach a log line.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "control/http_client.h"
#include "control/kube/kubeconfig.h"
#include "core/clock.h"
#include "proto/secret.h"

namespace mailring::control {

// What a test may replace; the defaults are production's.
struct KubeClientOptions {
  // A monotonic clock in milliseconds: when the token file is due for another look.
  std::function<int64_t()> now_ms = core::MonotonicMs;
};

struct KubeResponse {
  long status = 0;
  std::string body;
};

class KubeClient {
 public:
  using Callback = std::function<void(absl::StatusOr<KubeResponse>)>;

  KubeClient(HttpClient* http, KubeConfig config, KubeClientOptions options = {});
  ~KubeClient();

  // `path` starts with "/api" or "/apis", may carry a query string.
  void Get(std::string path, Callback done);
  void Create(std::string path, std::string json, Callback done);
  void Replace(std::string path, std::string json, Callback done);
  void MergePatch(std::string path, std::string json, Callback done);
  void Delete(std::string path, Callback done);

  // One watched collection, e.g. "/apis/destination.connectivity.api.sap/v1/destinations" or
  // "/api/v1/namespaces/mailring/services?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dmailring".
  class Informer {
   public:
    struct Handler {
      // After the first complete list, and after every relist.
      std::function<void()> synced;
      // Object added or changed (the whole object's JSON).
      std::function<void(std::string_view object_json)> upsert;
      // Object deleted (its last known JSON).
      std::function<void(std::string_view object_json)> remove;
      // The watch broke or the list failed; it is retried. For logs and readiness.
      std::function<void(const absl::Status&)> error;
    };
    virtual ~Informer() = default;
    virtual bool synced() const = 0;
    virtual std::string resource_version() const = 0;
  };
  std::unique_ptr<Informer> Watch(std::string collection_path, Informer::Handler handler);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mailring::control
