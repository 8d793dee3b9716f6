// What the Worker tests (worker_test, worker_oauth_test, worker_relay_faults_test) share: a
// one-route table on loopback, a fixture that starts the worker and drains it at the end,
// clients that connect to it, and bounded waits on state the test can observe.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "core/worker.h"
#include "gtest/gtest.h"
#include "tests/core/scripted_upstream.h"

namespace mailring::testing {

// A route 127.0.0.1:<listen_port> → 127.0.0.1:<upstream_port> for destination `name`, logging
// in on the client's behalf as carol with password "secret"; a test changes what it needs.
inline std::shared_ptr<core::Route> LoopbackRoute(uint16_t listen_port, uint16_t upstream_port,
                                                  const std::string& name,
                                                  const std::string& route_label = "test") {
  auto route = std::make_shared<core::Route>();
  route->listen = *core::SocketAddress::ParseNumeric("127.0.0.1:" + std::to_string(listen_port));
  route->upstream =
      *core::SocketAddress::ParseNumeric("127.0.0.1:" + std::to_string(upstream_port));
  route->destination.name = name;
  route->destination.user = "carol";
  route->destination.password = proto::Secret(std::string("secret"));
  route->log_label = "route=" + route_label + " dest=" + name;
  return route;
}

inline std::shared_ptr<core::RouteTable> RouteTableOf(std::shared_ptr<core::Route> route) {
  auto table = std::make_shared<core::RouteTable>();
  table->push_back(std::move(route));
  return table;
}

// A client connected to 127.0.0.1:`port`, or -1. `receive_buffer` > 0 shrinks its SO_RCVBUF
// before connecting, so that its TCP window stays small.
inline int ConnectToLoopback(uint16_t port, int receive_buffer = 0) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (receive_buffer > 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof(receive_buffer));
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Polls `done` every millisecond for at most `timeout_ms`: waiting on state the test can see.
inline bool PollUntil(const std::function<bool()>& done, int timeout_ms = 5000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    ::poll(nullptr, 0, 1);
  }
  return true;
}

// What `fd` receives until EOF (or an error), or until `timeout_ms` passed.
inline std::string ReceiveUntilEof(int fd, int timeout_ms = 5000) {
  std::string received;
  char buffer[4096];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) != 1) continue;
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    received.append(buffer, static_cast<size_t>(n));
  }
  return received;
}

// Owns the worker under test and the port its one route listens on; drains and joins the worker
// after the test. A test sets options_ before StartWorker().
class WorkerFixture : public ::testing::Test {
 protected:
  // As control/main.cc does: splice(2) to a socket the client closed raises SIGPIPE otherwise.
  void SetUp() override { ::signal(SIGPIPE, SIG_IGN); }
  void TearDown() override {
    if (worker_ != nullptr) {
      worker_->RequestDrain();
      worker_->Join();
    }
  }
  // Starts the worker over `route` alone (listening on listen_port_).
  void StartWorkerOn(std::shared_ptr<core::Route> route, core::WorkerServices services = {},
                     absl::Duration drain_timeout = absl::Seconds(1)) {
    worker_ = std::make_unique<core::Worker>(0, RouteTableOf(std::move(route)), options_, services);
    ASSERT_TRUE(worker_->Start(drain_timeout).ok());
  }
  // A client of listen_port_, or -1.
  int Connect(int receive_buffer = 0) { return ConnectToLoopback(listen_port_, receive_buffer); }

  core::WorkerOptions options_;
  uint16_t listen_port_ = 0;
  std::unique_ptr<core::Worker> worker_;
};

}  // namespace mailring::testing
