// HttpClient: non-blocking HTTP(S) for the control thread, on libcurl's multi interface.
//
// One HttpClient belongs to one thread (the control thread): Start() and Poll() are called only
// there; Wakeup() may be called from any thread to end a Poll() early (curl_multi_wakeup), which
// is how workers' requests reach the control loop without it sleeping through them.
//
// Contract: requests and responses may carry secrets (Authorization headers, tokens in bodies);
// HttpClient never logs them. Transport errors are reported as Unavailable/DeadlineExceeded with
// libcurl's error text and the URL without its query string.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace mailring::control {

struct HttpRequest {
  std::string method = "GET";  // "GET", "POST", ...
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
  absl::Duration timeout = absl::Seconds(10);
  std::string ca_file;  // extra CA bundle for https, optional
};

struct HttpResponse {
  long status = 0;
  std::string body;
};

class HttpClient {
 public:
  using Callback = std::function<void(absl::StatusOr<HttpResponse>)>;

  HttpClient();
  ~HttpClient();  // aborts requests in flight without calling their callbacks
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Queues the request; `done` runs later inside Poll() on this thread.
  void Start(HttpRequest request, Callback done);

  // Waits up to `max_wait` for network activity or Wakeup(), then drives transfers and runs the
  // callbacks of those that finished. Returns at once when nothing is in flight and a Wakeup()
  // is pending.
  void Poll(absl::Duration max_wait);

  // Thread-safe: makes the current or next Poll() return early.
  void Wakeup();

  size_t in_flight() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mailring::control
