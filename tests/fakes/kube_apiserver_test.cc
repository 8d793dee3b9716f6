// FakeKubeApiServer over real loopback sockets: a raw HTTP/1.1 client for the API semantics
// mailring relies on (resourceVersion conflicts, finalizers, /status, watch replay, bookmarks,
// 410), and the real kubectl when it is installed.
#include "tests/fakes/kube_apiserver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "simdjson.h"

namespace mailring::fakes {
namespace {

constexpr char kDestinations[] =
    "/apis/destination.connectivity.api.sap/v1/namespaces/team-a/destinations";
constexpr char kLeases[] = "/apis/coordination.k8s.io/v1/namespaces/team-a/leases";

// The value at a JSON pointer as text (strings unquoted), "" when absent.
std::string At(const std::string& json, const char* pointer) {
  simdjson::dom::parser parser;
  simdjson::dom::element root, value;
  if (parser.parse(json).get(root) != simdjson::SUCCESS) return "";
  if (root.at_pointer(pointer).get(value) != simdjson::SUCCESS) return "";
  std::string_view s;
  if (value.get_string().get(s) == simdjson::SUCCESS) return std::string(s);
  return simdjson::minify(value);
}

int Connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  timeval timeout{0, 100 * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  return fd;
}

struct HttpResult {
  int status = 0;
  std::string head;
  std::string body;
};

// One request on its own connection (Connection: close), read to EOF within 5 seconds.
HttpResult Http(uint16_t port, const std::string& method, const std::string& target,
                const std::string& body = "", const std::string& content_type = "application/json",
                const std::string& extra_headers = "") {
  HttpResult result;
  int fd = Connect(port);
  if (fd < 0) return result;
  std::string request =
      absl::StrCat(method, " ", target, " HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                   "Content-Type: ", content_type, "\r\nContent-Length: ", body.size(),
                   "\r\nConnection: close\r\n", extra_headers, "\r\n", body);
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string in;
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (absl::Now() < deadline) {
    char buf[8192];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n == 0) break;
    if (n > 0) in.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  size_t head_end = in.find("\r\n\r\n");
  if (head_end == std::string::npos) return result;
  result.head = in.substr(0, head_end);
  result.body = in.substr(head_end + 4);
  absl::SimpleAtoi(result.head.substr(9, 3), &result.status);
  return result;
}

// A watch stream: the chunked body decoded into JSON lines as they arrive.
class WatchStream {
 public:
  WatchStream(uint16_t port, const std::string& target, const std::string& extra_headers = "")
      : fd_(Connect(port)) {
    std::string request =
        absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n",
                     extra_headers, "\r\n");
    send(fd_, request.data(), request.size(), MSG_NOSIGNAL);
  }
  ~WatchStream() {
    if (fd_ >= 0) close(fd_);
  }

  // The next event line, or nullopt after `timeout` or at the end of the stream.
  std::optional<std::string> Next(absl::Duration timeout = absl::Seconds(5)) {
    absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      size_t newline = lines_.find('\n');
      if (newline != std::string::npos) {
        std::string line = lines_.substr(0, newline);
        lines_.erase(0, newline + 1);
        return line;
      }
      if (ended_clean_ || ended_abrupt_ || absl::Now() >= deadline) return std::nullopt;
      char buf[8192];
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        ended_abrupt_ = true;  // EOF without the final chunk
      } else if (n > 0) {
        raw_.append(buf, static_cast<size_t>(n));
        Decode();
      }
    }
  }
  // The next line that is not a BOOKMARK.
  std::optional<std::string> NextEvent(absl::Duration timeout = absl::Seconds(5)) {
    absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      std::optional<std::string> line = Next(deadline - absl::Now());
      if (!line || At(*line, "/type") != "BOOKMARK") return line;
    }
    return std::nullopt;
  }
  int status() const { return status_; }
  bool ended_clean() const { return ended_clean_; }
  bool ended_abrupt() const { return ended_abrupt_; }

 private:
  void Decode() {
    if (status_ == 0) {
      size_t head_end = raw_.find("\r\n\r\n");
      if (head_end == std::string::npos) return;
      absl::SimpleAtoi(raw_.substr(9, 3), &status_);
      raw_.erase(0, head_end + 4);
    }
    for (;;) {
      size_t line_end = raw_.find("\r\n");
      if (line_end == std::string::npos) return;
      size_t size = 0;
      if (!absl::SimpleHexAtoi(raw_.substr(0, line_end), &size)) {
        ended_abrupt_ = true;
        return;
      }
      if (raw_.size() < line_end + 2 + size + 2) return;
      if (size == 0) {
        ended_clean_ = true;
        return;
      }
      lines_ += raw_.substr(line_end + 2, size);
      raw_.erase(0, line_end + 2 + size + 2);
    }
  }

  int fd_;
  int status_ = 0;
  std::string raw_;
  std::string lines_;
  bool ended_clean_ = false;
  bool ended_abrupt_ = false;
};

constexpr char kCrd[] = R"({
  "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "destinations.destination.connectivity.api.sap"},
  "spec": {"group": "destination.connectivity.api.sap", "scope": "Namespaced",
           "names": {"kind": "Destination", "listKind": "DestinationList",
                     "plural": "destinations", "singular": "destination", "shortNames": ["dst"]},
           "versions": [{"name": "v1", "served": true, "storage": true,
                         "subresources": {"status": {}},
                         "schema": {"openAPIV3Schema": {"type": "object"}}}]}})";

std::string Destination(const std::string& name, const std::string& ref,
                        const std::string& extra_metadata = "") {
  return absl::StrCat(
      R"({"apiVersion":"destination.connectivity.api.sap/v1","kind":"Destination",)",
      R"("metadata":{"name":")", name, "\"", extra_metadata,
      R"(},"spec":{"destinationRef":{"name":")", ref, R"("}},"status":{"ignored":true}})");
}

class FakeKubeApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FakeKubeApiServer::Options options;
    options.bookmark_interval = absl::Milliseconds(200);
    server_ = std::make_unique<FakeKubeApiServer>(options);
    ASSERT_TRUE(server_->Start().ok());
    port_ = server_->port();
    ASSERT_EQ(Post("/api/v1/namespaces", R"({"metadata":{"name":"team-a"}})").status, 201);
  }
  void InstallCrd() {
    HttpResult crd = Post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", kCrd);
    ASSERT_EQ(crd.status, 201) << crd.body;
  }
  HttpResult Post(const std::string& path, const std::string& body) {
    return Http(port_, "POST", path, body);
  }
  HttpResult Get(const std::string& path) { return Http(port_, "GET", path); }

  std::unique_ptr<FakeKubeApiServer> server_;
  uint16_t port_ = 0;
};

TEST_F(FakeKubeApiServerTest, DiscoveryIsAggregatedOnlyWhenAsked) {
  InstallCrd();
  HttpResult aggregated =
      Http(port_, "GET", "/apis", "", "application/json",
           "Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
           "application/json\r\n");
  EXPECT_EQ(aggregated.status, 200);
  EXPECT_TRUE(absl::StrContains(
      aggregated.head, "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"));
  EXPECT_TRUE(absl::StrContains(aggregated.body, R"("shortNames":["dst"])"));
  HttpResult legacy = Get("/apis");
  EXPECT_TRUE(absl::StrContains(legacy.body, R"("kind":"APIGroupList")"));
  HttpResult resources = Get("/apis/destination.connectivity.api.sap/v1");
  EXPECT_TRUE(absl::StrContains(resources.body, R"("name":"destinations/status")"));
  HttpResult openapi = Get("/openapi/v3");
  EXPECT_TRUE(absl::StrContains(openapi.body, "apis/destination.connectivity.api.sap/v1?hash="));
  HttpResult doc = Get("/openapi/v3/apis/destination.connectivity.api.sap/v1");
  EXPECT_TRUE(absl::StrContains(doc.body, R"("name":"fieldValidation","in":"query")"));
  EXPECT_EQ(At(Get("/version").body, "/major"), "1");
}

TEST_F(FakeKubeApiServerTest, CreateGetListAndErrorsAreKubernetesStatuses) {
  InstallCrd();
  HttpResult created = Post(kDestinations, Destination("a", "ref-a", R"(,"labels":{"tier":"x"})"));
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_FALSE(At(created.body, "/metadata/uid").empty());
  EXPECT_FALSE(At(created.body, "/metadata/creationTimestamp").empty());
  EXPECT_EQ(At(created.body, "/metadata/generation"), "1");
  EXPECT_EQ(At(created.body, "/status"), "");  // status is a subresource: dropped on create
  ASSERT_EQ(Post(kDestinations, Destination("b", "ref-b")).status, 201);

  HttpResult again = Post(kDestinations, Destination("a", "ref-a"));
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(At(again.body, "/reason"), "AlreadyExists");
  HttpResult missing = Get(absl::StrCat(kDestinations, "/nope"));
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(At(missing.body, "/kind"), "Status");
  EXPECT_EQ(At(missing.body, "/reason"), "NotFound");
  HttpResult no_namespace =
      Post("/apis/destination.connectivity.api.sap/v1/namespaces/absent/destinations",
           Destination("c", "ref-c"));
  EXPECT_EQ(no_namespace.status, 404);
  HttpResult invalid = Post(kDestinations, Destination("Not_Valid", "x"));
  EXPECT_EQ(invalid.status, 422);
  EXPECT_EQ(At(invalid.body, "/reason"), "Invalid");

  EXPECT_EQ(At(Get(absl::StrCat(kDestinations, "/a")).body, "/spec/destinationRef/name"), "ref-a");
  HttpResult labelled = Get(absl::StrCat(kDestinations, "?labelSelector=tier%3Dx"));
  EXPECT_EQ(At(labelled.body, "/items/0/metadata/name"), "a");
  EXPECT_EQ(At(labelled.body, "/items/1"), "");
  HttpResult by_name =
      Get("/apis/destination.connectivity.api.sap/v1/destinations?fieldSelector=metadata.name%3Db");
  EXPECT_EQ(At(by_name.body, "/kind"), "DestinationList");
  EXPECT_EQ(At(by_name.body, "/items/0/metadata/name"), "b");

  HttpResult page = Get(absl::StrCat(kDestinations, "?limit=1"));
  EXPECT_EQ(At(page.body, "/items/0/metadata/name"), "a");
  std::string next = At(page.body, "/metadata/continue");
  ASSERT_FALSE(next.empty());
  HttpResult rest = Get(absl::StrCat(kDestinations, "?limit=1&continue=", next));
  EXPECT_EQ(At(rest.body, "/items/0/metadata/name"), "b");
  EXPECT_EQ(At(rest.body, "/metadata/continue"), "");
  EXPECT_EQ(server_->Objects("destinations").size(), 2u);
}

TEST_F(FakeKubeApiServerTest, LeasePutWithStaleResourceVersionIsConflict) {
  HttpResult lease = Post(kLeases, R"({"metadata":{"name":"leader"},
      "spec":{"holderIdentity":"pod-1","leaseDurationSeconds":15}})");
  ASSERT_EQ(lease.status, 201) << lease.body;
  std::string rv = At(lease.body, "/metadata/resourceVersion");
  auto put = [&](const std::string& holder, const std::string& with_rv) {
    return Http(port_, "PUT", absl::StrCat(kLeases, "/leader"),
                absl::StrCat(R"({"apiVersion":"coordination.k8s.io/v1","kind":"Lease",)",
                             R"("metadata":{"name":"leader","resourceVersion":")", with_rv,
                             R"("},"spec":{"holderIdentity":")", holder, R"("}})"));
  };
  HttpResult first = put("pod-2", rv);
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_NE(At(first.body, "/metadata/resourceVersion"), rv);
  HttpResult stale = put("pod-3", rv);
  EXPECT_EQ(stale.status, 409);
  EXPECT_EQ(At(stale.body, "/reason"), "Conflict");
  EXPECT_EQ(At(Get(absl::StrCat(kLeases, "/leader")).body, "/spec/holderIdentity"), "pod-2");
}

TEST_F(FakeKubeApiServerTest, StatusSubresourceAndGeneration) {
  InstallCrd();
  ASSERT_EQ(Post(kDestinations, Destination("a", "ref-a")).status, 201);
  std::string path = absl::StrCat(kDestinations, "/a");
  HttpResult status = Http(port_, "PATCH", path + "/status",
                           R"({"status":{"conditions":[{"type":"Available","status":"True"}]},
                               "spec":{"destinationRef":{"name":"ignored"}}})",
                           "application/merge-patch+json");
  ASSERT_EQ(status.status, 200) << status.body;
  EXPECT_EQ(At(status.body, "/status/conditions/0/status"), "True");
  EXPECT_EQ(At(status.body, "/spec/destinationRef/name"), "ref-a");
  EXPECT_EQ(At(status.body, "/metadata/generation"), "1");

  HttpResult spec =
      Http(port_, "PATCH", path, R"({"spec":{"destinationRef":{"name":"ref-b"}},"status":null})",
           "application/merge-patch+json");
  ASSERT_EQ(spec.status, 200) << spec.body;
  EXPECT_EQ(At(spec.body, "/metadata/generation"), "2");
  EXPECT_EQ(At(spec.body, "/status/conditions/0/type"), "Available");  // kept

  HttpResult labels = Http(port_, "PATCH", path, R"({"metadata":{"labels":{"a":"b"}}})",
                           "application/merge-patch+json");
  EXPECT_EQ(At(labels.body, "/metadata/generation"), "2");  // metadata is not spec
  std::string rv = At(labels.body, "/metadata/resourceVersion");
  HttpResult noop = Http(port_, "PATCH", path, R"({"metadata":{"labels":{"a":"b"}}})",
                         "application/merge-patch+json");
  EXPECT_EQ(At(noop.body, "/metadata/resourceVersion"), rv);  // a no-op write changes nothing

  HttpResult strategic = Http(port_, "PATCH", path, "{}", "application/strategic-merge-patch+json");
  EXPECT_EQ(strategic.status, 415);  // as on a real server, for custom resources
  HttpResult apply_without_manager =
      Http(port_, "PATCH", path, Destination("a", "x"), "application/apply-patch+yaml");
  EXPECT_EQ(apply_without_manager.status, 400);
  HttpResult apply = Http(port_, "PATCH", absl::StrCat(kDestinations, "/new?fieldManager=t"),
                          Destination("new", "x"), "application/apply-patch+yaml");
  EXPECT_EQ(apply.status, 201) << apply.body;
}

TEST_F(FakeKubeApiServerTest, DeleteWithFinalizersWaitsForTheirRemoval) {
  InstallCrd();
  ASSERT_EQ(
      Post(kDestinations, Destination("a", "ref", R"(,"finalizers":["mailring.io/services"])"))
          .status,
      201);
  std::string path = absl::StrCat(kDestinations, "/a");
  HttpResult deleting = Http(port_, "DELETE", path, R"({"propagationPolicy":"Background"})");
  ASSERT_EQ(deleting.status, 200) << deleting.body;
  EXPECT_FALSE(At(deleting.body, "/metadata/deletionTimestamp").empty());
  EXPECT_EQ(Get(path).status, 200);  // still there, until the finalizer goes
  HttpResult finalized = Http(port_, "PATCH", path,
                              R"([{"op":"test","path":"/metadata/finalizers/0",)"
                              R"("value":"mailring.io/services"},)"
                              R"({"op":"remove","path":"/metadata/finalizers"}])",
                              "application/json-patch+json");
  EXPECT_EQ(finalized.status, 200) << finalized.body;
  EXPECT_EQ(Get(path).status, 404);

  ASSERT_EQ(Post(kDestinations, Destination("b", "ref")).status, 201);
  EXPECT_EQ(Http(port_, "DELETE", absl::StrCat(kDestinations, "/b")).status, 200);
  EXPECT_EQ(Get(absl::StrCat(kDestinations, "/b")).status, 404);  // no finalizers: gone at once
}

TEST(FakeKubeApiServerPatchTest, MergeAndJsonPatchesKeepOrderAndNameTheFailedOperation) {
  FakeKubeApiServer server;
  const std::string path = "/api/v1/namespaces/default/configmaps/c";
  FakeKubeApiServer::Response created =
      server.Request("POST", "/api/v1/namespaces/default/configmaps",
                     R"({"metadata":{"name":"c"},"data":{"b":"1","a":"2"}})");
  ASSERT_EQ(created.status, 201) << created.body;

  FakeKubeApiServer::Response merged = server.Request(
      "PATCH", path, R"({"data":{"b":null,"z":"3"}})", "application/merge-patch+json");
  ASSERT_EQ(merged.status, 200) << merged.body;
  EXPECT_TRUE(absl::StrContains(merged.body, R"("data":{"a":"2","z":"3"})")) << merged.body;

  FakeKubeApiServer::Response failed =
      server.Request("PATCH", path,
                     R"([{"op":"add","path":"/data/y","value":"4"},)"
                     R"({"op":"replace","path":"/data/missing","value":"x"}])",
                     "application/json-patch+json");
  EXPECT_EQ(failed.status, 422) << failed.body;
  EXPECT_TRUE(absl::StrContains(
      failed.body,
      R"(the JSON patch operation \"replace\" on \"/data/missing\" cannot be applied)"))
      << failed.body;
  std::optional<std::string> stored = server.Object("configmaps", "default", "c");
  ASSERT_TRUE(stored.has_value());
  EXPECT_FALSE(absl::StrContains(*stored, R"("y")")) << *stored;  // nothing of it applied

  FakeKubeApiServer::Response moved =
      server.Request("PATCH", path,
                     R"([{"op":"move","from":"/data/a","path":"/data/a~1b"},)"
                     R"({"op":"test","path":"/data/a~1b","value":"2"}])",
                     "application/json-patch+json");
  ASSERT_EQ(moved.status, 200) << moved.body;
  EXPECT_TRUE(absl::StrContains(moved.body, R"("data":{"z":"3","a/b":"2"})")) << moved.body;
}

TEST_F(FakeKubeApiServerTest, WatchReplaysStreamsAndBookmarks) {
  InstallCrd();
  HttpResult a = Post(kDestinations, Destination("a", "ref-a"));
  std::string rv = At(a.body, "/metadata/resourceVersion");
  ASSERT_EQ(Post(kDestinations, Destination("b", "ref-b")).status, 201);

  WatchStream watch(port_, absl::StrCat(kDestinations,
                                        "?watch=true&allowWatchBookmarks=true&"
                                        "resourceVersion=",
                                        rv));
  std::optional<std::string> replayed = watch.NextEvent();
  ASSERT_TRUE(replayed.has_value());
  EXPECT_EQ(At(*replayed, "/type"), "ADDED");
  EXPECT_EQ(At(*replayed, "/object/metadata/name"), "b");  // only what came after rv
  EXPECT_EQ(watch.status(), 200);

  Http(port_, "PATCH", absl::StrCat(kDestinations, "/a"),
       R"({"spec":{"destinationRef":{"name":"changed"}}})", "application/merge-patch+json");
  std::optional<std::string> modified = watch.NextEvent();
  ASSERT_TRUE(modified.has_value());
  EXPECT_EQ(At(*modified, "/type"), "MODIFIED");
  EXPECT_EQ(At(*modified, "/object/spec/destinationRef/name"), "changed");
  Http(port_, "DELETE", absl::StrCat(kDestinations, "/b"));
  std::optional<std::string> deleted = watch.NextEvent();
  ASSERT_TRUE(deleted.has_value());
  EXPECT_EQ(At(*deleted, "/type"), "DELETED");

  bool bookmark = false;
  for (int i = 0; i < 20 && !bookmark; ++i) {
    std::optional<std::string> line = watch.Next(absl::Seconds(1));
    bookmark =
        line && At(*line, "/type") == "BOOKMARK" &&
        At(*line, "/object/metadata/resourceVersion") == std::to_string(server_->ResourceVersion());
  }
  EXPECT_TRUE(bookmark);
  EXPECT_EQ(server_->OpenWatches(), 1);

  // From "0": the current state as ADDED, then an orderly end after timeoutSeconds.
  WatchStream fresh(port_, absl::StrCat(kDestinations, "?watch=1&timeoutSeconds=1"));
  std::optional<std::string> current = fresh.NextEvent();
  ASSERT_TRUE(current.has_value());
  EXPECT_EQ(At(*current, "/object/metadata/name"), "a");
  EXPECT_FALSE(fresh.Next(absl::Seconds(3)).has_value());
  EXPECT_TRUE(fresh.ended_clean());
}

TEST_F(FakeKubeApiServerTest, DroppedWatchEndsAbruptlyAndCompactedHistoryIsExpired) {
  InstallCrd();
  HttpResult a = Post(kDestinations, Destination("a", "ref-a"));
  std::string rv = At(a.body, "/metadata/resourceVersion");
  WatchStream watch(port_, absl::StrCat(kDestinations, "?watch=true&resourceVersion=", rv));
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (server_->OpenWatches() != 1 && absl::Now() < deadline)
    absl::SleepFor(absl::Milliseconds(10));
  server_->DropWatches();
  EXPECT_FALSE(watch.Next(absl::Seconds(5)).has_value());
  EXPECT_TRUE(watch.ended_abrupt());

  ASSERT_EQ(Post(kDestinations, Destination("b", "ref-b")).status, 201);
  server_->CompactHistory();
  WatchStream expired(port_, absl::StrCat(kDestinations, "?watch=true&resourceVersion=", rv));
  std::optional<std::string> error = expired.Next();
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(At(*error, "/type"), "ERROR");
  EXPECT_EQ(At(*error, "/object/code"), "410");
  EXPECT_EQ(At(*error, "/object/reason"), "Expired");
  EXPECT_FALSE(expired.Next().has_value());
  EXPECT_TRUE(expired.ended_clean());
  // Watching from the current resourceVersion is fine after a compaction.
  WatchStream current(
      port_,
      absl::StrCat(kDestinations, "?watch=true&resourceVersion=", server_->ResourceVersion()));
  Http(port_, "DELETE", absl::StrCat(kDestinations, "/a"));
  std::optional<std::string> deleted = current.NextEvent();
  ASSERT_TRUE(deleted.has_value());
  EXPECT_EQ(At(*deleted, "/type"), "DELETED");
}

TEST_F(FakeKubeApiServerTest, InjectedFailuresCountersAndToken) {
  server_->FailNextRequests("leases", 2, 500, "create");
  std::string body = R"({"metadata":{"name":"l"}})";
  EXPECT_EQ(Post(kLeases, body).status, 500);
  EXPECT_EQ(Post(kLeases, body).status, 500);
  EXPECT_EQ(Post(kLeases, body).status, 201);
  EXPECT_EQ(server_->RequestCount("create", "leases"), 3);
  EXPECT_EQ(server_->Objects("leases", "team-a").size(), 1u);
  FakeKubeApiServer::Response in_process = server_->Request("GET", absl::StrCat(kLeases, "/l"));
  EXPECT_EQ(in_process.status, 200);

  FakeKubeApiServer::Options options;
  options.token = "sekret";
  FakeKubeApiServer guarded(options);
  ASSERT_TRUE(guarded.Start().ok());
  EXPECT_EQ(Http(guarded.port(), "GET", "/api/v1/namespaces").status, 401);
  EXPECT_EQ(Http(guarded.port(), "GET", "/api/v1/namespaces", "", "application/json",
                 "Authorization: Bearer sekret\r\n")
                .status,
            200);
}

// ---- the real kubectl ---------------------------------------------------------------------

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

CommandResult RunCommand(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) result.output.append(buf, n);
  int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

class KubectlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (RunCommand("command -v kubectl").exit_code != 0) GTEST_SKIP() << "kubectl is not on PATH";
    dir_ = std::filesystem::temp_directory_path() / absl::StrCat("kube_apiserver_test_", getpid());
    std::filesystem::create_directories(dir_);
    // No token: kubectl (clientcmd) sends kubeconfig credentials only over TLS, and the fake
    // speaks plain HTTP.
    server_ = std::make_unique<FakeKubeApiServer>();
    ASSERT_TRUE(server_->Start().ok());
    ASSERT_TRUE(server_->WriteKubeconfig((dir_ / "kubeconfig").string()).ok());
  }
  void TearDown() override {
    if (server_) server_->Stop();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  CommandResult Kubectl(const std::string& args) {
    return RunCommand(absl::StrCat("timeout 20 kubectl --kubeconfig ",
                                   (dir_ / "kubeconfig").string(), " --cache-dir ",
                                   (dir_ / "cache").string(), " --request-timeout=10s ", args));
  }
  std::string Write(const std::string& name, const std::string& text) {
    std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }

  std::filesystem::path dir_;
  std::unique_ptr<FakeKubeApiServer> server_;
};

std::string DestinationYaml(const std::string& ref) {
  return absl::StrCat(
      "apiVersion: destination.connectivity.api.sap/v1\nkind: Destination\nmetadata:\n"
      "  name: mail\n  namespace: team-a\nspec:\n  destinationRef:\n    name: ",
      ref, "\n");
}

TEST_F(KubectlTest, AppliesCrdDestinationAndServices) {
  std::string crd_path = std::string(MAILRING_SOURCE_DIR) + "/k8s/destination-crd.yaml";
  CommandResult r = Kubectl(absl::StrCat("apply -f ", crd_path));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "created")) << r.output;
  r = Kubectl("create namespace team-a");
  ASSERT_EQ(r.exit_code, 0) << r.output;

  std::string dst = Write("dst.yaml", DestinationYaml("my-mail"));
  r = Kubectl(absl::StrCat("apply -f ", dst));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "destination.connectivity.api.sap/mail created"))
      << r.output;
  r = Kubectl("get dst -A");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "team-a")) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "my-mail")) << r.output;  // printer column
  r = Kubectl("get destination mail -n team-a -o json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(At(r.output, "/spec/destinationRef/name"), "my-mail") << r.output;
  std::string rv = At(r.output, "/metadata/resourceVersion");

  // Re-applied with a change: kubectl sends a merge patch, the object is MODIFIED.
  WatchStream watch(server_->port(),
                    "/apis/destination.connectivity.api.sap/v1/namespaces/team-a/destinations?"
                    "watch=true&resourceVersion=" +
                        rv);
  Write("dst.yaml", DestinationYaml("other-mail"));
  r = Kubectl(absl::StrCat("apply -f ", dst));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "configured")) << r.output;
  EXPECT_EQ(server_->RequestCount("patch", "destinations"), 1);
  std::optional<std::string> modified = watch.NextEvent();
  ASSERT_TRUE(modified.has_value());
  EXPECT_EQ(At(*modified, "/type"), "MODIFIED");
  EXPECT_EQ(At(*modified, "/object/spec/destinationRef/name"), "other-mail");
  r = Kubectl("get destination mail -n team-a -o jsonpath={.spec.destinationRef.name}");
  EXPECT_EQ(r.output, "other-mail");

  r = Kubectl(absl::StrCat("delete -f ", dst));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(server_->Objects("destinations").empty());
  r = Kubectl("get svc -n team-a");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "No resources found in team-a namespace.")) << r.output;

  std::string svc = Write("svc.yaml",
                          "apiVersion: v1\nkind: Service\nmetadata:\n  name: mail\n"
                          "  namespace: team-a\nspec:\n  selector: {app: mailring}\n"
                          "  ports:\n  - {name: imap, port: 143, targetPort: 30143}\n");
  r = Kubectl(absl::StrCat("apply -f ", svc));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = Kubectl("get svc -n team-a");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "143/TCP")) << r.output;
  Write("svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: mail\n  namespace: team-a\n"
        "spec:\n  selector: {app: mailring}\n  ports:\n  - {name: imap, port: 143, targetPort: "
        "31143}\n"
        "  - {name: imaps, port: 993, targetPort: 30993}\n");
  r = Kubectl(absl::StrCat("apply -f ", svc));  // a strategic merge patch
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = Kubectl("get svc mail -n team-a -o json");
  EXPECT_EQ(At(r.output, "/spec/ports/0/targetPort"), "31143") << r.output;
  EXPECT_EQ(At(r.output, "/spec/ports/1/port"), "993") << r.output;
  r = Kubectl(absl::StrCat("apply --server-side -f ", dst));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(server_->Objects("destinations", "team-a").size(), 1u);
}

}  // namespace
}  // namespace mailring::fakes
