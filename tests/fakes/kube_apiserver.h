// FakeKubeApiServer: a small but faithful Kubernetes API server for tests, on loopback, plain
// HTTP/1.1. The real `kubectl` drives it (a kubeconfig with `server: http://127.0.0.1:PORT`), and
// so does mailring's KubeClient. Note: kubectl (clientcmd) sends a kubeconfig's credentials only
// over TLS, so a fake with Options::token set is for clients that send the token over plain
// HTTP (mailring's KubeClient, curl), not for kubectl.
//
// What it serves:
//   GET /version; discovery on /api, /apis (aggregated v2 when the Accept header asks for
//   `as=APIGroupDiscoveryList`, else APIVersions / APIGroupList), /apis/<group>,
//   /api/v1 and /apis/<group>/<version> (APIResourceList); /openapi/v3 (index with hashes) and
//   one permissive document per group-version whose PATCH operations carry `fieldValidation`
//   (kubectl's server-side validation check); /openapi/v2 answers 404 (kubectl copes).
//   Built-in resources: core v1 namespaces, services (with a ClusterIP allocator and defaults),
//   configmaps, secrets, events; coordination.k8s.io/v1 leases; apiextensions.k8s.io/v1
//   customresourcedefinitions. Creating a CRD registers its served versions at once (group,
//   plural, singular, kind, short names, categories, scope, status subresource, printer
//   columns); deleting it removes the resource and its objects.
//   Verbs: list (limit/continue, labelSelector =,==,!=,in,notin,exists; fieldSelector
//   metadata.name / metadata.namespace with = and !=), get, create (201; uid,
//   creationTimestamp, resourceVersion from one global counter, generation; generateName),
//   update (PUT; 409 Conflict on a stale metadata.resourceVersion), patch (merge-patch+json;
//   strategic-merge-patch+json with merge keys for the list fields of our types; json-patch+json;
//   apply-patch+yaml whose body is JSON, as kubectl sends it — creates when absent), delete
//   (finalizers: deletionTimestamp set, the object stays until an update empties them),
//   deletecollection, the /status subresource (it changes only .status; the main resource
//   ignores .status when the type has the subresource), generation bumped on changes outside
//   metadata and status, no-op writes leave the resourceVersion alone. Tables
//   (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`) for `kubectl get`, with the CRD's
//   additionalPrinterColumns and the Service columns kubectl users expect.
//   Watch (`?watch=true`): chunked JSON lines (ADDED/MODIFIED/DELETED/BOOKMARK/ERROR), replay
//   from a bounded history after resourceVersion N, synthetic ADDED for the current state when N
//   is absent or "0", an ERROR event with code 410 (reason Expired) when N is older than the
//   history, BOOKMARKs every bookmark_interval when allowWatchBookmarks=true, an orderly end
//   after timeoutSeconds.
//   Errors are metav1.Status objects (NotFound, AlreadyExists, Conflict, Invalid, BadRequest,
//   Expired, Unauthorized, MethodNotAllowed, UnsupportedMediaType, ...).
//
// Not modelled: authorization (any valid token may do anything), admission, managedFields,
// field ownership of server-side apply (an apply is a merge of the applied configuration onto
// the live object; it never removes fields), dry-run (answered as if run, nothing stored),
// version conversion (all versions of a CRD share one store), YAML request bodies, CRD schema
// validation and defaulting (spec.service.port gets no default 143 here).
//
// HTTP: tests/fakes/http_server (one thread per connection, at most Options::max_connections,
// keep-alive). Every public method is thread-safe. Stop() closes every socket and joins.
//
// Its parts: this file routes requests, keeps the store (objects, resourceVersions, the verbs'
// rules) and the test controls; tests/fakes/kube/ has the JSON tree (json), the patches
// (patch: merge and JSON patch from nlohmann-json, strategic merge), metav1.Status (status),
// the resource type registry (resource_type), discovery and OpenAPI (discovery), and the watch
// side (watch: history, fan-out, bookmarks, 410).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tests/fakes/http_server.h"

namespace mailring::fakes {

class FakeKubeApiServer {
 public:
  struct Options {
    // When set, every request must carry `Authorization: Bearer <token>` (401 otherwise).
    std::string token;
    // Namespaced objects can only be created in an existing Namespace (as on a real server).
    // "default", "kube-system" and "kube-public" exist from the start.
    bool require_namespaces = true;
    // Watch events kept for replay; a watch from an older resourceVersion gets 410 Expired.
    int history_limit = 10000;
    // BOOKMARK period on watches that allow bookmarks.
    absl::Duration bookmark_interval = absl::Seconds(5);
    // A watch without timeoutSeconds ends (cleanly) after this long.
    absl::Duration max_watch_duration = absl::Minutes(30);
    // Connections beyond this are closed at once.
    int max_connections = 128;
    // When non-empty, every change writes all objects there (JSON), and Start() loads it.
    std::string state_file;
  };

  // An in-process answer (Request()).
  struct Response {
    int status = 200;
    std::string content_type;
    std::string body;
  };

  FakeKubeApiServer();
  explicit FakeKubeApiServer(Options options);
  ~FakeKubeApiServer();
  FakeKubeApiServer(const FakeKubeApiServer&) = delete;
  FakeKubeApiServer& operator=(const FakeKubeApiServer&) = delete;

  // Listens on 127.0.0.1:port (0: any free port) and serves until Stop().
  absl::Status Start(uint16_t port = 0);
  // Closes the listener, every connection and every watch; joins the threads. Idempotent.
  void Stop();

  uint16_t port() const;
  std::string Url() const;  // http://127.0.0.1:<port>
  // A kubeconfig (one cluster, one user with the token if any, one current context).
  absl::Status WriteKubeconfig(const std::string& path,
                               const std::string& default_namespace = "default") const;

  // One request through the same handler as the socket, without HTTP. `target` is a path
  // with an optional query; watches are not served here (400).
  Response Request(std::string_view method, std::string_view target, std::string_view body = "",
                   std::string_view content_type = "application/json",
                   std::string_view accept = "application/json");

  // --- Test controls -----------------------------------------------------------------------
  // Ends every open watch stream abruptly: the socket is closed mid-stream, without the final
  // chunk, as when a connection breaks.
  void DropWatches();
  // Forgets the watch history: a watch (or an Exact list) from any resourceVersion older than
  // the current one gets 410 Expired.
  void CompactHistory();
  // Every request is delayed by this much before it is handled (0 by default).
  void SetLatency(absl::Duration latency);
  void SetBookmarkInterval(absl::Duration interval);
  // The next `count` requests for `resource` (plural, e.g. "services" or "destinations"; ""
  // for any) and `verb` (get, list, watch, create, update, patch, delete, deletecollection;
  // "" for any) are answered with `http_status` and a matching Status, without effect.
  void FailNextRequests(std::string_view resource, int count, int http_status,
                        std::string_view verb = "");
  // Requests handled since Start() (or ResetCounters()), by Kubernetes verb and resource
  // plural; "" matches any. Discovery and OpenAPI requests count as verb "discovery".
  int RequestCount(std::string_view verb = "", std::string_view resource = "") const;
  void ResetCounters();
  // Watch streams open right now.
  int OpenWatches() const;
  // Snapshot of the stored objects of a resource (plural, or plural.group), JSON, sorted by
  // namespace and name; `namespace_` "" means all namespaces.
  std::vector<std::string> Objects(std::string_view resource,
                                   std::string_view namespace_ = "") const;
  // One object's JSON, if stored.
  std::optional<std::string> Object(std::string_view resource, std::string_view namespace_,
                                    std::string_view name) const;
  // The current (highest) resourceVersion.
  int64_t ResourceVersion() const;

 private:
  struct State;

  // One request from the HTTP server; a watch is streamed.
  HttpResponse Serve(const HttpRequest& request);

  const Options options_;
  std::unique_ptr<State> state_;  // the API objects, their history and the test controls
  std::unique_ptr<HttpServer> server_;
};

}  // namespace mailring::fakes
