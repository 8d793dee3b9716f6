// HttpClient on libcurl's multi interface: one easy handle per request, found again through
// CURLOPT_PRIVATE when it completes; curl_multi_poll waits, curl_multi_wakeup interrupts it.
//
// Every transfer is HTTP/1.1 over http or https only, follows no redirect (a token endpoint that
// redirects is misconfigured, and following one would resend the client credentials), never
// raises signals (CURLOPT_NOSIGNAL: the control thread shares the process with workers), and is
// bounded by its request's timeout and kMaxResponseBytes.
#include "control/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <mutex>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "proto/str_cat.h"

namespace mailring::control {
namespace {

// Token responses are a few hundred bytes; anything near this is not a token endpoint.
constexpr size_t kMaxResponseBytes = 1 << 20;

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
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string method;
  std::string request_body;
  std::string url_for_errors;
  std::string response_body;
  bool response_too_large = false;
  char error_buffer[CURL_ERROR_SIZE] = {};
  HttpClient::Callback done;

  ~Transfer() {
    if (easy != nullptr) curl_easy_cleanup(easy);
    if (headers != nullptr) curl_slist_free_all(headers);
  }
};

}  // namespace

struct HttpClient::Impl {
  CURLM* multi = nullptr;
  // Requests added to `multi`, keyed by their easy handle.
  absl::flat_hash_map<CURL*, std::unique_ptr<Transfer>> transfers;
  // Requests that failed before reaching libcurl; their callbacks run in the next Poll().
  std::vector<std::pair<Callback, absl::Status>> failed_early;

  static size_t OnBody(char* data, size_t size, size_t count, void* user) {
    Transfer* transfer = static_cast<Transfer*>(user);
    const size_t bytes = size * count;
    if (transfer->response_body.size() + bytes > kMaxResponseBytes) {
      transfer->response_too_large = true;
      return 0;  // makes libcurl end the transfer with CURLE_WRITE_ERROR
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
    set(curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Impl::OnBody));
    set(curl_easy_setopt(easy, CURLOPT_WRITEDATA, &transfer));
    if (!request.ca_file.empty()) {
      set(curl_easy_setopt(easy, CURLOPT_CAINFO, request.ca_file.c_str()));
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
      response.body = std::move(transfer.response_body);
      return response;
    }
    if (transfer.response_too_large) {
      return absl::UnavailableError(
          StrCat(what, "response larger than ", kMaxResponseBytes, " bytes"));
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
      auto it = transfers.find(easy);
      if (it == transfers.end()) continue;
      std::unique_ptr<Transfer> transfer = std::move(it->second);
      transfers.erase(it);
      curl_multi_remove_handle(multi, easy);
      absl::StatusOr<HttpResponse> result = Result(*transfer, code);
      Callback done = std::move(transfer->done);
      transfer.reset();  // before the callback, which may Start() the next request
      done(std::move(result));
      ++finished;
    }
    return finished;
  }

  size_t RunFailedEarly() {
    std::vector<std::pair<Callback, absl::Status>> failed;
    failed.swap(failed_early);
    for (auto& [done, status] : failed) done(std::move(status));
    return failed.size();
  }

  void Perform() {
    int running = 0;
    curl_multi_perform(multi, &running);
  }
};

HttpClient::HttpClient() : impl_(std::make_unique<Impl>()) {
  GlobalInitOnce();
  impl_->multi = curl_multi_init();
  if (impl_->multi == nullptr) std::abort();
}

HttpClient::~HttpClient() {
  for (auto& [easy, transfer] : impl_->transfers) curl_multi_remove_handle(impl_->multi, easy);
  impl_->transfers.clear();
  curl_multi_cleanup(impl_->multi);
}

void HttpClient::Start(HttpRequest request, Callback done) {
  auto transfer = std::make_unique<Transfer>();
  transfer->method = request.method.empty() ? std::string("GET") : std::move(request.method);
  transfer->request_body = std::move(request.body);
  transfer->url_for_errors = UrlForErrors(request.url);
  transfer->done = std::move(done);
  transfer->easy = curl_easy_init();
  absl::Status status = transfer->easy == nullptr
                            ? absl::ResourceExhaustedError("curl_easy_init failed")
                            : impl_->Configure(request, *transfer);
  if (status.ok()) {
    const CURLMcode added = curl_multi_add_handle(impl_->multi, transfer->easy);
    if (added != CURLM_OK) {
      status = absl::ResourceExhaustedError(StrCat(transfer->method, " ", transfer->url_for_errors,
                                                   ": ", curl_multi_strerror(added)));
    }
  }
  if (!status.ok()) {
    impl_->failed_early.emplace_back(std::move(transfer->done), std::move(status));
    return;
  }
  CURL* easy = transfer->easy;
  impl_->transfers.emplace(easy, std::move(transfer));
}

void HttpClient::Poll(absl::Duration max_wait) {
  size_t finished = impl_->RunFailedEarly();
  impl_->Perform();  // starts transfers added since the last Poll()
  finished += impl_->Finish();
  // Having run callbacks counts as activity: return without waiting so the caller sees them.
  // curl_multi_poll also returns early for libcurl's own timers and for a pending Wakeup().
  curl_multi_poll(impl_->multi, nullptr, 0, finished > 0 ? 0 : PollMillis(max_wait), nullptr);
  impl_->Perform();
  impl_->Finish();
}

void HttpClient::Wakeup() { curl_multi_wakeup(impl_->multi); }

size_t HttpClient::in_flight() const {
  return impl_->transfers.size() + impl_->failed_early.size();
}

}  // namespace mailring::control
