// Worker: one thread, one io_uring, its own listeners and sessions (thread-per-core).
//
// The ring is created by the worker thread itself with SINGLE_ISSUER | DEFER_TASKRUN: only this
// thread submits, and completions are processed when it asks for them, never by interrupting
// it. Each route gets a SO_REUSEPORT listener per worker, so the kernel spreads connections
// across workers and no two workers share a socket, a session, a pipe or a buffer.
//
// Cross-thread contract: Start() and RequestDrain() may be called from any thread; everything
// else runs on the worker thread. RequestDrain() writes the worker's eventfd: the worker stops
// accepting (closes its listeners), lets sessions run until the drain timeout, then closes the
// rest with "* BYE [UNAVAILABLE] shutting down" and its thread ends.
#pragma once

#include <liburing.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/credential_broker.h"
#include "core/credential_cache.h"
#include "core/pipe_pool.h"
#include "core/provided_buffers.h"
#include "core/route.h"
#include "core/timer_wheel.h"
#include "core/tls_client.h"
#include "core/worker_options.h"

namespace mailring::core {

class Session;

// Shared services a worker reads; null when the routes need none (basic authentication only).
struct WorkerServices {
  CredentialCache* credentials = nullptr;  // reader index = worker index
  CredentialBroker* broker = nullptr;
};

// What a worker counts; read by other threads only as relaxed snapshots.
struct WorkerCounters {
  std::atomic<uint64_t> sessions_accepted{0};
  std::atomic<uint64_t> sessions_open{0};
  std::atomic<uint64_t> logins_ok{0};
  std::atomic<uint64_t> logins_failed{0};
  std::atomic<uint64_t> bytes_client_to_upstream{0};
  std::atomic<uint64_t> bytes_upstream_to_client{0};
  // Reads that found the provided-buffer ring empty (-ENOBUFS) and fell back to poll + recv
  // (before the relay) or splice (during it): nothing is lost, but a steady rate says the ring
  // (--recv-buffers) is too small for the worker's load.
  std::atomic<uint64_t> recv_ring_empty{0};
  // Upstream TLS handshakes completed: full (certificate exchange) or resuming a kept session.
  std::atomic<uint64_t> tls_handshakes_full{0};
  std::atomic<uint64_t> tls_handshakes_resumed{0};
};

class Worker {
 public:
  Worker(int index, std::shared_ptr<const RouteTable> routes, const WorkerOptions& options,
         WorkerServices services = {});
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Starts the thread and waits until its ring and listeners are ready (or failed).
  absl::Status Start(absl::Duration drain_timeout);
  void RequestDrain();
  // Thread-safe: serve `routes` from now on. Listeners of routes that went away close (their
  // sessions continue), new routes get listeners, routes on an unchanged address take effect
  // for new sessions. A listen failure is logged and counted (listen_failures()).
  void UpdateRoutes(std::shared_ptr<const RouteTable> routes);
  size_t listening() const { return listening_.load(std::memory_order_relaxed); }
  uint64_t listen_failures() const { return listen_failures_.load(std::memory_order_relaxed); }
  // Thread-safe: the credential cache changed for a key a session of this worker waits for.
  void NotifyCredentials();
  void Join();

  const WorkerCounters& counters() const { return counters_; }
  // Thread-safe (relaxed snapshots): the pipe pool's gauges and counters.
  const PipeCounters& pipe_counters() const { return pipes_.counters(); }
  int index() const { return index_; }

  // --- for sessions, on the worker thread ---
  io_uring_sqe* GetSqe();
  // Submits what is queued if fewer than `count` submission slots are free.
  void ReserveSqes(unsigned count);
  int64_t now_ms() const { return now_ms_; }
  // Read by the kernel when the submission is flushed; lives as long as the worker.
  __kernel_timespec* connect_timeout_spec() { return &connect_timeout_spec_; }
  const WorkerOptions& options() const { return options_; }
  PipePool& pipes() { return pipes_; }
  ProvidedBuffers& buffers() { return buffers_; }
  // The worker's TLS context; null when no route uses TLS.
  const TlsContext* tls_context() const { return tls_context_.get(); }
  TimerWheel& timers() { return *timers_; }
  WorkerCounters& mutable_counters() { return counters_; }
  const WorkerServices& services() const { return services_; }
  // A token the mail server rejected, remembered until the cache holds another one for `key`
  // (the control thread drops it asynchronously; a client retrying at once must not get it).
  void RememberRejectedToken(const std::string& key, const proto::Secret& token);
  bool IsRejectedToken(const std::string& key, const proto::Secret& token);
  // Parks `session` until NotifyCredentials(); it is called back with OnCredentialsChanged().
  void WaitForCredentials(Session* session);
  void ForgetCredentialWait(Session* session);
  // Frees `session` after the current batch of completions (it has no request outstanding).
  void ScheduleDestroy(Session* session);

 private:
  struct alignas(16) Listener {
    std::shared_ptr<const Route> route;
    int fd = -1;
    bool retired = false;    // its route went away: closed, freed after its last completion
    bool accepting = false;  // a multishot accept is armed
    bool paused = false;     // accept failed (out of fds): re-armed at accept_retry_at_ms_
  };

  void Run(std::promise<absl::Status>* ready);
  absl::Status Setup();
  void ArmAccept(Listener* listener);
  void OnAccept(Listener* listener, const io_uring_cqe& cqe);
  void ArmWake();
  void BeginDrain();
  absl::Status EnsureTlsContext(const RouteTable& routes);
  void ApplyRoutes();
  void RetireListener(Listener* listener);
  void ResumeCredentialWaiters();
  void DestroySession(Session* session);
  void DestroyScheduled();
  void OnWake();
  void Loop();

  const int index_;
  std::shared_ptr<const RouteTable> routes_;
  const WorkerOptions options_;
  const WorkerServices services_;
  std::atomic<bool> drain_requested_{false};
  std::atomic<bool> credentials_changed_{false};
  std::atomic<bool> routes_changed_{false};
  absl::Mutex routes_mutex_;
  std::shared_ptr<const RouteTable> pending_routes_ ABSL_GUARDED_BY(routes_mutex_);
  std::atomic<size_t> listening_{0};
  std::atomic<uint64_t> listen_failures_{0};
  absl::Duration drain_timeout_;
  std::thread thread_;
  int wake_fd_ = -1;
  uint64_t wake_value_ = 0;

  io_uring ring_{};
  __kernel_timespec connect_timeout_spec_{};
  bool ring_ready_ = false;
  int64_t now_ms_ = 0;
  std::vector<std::unique_ptr<Listener>> listeners_;
  PipePool pipes_;
  ProvidedBuffers buffers_;
  std::unique_ptr<TlsContext> tls_context_;
  std::unique_ptr<TimerWheel> timers_;
  std::vector<Session*> credential_waiters_;
  std::vector<Session*> to_destroy_;
  absl::flat_hash_map<std::string, size_t> rejected_tokens_;  // key → hash of the token
  Session* sessions_ = nullptr;  // intrusive list head
  uint64_t next_session_id_ = 1;
  bool draining_ = false;
  int64_t accept_retry_at_ms_ = 0;
  int64_t listen_retry_at_ms_ = 0;  // a route's listener could not be opened: try again then
  int64_t drain_deadline_ms_ = 0;
  bool drain_bye_sent_ = false;
  WorkerCounters counters_;
};

}  // namespace mailring::core
