// HttpServer: the one HTTP/1.1 server of the test fakes (OAuth, Destination service, Kubernetes
// API) and of the scripted servers in tests/control. Plain HTTP on 127.0.0.1 (no fake speaks TLS),
// port 0 or a given port, Stop() and Start() again on the same port.
//
// Requests: keep-alive (HTTP/1.1 by default, HTTP/1.0 with "Connection: keep-alive"), bodies by
// Content-Length or chunked, "Expect: 100-continue" answered before the body is read. The path
// is percent-decoded as a URI component, the query as a form ("+" is a space), both with
// proto/percent_encoding. A request whose head or body is larger than
// Options::max_request_bytes is answered 431 or 413, a malformed one 400, an unknown
// Transfer-Encoding 501; each of these closes the connection.
//
// Answers: the handler returns an HttpResponse. Without `stream` it is sent with a
// Content-Length. With `stream` the head goes out with "Transfer-Encoding: chunked" at the
// stream's first write, and `stream` runs on the connection's thread, writing chunks as it
// likes (watches); it ends the response cleanly (last chunk) or abruptly (the socket is shut
// down mid-stream, as when a connection breaks).
//
// Threads: one acceptor, one thread per connection (at most Options::max_connections; more are
// closed at once). Every wait is bounded: reads and peer checks poll in slices and look at the
// stop flag, so Stop() (shut down every socket, join every thread) returns promptly as long as
// the handlers' own waits are bounded or are woken by the fake first. The handler may run on
// several threads at once. Every public method is thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace mailring::fakes {

struct HttpRequest {
  std::string method;
  std::string target;        // as sent
  std::string path;          // the target's path, percent-decoded
  std::string query_string;  // the target's query, as sent
  // The query's parameters decoded; a pair with a bad escape is skipped, a repeated name keeps
  // the last value.
  std::map<std::string, std::string> query;
  // Header names lower-case, values trimmed; a repeated header keeps the last value.
  std::map<std::string, std::string> headers;
  std::string head;  // request line and header lines as received, without the blank line
  std::string body;  // de-chunked
  bool keep_alive = true;

  std::string Header(std::string_view lower_case_name) const;  // "" when absent
  std::string Query(std::string_view name) const;              // "" when absent
};

// The connection of a streamed answer, for HttpResponse::stream. Used on the connection's thread
// only.
class HttpStream {
 public:
  // Sends the head (first call only; none for a raw stream), then `data` as one chunk (nothing
  // for ""); false when the peer is gone or the server stops.
  bool Write(std::string_view data);
  // Sends the head (first call only), then `bytes` as they are: for scripted faults such as a
  // chunk cut in the middle.
  bool WriteRaw(std::string_view bytes);
  // Whether the peer still has the connection open; never waits.
  bool PeerOpen() const;
  // Waits until the peer closes the connection (true), `limit` passes or the server stops.
  bool WaitPeerClosed(absl::Duration limit) const;
  bool stopping() const { return stopping_->load(); }

 private:
  friend class HttpServer;
  HttpStream(int fd, std::string head, const std::atomic<bool>* stopping)
      : fd_(fd), head_(std::move(head)), stopping_(stopping) {}
  bool SendHead();

  int fd_;
  std::string head_;
  bool head_sent_ = false;
  const std::atomic<bool>* stopping_;
};

struct HttpResponse {
  enum class StreamEnd { kComplete, kAbort };

  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;  // besides Content-Length etc.
  std::string body;                                          // unused when streaming
  // When set, the answer is streamed (see the file comment). kComplete sends the head if no
  // write did, then the last chunk; kAbort shuts the connection down without either.
  std::function<StreamEnd(HttpStream&)> stream;
  // With `stream`: the stream writes the whole answer itself, head included (WriteRaw), and
  // kComplete sends nothing more. For scripted servers that answer malformed HTTP on purpose.
  bool raw_stream = false;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// Fills `request`'s target, path, query_string and query from a request target as sent; false
// on a bad escape in the path. For fakes that also answer in-process requests.
bool ParseRequestTarget(std::string_view target, HttpRequest* request);

// "OK", "Not Found", ...; "Status" for a code it does not know.
std::string_view HttpReasonPhrase(int status);

class HttpServer {
 public:
  struct Options {
    size_t max_request_bytes = 1 << 20;  // head and body each
    int max_connections = 128;
    absl::Duration idle_timeout = absl::Seconds(120);  // a keep-alive connection idle this long
    absl::Duration send_timeout = absl::Seconds(10);   // one blocked send() at most
    // The answers the server gives by itself (400, 413, 431, 501): text/plain `message` unless
    // set (the Kubernetes fake answers metav1.Status objects).
    std::function<HttpResponse(int status, std::string_view message)> error_response;
  };

  explicit HttpServer(HttpHandler handler);
  HttpServer(HttpHandler handler, Options options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Listens on 127.0.0.1:port (0: any free port) and serves until Stop(). FailedPrecondition
  // when already running.
  absl::Status Start(uint16_t port = 0);
  // Closes the listener and every connection, joins every thread; idempotent. port() keeps the
  // last port, so Start(port()) brings the server back where it was.
  void Stop();
  bool running() const;

  uint16_t port() const { return port_.load(); }
  std::string Url() const;  // http://127.0.0.1:<port>
  int open_connections() const;

 private:
  struct Connection;

  void AcceptLoop();
  void Serve(Connection* connection);
  // Sends one non-streamed answer; false when the connection must be closed.
  bool Send(int fd, const HttpResponse& response, bool keep_alive);
  bool SendError(int fd, int status, std::string_view message);
  void ReapLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const HttpHandler handler_;
  const Options options_;
  std::atomic<uint16_t> port_{0};
  std::atomic<bool> stopping_{false};
  int listen_fd_ = -1;
  int wake_fds_[2] = {-1, -1};  // wakes the acceptor's poll on Stop()
  std::thread acceptor_;

  mutable absl::Mutex mutex_;
  std::vector<std::unique_ptr<Connection>> connections_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace mailring::fakes
