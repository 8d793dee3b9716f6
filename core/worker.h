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
//
// Sessions see their worker only as a SessionHost (core/session_host.h): its ring, clock,
// timers, buffers, pipes, counters and credential services. What is the worker's alone lives
// here: the thread, listeners and accepts, route changes, the drain, and the list of sessions.
#pragma once

#include <liburing.h>

#include <atomic>
#include <cstdint>
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
#include "core/route.h"
#include "core/session_host.h"
#include "core/worker_options.h"

namespace mailring::core {

class Worker final : public SessionHost {
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
  // Thread-safe: accepts that failed (out of fds or memory); each pauses accepting for a
  // second of the worker's clock rather than retrying at once.
  uint64_t accept_failures() const { return accept_failures_.load(std::memory_order_relaxed); }
  // Thread-safe: loop iterations completed (relaxed). With Wake(), a test that moved the
  // worker's clock (WorkerOptions::now_ms) knows the worker has read it and run its due timers
  // once this grew by two.
  uint64_t iterations() const { return iterations_.load(std::memory_order_relaxed); }
  // Thread-safe: makes the worker run a loop iteration now instead of at its next tick.
  void Wake();
  void Join();

  // Thread-safe (relaxed snapshots): the pipe pool's gauges and counters.
  const PipeCounters& pipe_counters() const { return pipes().counters(); }

  // --- SessionHost, on the worker thread ---
  void WaitForCredentials(Session* session) override;
  void ForgetCredentialWait(Session* session) override;
  void ScheduleDestroy(Session* session) override;

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

  std::shared_ptr<const RouteTable> routes_;
  std::atomic<bool> drain_requested_{false};
  std::atomic<bool> credentials_changed_{false};
  std::atomic<bool> routes_changed_{false};
  absl::Mutex routes_mutex_;
  std::shared_ptr<const RouteTable> pending_routes_ ABSL_GUARDED_BY(routes_mutex_);
  std::atomic<size_t> listening_{0};
  std::atomic<uint64_t> listen_failures_{0};
  std::atomic<uint64_t> accept_failures_{0};
  std::atomic<uint64_t> iterations_{0};
  absl::Duration drain_timeout_;
  std::thread thread_;
  int wake_fd_ = -1;
  uint64_t wake_value_ = 0;

  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<Session*> credential_waiters_;
  std::vector<Session*> to_destroy_;
  Session* sessions_ = nullptr;  // intrusive list head
  uint64_t next_session_id_ = 1;
  bool draining_ = false;
  int64_t accept_retry_at_ms_ = 0;
  int64_t listen_retry_at_ms_ = 0;  // a route's listener could not be opened: try again then
  int64_t drain_deadline_ms_ = 0;
  bool drain_bye_sent_ = false;
};

}  // namespace mailring::core
