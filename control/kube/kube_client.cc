// KubeClient: configuration (in-cluster, kubeconfig), REST requests and the list+watch informer.
//
// Layout, top to bottom: the token source; KubeContext (what requests and informers share: the
// HttpClient, the server, TLS files and the rotating token); KubeClient's requests; the informer's
// state machine (kListing → kWatching, kBackingOff between attempts, kStopped at the end).
//
// Lifetimes: the HttpClient outlives the KubeClient and every Informer. An Informer may outlive
// its KubeClient (it shares the KubeContext). ~KubeClient and ~Informer cancel what they have in
// flight, so none of their callbacks runs afterwards.
#include "control/kube/kube_client.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "control/kube/kube_status.h"
#include "control/small_file.h"
#include "core/log.h"
#include "proto/absl_string_view.h"
#include "proto/percent_encoding.h"
#include "proto/str_cat.h"
#include "simdjson.h"

namespace mailring::control {
namespace {

constexpr std::string_view kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";
// A rotated service-account token is picked up within this long (or at the next request after a
// 401). kubelet rotates tokens well before they expire, so a short delay is harmless.
constexpr absl::Duration kTokenRecheck = absl::Seconds(2);
constexpr absl::Duration kRequestTimeout = absl::Seconds(30);
// Lists are paginated; one page of 500 large objects stays well under this.
constexpr size_t kMaxResponseBytes = size_t{64} << 20;
constexpr int kListPageSize = 500;
// One watch event is one line; a larger one is not an object we can hold (etcd's limit is
// 1.5 MiB per object), so it fails the watch and the informer relists.
constexpr size_t kMaxWatchLine = size_t{16} << 20;
// The server ends a watch after timeoutSeconds; jitter keeps many informers from reconnecting
// at once. The transfer's own timeout adds a margin for a server that does not end it.
constexpr int kWatchSeconds = 300;
constexpr absl::Duration kWatchTimeoutMargin = absl::Seconds(30);
constexpr absl::Duration kBackoffInitial = absl::Milliseconds(500);
constexpr absl::Duration kBackoffMax = absl::Seconds(30);

std::string ErrnoText(int error) { return std::string(std::strerror(error)); }

// ---------------------------------------------------------------------------------------------
// The bearer token, from KubeConfig::token or re-read from token_file when that file changes
// (kubelet rotates projected service-account tokens by swapping a symlink: a new inode).
class TokenSource {
 public:
  TokenSource(proto::Secret token, std::string file, std::function<int64_t()> now_ms)
      : token_(std::move(token)), file_(std::move(file)), now_ms_(std::move(now_ms)) {}

  std::string_view Current() {
    if (file_.empty()) return token_.Reveal();
    const int64_t now_ms = now_ms_();
    if (now_ms < next_check_ms_) return token_.Reveal();
    next_check_ms_ = now_ms + absl::ToInt64Milliseconds(kTokenRecheck);
    struct stat info {};
    if (::stat(file_.c_str(), &info) != 0) {
      Warn(StrCat(file_, ": ", ErrnoText(errno)));
      return token_.Reveal();
    }
    const Stamp stamp{info.st_dev, info.st_ino, info.st_size, info.st_mtim.tv_sec,
                      info.st_mtim.tv_nsec};
    if (have_stamp_ && stamp == stamp_) return token_.Reveal();
    absl::StatusOr<std::string> content = ReadSmallFile(file_, kMaxResponseBytes);
    if (!content.ok()) {
      Warn(std::string(proto::AsStd(content.status().message())));
      return token_.Reveal();
    }
    const std::string_view trimmed = proto::AsStd(absl::StripAsciiWhitespace(*content));
    if (trimmed.empty()) {
      Warn(StrCat(file_, " is empty"));
      return token_.Reveal();
    }
    token_ = proto::Secret(std::string(trimmed));
    stamp_ = stamp;
    have_stamp_ = true;
    warned_.clear();
    return token_.Reveal();
  }

  // After a 401: the next request checks the file again at once.
  void Invalidate() {
    next_check_ms_ = std::numeric_limits<int64_t>::min();
    have_stamp_ = false;
  }

 private:
  struct Stamp {
    dev_t device;
    ino_t inode;
    off_t size;
    time_t seconds;
    long nanoseconds;
    bool operator==(const Stamp&) const = default;
  };

  void Warn(std::string text) {
    if (text == warned_) return;  // once per distinct problem, not per request
    MAILRING_LOG(kWarning, "kube: service-account token unreadable, keeping the last one: ", text);
    warned_ = std::move(text);
  }

  proto::Secret token_;
  const std::string file_;
  const std::function<int64_t()> now_ms_;
  int64_t next_check_ms_ = std::numeric_limits<int64_t>::min();
  Stamp stamp_{};
  bool have_stamp_ = false;
  std::string warned_;
};

// What requests and informers share. Control thread only.
struct KubeContext {
  KubeContext(HttpClient* http_client, KubeConfig kube_config, KubeClientOptions options)
      : http(http_client),
        config(std::move(kube_config)),
        token(std::move(config.token), config.token_file, std::move(options.now_ms)) {}

  HttpRequest Request(std::string_view method, std::string_view path_and_query,
                      std::string body = {}, std::string_view content_type = {}) {
    HttpRequest request;
    request.method = std::string(method);
    request.url = StrCat(config.server, path_and_query);
    request.headers.push_back("Accept: application/json");
    request.headers.push_back("User-Agent: mailring");
    const std::string_view bearer = token.Current();
    if (!bearer.empty()) request.headers.push_back(StrCat("Authorization: Bearer ", bearer));
    if (!content_type.empty()) request.headers.push_back(StrCat("Content-Type: ", content_type));
    request.body = std::move(body);
    request.timeout = kRequestTimeout;
    request.ca_file = config.ca_file;
    request.client_certificate_file = config.client_certificate_file;
    request.client_key_file = config.client_key_file;
    request.insecure_skip_tls_verify = config.insecure_skip_tls_verify;
    request.max_response_bytes = kMaxResponseBytes;
    return request;
  }

  // Every response passes here: a 401 may mean the token rotated under us.
  void Observe(const absl::StatusOr<HttpResponse>& response) {
    if (response.ok() && response->status == 401) token.Invalidate();
  }

  HttpClient* const http;
  KubeConfig config;  // its token moved into `token`
  TokenSource token;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Requests.

struct KubeClient::Impl {
  std::shared_ptr<KubeContext> context;
  // Requests in flight by a local key: ~KubeClient cancels them.
  absl::flat_hash_map<uint64_t, HttpClient::RequestId> pending;
  uint64_t last_key = 0;

  void Send(std::string_view method, std::string_view path, std::string body,
            std::string_view content_type, Callback done) {
    const uint64_t key = ++last_key;
    // Runs only while this Impl lives: ~KubeClient cancels every pending request.
    pending[key] = context->http->Start(
        context->Request(method, path, std::move(body), content_type),
        [this, key, done = std::move(done)](absl::StatusOr<HttpResponse> response) {
          pending.erase(key);
          context->Observe(response);
          if (!response.ok()) {
            done(response.status());
            return;
          }
          if (response->status < 200 || response->status > 299) {
            done(KubeApiStatus(response->status, response->body));
            return;
          }
          done(KubeResponse{response->status, std::move(response->body)});
        });
  }
};

KubeClient::KubeClient(HttpClient* http, KubeConfig config, KubeClientOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->context = std::make_shared<KubeContext>(http, std::move(config), std::move(options));
}

KubeClient::~KubeClient() {
  for (const auto& [key, id] : impl_->pending) impl_->context->http->Cancel(id);
}

void KubeClient::Get(std::string path, Callback done) {
  impl_->Send("GET", path, {}, {}, std::move(done));
}
void KubeClient::Create(std::string path, std::string json, Callback done) {
  impl_->Send("POST", path, std::move(json), "application/json", std::move(done));
}
void KubeClient::Replace(std::string path, std::string json, Callback done) {
  impl_->Send("PUT", path, std::move(json), "application/json", std::move(done));
}
void KubeClient::MergePatch(std::string path, std::string json, Callback done) {
  impl_->Send("PATCH", path, std::move(json), "application/merge-patch+json", std::move(done));
}
void KubeClient::Delete(std::string path, Callback done) {
  impl_->Send("DELETE", path, {}, {}, std::move(done));
}

// ---------------------------------------------------------------------------------------------
// Informer.
namespace {

// One informer's state machine. HttpClient callbacks hold it weakly and lock it while they run,
// so a handler that destroys the Informer does not pull the state from under the running code;
// `phase_ == kStopped` then ends the work. `generation_` changes with every new request or
// timer, so a callback from an earlier one (a stream's last data after a relist) is ignored.
class InformerState : public std::enable_shared_from_this<InformerState> {
 public:
  using Handler = KubeClient::Informer::Handler;

  InformerState(std::shared_ptr<KubeContext> context, std::string path, Handler handler)
      : context_(std::move(context)),
        path_(std::move(path)),
        handler_(std::move(handler)),
        random_(std::random_device{}()) {}

  void Begin() { List(); }

  void Stop() {
    phase_ = Phase::kStopped;
    ++generation_;
    if (current_ != 0) context_->http->Cancel(current_);
    current_ = 0;
  }

  bool synced() const { return synced_; }
  const std::string& resource_version() const { return resource_version_; }

 private:
  enum class Phase { kListing, kWatching, kBackingOff, kStopped };

  std::string WithQuery(std::string_view query) const {
    return StrCat(path_, path_.find('?') == std::string::npos ? "?" : "&", query);
  }

  // Wraps a callback so it runs only for the current generation of a live informer.
  template <typename... Args>
  std::function<void(Args...)> Guard(void (InformerState::*method)(Args...)) {
    return [weak = weak_from_this(), generation = generation_, method](Args... args) {
      std::shared_ptr<InformerState> self = weak.lock();
      if (self == nullptr || self->phase_ == Phase::kStopped || self->generation_ != generation) {
        return;
      }
      (self.get()->*method)(std::forward<Args>(args)...);
    };
  }

  void SetCurrent(HttpClient::RequestId id) { current_ = id; }

  void NewGeneration() {
    ++generation_;
    if (current_ != 0) context_->http->Cancel(current_);
    current_ = 0;
  }

  // kListing: GET the collection page by page, then report the difference and watch.
  void List() {
    NewGeneration();
    phase_ = Phase::kListing;
    listed_.clear();
    listed_order_.clear();
    paging_ = false;
    RequestPage("");
  }

  void RequestPage(std::string_view continue_token) {
    std::string query = StrCat("limit=", kListPageSize);
    if (!continue_token.empty())
      StrAppend(&query, "&continue=",
                proto::PercentEncode(continue_token, proto::PercentStyle::kUriComponent));
    paging_ = !continue_token.empty();
    SetCurrent(context_->http->Start(context_->Request("GET", WithQuery(query)),
                                     Guard(&InformerState::OnPage)));
  }

  void OnPage(absl::StatusOr<HttpResponse> response) {
    context_->Observe(response);
    const std::string what = StrCat("list ", path_);
    if (!response.ok()) return Retry(&InformerState::List, response.status());
    if (response->status == 410 && paging_) {
      // The continue token expired between pages: start over from a fresh snapshot.
      MAILRING_LOG(kInfo, "kube: ", what, ": continue token expired, listing again");
      return List();
    }
    if (response->status != 200) {
      return Retry(&InformerState::List,
                   absl::UnavailableError(StrCat(what, ": ", DescribeKubeResponse(response->status, response->body))));
    }
    simdjson::dom::element document;
    simdjson::dom::array items;
    std::string_view version;
    std::string_view next;
    const simdjson::error_code parsed = parser_.parse(response->body).get(document);
    if (parsed != simdjson::SUCCESS ||
        document["metadata"]["resourceVersion"].get_string().get(version) != simdjson::SUCCESS) {
      return Retry(&InformerState::List,
                   absl::DataLossError(StrCat(what, ": not a list with metadata.resourceVersion")));
    }
    if (document["metadata"]["continue"].get_string().get(next) != simdjson::SUCCESS) next = {};
    simdjson::dom::element items_element;
    if (document["items"].get(items_element) == simdjson::SUCCESS && !items_element.is_null()) {
      if (items_element.get_array().get(items) != simdjson::SUCCESS) {
        return Retry(&InformerState::List,
                     absl::DataLossError(StrCat(what, ": items is not an array")));
      }
      for (simdjson::dom::element item : items) {
        std::string key = ObjectKey(item);
        if (key.empty() || listed_.contains(key)) continue;
        listed_.emplace(key, simdjson::minify(item));
        listed_order_.push_back(std::move(key));
      }
    }
    list_version_ = std::string(version);
    if (!next.empty()) return RequestPage(next);
    FinishList();
  }

  // Reports the list as the difference from what was known: first what vanished (a consumer
  // keyed by name sees a re-created object as remove, then upsert), then every listed object.
  void FinishList() {
    std::vector<std::string> removed;
    for (auto& [key, json] : objects_) {
      if (!listed_.contains(key)) removed.push_back(std::move(json));
    }
    objects_ = std::move(listed_);
    listed_.clear();
    std::vector<std::string> order = std::move(listed_order_);
    listed_order_.clear();
    resource_version_ = list_version_;
    attempts_ = 0;
    Watch();  // queued: its callbacks run in a later Poll()
    const uint64_t generation = generation_;
    auto live = [this, generation] { return generation_ == generation; };
    for (const std::string& json : removed) {
      if (handler_.remove) handler_.remove(json);
      if (!live()) return;
    }
    for (const std::string& key : order) {
      auto it = objects_.find(key);
      if (it == objects_.end()) continue;
      if (handler_.upsert) handler_.upsert(it->second);
      if (!live()) return;
    }
    synced_ = true;
    if (handler_.synced) handler_.synced();
  }

  // kWatching: one stream from resource_version_.
  void Watch() {
    NewGeneration();
    phase_ = Phase::kWatching;
    partial_.clear();
    std::uniform_int_distribution<int> jitter(-kWatchSeconds / 10, kWatchSeconds / 10);
    const int seconds = kWatchSeconds + jitter(random_);
    HttpRequest request = context_->Request(
        "GET", WithQuery(StrCat(
                   "watch=true&allowWatchBookmarks=true&resourceVersion=",
                   proto::PercentEncode(resource_version_, proto::PercentStyle::kUriComponent),
                   "&timeoutSeconds=", seconds)));
    request.timeout = absl::Seconds(seconds) + kWatchTimeoutMargin;
    SetCurrent(context_->http->StartStream(std::move(request), Guard(&InformerState::OnWatchData),
                                           Guard(&InformerState::OnWatchEnd)));
  }

  void OnWatchData(std::string_view chunk) {
    const uint64_t generation = generation_;
    while (!chunk.empty()) {
      const size_t newline = chunk.find('\n');
      const std::string_view piece = chunk.substr(0, newline);
      if (partial_.size() + piece.size() > kMaxWatchLine) {
        partial_.clear();
        if (handler_.error) {
          handler_.error(absl::ResourceExhaustedError(StrCat(
              "watch ", path_, ": an event longer than ", kMaxWatchLine, " bytes; listing again")));
        }
        if (generation_ == generation) List();
        return;
      }
      if (newline == std::string_view::npos) {
        partial_.append(piece);
        return;
      }
      chunk.remove_prefix(newline + 1);
      std::string_view line = piece;
      if (!partial_.empty()) {
        partial_.append(piece);
        line = partial_;
      }
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (!line.empty()) OnEvent(line);
      if (generation_ != generation) return;  // relisted or stopped: the stream is moot
      partial_.clear();
    }
  }

  void OnEvent(std::string_view line) {
    const std::string what = StrCat("watch ", path_);
    simdjson::dom::element event;
    simdjson::dom::element object;
    std::string_view type;
    if (parser_.parse(line.data(), line.size()).get(event) != simdjson::SUCCESS ||
        event["type"].get_string().get(type) != simdjson::SUCCESS ||
        event["object"].get(object) != simdjson::SUCCESS) {
      return Relist(absl::DataLossError(StrCat(what, ": malformed event")));
    }
    std::string_view version;
    const bool has_version =
        object["metadata"]["resourceVersion"].get_string().get(version) == simdjson::SUCCESS;
    if (type == "ADDED" || type == "MODIFIED" || type == "DELETED") {
      std::string key = ObjectKey(object);
      if (key.empty() || !has_version) {
        return Relist(absl::DataLossError(StrCat(what, ": ", type, " event without metadata")));
      }
      resource_version_ = std::string(version);
      attempts_ = 0;
      std::string json = simdjson::minify(object);
      if (type == "DELETED") {
        objects_.erase(key);
        if (handler_.remove) handler_.remove(json);
      } else {
        auto [it, inserted] = objects_.insert_or_assign(std::move(key), std::move(json));
        if (handler_.upsert) handler_.upsert(it->second);
      }
      return;
    }
    if (type == "BOOKMARK") {
      if (has_version) resource_version_ = std::string(version);
      attempts_ = 0;
      return;
    }
    if (type == "ERROR") {
      int64_t code = 0;
      std::string_view message;
      if (object["code"].get_int64().get(code) != simdjson::SUCCESS) code = 0;
      if (object["message"].get_string().get(message) != simdjson::SUCCESS) message = {};
      if (code == 410) {
        MAILRING_LOG(kInfo, "kube: ", what, ": resourceVersion ", resource_version_,
                     " expired, listing again");
        return List();
      }
      return Retry(&InformerState::Watch,
                   absl::UnavailableError(StrCat(what, ": ERROR event ", code, ": ", message)));
    }
    MAILRING_LOG(kWarning, "kube: ", what, ": ignoring an event of type ", type);
  }

  void OnWatchEnd(absl::StatusOr<HttpResponse> response) {
    context_->Observe(response);
    partial_.clear();  // an event cut short is sent again: resource_version_ predates it
    if (!response.ok()) return Retry(&InformerState::Watch, response.status());
    if (response->status == 410) return List();
    if (response->status != 200) {
      return Retry(&InformerState::Watch, absl::UnavailableError(StrCat(
                                              "watch ", path_, ": ", DescribeKubeResponse(response->status, response->body))));
    }
    Retry(&InformerState::Watch, absl::OkStatus());  // the server's timeoutSeconds ended it
  }

  void Relist(absl::Status why) {
    if (handler_.error) handler_.error(why);
    if (phase_ != Phase::kStopped) List();
  }

  // kBackingOff: reports `why` (unless OK) and runs `next` after a jittered exponential delay.
  void Retry(void (InformerState::*next)(), absl::Status why) {
    const uint64_t generation = generation_;
    if (!why.ok() && handler_.error) handler_.error(why);
    if (generation_ != generation || phase_ == Phase::kStopped) return;
    NewGeneration();
    phase_ = Phase::kBackingOff;
    const absl::Duration base =
        std::min(kBackoffMax, kBackoffInitial * (int64_t{1} << std::min(attempts_, 8)));
    ++attempts_;
    std::uniform_real_distribution<double> jitter(0.75, 1.25);
    const absl::Duration delay =
        std::clamp(base * jitter(random_), kBackoffInitial / 2, kBackoffMax);
    SetCurrent(context_->http->StartTimer(delay, Guard(next)));
  }

  // metadata.uid, else namespace/name; "" when neither is there.
  static std::string ObjectKey(simdjson::dom::element object) {
    std::string_view uid;
    if (object["metadata"]["uid"].get_string().get(uid) == simdjson::SUCCESS && !uid.empty()) {
      return std::string(uid);
    }
    std::string_view name;
    std::string_view name_space;
    if (object["metadata"]["name"].get_string().get(name) != simdjson::SUCCESS) return "";
    if (object["metadata"]["namespace"].get_string().get(name_space) != simdjson::SUCCESS) {
      name_space = {};
    }
    return StrCat(name_space, "/", name);
  }

  const std::shared_ptr<KubeContext> context_;
  const std::string path_;
  const Handler handler_;
  Phase phase_ = Phase::kListing;
  uint64_t generation_ = 0;
  HttpClient::RequestId current_ = 0;  // the request, stream or timer of this generation
  bool synced_ = false;
  std::string resource_version_;
  int attempts_ = 0;  // failures since the last progress, for the backoff
  // Last JSON of every known object by key, and the list being assembled page by page.
  absl::flat_hash_map<std::string, std::string> objects_;
  absl::flat_hash_map<std::string, std::string> listed_;
  std::vector<std::string> listed_order_;
  std::string list_version_;
  bool paging_ = false;  // the current page was asked for with a continue token
  std::string partial_;  // the watch line received so far
  simdjson::dom::parser parser_;
  std::mt19937_64 random_;
};

class InformerImpl : public KubeClient::Informer {
 public:
  explicit InformerImpl(std::shared_ptr<InformerState> state) : state_(std::move(state)) {}
  ~InformerImpl() override { state_->Stop(); }
  bool synced() const override { return state_->synced(); }
  std::string resource_version() const override { return state_->resource_version(); }

 private:
  std::shared_ptr<InformerState> state_;
};

}  // namespace

std::unique_ptr<KubeClient::Informer> KubeClient::Watch(std::string collection_path,
                                                        Informer::Handler handler) {
  auto state = std::make_shared<InformerState>(impl_->context, std::move(collection_path),
                                               std::move(handler));
  state->Begin();
  return std::make_unique<InformerImpl>(std::move(state));
}

}  // namespace mailring::control
