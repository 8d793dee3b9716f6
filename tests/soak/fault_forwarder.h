// FaultForwarder: a TCP forwarder on a loopback port in front of another loopback port. The soak
// puts it between mailring and the fake token service, to make that service slow (every chunk
// the client sends is held back for a delay) or unreachable (its listener closed, every
// forwarded connection closed: connections refused) without touching the service itself.
//
// Threads: one acceptor, one per forwarded connection (a handful: libcurl keeps connections
// alive). Every wait is a poll() of at most 50 ms that also checks for a change of mode, so
// GoDown() takes effect within 50 ms. Every public method is thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace mailring::soak {

class FaultForwarder {
 public:
  explicit FaultForwarder(uint16_t target_port) : target_port_(target_port) {}
  ~FaultForwarder();
  FaultForwarder(const FaultForwarder&) = delete;
  FaultForwarder& operator=(const FaultForwarder&) = delete;

  // Listens on 127.0.0.1 (port 0 the first time, the same port after GoDown()).
  absl::Status Start();
  uint16_t port() const { return port_.load(); }

  // From now on every chunk read from a client waits `delay` before it is forwarded (0: none).
  void SetDelay(absl::Duration delay);
  // Closes the listener and every forwarded connection; Start() brings it back.
  void GoDown();

 private:
  struct Connection {
    std::thread thread;
    std::atomic<bool> done{false};
  };

  void AcceptLoop(int listen_fd, uint64_t generation);
  void Forward(int client_fd, uint64_t generation, Connection* self);
  // Joins and forgets the connections whose thread has finished.
  void ReapLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void StopLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const uint16_t target_port_;
  std::atomic<uint16_t> port_{0};
  // Bumped by GoDown(): threads of an older generation close their sockets and end.
  std::atomic<uint64_t> generation_{0};
  std::atomic<int64_t> delay_ms_{0};

  absl::Mutex mutex_;
  std::thread acceptor_ ABSL_GUARDED_BY(mutex_);
  std::list<std::unique_ptr<Connection>> connections_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace mailring::soak
