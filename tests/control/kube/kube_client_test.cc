// KubeClient: kubeconfig loading (on files kubectl writes), in-cluster configuration errors,
// requests, and the informer's list+watch against a small fake API server on loopback that can
// split, drop, expire and fail on demand.
#include "control/kube/kube_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "core/clock.h"
#include "gtest/gtest.h"
#include "proto/absl_string_view.h"
#include "proto/str_cat.h"
#include "simdjson.h"
#include "tests/fakes/http_server.h"
#include "tests/fakes/kube_apiserver.h"

namespace mailring::control {
namespace {

using proto::AsAbsl;

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// A fake API server for one collection of ConfigMap-like objects in namespace "ns": list with
// limit/continue, watch (chunked JSON lines) from a resourceVersion, an event history that can
// be compacted (410), and faults. Any other path answers 200 {"ok":true} and is recorded, except
// "/hang", which never answers.
class FakeApiServer {
 public:
  static constexpr std::string_view kCollection = "/api/v1/namespaces/ns/configmaps";

  FakeApiServer() : server_([this](const fakes::HttpRequest& request) { return Serve(request); }) {
    EXPECT_TRUE(server_.Start().ok());
  }

  ~FakeApiServer() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    server_.Stop();
  }

  std::string Url() const { return server_.Url(); }

  // ADDED (new name) or MODIFIED.
  void Put(const std::string& name, const std::string& value) {
    std::lock_guard<std::mutex> lock(mutex_);
    Object& object = objects_[name];
    const bool added = object.uid.empty();
    if (added) object.uid = StrCat("uid-", name, "-", ++uids_);
    object.value = value;
    object.rv = ++rv_;
    log_.push_back({rv_, added ? "ADDED" : "MODIFIED", Json(name, object)});
    changed_.notify_all();
  }

  void Remove(const std::string& name) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = objects_.find(name);
    if (it == objects_.end()) return;
    it->second.rv = ++rv_;
    log_.push_back({rv_, "DELETED", Json(name, it->second)});
    objects_.erase(it);
    changed_.notify_all();
  }

  // A BOOKMARK at a resourceVersion `skip` ahead (as if other collections had changed).
  int64_t Bookmark(int skip) {
    std::lock_guard<std::mutex> lock(mutex_);
    rv_ += skip;
    log_.push_back(
        {rv_, "BOOKMARK",
         StrCat(R"({"kind":"ConfigMap","apiVersion":"v1","metadata":{"resourceVersion":")", rv_,
                R"("}})")});
    changed_.notify_all();
    return rv_;
  }

  // Watches from a resourceVersion older than the current one now get 410.
  void Compact() {
    std::lock_guard<std::mutex> lock(mutex_);
    compacted_ = rv_;
  }

  // Live watches receive an ERROR 410 event (expire) or end cleanly.
  void EndLiveWatches(bool expire) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++epoch_;
    epoch_expires_ = expire;
    changed_.notify_all();
  }

  // While held, watches send no new events: the watch is "down" for what changes meanwhile.
  void Hold(bool hold) {
    std::lock_guard<std::mutex> lock(mutex_);
    hold_ = hold;
    changed_.notify_all();
  }

  std::atomic<int> list_failures{0};           // the next N lists answer 500
  std::atomic<bool> expired_as_http{false};    // 410 as an HTTP status, not an ERROR event
  std::atomic<int> drop_next_watch_after{-1};  // that many events, half of the next, then close
  std::atomic<size_t> piece_size{0};           // send event lines in pieces of this many bytes
  std::atomic<bool> reply_forbidden{false};    // other paths answer 401

  int64_t rv() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return rv_;
  }
  int live_watches() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return live_watches_;
  }
  // Request heads (and bodies), in order of arrival.
  std::vector<std::string> requests() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }
  std::vector<std::string> targets(std::string_view containing) const {
    std::vector<std::string> out;
    for (const std::string& request : requests()) {
      const size_t begin = request.find(' ') + 1;
      std::string target = request.substr(begin, request.find(' ', begin) - begin);
      if (Contains(target, containing)) out.push_back(std::move(target));
    }
    return out;
  }

 private:
  struct Object {
    std::string uid;
    std::string value;
    int64_t rv = 0;
  };
  struct Event {
    int64_t rv;
    std::string type;
    std::string object;
  };

  static std::string Json(const std::string& name, const Object& object) {
    return StrCat(R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":")", name,
                  R"(","namespace":"ns","uid":")", object.uid, R"(","resourceVersion":")",
                  object.rv, R"("},"data":{"v":")", object.value, R"("}})");
  }

  static fakes::HttpResponse Respond(int status, std::string body) {
    fakes::HttpResponse response;
    response.status = status;
    response.headers = {{"Content-Type", "application/json"}};
    response.body = std::move(body);
    return response;
  }
  static std::string Gone() {
    return R"({"kind":"Status","apiVersion":"v1","status":"Failure",)"
           R"("message":"too old resource version","reason":"Expired","code":410})";
  }

  fakes::HttpResponse Serve(const fakes::HttpRequest& request) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      requests_.push_back(StrCat(request.head, "\r\n\r\n", request.body));
    }
    if (request.path == "/hang") {
      fakes::HttpResponse response;
      response.stream = [](fakes::HttpStream& stream) {
        stream.WaitPeerClosed(absl::Seconds(60));
        return fakes::HttpResponse::StreamEnd::kAbort;
      };
      return response;
    }
    if (request.path != kCollection) {
      return Respond(reply_forbidden ? 401 : 200, R"({"ok":true})");
    }
    if (request.Query("watch") == "true") return ServeWatch(request);
    return ServeList(request);
  }

  bool stopping() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stopping_;
  }

  fakes::HttpResponse ServeList(const fakes::HttpRequest& request) {
    if (list_failures > 0) {
      --list_failures;
      return Respond(500, R"({"kind":"Status","code":500,"message":"etcd unavailable"})");
    }
    size_t limit = 0;
    (void)absl::SimpleAtoi(request.Query("limit"), &limit);
    const std::string token = request.Query("continue");
    std::string body;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // Continue token: "<rv>/<first name of the page>=+" (the suffix needs percent-encoding).
      int64_t version = rv_;
      std::string from;
      if (!token.empty()) {
        const size_t slash = token.find('/');
        EXPECT_TRUE(absl::SimpleAtoi(token.substr(0, slash), &version)) << token;
        EXPECT_TRUE(token.ends_with("=+")) << token;
        from = token.substr(slash + 1, token.size() - slash - 3);
      }
      std::string items;
      std::string next;
      size_t count = 0;
      for (auto it = objects_.lower_bound(from); it != objects_.end(); ++it) {
        if (limit > 0 && count == limit) {
          next = StrCat(version, "/", it->first, "=+");
          break;
        }
        StrAppend(&items, count == 0 ? "" : ",", Json(it->first, it->second));
        ++count;
      }
      body = StrCat(R"({"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":")",
                    version, "\"", next.empty() ? "" : StrCat(R"(,"continue":")", next, "\""),
                    R"(},"items":[)", items, "]}");
    }
    return Respond(200, body);
  }

  fakes::HttpResponse ServeWatch(const fakes::HttpRequest& request) {
    const std::string& target = request.target;
    int64_t from = 0;
    EXPECT_TRUE(absl::SimpleAtoi(request.Query("resourceVersion"), &from)) << target;
    EXPECT_EQ(request.Query("allowWatchBookmarks"), "true");
    int seconds = 0;
    EXPECT_TRUE(absl::SimpleAtoi(request.Query("timeoutSeconds"), &seconds)) << target;
    EXPECT_GE(seconds, 240);
    EXPECT_LE(seconds, 360);
    fakes::HttpResponse response;
    size_t next = 0;
    uint64_t epoch = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (from < compacted_) {
        if (expired_as_http) return Respond(410, Gone());
        response.stream = [](fakes::HttpStream& stream) {
          stream.Write(StrCat(R"({"type":"ERROR","object":)", Gone(), "}\n"));
          return fakes::HttpResponse::StreamEnd::kComplete;
        };
        return response;
      }
      while (next < log_.size() && log_[next].rv <= from) ++next;
      epoch = epoch_;
      ++live_watches_;
    }
    response.headers = {{"Content-Type", "application/json"}};
    response.stream = [this, next, epoch](fakes::HttpStream& stream) {
      return StreamWatch(stream, next, epoch);
    };
    return response;
  }

  // Streams the events from log_[next] on until the watch ends.
  fakes::HttpResponse::StreamEnd StreamWatch(fakes::HttpStream& stream, size_t next,
                                             uint64_t epoch) {
    const int drop_after = drop_next_watch_after.exchange(-1);
    int sent = 0;
    bool clean_end = true;
    bool ok = stream.Write("");  // the head, at once
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (ok && std::chrono::steady_clock::now() < deadline) {
      std::vector<std::string> lines;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait_for(lock, std::chrono::milliseconds(20));
        if (stopping_) break;
        if (epoch_ != epoch) {
          if (epoch_expires_) lines.push_back(StrCat(R"({"type":"ERROR","object":)", Gone(), "}"));
          epoch = epoch_;
          ok = false;  // ends after sending `lines`
        } else if (!hold_) {
          for (; next < log_.size(); ++next) {
            lines.push_back(
                StrCat(R"({"type":")", log_[next].type, R"(","object":)", log_[next].object, "}"));
          }
        }
      }
      for (const std::string& event : lines) {
        const std::string line = StrCat(event, "\n");
        if (sent == drop_after) {
          stream.Write(line.substr(0, line.size() / 2));
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          clean_end = false;
          ok = false;
          break;
        }
        const size_t step = piece_size > 0 ? piece_size.load() : line.size();
        for (size_t at = 0; at < line.size() && clean_end; at += step) {
          if (!stream.Write(std::string_view(line).substr(at, step))) clean_end = false;
          if (piece_size > 0) std::this_thread::sleep_for(std::chrono::milliseconds(3));
        }
        ++sent;
      }
      if (!stream.PeerOpen()) clean_end = false, ok = false;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    --live_watches_;
    return clean_end ? fakes::HttpResponse::StreamEnd::kComplete
                     : fakes::HttpResponse::StreamEnd::kAbort;
  }

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;
  std::vector<std::string> requests_;
  std::map<std::string, Object> objects_;
  std::vector<Event> log_;
  int64_t rv_ = 100;
  int64_t compacted_ = 0;
  uint64_t uids_ = 0;
  uint64_t epoch_ = 0;
  bool epoch_expires_ = false;
  bool hold_ = false;
  int live_watches_ = 0;
  fakes::HttpServer server_;  // last: stopped before the state goes
};

bool PollUntil(HttpClient& http, const std::function<bool()>& done,
               absl::Duration limit = absl::Seconds(15)) {
  const absl::Time deadline = absl::Now() + limit;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    http.Poll(absl::Milliseconds(50));
  }
  return true;
}

// What an informer reported, as "upsert a=1", "remove b", "synced".
struct Recorder {
  std::vector<std::string> events;
  std::vector<std::string> errors;
  int synced = 0;

  static std::string Describe(std::string_view json) {
    simdjson::dom::parser parser;
    simdjson::dom::element object;
    std::string_view name;
    std::string_view value;
    if (parser.parse(json.data(), json.size()).get(object) != simdjson::SUCCESS ||
        object["metadata"]["name"].get_string().get(name) != simdjson::SUCCESS ||
        object["data"]["v"].get_string().get(value) != simdjson::SUCCESS) {
      return StrCat("unparsable ", json);
    }
    return StrCat(name, "=", value);
  }

  KubeClient::Informer::Handler Handler() {
    return {
        .synced = [this] { ++synced, events.push_back("synced"); },
        .upsert = [this](std::string_view json) { events.push_back("upsert " + Describe(json)); },
        .remove = [this](std::string_view json) { events.push_back("remove " + Describe(json)); },
        .error = [this](const absl::Status& status) { errors.push_back(status.ToString()); },
    };
  }

  // Events since `from`, for assertions on what one step produced.
  std::vector<std::string> Since(size_t from) const {
    return std::vector<std::string>(events.begin() + std::min(from, events.size()), events.end());
  }
};

KubeConfig LocalConfig(const FakeApiServer& server) {
  KubeConfig config;
  config.server = server.Url();
  config.token = proto::Secret("tok-1");
  return config;
}

class InformerTest : public ::testing::Test {
 protected:
  InformerTest() : client_(&http_, LocalConfig(server_)) {}

  void StartInformer() {
    informer_ = client_.Watch(std::string(FakeApiServer::kCollection), recorder_.Handler());
    ASSERT_TRUE(PollUntil(http_, [this] { return informer_->synced(); }));
    ASSERT_TRUE(PollUntil(http_, [this] { return server_.live_watches() == 1; }));
  }

  bool WaitEvents(size_t count) {
    return PollUntil(http_, [&] { return recorder_.events.size() >= count; });
  }

  FakeApiServer server_;
  // The clock of the HttpClient's timers, i.e. of the informer's backoff: real time, unless a
  // test sets frozen_now_ms_ and moves it by hand.
  std::optional<int64_t> frozen_now_ms_;
  HttpClient http_{HttpClientOptions{
      .now_ms = [this] { return frozen_now_ms_ ? *frozen_now_ms_ : core::MonotonicMs(); }}};
  KubeClient client_;
  Recorder recorder_;
  std::unique_ptr<KubeClient::Informer> informer_;
};

TEST_F(InformerTest, ListThenWatchDeliversAddedModifiedDeletedInOrder) {
  server_.Put("a", "1");
  server_.Put("b", "1");
  StartInformer();
  EXPECT_EQ(recorder_.events, (std::vector<std::string>{"upsert a=1", "upsert b=1", "synced"}));
  EXPECT_EQ(informer_->resource_version(), "102");
  server_.Put("c", "1");
  server_.Put("a", "2");
  server_.Remove("b");
  server_.Put("c", "2");
  ASSERT_TRUE(WaitEvents(7));
  EXPECT_EQ(recorder_.Since(3),
            (std::vector<std::string>{"upsert c=1", "upsert a=2", "remove b=1", "upsert c=2"}));
  EXPECT_EQ(informer_->resource_version(), "106");
  EXPECT_TRUE(recorder_.errors.empty());
  const std::vector<std::string> watches = server_.targets("watch=true");
  ASSERT_EQ(watches.size(), 1u);
  EXPECT_TRUE(Contains(watches[0], "resourceVersion=102")) << watches[0];
  EXPECT_TRUE(Contains(watches[0], "allowWatchBookmarks=true")) << watches[0];
}

TEST_F(InformerTest, ListIsPaginatedWithLimitAndContinue) {
  for (int i = 0; i < 1100; ++i) server_.Put(StrCat("o", 10000 + i), "1");
  StartInformer();
  EXPECT_EQ(recorder_.events.size(), 1101u);
  EXPECT_EQ(recorder_.events.front(), "upsert o10000=1");
  EXPECT_EQ(recorder_.events[1099], "upsert o11099=1");
  EXPECT_EQ(recorder_.synced, 1);
  const std::vector<std::string> lists = server_.targets("limit=");
  ASSERT_EQ(lists.size(), 3u);
  EXPECT_TRUE(Contains(lists[0], "limit=500")) << lists[0];
  EXPECT_FALSE(Contains(lists[0], "continue=")) << lists[0];
  EXPECT_TRUE(Contains(lists[1], "continue=1200%2Fo10500%3D%2B")) << lists[1];
}

TEST_F(InformerTest, EventsSplitAcrossChunksAreReassembled) {
  server_.Put("a", "1");
  StartInformer();
  server_.piece_size = 7;
  server_.Put("b", "x-long-value-to-split-into-many-pieces");
  server_.Put("a", "2");
  ASSERT_TRUE(WaitEvents(4));
  EXPECT_EQ(
      recorder_.Since(2),
      (std::vector<std::string>{"upsert b=x-long-value-to-split-into-many-pieces", "upsert a=2"}));
  EXPECT_TRUE(recorder_.errors.empty());
}

TEST_F(InformerTest, BookmarkUpdatesResourceVersionOnlyAndTheNextWatchStartsThere) {
  server_.Put("a", "1");
  StartInformer();
  const int64_t bookmark = server_.Bookmark(50);
  ASSERT_TRUE(PollUntil(http_, [&] { return informer_->resource_version() == StrCat(bookmark); }));
  EXPECT_EQ(recorder_.events.size(), 2u);
  server_.EndLiveWatches(/*expire=*/false);  // as when timeoutSeconds runs out
  ASSERT_TRUE(PollUntil(http_, [&] { return server_.targets("watch=true").size() == 2; }));
  EXPECT_TRUE(Contains(server_.targets("watch=true")[1], StrCat("resourceVersion=", bookmark)));
  EXPECT_EQ(server_.targets("limit=").size(), 1u);  // no relist
  EXPECT_TRUE(recorder_.errors.empty());
}

TEST_F(InformerTest, StreamDroppedMidEventReconnectsFromTheLastVersionMissingNothing) {
  server_.Put("a", "1");
  StartInformer();
  // The next watch is dropped halfway through its second event; the one after runs normally.
  server_.drop_next_watch_after = 1;
  server_.EndLiveWatches(/*expire=*/false);
  ASSERT_TRUE(PollUntil(http_, [&] { return server_.targets("watch=true").size() == 2; }));
  server_.Put("b", "1");
  server_.Put("c", "1");
  server_.Put("a", "2");
  ASSERT_TRUE(WaitEvents(5));
  ASSERT_TRUE(PollUntil(http_, [&] { return server_.targets("watch=true").size() == 3; }));
  http_.Poll(absl::Milliseconds(200));
  EXPECT_EQ(recorder_.Since(2),
            (std::vector<std::string>{"upsert b=1", "upsert c=1", "upsert a=2"}));
  const std::vector<std::string> watches = server_.targets("watch=true");
  EXPECT_TRUE(Contains(watches[2], "resourceVersion=102")) << watches[2];  // after b, not c
  EXPECT_EQ(server_.targets("limit=").size(), 1u);
  ASSERT_FALSE(recorder_.errors.empty());  // the broken transfer is reported
}

TEST_F(InformerTest, ErrorEvent410RelistsAndReportsWhatWasDeletedMeanwhile) {
  server_.Put("a", "1");
  server_.Put("b", "1");
  server_.Put("c", "1");
  StartInformer();
  server_.Hold(true);  // the watch is down for what follows
  server_.Remove("b");
  server_.Put("c", "2");
  server_.Put("d", "1");
  server_.Compact();
  server_.EndLiveWatches(/*expire=*/true);
  ASSERT_TRUE(WaitEvents(4 + 5));
  EXPECT_EQ(recorder_.Since(4), (std::vector<std::string>{"remove b=1", "upsert a=1", "upsert c=2",
                                                          "upsert d=1", "synced"}));
  EXPECT_EQ(server_.targets("limit=").size(), 2u);
  EXPECT_EQ(recorder_.synced, 2);
  server_.Hold(false);
  server_.Put("e", "1");
  ASSERT_TRUE(WaitEvents(10));
  EXPECT_EQ(recorder_.events.back(), "upsert e=1");
}

TEST_F(InformerTest, Http410OnReconnectRelists) {
  server_.Put("a", "1");
  server_.Put("b", "1");
  StartInformer();
  server_.expired_as_http = true;
  server_.Hold(true);
  server_.Remove("a");
  server_.Compact();
  server_.EndLiveWatches(/*expire=*/false);  // reconnects from 102, older than the history
  ASSERT_TRUE(WaitEvents(3 + 3));
  EXPECT_EQ(recorder_.Since(3), (std::vector<std::string>{"remove a=1", "upsert b=1", "synced"}));
  EXPECT_EQ(server_.targets("limit=").size(), 2u);
  EXPECT_EQ(informer_->resource_version(), StrCat(server_.rv()));
}

TEST_F(InformerTest, ListFailureIsRetriedWithBackoff) {
  server_.Put("a", "1");
  server_.list_failures = 2;
  frozen_now_ms_ = 1'000'000;
  const auto lists = [this] { return server_.targets("limit=").size(); };
  // Polls for a while without moving the clock: a retry now would be one the backoff let through.
  const auto poll_briefly = [this] {
    for (int i = 0; i < 5; ++i) http_.Poll(absl::Milliseconds(20));
  };
  informer_ = client_.Watch(std::string(FakeApiServer::kCollection), recorder_.Handler());
  ASSERT_TRUE(PollUntil(http_, [this] { return recorder_.errors.size() == 1; }));
  EXPECT_TRUE(Contains(recorder_.errors[0], "HTTP 500: etcd unavailable")) << recorder_.errors[0];
  // First retry after 0.5 s ± 25 % jitter.
  poll_briefly();
  *frozen_now_ms_ += 374;
  poll_briefly();
  EXPECT_EQ(lists(), 1u) << "retried before 0.375 s";
  *frozen_now_ms_ += 625 - 374;
  ASSERT_TRUE(PollUntil(http_, [&] { return recorder_.errors.size() == 2; }));
  EXPECT_EQ(lists(), 2u);
  // Second retry after twice that: 1 s ± 25 %.
  *frozen_now_ms_ += 749;
  poll_briefly();
  EXPECT_EQ(lists(), 2u) << "retried before 0.75 s";
  *frozen_now_ms_ += 1250 - 749;
  ASSERT_TRUE(PollUntil(http_, [this] { return informer_->synced(); }));
  EXPECT_EQ(recorder_.events, (std::vector<std::string>{"upsert a=1", "synced"}));
  EXPECT_EQ(recorder_.errors.size(), 2u);
  EXPECT_EQ(lists(), 3u);
}

TEST_F(InformerTest, DestroyingTheInformerClosesTheWatchPromptly) {
  server_.Put("a", "1");
  StartInformer();
  informer_.reset();
  EXPECT_EQ(http_.in_flight(), 0u);
  const absl::Time start = absl::Now();
  ASSERT_TRUE(PollUntil(
      http_, [&] { return server_.live_watches() == 0; }, absl::Seconds(5)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  const size_t reported = recorder_.events.size();
  server_.Put("b", "1");
  http_.Poll(absl::Milliseconds(200));
  EXPECT_EQ(recorder_.events.size(), reported);
}

TEST_F(InformerTest, HandlerMayDestroyTheInformer) {
  server_.Put("a", "1");
  server_.Put("b", "1");
  KubeClient::Informer::Handler handler;
  handler.upsert = [this](std::string_view) {
    recorder_.events.push_back("upsert");
    informer_.reset();
  };
  informer_ = client_.Watch(std::string(FakeApiServer::kCollection), handler);
  ASSERT_TRUE(PollUntil(http_, [this] { return informer_ == nullptr; }));
  http_.Poll(absl::Milliseconds(100));
  EXPECT_EQ(recorder_.events.size(), 1u);
  EXPECT_EQ(http_.in_flight(), 0u);
}

TEST(KubeClientTest, RequestsCarryTokenAcceptAndContentTypePerVerb) {
  FakeApiServer server;
  HttpClient http;
  KubeClient client(&http, LocalConfig(server));
  std::vector<absl::StatusOr<KubeResponse>> results;
  auto record = [&results](absl::StatusOr<KubeResponse> response) {
    results.push_back(std::move(response));
  };
  client.Get("/api/v1/namespaces/x/services/s", record);
  ASSERT_TRUE(PollUntil(http, [&] { return results.size() == 1; }));
  client.Create("/api/v1/namespaces/x/services", R"({"kind":"Service"})", record);
  ASSERT_TRUE(PollUntil(http, [&] { return results.size() == 2; }));
  client.Replace("/api/v1/namespaces/x/services/s", R"({"kind":"Service","x":1})", record);
  ASSERT_TRUE(PollUntil(http, [&] { return results.size() == 3; }));
  client.MergePatch("/apis/g/v1/namespaces/x/things/t/status", R"({"status":{}})", record);
  ASSERT_TRUE(PollUntil(http, [&] { return results.size() == 4; }));
  client.Delete("/api/v1/namespaces/x/services/s", record);
  ASSERT_TRUE(PollUntil(http, [&] { return results.size() == 5; }));
  for (const auto& result : results) {
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->status, 200);
    EXPECT_EQ(result->body, R"({"ok":true})");
  }
  const std::vector<std::string> requests = server.requests();
  ASSERT_EQ(requests.size(), 5u);
  for (const std::string& request : requests) {
    EXPECT_TRUE(Contains(request, "\r\nAuthorization: Bearer tok-1\r\n")) << request;
    EXPECT_TRUE(Contains(request, "\r\nAccept: application/json\r\n")) << request;
  }
  EXPECT_TRUE(requests[0].starts_with("GET /api/v1/namespaces/x/services/s HTTP/1.1\r\n"));
  EXPECT_FALSE(Contains(requests[0], "Content-Type"));
  EXPECT_TRUE(requests[1].starts_with("POST /api/v1/namespaces/x/services HTTP/1.1\r\n"));
  EXPECT_TRUE(Contains(requests[1], "\r\nContent-Type: application/json\r\n"));
  EXPECT_TRUE(requests[1].ends_with("\r\n\r\n{\"kind\":\"Service\"}"));
  EXPECT_TRUE(requests[2].starts_with("PUT /api/v1/namespaces/x/services/s HTTP/1.1\r\n"));
  EXPECT_TRUE(Contains(requests[2], "\r\nContent-Type: application/json\r\n"));
  EXPECT_TRUE(requests[2].ends_with(R"({"kind":"Service","x":1})"));
  EXPECT_TRUE(requests[3].starts_with("PATCH /apis/g/v1/namespaces/x/things/t/status HTTP/1.1"));
  EXPECT_TRUE(Contains(requests[3], "\r\nContent-Type: application/merge-patch+json\r\n"));
  EXPECT_TRUE(requests[3].ends_with(R"({"status":{}})"));
  EXPECT_TRUE(requests[4].starts_with("DELETE /api/v1/namespaces/x/services/s HTTP/1.1\r\n"));
}

// Non-2xx answers are mapped once (control/kube/kube_status.h); callers never see an HTTP status.
TEST(KubeClientTest, ErrorStatusIsMappedAndTransportErrorIsUnavailable) {
  FakeApiServer server;
  server.reply_forbidden = true;
  HttpClient http;
  std::optional<absl::StatusOr<KubeResponse>> result;
  {
    KubeClient client(&http, LocalConfig(server));
    client.Get("/api/v1/x", [&result](absl::StatusOr<KubeResponse> r) { result = std::move(r); });
    ASSERT_TRUE(PollUntil(http, [&] { return result.has_value(); }));
    ASSERT_FALSE(result->ok());
    EXPECT_EQ(result->status().code(), absl::StatusCode::kUnauthenticated) << result->status();
  }
  KubeConfig nowhere;
  nowhere.server = "http://127.0.0.1:1";
  KubeClient client(&http, nowhere);
  result.reset();
  client.Get("/api/v1/x", [&result](absl::StatusOr<KubeResponse> r) { result = std::move(r); });
  ASSERT_TRUE(PollUntil(http, [&] { return result.has_value(); }));
  EXPECT_EQ(result->status().code(), absl::StatusCode::kUnavailable) << result->status();
}

TEST(KubeClientTest, DestructorCancelsRequestsInFlight) {
  FakeApiServer server;
  HttpClient http;
  bool called = false;
  {
    KubeClient client(&http, LocalConfig(server));
    client.Get("/hang", [&called](absl::StatusOr<KubeResponse>) { called = true; });
    ASSERT_TRUE(PollUntil(http, [&] { return server.requests().size() == 1; }));
  }
  EXPECT_EQ(http.in_flight(), 0u);
  http.Poll(absl::Milliseconds(100));
  EXPECT_FALSE(called);
}

// A scratch directory under TEST_TMPDIR or /tmp, removed at the end.
class ScratchDir {
 public:
  ScratchDir() {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string pattern = StrCat(base != nullptr ? base : "/tmp", "/kube_client_test.XXXXXX");
    path_ = ::mkdtemp(pattern.data()) != nullptr ? pattern : "";
    EXPECT_FALSE(path_.empty());
  }
  ~ScratchDir() {
    if (!path_.empty()) std::system(StrCat("rm -rf '", path_, "'").c_str());
  }
  std::string File(std::string_view name) const { return StrCat(path_, "/", name); }
  void Write(std::string_view name, std::string_view content) const {
    std::ofstream(File(name), std::ios::binary | std::ios::trunc) << content;
  }

 private:
  std::string path_;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

TEST(KubeClientTest, TokenFileIsReReadWhenItChanges) {
  FakeApiServer server;
  ScratchDir dir;
  dir.Write("token", "first-token\n");
  HttpClient http;
  KubeConfig config;
  config.server = server.Url();
  config.token_file = dir.File("token");
  int64_t now_ms = 1'000'000;
  KubeClientOptions options;
  options.now_ms = [&now_ms] { return now_ms; };
  KubeClient client(&http, config, options);
  int done = 0;
  auto count = [&done](absl::StatusOr<KubeResponse>) { ++done; };
  client.Get("/api/v1/a", count);
  ASSERT_TRUE(PollUntil(http, [&] { return done == 1; }));
  // Rotated the way kubelet does it: a new file moved into place.
  dir.Write("token.new", "second-token");
  ASSERT_EQ(std::rename(dir.File("token.new").c_str(), dir.File("token").c_str()), 0);
  now_ms += 1999;  // the file is checked at most every two seconds: not yet
  client.Get("/api/v1/b", count);
  ASSERT_TRUE(PollUntil(http, [&] { return done == 2; }));
  now_ms += 1;
  client.Get("/api/v1/c", count);
  ASSERT_TRUE(PollUntil(http, [&] { return done == 3; }));
  const std::vector<std::string> requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_TRUE(Contains(requests[0], "Authorization: Bearer first-token\r\n")) << requests[0];
  EXPECT_TRUE(Contains(requests[1], "Authorization: Bearer first-token\r\n")) << requests[1];
  EXPECT_TRUE(Contains(requests[2], "Authorization: Bearer second-token\r\n")) << requests[2];
}

// End to end against the project's fake API server (tests/fakes): its kubeconfig, its token,
// its watch with history, dropped streams and compaction.
TEST(KubeClientWithFakeApiServerTest, KubeconfigRequestsListWatchDropAndExpire) {
  fakes::FakeKubeApiServer::Options options;
  options.token = "fake-token";
  fakes::FakeKubeApiServer server(options);
  ASSERT_TRUE(server.Start().ok());
  ScratchDir dir;
  ASSERT_TRUE(server.WriteKubeconfig(dir.File("config")).ok());
  absl::StatusOr<KubeConfig> config = LoadKubeconfig(dir.File("config"));
  ASSERT_TRUE(config.ok()) << config.status();
  HttpClient http;
  KubeClient client(&http, *config);
  const std::string collection = "/api/v1/namespaces/default/configmaps";
  auto create = [&](std::string_view name, std::string_view value) {
    std::optional<absl::StatusOr<KubeResponse>> result;
    client.Create(collection,
                  StrCat(R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":")", name,
                         R"("},"data":{"v":")", value, R"("}})"),
                  [&result](absl::StatusOr<KubeResponse> r) { result = std::move(r); });
    EXPECT_TRUE(PollUntil(http, [&] { return result.has_value(); }));
    EXPECT_TRUE(result.has_value() && result->ok() && (*result)->status == 201)
        << (result.has_value() && result->ok() ? (*result)->body : "");
  };
  create("a", "1");
  Recorder recorder;
  std::unique_ptr<KubeClient::Informer> informer = client.Watch(collection, recorder.Handler());
  ASSERT_TRUE(PollUntil(http, [&] { return informer->synced() && server.OpenWatches() == 1; }));
  EXPECT_EQ(recorder.events, (std::vector<std::string>{"upsert a=1", "synced"}));
  create("b", "1");
  ASSERT_TRUE(PollUntil(http, [&] { return recorder.events.size() == 3; }));
  EXPECT_EQ(recorder.events.back(), "upsert b=1");

  // A broken stream: the change made meanwhile arrives once, after the reconnect.
  server.DropWatches();
  std::optional<absl::StatusOr<KubeResponse>> patched;
  client.MergePatch(StrCat(collection, "/a"), R"({"data":{"v":"2"}})",
                    [&patched](absl::StatusOr<KubeResponse> r) { patched = std::move(r); });
  ASSERT_TRUE(PollUntil(http, [&] { return patched.has_value(); }));
  ASSERT_TRUE(patched->ok() && (*patched)->status == 200);
  ASSERT_TRUE(PollUntil(http, [&] { return recorder.events.size() == 4; }));
  EXPECT_EQ(recorder.events.back(), "upsert a=2");
  ASSERT_TRUE(PollUntil(http, [&] { return server.OpenWatches() == 1; }));

  // Broken again, b deleted and the history compacted while down: 410, relist, b removed.
  server.DropWatches();
  EXPECT_EQ(server.Request("DELETE", StrCat(collection, "/b")).status, 200);
  server.CompactHistory();
  ASSERT_TRUE(PollUntil(http, [&] { return recorder.events.size() == 7; }));
  EXPECT_EQ(recorder.Since(4), (std::vector<std::string>{"remove b=1", "upsert a=2", "synced"}));
  informer.reset();
  ASSERT_TRUE(PollUntil(http, [&] { return server.OpenWatches() == 0; }));
  server.Stop();
}

// Runs kubectl with `args` against the kubeconfig `file`; false when it fails.
bool Kubectl(const std::string& file, const std::string& args) {
  const std::string command =
      StrCat("kubectl config ", args, " --kubeconfig '", file, "' >/dev/null 2>&1");
  return std::system(command.c_str()) == 0;
}

bool HaveKubectl() { return std::system("kubectl version --client >/dev/null 2>&1") == 0; }

TEST(KubeconfigTest, LoadsTokenAndEmbeddedCaWrittenByKubectl) {
  if (!HaveKubectl()) GTEST_SKIP() << "kubectl is not installed";
  ScratchDir dir;
  const std::string ca = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";
  dir.Write("ca.pem", ca);
  const std::string file = dir.File("config");
  ASSERT_TRUE(Kubectl(file, StrCat("set-cluster dev --server=https://127.0.0.1:6443/ "
                                   "--certificate-authority='",
                                   dir.File("ca.pem"), "' --embed-certs=true")));
  ASSERT_TRUE(Kubectl(file, "set-cluster other --server=https://10.9.9.9:443"));
  ASSERT_TRUE(Kubectl(file, "set-credentials alice --token='t0k:en#1 x'"));
  ASSERT_TRUE(Kubectl(file, "set-context work --cluster=dev --user=alice --namespace=mailring"));
  ASSERT_TRUE(Kubectl(file, "set-context play --cluster=other --user=alice"));
  ASSERT_TRUE(Kubectl(file, "use-context work"));
  absl::StatusOr<KubeConfig> config = LoadKubeconfig(file);
  ASSERT_TRUE(config.ok()) << config.status() << "\n" << ReadAll(file);
  EXPECT_EQ(config->server, "https://127.0.0.1:6443");
  EXPECT_EQ(config->token.Reveal(), "t0k:en#1 x");
  EXPECT_FALSE(config->insecure_skip_tls_verify);
  ASSERT_FALSE(config->ca_file.empty());
  EXPECT_EQ(ReadAll(config->ca_file), ca);
  struct stat info {};
  ASSERT_EQ(::stat(config->ca_file.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 077, 0u);
  // Loading again reuses the file rather than writing another.
  absl::StatusOr<KubeConfig> again = LoadKubeconfig(file);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->ca_file, config->ca_file);
}

TEST(KubeconfigTest, LoadsClientCertificateFilesAndInsecureSkipTlsVerify) {
  if (!HaveKubectl()) GTEST_SKIP() << "kubectl is not installed";
  ScratchDir dir;
  dir.Write("cert.pem", "CERT");
  dir.Write("key.pem", "KEY");
  const std::string file = dir.File("config");
  ASSERT_TRUE(Kubectl(file,
                      "set-cluster dev --server=https://[::1]:6443 "
                      "--insecure-skip-tls-verify=true"));
  ASSERT_TRUE(
      Kubectl(file, StrCat("set-credentials bob --client-certificate='", dir.File("cert.pem"),
                           "' --client-key='", dir.File("key.pem"), "'")));
  ASSERT_TRUE(Kubectl(file,
                      "set-credentials carol --client-certificate=cert.pem "
                      "--client-key=key.pem --embed-certs=false"));
  ASSERT_TRUE(Kubectl(file, "set-context c --cluster=dev --user=bob"));
  ASSERT_TRUE(Kubectl(file, "use-context c"));
  absl::StatusOr<KubeConfig> config = LoadKubeconfig(file);
  ASSERT_TRUE(config.ok()) << config.status() << "\n" << ReadAll(file);
  EXPECT_EQ(config->server, "https://[::1]:6443");
  EXPECT_TRUE(config->insecure_skip_tls_verify);
  EXPECT_TRUE(config->token.empty());
  EXPECT_EQ(ReadAll(config->client_certificate_file), "CERT");
  EXPECT_EQ(ReadAll(config->client_key_file), "KEY");

  // Embedded (-data) variants.
  ASSERT_TRUE(
      Kubectl(file, StrCat("set-credentials bob --client-certificate='", dir.File("cert.pem"),
                           "' --client-key='", dir.File("key.pem"), "' --embed-certs=true")));
  config = LoadKubeconfig(file);
  ASSERT_TRUE(config.ok()) << config.status() << "\n" << ReadAll(file);
  EXPECT_NE(config->client_certificate_file, dir.File("cert.pem"));
  EXPECT_EQ(ReadAll(config->client_certificate_file), "CERT");
  EXPECT_EQ(ReadAll(config->client_key_file), "KEY");
}

// A hand-written kubeconfig with comments, quotes, an indented sequence and a token file, around
// `context` (the "dev" context's mapping, as YAML nested under "context:").
std::string HandWrittenKubeconfig(std::string_view context) {
  return StrCat(R"(# development cluster
apiVersion: v1
kind: Config
preferences: {}
clusters:
  - name: "dev"   # indented sequence style
    cluster:
      server: 'http://127.0.0.1:8001'
      certificate-authority: certs/ca.pem
contexts:
- name: dev
  context:)",
                context, R"(
current-context: dev
users:
- name: me
  user:
    tokenFile: token
)");
}

TEST(KubeconfigTest, HandWrittenSubsetWithTokenFileCommentsAndQuotes) {
  ScratchDir dir;
  const std::string file = dir.File("config");
  dir.Write("config", HandWrittenKubeconfig(" {cluster: dev, user: me}"));
  absl::StatusOr<KubeConfig> config = LoadKubeconfig(file);
  // Full YAML (yaml-cpp): a flow mapping with content is as good as a block one.
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "http://127.0.0.1:8001");

  dir.Write("config", HandWrittenKubeconfig("\n    cluster: dev\n    user: me"));
  config = LoadKubeconfig(file);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "http://127.0.0.1:8001");
  EXPECT_EQ(config->ca_file, dir.File("certs/ca.pem"));  // relative to the kubeconfig
  EXPECT_EQ(config->token_file, dir.File("token"));
}

TEST(KubeconfigTest, EmptyUserAsAFlowMapOnItsOwnLine) {
  // As tests/fakes/kube_apiserver writes it for a server without a token.
  ScratchDir dir;
  dir.Write("config", R"(apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: http://127.0.0.1:38467
users:
- name: fake
  user:
    {}
contexts:
- name: fake
  context:
    cluster: fake
    user: fake
    namespace: default
current-context: fake
)");
  absl::StatusOr<KubeConfig> config = LoadKubeconfig(dir.File("config"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "http://127.0.0.1:38467");
  EXPECT_TRUE(config->token.empty());
}

TEST(KubeconfigTest, ErrorsNameTheMissingField) {
  ScratchDir dir;
  const std::string file = dir.File("config");
  auto error_for = [&](std::string_view yaml) {
    dir.Write("config", yaml);
    absl::StatusOr<KubeConfig> config = LoadKubeconfig(file);
    return config.ok() ? std::string("ok") : std::string(proto::AsStd(config.status().message()));
  };
  EXPECT_TRUE(Contains(error_for("apiVersion: v1\nclusters: []\n"), "current-context is not set"));
  EXPECT_TRUE(Contains(error_for("current-context: x\ncontexts: []\n"),
                       "no context named \"x\" in contexts"));
  EXPECT_TRUE(Contains(error_for("current-context: x\ncontexts:\n- name: x\n  context:\n"
                                 "    user: u\n"),
                       "contexts[\"x\"].context.cluster is missing"));
  EXPECT_TRUE(Contains(error_for("current-context: x\ncontexts:\n- name: x\n  context:\n"
                                 "    cluster: c\nclusters:\n- name: c\n  cluster:\n"
                                 "    insecure-skip-tls-verify: true\n"),
                       "clusters[\"c\"].cluster.server is missing"));
  EXPECT_TRUE(Contains(error_for("current-context: x\ncontexts:\n- name: x\n  context:\n"
                                 "    cluster: c\n    user: u\nclusters:\n- name: c\n  cluster:\n"
                                 "    server: https://h\nusers:\n- name: u\n  user:\n"
                                 "    exec:\n      command: aws\n"),
                       "users[\"u\"].user.exec is not supported"));
  EXPECT_TRUE(Contains(error_for("current-context: x\ncontexts:\n- name: x\n  context:\n"
                                 "    cluster: c\n    user: u\nclusters:\n- name: c\n  cluster:\n"
                                 "    server: https://h\nusers:\n- name: u\n  user:\n"
                                 "    client-certificate: c.pem\n"),
                       "users[\"u\"].user.client-key is missing"));
  EXPECT_TRUE(Contains(error_for("current-context: x\ncontexts:\n- name: x\n  context:\n"
                                 "    cluster: c\nclusters:\n- name: c\n  cluster:\n"
                                 "    server: https://h\n    certificate-authority-data: '!!'\n"),
                       "certificate-authority-data is not valid base64"));
  // YAML syntax errors name the file and the position.
  EXPECT_TRUE(Contains(error_for("a: 1\n    b: 2\n"), "not valid YAML (line 2"));
  EXPECT_TRUE(Contains(error_for("a: [1, 2\n"), "not valid YAML (line"));
  EXPECT_TRUE(Contains(error_for("- just\n- a list\n"), "not a YAML mapping"));
  EXPECT_TRUE(Contains(LoadKubeconfig(dir.File("absent")).status().ToString(), "absent"));
}

TEST(InClusterTest, OutsideAClusterTheErrorSaysSo) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  if (host != nullptr) GTEST_SKIP() << "running inside a cluster";
  absl::StatusOr<KubeConfig> config = InClusterKubeConfig();
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Contains(proto::AsStd(config.status().message()), "KUBERNETES_SERVICE_HOST"));

  struct stat info {};
  if (::stat("/var/run/secrets/kubernetes.io/serviceaccount/token", &info) == 0) return;
  ::setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
  ::setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  config = InClusterKubeConfig();
  ::unsetenv("KUBERNETES_SERVICE_HOST");
  ::unsetenv("KUBERNETES_SERVICE_PORT");
  ASSERT_FALSE(config.ok());
  EXPECT_TRUE(Contains(proto::AsStd(config.status().message()),
                       "/var/run/secrets/kubernetes.io/serviceaccount/token"))
      << config.status();
}

}  // namespace
}  // namespace mailring::control
