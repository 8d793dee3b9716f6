// HttpClient: non-blocking HTTP(S) for the control thread, on libcurl's multi interface.
//
// One HttpClient belongs to one thread (the control thread): Start() and Poll() are called only
// there; Wakeup() may be called from any thread to end a Poll() early (curl_multi_wakeup), which
// is how workers' requests reach the control loop without it sleeping through them.
//
// Streams (StartStream) hand a 2xx response's body to a callback as the bytes arrive, for
// long-lived responses such as Kubernetes watches; Cancel() ends a request, stream or timer
// without running its callbacks; StartTimer() runs a callback from Poll() after a delay (retry
// backoff for the control thread's clients).
//
// Contract: requests and responses may carry secrets (Authorization headers, tokens in bodies);
// HttpClient never logs them. Transport errors are reported as Unavailable/DeadlineExceeded with
// libcurl's error text and the URL without its query string.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/clock.h"

namespace mailring::control {

// What a test may replace; the defaults are production's.
struct HttpClientOptions {
  // A monotonic clock in milliseconds for StartTimer()'s timers (a test drives the backoff of
  // the clients built on HttpClient with it). libcurl's own timeouts always run on real time.
  std::function<int64_t()> now_ms = core::MonotonicMs;
};

struct HttpRequest {
  std::string method = "GET";  // "GET", "POST", ...
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
  absl::Duration timeout = absl::Seconds(10);  // the whole transfer
  // Optional, zero: none of their own (the whole-transfer timeout still bounds them). connect:
  // TCP and TLS set-up; idle: the longest time without a byte from the server while waiting
  // (a socket read timeout, as SAP's SocketReadTimeoutInSeconds means it).
  absl::Duration connect_timeout = absl::ZeroDuration();
  absl::Duration idle_timeout = absl::ZeroDuration();
  std::string ca_file;                    // extra CA bundle for https, optional
  std::string client_certificate_file;    // PEM client certificate for https, optional
  std::string client_key_file;            // its PEM private key
  bool insecure_skip_tls_verify = false;  // development only (kubeconfig's option of that name)
  // A larger response body fails the request (Unavailable). Stream bodies (2xx) are not bounded
  // here: the data callback sees them piece by piece and bounds what it keeps.
  size_t max_response_bytes = size_t{1} << 20;
};

struct HttpResponse {
  long status = 0;
  std::string body;
};

class HttpClient {
 public:
  using Callback = std::function<void(absl::StatusOr<HttpResponse>)>;
  using DataCallback = std::function<void(std::string_view chunk)>;
  // Names a request, stream or timer for Cancel(). Never 0; never reused by one HttpClient.
  using RequestId = uint64_t;

  explicit HttpClient(HttpClientOptions options = {});
  ~HttpClient();  // aborts requests in flight without calling their callbacks
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Queues the request; `done` runs later inside Poll() on this thread, never inside Start().
  RequestId Start(HttpRequest request, Callback done);

  // Like Start(), for long-lived responses. If the status is 2xx, `on_data` receives the body in
  // pieces as they arrive (pieces split anywhere, even inside a UTF-8 sequence) and `done` gets
  // the status with an empty body when the stream ends; any other status's body is collected, as
  // Start() does, into the response given to `done`. A stream that breaks after its status
  // ends with a transport error (e.g. Unavailable "transfer closed with outstanding read data").
  // For streams that may stay silent, set request.timeout to the server's own end-of-stream
  // time plus a margin (or InfiniteDuration); TCP keepalive detects a vanished peer.
  // `on_data` runs inside Poll(); it may call Start(), StartStream(), StartTimer() and Cancel()
  // (any id, its own included: no more data and no `done` then), but not Poll() or ~HttpClient.
  RequestId StartStream(HttpRequest request, DataCallback on_data, Callback done);

  // Runs `fire` inside the first Poll() at or after `delay` from now. Poll() shortens its wait
  // to the earliest timer.
  RequestId StartTimer(absl::Duration delay, std::function<void()> fire);

  // Ends the request, stream or timer: none of its callbacks runs afterwards, and its
  // connection is closed (at the end of the current Poll() step when called from a callback).
  // Returns false when `id` is unknown, finished already or was cancelled before.
  bool Cancel(RequestId id);

  // Waits up to `max_wait` (less when a timer is due sooner) for network activity or Wakeup(),
  // then drives transfers and runs the callbacks of those that finished and of due timers. Returns
  // at once when nothing is in flight and a Wakeup() is pending.
  void Poll(absl::Duration max_wait);

  // Thread-safe: makes the current or next Poll() return early.
  void Wakeup();

  // Requests and streams started and not yet finished or cancelled (timers are not counted).
  size_t in_flight() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mailring::control
