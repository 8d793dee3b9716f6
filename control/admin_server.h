// AdminServer: /healthz, /readyz and /metrics over plain HTTP on --admin-listen, for kubelet
// probes and Prometheus.
//
// Its own small thread with a poll(2) loop, deliberately apart from the workers (which must
// never serve slow scrapers) and from the control thread (whose loop is libcurl's): a scrape
// reads relaxed atomic counters and never blocks the data plane. One request per connection,
// bounded reads (8 KiB, 2 s), answers built by callbacks given at construction.
//
// Contract: Start() binds or fails; Stop() joins. The callbacks run on the admin thread and must
// be thread-safe; they must not expose secrets (metrics carry counts only).
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "core/socket_address.h"

namespace mailring::control {

class AdminServer {
 public:
  struct Handlers {
    // Ready: empty string; not ready: why (shown in the 503 body).
    std::function<std::string()> readiness;
    // Prometheus text exposition format 0.0.4.
    std::function<std::string()> metrics;
  };

  AdminServer(core::SocketAddress listen, Handlers handlers);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  absl::Status Start();
  void Stop();
  uint16_t port() const { return port_; }

 private:
  void Run();
  void Serve(int fd);

  core::SocketAddress listen_;
  Handlers handlers_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // eventfd
  uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace mailring::control
