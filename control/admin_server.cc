#include "control/admin_server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/log.h"
#include "proto/str_cat.h"

namespace mailring::control {
namespace {

constexpr size_t kMaxRequestBytes = 8 * 1024;
constexpr int kRequestTimeoutMs = 2000;
constexpr int kResponseTimeoutMs = 2000;

// Writes `bytes` within kResponseTimeoutMs: a scraper that stops reading costs the admin thread
// at most that long, never a hang (the socket is non-blocking, each wait is a bounded poll).
void SendAll(int fd, std::string_view bytes) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(kResponseTimeoutMs);
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) return;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return;
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) != 1) return;
  }
}

// A response; for HEAD (RFC 9110 9.3.2) the same head without the body.
std::string Response(bool head_only, int status, std::string_view reason,
                     std::string_view content_type, std::string_view body) {
  return mailring::StrCat("HTTP/1.1 ", status, " ", reason, "\r\nContent-Type: ", content_type,
                          "\r\nContent-Length: ", body.size(),
                          "\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n",
                          head_only ? std::string_view() : body);
}

}  // namespace

AdminServer::AdminServer(core::SocketAddress listen, Handlers handlers)
    : listen_(listen), handlers_(std::move(handlers)) {}

AdminServer::~AdminServer() {
  Stop();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

absl::Status AdminServer::Start() {
  listen_fd_ = ::socket(listen_.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (listen_fd_ < 0 || ::bind(listen_fd_, listen_.get(), listen_.length) != 0 ||
      ::listen(listen_fd_, 64) != 0) {
    return absl::UnavailableError(mailring::StrCat("admin endpoint: cannot listen on ",
                                                   listen_.ToString(), ": ",
                                                   std::strerror(errno)));
  }
  core::SocketAddress bound;
  bound.length = sizeof(bound.storage);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound.storage), &bound.length);
  port_ = bound.port();
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void AdminServer::Stop() {
  if (!thread_.joinable()) return;
  const uint64_t one = 1;
  (void)!::write(stop_fd_, &one, sizeof(one));
  thread_.join();
}

void AdminServer::Run() {
  core::SetLogThreadName("admin");
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(fds, 2, 1000) < 0 && errno != EINTR) return;
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    Serve(fd);
    ::close(fd);
  }
}

void AdminServer::Serve(int fd) {
  // Read the request head (bounded in size and time); only the request line matters.
  std::string request;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kRequestTimeoutMs);
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < kMaxRequestBytes) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) != 1) return;
    char buffer[1024];
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) return;
    request.append(buffer, static_cast<size_t>(n));
  }
  const size_t line_end = request.find("\r\n");
  const std::string line = request.substr(0, line_end);
  const size_t first_space = line.find(' ');
  const size_t second_space = line.find(' ', first_space + 1);
  if (first_space == std::string::npos || second_space == std::string::npos) {
    SendAll(fd, Response(false, 400, "Bad Request", "text/plain", "bad request\n"));
    return;
  }
  const std::string method = line.substr(0, first_space);
  std::string path = line.substr(first_space + 1, second_space - first_space - 1);
  path = path.substr(0, path.find('?'));
  if (method != "GET" && method != "HEAD") {
    SendAll(fd, Response(false, 405, "Method Not Allowed", "text/plain", "GET or HEAD only\n"));
    return;
  }
  const bool head_only = method == "HEAD";
  if (path == "/healthz" || path == "/livez") {
    SendAll(fd, Response(head_only, 200, "OK", "text/plain", "ok\n"));
  } else if (path == "/readyz") {
    const std::string why = handlers_.readiness ? handlers_.readiness() : std::string();
    SendAll(fd, why.empty() ? Response(head_only, 200, "OK", "text/plain", "ready\n")
                            : Response(head_only, 503, "Service Unavailable", "text/plain",
                                       mailring::StrCat("not ready: ", why, "\n")));
  } else if (path == "/metrics") {
    SendAll(fd, Response(head_only, 200, "OK", "text/plain; version=0.0.4",
                         handlers_.metrics ? handlers_.metrics() : std::string()));
  } else {
    SendAll(fd, Response(head_only, 404, "Not Found", "text/plain",
                         "try /healthz, /readyz, /metrics\n"));
  }
}

}  // namespace mailring::control
