// HttpClient on libcurl's multi interface: one easy handle per request, found again through
// CURLOPT_PRIVATE when it completes; curl_multi_poll waits, curl_multi_wakeup interrupts it.
//
// Every transfer is HTTP/1.1 over http or https only, follows no redirect (a token endpoint that
// redirects is misconfigured, and following one would resend the client credentials), never
// raises signals (CURLOPT_NOSIGNAL: the control thread shares the process with workers), and is
// bounded by its request's timeout and max_response_bytes (streams: by their own consumer).
//
// libcurl forbids curl_multi_add_handle/remove_handle inside its callbacks, and a stream's data
// callback runs inside curl_multi_perform. So requests started from there wait in `deferred`
// and are added right after that perform; cancelled transfers are only marked (their write
// callback then aborts them) and removed right after it. Every transfer is owned by
// `transfers`, keyed by its id, whatever its state.
#include "control/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "core/clock.h"
#include "proto/str_cat.h"

namespace mailring::control {
namespace {

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      // Without it no transfer can work; every later curl_easy_init would fail anyway.
      std::abort();
    }
  });
}

// The URL as it may appear in errors and logs: no userinfo, no query, no fragment.
std::string UrlForErrors(std::string_view url) {
  url = url.substr(0, url.find_first_of("?#"));
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return std::string(url);
  const size_t authority_begin = scheme_end + 3;
  const size_t authority_end = std::min(url.find('/', authority_begin), url.size());
  const size_t at = url.substr(authority_begin, authority_end - authority_begin).rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  return StrCat(url.substr(0, authority_begin), url.substr(authority_begin + at + 1));
}

// CURLOPT_TIMEOUT_MS: at least 1 ms (0 would mean "no timeout"), an infinite duration is none.
long TransferTimeoutMillis(absl::Duration timeout) {
  if (timeout == absl::InfiniteDuration()) return 0;
  return static_cast<long>(
      std::clamp<int64_t>(absl::ToInt64Milliseconds(timeout), 1, int64_t{INT_MAX}));
}

// curl_multi_poll's timeout: 0 to INT_MAX ms.
int PollMillis(absl::Duration wait) {
  if (wait == absl::InfiniteDuration()) return INT_MAX;
  return static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(wait), 0, INT_MAX));
}

// One request in flight. Owns its easy handle and everything the handle points into (header
// list, request body, error buffer), so they outlive the transfer.
struct Transfer {
  enum class State {
    kFailedEarly,  // never reached libcurl; `early_error` goes to `done` in the next Poll()
    kDeferred,     // started inside a libcurl callback; added after the current perform
    kActive,       // added to the multi handle
  };

  HttpClient::RequestId id = 0;
  State state = State::kActive;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string method;
  std::string request_body;
  std::string url_for_errors;
  std::string response_body;
  size_t max_response_bytes = 0;
  bool response_too_large = false;
  // Set by Cancel() inside a libcurl callback: no callback runs any more, the write callback
  // aborts the transfer, and the transfer is removed right after the current perform.
  bool cancelled = false;
  long stream_status = 0;  // streams: the status, read at the first body bytes
  absl::Status early_error;
  char error_buffer[CURL_ERROR_SIZE] = {};
  // HttpRequest::idle_timeout: the longest silence after the connection is up (0: none).
  int64_t idle_timeout_ms = 0;
  int64_t quiet_since_ms = -1;  // since when the server sent nothing (-1: not connected yet)
  curl_off_t received = 0;
  bool idle_timed_out = false;
  HttpClient::DataCallback on_data;  // streams only
  HttpClient::Callback done;

  ~Transfer() {
    if (easy != nullptr) curl_easy_cleanup(easy);
    if (headers != nullptr) curl_slist_free_all(headers);
  }
};

// A timer's delay in whole milliseconds of the timers' clock, rounded up (exact to a millisecond).
int64_t DelayMs(absl::Duration delay) {
  if (delay <= absl::ZeroDuration()) return 0;
  // A year is "never" for a control-thread timer, and keeps the addition from overflowing.
  return absl::ToInt64Milliseconds(
      absl::Ceil(std::min(delay, absl::Hours(24 * 365)), absl::Milliseconds(1)));
}

}  // namespace

struct HttpClient::Impl {
  explicit Impl(HttpClientOptions options) : now_ms(std::move(options.now_ms)) {}

  const std::function<int64_t()> now_ms;  // the timers' clock
  CURLM* multi = nullptr;
  RequestId last_id = 0;
  // Every request or stream not yet finished or cancelled, in any state.
  absl::flat_hash_map<RequestId, std::unique_ptr<Transfer>> transfers;
  // Ids of transfers in state kFailedEarly / kDeferred; may name cancelled (erased) ones.
  std::vector<RequestId> failed_early;
  std::vector<RequestId> deferred;
  // Ids of active transfers cancelled inside a libcurl callback.
  std::vector<RequestId> cancelled;
  size_t cancelled_count = 0;  // transfers marked cancelled and not yet removed
  bool in_perform = false;     // inside curl_multi_perform, i.e. possibly inside a callback

  // Timers by due time (now_ms's clock); `timer_due` finds one by id for Cancel().
  std::map<std::pair<int64_t, RequestId>, std::function<void()>> timers;
  absl::flat_hash_map<RequestId, int64_t> timer_due;

  // Aborts a transfer whose server has been silent for longer than its idle timeout.
  static int OnProgress(void* user, curl_off_t /*dltotal*/, curl_off_t dlnow,
                        curl_off_t /*ultotal*/, curl_off_t /*ulnow*/) {
    Transfer* transfer = static_cast<Transfer*>(user);
    const int64_t now = core::MonotonicMs();
    if (transfer->quiet_since_ms < 0) {
      curl_off_t connected_us = 0;
      curl_easy_getinfo(transfer->easy, CURLINFO_CONNECT_TIME_T, &connected_us);
      if (connected_us > 0) transfer->quiet_since_ms = now;
      return 0;
    }
    if (dlnow != transfer->received) {
      transfer->received = dlnow;
      transfer->quiet_since_ms = now;
      return 0;
    }
    if (now - transfer->quiet_since_ms < transfer->idle_timeout_ms) return 0;
    transfer->idle_timed_out = true;
    return 1;  // CURLE_ABORTED_BY_CALLBACK
  }

  static size_t OnBody(char* data, size_t size, size_t count, void* user) {
    Transfer* transfer = static_cast<Transfer*>(user);
    const size_t bytes = size * count;
    if (transfer->cancelled) return 0;  // makes libcurl end the transfer (CURLE_WRITE_ERROR)
    if (transfer->on_data) {
      if (transfer->stream_status == 0) {
        curl_easy_getinfo(transfer->easy, CURLINFO_RESPONSE_CODE, &transfer->stream_status);
      }
      if (transfer->stream_status >= 200 && transfer->stream_status < 300) {
        transfer->on_data(std::string_view(data, bytes));
        return transfer->cancelled ? 0 : bytes;
      }
    }
    if (transfer->response_body.size() + bytes > transfer->max_response_bytes) {
      transfer->response_too_large = true;
      return 0;
    }
    transfer->response_body.append(data, bytes);
    return bytes;
  }

  absl::Status Configure(const HttpRequest& request, Transfer& transfer) {
    CURL* easy = transfer.easy;
    CURLcode code = CURLE_OK;
    auto set = [&code](CURLcode result) {
      if (code == CURLE_OK) code = result;
    };
    set(curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str()));
    set(curl_easy_setopt(easy, CURLOPT_PRIVATE, &transfer));
    set(curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, transfer.error_buffer));
    set(curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L));
    set(curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https"));
    set(curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L));
    set(curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1)));
    set(curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, TransferTimeoutMillis(request.timeout)));
    if (request.connect_timeout > absl::ZeroDuration()) {
      set(curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                           TransferTimeoutMillis(request.connect_timeout)));
    }
    if (request.idle_timeout > absl::ZeroDuration()) {
      // curl's LOW_SPEED_* averages over several seconds (a 1 s limit trips after ~7 s); the
      // progress callback, called at least once a second, keeps the silence exact to a second.
      transfer.idle_timeout_ms = absl::ToInt64Milliseconds(request.idle_timeout);
      set(curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L));
      set(curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, &Impl::OnProgress));
      set(curl_easy_setopt(easy, CURLOPT_XFERINFODATA, &transfer));
    }
    set(curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Impl::OnBody));
    set(curl_easy_setopt(easy, CURLOPT_WRITEDATA, &transfer));
    if (!request.ca_file.empty()) {
      set(curl_easy_setopt(easy, CURLOPT_CAINFO, request.ca_file.c_str()));
    }
    if (!request.client_certificate_file.empty()) {
      set(curl_easy_setopt(easy, CURLOPT_SSLCERT, request.client_certificate_file.c_str()));
    }
    if (!request.client_key_file.empty()) {
      set(curl_easy_setopt(easy, CURLOPT_SSLKEY, request.client_key_file.c_str()));
    }
    if (request.insecure_skip_tls_verify) {
      set(curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L));
      set(curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L));
    }
    if (transfer.on_data) {
      // A stream may be silent for minutes; keepalive probes find a peer that vanished.
      set(curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L));
      set(curl_easy_setopt(easy, CURLOPT_TCP_KEEPIDLE, 30L));
      set(curl_easy_setopt(easy, CURLOPT_TCP_KEEPINTVL, 10L));
    }
    // libcurl copies neither the header list nor the body: both live in `transfer`.
    for (const std::string& header : request.headers) {
      curl_slist* appended = curl_slist_append(transfer.headers, header.c_str());
      if (appended == nullptr) return absl::ResourceExhaustedError("out of memory for headers");
      transfer.headers = appended;
    }
    // No "Expect: 100-continue" round trip for large bodies: token endpoints answer at once.
    curl_slist* appended = curl_slist_append(transfer.headers, "Expect:");
    if (appended == nullptr) return absl::ResourceExhaustedError("out of memory for headers");
    transfer.headers = appended;
    set(curl_easy_setopt(easy, CURLOPT_HTTPHEADER, transfer.headers));

    if (transfer.method == "GET") {
      set(curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L));
    } else if (transfer.method == "HEAD") {
      set(curl_easy_setopt(easy, CURLOPT_NOBODY, 1L));
    } else {
      if (transfer.method != "POST") {
        set(curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, transfer.method.c_str()));
      }
      if (transfer.method == "POST" || !transfer.request_body.empty()) {
        set(curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                             static_cast<curl_off_t>(transfer.request_body.size())));
        set(curl_easy_setopt(easy, CURLOPT_POSTFIELDS, transfer.request_body.data()));
      }
    }
    if (code != CURLE_OK) {
      return absl::InvalidArgumentError(
          StrCat(transfer.method, " ", transfer.url_for_errors, ": ", curl_easy_strerror(code)));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<HttpResponse> Result(Transfer& transfer, CURLcode code) {
    const std::string_view detail =
        transfer.error_buffer[0] != '\0' ? transfer.error_buffer : curl_easy_strerror(code);
    const std::string what = StrCat(transfer.method, " ", transfer.url_for_errors, ": ");
    if (code == CURLE_OK) {
      HttpResponse response;
      curl_easy_getinfo(transfer.easy, CURLINFO_RESPONSE_CODE, &response.status);
      // Streams' 2xx bodies went to on_data; response_body holds only other statuses' bodies.
      response.body = std::move(transfer.response_body);
      return response;
    }
    if (transfer.idle_timed_out) {
      return absl::DeadlineExceededError(
          StrCat(what, "no answer within ", transfer.idle_timeout_ms / 1000.0, " s (read timeout)"));
    }
    if (transfer.response_too_large) {
      return absl::UnavailableError(
          StrCat(what, "response larger than ", transfer.max_response_bytes, " bytes"));
    }
    switch (code) {
      case CURLE_OPERATION_TIMEDOUT:
        return absl::DeadlineExceededError(StrCat(what, detail));
      case CURLE_URL_MALFORMAT:
      case CURLE_UNSUPPORTED_PROTOCOL:
        return absl::InvalidArgumentError(StrCat(what, detail));
      case CURLE_OUT_OF_MEMORY:
        return absl::ResourceExhaustedError(StrCat(what, detail));
      default:
        return absl::UnavailableError(StrCat(what, detail));
    }
  }

  // Runs the callbacks of transfers libcurl reports done. Returns how many ran.
  size_t Finish() {
    size_t finished = 0;
    int queued = 0;
    while (CURLMsg* message = curl_multi_info_read(multi, &queued)) {
      if (message->msg != CURLMSG_DONE) continue;
      CURL* easy = message->easy_handle;
      const CURLcode code = message->data.result;
      Transfer* found = nullptr;
      curl_easy_getinfo(easy, CURLINFO_PRIVATE, &found);
      if (found == nullptr) continue;
      auto it = transfers.find(found->id);
      if (it == transfers.end() || it->second.get() != found) continue;
      std::unique_ptr<Transfer> transfer = std::move(it->second);
      transfers.erase(it);
      curl_multi_remove_handle(multi, easy);
      if (transfer->cancelled) {  // its id is still in `cancelled`; RemoveCancelled skips it
        --cancelled_count;
        continue;
      }
      absl::StatusOr<HttpResponse> result = Result(*transfer, code);
      Callback done = std::move(transfer->done);
      transfer.reset();  // before the callback, which may Start() the next request
      done(std::move(result));
      ++finished;
    }
    return finished;
  }

  size_t RunFailedEarly() {
    std::vector<RequestId> ids;
    ids.swap(failed_early);
    size_t ran = 0;
    for (RequestId id : ids) {
      auto it = transfers.find(id);
      if (it == transfers.end()) continue;  // cancelled
      std::unique_ptr<Transfer> transfer = std::move(it->second);
      transfers.erase(it);
      Callback done = std::move(transfer->done);
      absl::Status status = std::move(transfer->early_error);
      transfer.reset();
      done(std::move(status));
      ++ran;
    }
    return ran;
  }

  // Hands `transfer` to libcurl, or queues it: for the next Poll() when it cannot be added, for
  // the end of the current perform when inside one.
  void Add(Transfer& transfer) {
    if (!transfer.early_error.ok()) {
      transfer.state = Transfer::State::kFailedEarly;
      failed_early.push_back(transfer.id);
      return;
    }
    if (in_perform) {
      transfer.state = Transfer::State::kDeferred;
      deferred.push_back(transfer.id);
      return;
    }
    const CURLMcode added = curl_multi_add_handle(multi, transfer.easy);
    if (added != CURLM_OK) {
      transfer.early_error = absl::ResourceExhaustedError(
          StrCat(transfer.method, " ", transfer.url_for_errors, ": ", curl_multi_strerror(added)));
      transfer.state = Transfer::State::kFailedEarly;
      failed_early.push_back(transfer.id);
      return;
    }
    transfer.state = Transfer::State::kActive;
  }

  void AddDeferred() {
    std::vector<RequestId> ids;
    ids.swap(deferred);
    for (RequestId id : ids) {
      auto it = transfers.find(id);
      if (it != transfers.end()) Add(*it->second);
    }
  }

  void RemoveCancelled() {
    std::vector<RequestId> ids;
    ids.swap(cancelled);
    for (RequestId id : ids) {
      auto it = transfers.find(id);
      if (it == transfers.end()) continue;  // Finish() saw it end first
      curl_multi_remove_handle(multi, it->second->easy);
      transfers.erase(it);
      --cancelled_count;
    }
  }

  void Perform() {
    int running = 0;
    in_perform = true;
    curl_multi_perform(multi, &running);
    in_perform = false;
    RemoveCancelled();
    AddDeferred();
  }

  // Runs the timers due now; not those that callbacks schedule meanwhile. Returns how many ran.
  size_t RunDueTimers() {
    const int64_t now = now_ms();
    std::vector<RequestId> due;
    for (auto it = timers.begin(); it != timers.end() && it->first.first <= now; ++it) {
      due.push_back(it->first.second);
    }
    for (RequestId id : due) {
      auto when = timer_due.find(id);
      if (when == timer_due.end()) continue;  // cancelled by an earlier timer
      auto node = timers.extract({when->second, id});
      timer_due.erase(when);
      node.mapped()();
    }
    return due.size();
  }

  // How long Poll() may wait: `max_wait`, shortened to the earliest timer.
  absl::Duration Wait(absl::Duration max_wait) const {
    if (timers.empty()) return max_wait;
    // Whole milliseconds, as curl_multi_poll counts them.
    const absl::Duration left = absl::Milliseconds(timers.begin()->first.first - now_ms());
    return std::max(absl::ZeroDuration(), std::min(max_wait, left));
  }

  RequestId StartTransfer(HttpRequest request, DataCallback on_data, Callback done) {
    auto transfer = std::make_unique<Transfer>();
    Transfer& ref = *transfer;
    ref.id = ++last_id;
    ref.method = request.method.empty() ? std::string("GET") : std::move(request.method);
    ref.request_body = std::move(request.body);
    ref.url_for_errors = UrlForErrors(request.url);
    ref.max_response_bytes = request.max_response_bytes;
    ref.on_data = std::move(on_data);
    ref.done = std::move(done);
    ref.easy = curl_easy_init();
    ref.early_error = ref.easy == nullptr ? absl::ResourceExhaustedError("curl_easy_init failed")
                                          : Configure(request, ref);
    transfers.emplace(ref.id, std::move(transfer));
    Add(ref);
    return ref.id;
  }
};

HttpClient::HttpClient(HttpClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {
  GlobalInitOnce();
  impl_->multi = curl_multi_init();
  if (impl_->multi == nullptr) std::abort();
}

HttpClient::~HttpClient() {
  for (auto& [id, transfer] : impl_->transfers) {
    if (transfer->state == Transfer::State::kActive) {
      curl_multi_remove_handle(impl_->multi, transfer->easy);
    }
  }
  impl_->transfers.clear();
  curl_multi_cleanup(impl_->multi);
}

HttpClient::RequestId HttpClient::Start(HttpRequest request, Callback done) {
  return impl_->StartTransfer(std::move(request), nullptr, std::move(done));
}

HttpClient::RequestId HttpClient::StartStream(HttpRequest request, DataCallback on_data,
                                              Callback done) {
  if (!on_data) on_data = [](std::string_view) {};  // a stream is known by its data callback
  return impl_->StartTransfer(std::move(request), std::move(on_data), std::move(done));
}

HttpClient::RequestId HttpClient::StartTimer(absl::Duration delay, std::function<void()> fire) {
  const RequestId id = ++impl_->last_id;
  const int64_t due = impl_->now_ms() + DelayMs(delay);
  impl_->timers.emplace(std::make_pair(due, id), std::move(fire));
  impl_->timer_due.emplace(id, due);
  return id;
}

bool HttpClient::Cancel(RequestId id) {
  if (auto timer = impl_->timer_due.find(id); timer != impl_->timer_due.end()) {
    impl_->timers.erase({timer->second, id});
    impl_->timer_due.erase(timer);
    return true;
  }
  auto it = impl_->transfers.find(id);
  if (it == impl_->transfers.end() || it->second->cancelled) return false;
  Transfer& transfer = *it->second;
  if (transfer.state == Transfer::State::kActive) {
    if (impl_->in_perform) {
      // Possibly inside this very transfer's callback: keep its callbacks alive, mark it.
      transfer.cancelled = true;
      impl_->cancelled.push_back(id);
      ++impl_->cancelled_count;
      return true;
    }
    curl_multi_remove_handle(impl_->multi, transfer.easy);
  }
  impl_->transfers.erase(it);  // failed-early and deferred ids are skipped once erased
  return true;
}

void HttpClient::Poll(absl::Duration max_wait) {
  size_t finished = impl_->RunFailedEarly();
  finished += impl_->RunDueTimers();
  impl_->Perform();  // starts transfers added since the last Poll()
  finished += impl_->Finish();
  // Having run callbacks counts as activity: return without waiting so the caller sees them.
  // curl_multi_poll also returns early for libcurl's own timers and for a pending Wakeup().
  curl_multi_poll(impl_->multi, nullptr, 0, finished > 0 ? 0 : PollMillis(impl_->Wait(max_wait)),
                  nullptr);
  impl_->Perform();
  impl_->Finish();
  impl_->RunDueTimers();
}

void HttpClient::Wakeup() { curl_multi_wakeup(impl_->multi); }

size_t HttpClient::in_flight() const { return impl_->transfers.size() - impl_->cancelled_count; }

}  // namespace mailring::control
