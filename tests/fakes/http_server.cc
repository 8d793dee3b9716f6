#include "tests/fakes/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "proto/percent_encoding.h"

namespace mailring::fakes {
namespace {

// How often a blocked connection thread looks at the stop flag.
constexpr int kSliceMs = 100;

absl::string_view AsAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string ChunkOf(std::string_view data) {
  char size[20];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return absl::StrCat(size, AsAbsl(data), "\r\n");
}

std::optional<std::string> Decode(std::string_view text, proto::PercentStyle style) {
  return proto::PercentDecode(text, style);
}

// What parsing the buffered bytes gave.
struct Parse {
  enum class Outcome { kIncomplete, kComplete, kError } outcome = Outcome::kIncomplete;
  bool head_complete = false;  // `request`'s head fields are filled
  size_t consumed = 0;         // bytes of the buffer the request took (kComplete)
  int error_status = 0;        // kError
  std::string error_message;
};

Parse Error(int status, std::string message) {
  Parse parse;
  parse.outcome = Parse::Outcome::kError;
  parse.error_status = status;
  parse.error_message = std::move(message);
  return parse;
}

// Fills the head fields of `request` from `head` (request line and header lines); an error
// message when malformed.
std::optional<std::string> ParseHead(std::string_view head, HttpRequest* request) {
  std::vector<absl::string_view> lines = absl::StrSplit(AsAbsl(head), "\r\n");
  std::vector<absl::string_view> parts = absl::StrSplit(lines[0], ' ');
  if (parts.size() != 3 || !absl::StartsWith(parts[2], "HTTP/1.") || parts[0].empty() ||
      parts[1].empty()) {
    return "malformed request line";
  }
  request->head = std::string(head);
  request->method = std::string(parts[0]);
  if (!ParseRequestTarget(std::string_view(parts[1].data(), parts[1].size()), request)) {
    return "malformed escape in the path";
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos || colon == 0) return "malformed header line";
    request->headers[absl::AsciiStrToLower(absl::StripAsciiWhitespace(lines[i].substr(0, colon)))] =
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
  }
  request->keep_alive = parts[2] == "HTTP/1.1";
  const std::string connection = absl::AsciiStrToLower(request->Header("connection"));
  if (connection == "close") request->keep_alive = false;
  if (connection == "keep-alive") request->keep_alive = true;
  return std::nullopt;
}

// Decodes a chunked body that starts at `at` in `in`; kIncomplete until the last chunk and the
// trailer section are there.
Parse ParseChunked(std::string_view in, size_t at, size_t max_bytes, std::string* body) {
  body->clear();
  while (true) {
    const size_t line_end = in.find("\r\n", at);
    if (line_end == std::string_view::npos) {
      if (in.size() - at > 64) return Error(400, "malformed chunk size");
      return Parse{};
    }
    std::string_view size_text = in.substr(at, line_end - at);
    size_text = size_text.substr(0, size_text.find(';'));  // chunk extensions are ignored
    uint64_t size = 0;
    if (size_text.empty() || size_text.size() > 15 ||
        !absl::SimpleHexAtoi(absl::StripAsciiWhitespace(AsAbsl(size_text)), &size)) {
      return Error(400, "malformed chunk size");
    }
    if (body->size() + size > max_bytes) return Error(413, "request body too large");
    at = line_end + 2;
    if (size == 0) {
      // Trailer fields, ignored, up to the empty line.
      while (true) {
        const size_t end = in.find("\r\n", at);
        if (end == std::string_view::npos) {
          if (in.size() - at > max_bytes) return Error(431, "trailers too large");
          return Parse{};
        }
        if (end == at) {
          Parse parse;
          parse.outcome = Parse::Outcome::kComplete;
          parse.consumed = end + 2;
          return parse;
        }
        at = end + 2;
      }
    }
    if (in.size() < at + size + 2) return Parse{};
    if (in.substr(at + size, 2) != "\r\n") return Error(400, "malformed chunk");
    body->append(in.substr(at, size));
    at += size + 2;
  }
}

// Parses the request at the start of `in`.
Parse ParseRequest(std::string_view in, size_t max_bytes, HttpRequest* request) {
  const size_t head_end = in.find("\r\n\r\n");
  if (head_end == std::string_view::npos) {
    if (in.size() > max_bytes) return Error(431, "request head too large");
    return Parse{};
  }
  if (head_end > max_bytes) return Error(431, "request head too large");
  *request = HttpRequest();
  if (std::optional<std::string> error = ParseHead(in.substr(0, head_end), request)) {
    return Error(400, *error);
  }
  const size_t body_at = head_end + 4;
  Parse parse;
  if (const std::string te = absl::AsciiStrToLower(request->Header("transfer-encoding"));
      !te.empty()) {
    if (te != "chunked") return Error(501, "only the chunked transfer coding is served");
    parse = ParseChunked(in, body_at, max_bytes, &request->body);
  } else {
    size_t length = 0;
    if (const std::string text = request->Header("content-length");
        !text.empty() && !absl::SimpleAtoi(text, &length)) {
      return Error(400, "malformed Content-Length");
    }
    if (length > max_bytes) return Error(413, "request body too large");
    if (in.size() >= body_at + length) {
      request->body = std::string(in.substr(body_at, length));
      parse.outcome = Parse::Outcome::kComplete;
      parse.consumed = body_at + length;
    }
  }
  parse.head_complete = true;
  return parse;
}

// Reads what is there within one slice: -1 closed or failed, 0 nothing yet, 1 appended.
int ReadSlice(int fd, std::string* in) {
  pollfd p{fd, POLLIN, 0};
  const int ready = poll(&p, 1, kSliceMs);
  if (ready < 0) return errno == EINTR ? 0 : -1;
  if (ready == 0) return 0;
  char buffer[16384];
  const ssize_t n = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
  if (n <= 0) return -1;
  in->append(buffer, static_cast<size_t>(n));
  return 1;
}

}  // namespace

bool ParseRequestTarget(std::string_view target, HttpRequest* request) {
  request->target = std::string(target);
  const size_t question = target.find('?');
  std::optional<std::string> path =
      Decode(target.substr(0, question), proto::PercentStyle::kUriComponent);
  if (!path.has_value()) return false;
  request->path = *std::move(path);
  request->query_string.clear();
  request->query.clear();
  if (question == std::string_view::npos) return true;
  request->query_string = std::string(target.substr(question + 1));
  for (absl::string_view pair : absl::StrSplit(request->query_string, '&', absl::SkipEmpty())) {
    const size_t eq = pair.find('=');
    std::optional<std::string> name = Decode(
        std::string_view(pair.data(), std::min(eq, pair.size())), proto::PercentStyle::kForm);
    std::optional<std::string> value = std::string();
    if (eq != absl::string_view::npos) {
      absl::string_view raw = pair.substr(eq + 1);
      value = Decode(std::string_view(raw.data(), raw.size()), proto::PercentStyle::kForm);
    }
    if (name.has_value() && value.has_value()) request->query[*name] = *std::move(value);
  }
  return true;
}

std::string HttpRequest::Header(std::string_view lower_case_name) const {
  auto it = headers.find(std::string(lower_case_name));
  return it == headers.end() ? "" : it->second;
}

std::string HttpRequest::Query(std::string_view name) const {
  auto it = query.find(std::string(name));
  return it == query.end() ? "" : it->second;
}

std::string_view HttpReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 422:
      return "Unprocessable Entity";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
  }
  return "Status";
}

// ---- HttpStream ------------------------------------------------------------------------------

bool HttpStream::SendHead() {
  if (head_sent_) return true;
  head_sent_ = true;
  return head_.empty() || SendAll(fd_, head_);
}

bool HttpStream::Write(std::string_view data) {
  if (stopping() || !SendHead()) return false;
  return data.empty() || SendAll(fd_, ChunkOf(data));
}

bool HttpStream::WriteRaw(std::string_view bytes) {
  if (stopping() || !SendHead()) return false;
  return SendAll(fd_, bytes);
}

bool HttpStream::PeerOpen() const {
  pollfd p{fd_, POLLIN | POLLRDHUP, 0};
  if (poll(&p, 1, 0) <= 0) return true;
  if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) return false;
  char byte;
  const ssize_t n = recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
}

bool HttpStream::WaitPeerClosed(absl::Duration limit) const {
  const absl::Time deadline = absl::Now() + limit;
  while (!stopping() && absl::Now() < deadline) {
    if (!PeerOpen()) return true;
    pollfd p{fd_, POLLIN | POLLRDHUP, 0};
    poll(&p, 1, 20);
  }
  return !PeerOpen();
}

// ---- HttpServer ------------------------------------------------------------------------------

// One accepted socket and its thread. `fd` is closed by the thread when it ends, under mutex_,
// so Stop() never shuts down a reused descriptor; `done` lets the acceptor join the thread.
struct HttpServer::Connection {
  int fd = -1;
  std::thread thread;
  std::atomic<bool> done{false};
};

HttpServer::HttpServer(HttpHandler handler) : HttpServer(std::move(handler), Options()) {}

HttpServer::HttpServer(HttpHandler handler, Options options)
    : handler_(std::move(handler)), options_(std::move(options)) {}

HttpServer::~HttpServer() { Stop(); }

std::string HttpServer::Url() const { return absl::StrCat("http://127.0.0.1:", port()); }

bool HttpServer::running() const { return acceptor_.joinable() && !stopping_.load(); }

int HttpServer::open_connections() const {
  absl::MutexLock lock(&mutex_);
  int open = 0;
  for (const auto& connection : connections_) open += connection->done.load() ? 0 : 1;
  return open;
}

absl::Status HttpServer::Start(uint16_t port) {
  if (acceptor_.joinable()) return absl::FailedPreconditionError("the server is running");
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  socklen_t length = sizeof address;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      listen(fd, 128) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const int error = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("listen on 127.0.0.1:", port, ": ", std::strerror(error)));
  }
  if (pipe2(wake_fds_, O_CLOEXEC | O_NONBLOCK) != 0) {
    const int error = errno;
    close(fd);
    return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(error)));
  }
  listen_fd_ = fd;
  port_.store(ntohs(address.sin_port));
  stopping_.store(false);
  acceptor_ = std::thread([this] { AcceptLoop(); });
  return absl::OkStatus();
}

void HttpServer::Stop() {
  if (!acceptor_.joinable()) return;
  stopping_.store(true);
  char byte = 1;
  (void)!write(wake_fds_[1], &byte, 1);
  acceptor_.join();
  std::vector<std::unique_ptr<Connection>> connections;
  {
    absl::MutexLock lock(&mutex_);
    for (auto& connection : connections_) {
      if (connection->fd >= 0) shutdown(connection->fd, SHUT_RDWR);
    }
    connections.swap(connections_);
  }
  for (auto& connection : connections) connection->thread.join();
  close(listen_fd_);
  listen_fd_ = -1;
  for (int& fd : wake_fds_) {
    close(fd);
    fd = -1;
  }
}

void HttpServer::ReapLocked() {
  for (auto it = connections_.begin(); it != connections_.end();) {
    if ((*it)->done.load()) {
      (*it)->thread.join();
      it = connections_.erase(it);
    } else {
      ++it;
    }
  }
}

void HttpServer::AcceptLoop() {
  while (!stopping_.load()) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fds_[0], POLLIN, 0}};
    const int ready = poll(fds, 2, 1000);
    if (stopping_.load()) return;
    {
      absl::MutexLock lock(&mutex_);
      ReapLocked();
    }
    if (ready <= 0 || !(fds[0].revents & POLLIN)) continue;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    const int64_t send_us = absl::ToInt64Microseconds(options_.send_timeout);
    timeval send_timeout{static_cast<time_t>(send_us / 1000000),
                         static_cast<suseconds_t>(send_us % 1000000)};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
    absl::MutexLock lock(&mutex_);
    if (static_cast<int>(connections_.size()) >= options_.max_connections) {
      close(fd);
      continue;
    }
    auto connection = std::make_unique<Connection>();
    connection->fd = fd;
    Connection* raw = connection.get();
    connection->thread = std::thread([this, raw] { Serve(raw); });
    connections_.push_back(std::move(connection));
  }
}

bool HttpServer::SendError(int fd, int status, std::string_view message) {
  HttpResponse response;
  if (options_.error_response) {
    response = options_.error_response(status, message);
  } else {
    response.status = status;
    response.headers = {{"Content-Type", "text/plain; charset=utf-8"}};
    response.body = std::string(message);
  }
  response.stream = nullptr;
  Send(fd, response, /*keep_alive=*/false);
  return false;
}

bool HttpServer::Send(int fd, const HttpResponse& response, bool keep_alive) {
  std::string out = absl::StrCat("HTTP/1.1 ", response.status, " ",
                                 AsAbsl(HttpReasonPhrase(response.status)), "\r\n");
  for (const auto& [name, value] : response.headers)
    absl::StrAppend(&out, name, ": ", value, "\r\n");
  absl::StrAppend(&out, "Content-Length: ", response.body.size(), "\r\n",
                  keep_alive ? "" : "Connection: close\r\n", "\r\n", response.body);
  return SendAll(fd, out) && keep_alive;
}

void HttpServer::Serve(Connection* connection) {
  const int fd = connection->fd;
  std::string in;
  absl::Time idle_since = absl::Now();
  bool sent_continue = false;
  while (!stopping_.load()) {
    HttpRequest request;
    const Parse parse = ParseRequest(in, options_.max_request_bytes, &request);
    if (parse.outcome == Parse::Outcome::kError) {
      SendError(fd, parse.error_status, parse.error_message);
      break;
    }
    if (parse.outcome == Parse::Outcome::kIncomplete) {
      if (parse.head_complete && !sent_continue &&
          absl::EqualsIgnoreCase(request.Header("expect"), "100-continue")) {
        sent_continue = true;
        if (!SendAll(fd, "HTTP/1.1 100 Continue\r\n\r\n")) break;
      }
      const int read = ReadSlice(fd, &in);
      if (read < 0) break;
      if (read == 0 && in.empty() && absl::Now() - idle_since > options_.idle_timeout) break;
      continue;
    }
    in.erase(0, parse.consumed);
    sent_continue = false;

    HttpResponse response = handler_(request);
    if (!response.stream) {
      if (!Send(fd, response, request.keep_alive)) break;
    } else {
      std::string head;
      if (!response.raw_stream) {
        head = absl::StrCat("HTTP/1.1 ", response.status, " ",
                            AsAbsl(HttpReasonPhrase(response.status)), "\r\n");
        for (const auto& [name, value] : response.headers) {
          absl::StrAppend(&head, name, ": ", value, "\r\n");
        }
        head += "Transfer-Encoding: chunked\r\n\r\n";
      }
      HttpStream stream(fd, std::move(head), &stopping_);
      if (response.stream(stream) == HttpResponse::StreamEnd::kAbort) {
        shutdown(fd, SHUT_RDWR);
        break;
      }
      if (response.raw_stream) {
        if (!request.keep_alive) break;
      } else if (!stream.SendHead() || !SendAll(fd, "0\r\n\r\n") || !request.keep_alive) {
        break;
      }
    }
    idle_since = absl::Now();
  }
  absl::MutexLock lock(&mutex_);
  close(fd);
  connection->fd = -1;
  connection->done.store(true);
}

}  // namespace mailring::fakes
