// PipePool: a worker's pipes for splice(2), lent to a relay direction only while it has bytes
// in flight.
//
// Why a pool: a pipe pair per session costs two fds per direction (six per session with both
// sockets), which would cap a process at a few thousand sessions under a 20 000 fd limit, and
// pipe buffers are a per-user kernel resource. Idle sessions hold no pipe; a pipe goes back to
// the pool the moment it is drained.
//
// Contract: single-threaded (one pool per worker), except counters(), which any thread may read
// (relaxed). Acquire() hands out an empty pipe or nullptr when `max_pipes` are lent out or
// pipe(2) failed (the caller relays through its copy path instead, core/relay_leg.h). Release() takes
// the pipe back: an empty pipe is kept for reuse (up to `max_idle`), a pipe that still holds
// bytes (its session failed mid-transfer) is closed, since stale bytes must never reach another
// session.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace mailring::core {

struct Pipe {
  int read_fd = -1;
  int write_fd = -1;
};

// What a pool counts, for /metrics (control/metrics.cc). Written by the worker thread only.
struct PipeCounters {
  std::atomic<uint64_t> in_use{0};          // pipes lent now
  std::atomic<uint64_t> exhausted{0};       // Acquire() refused: all max_pipes lent
  std::atomic<uint64_t> create_failures{0}; // pipe(2) failed (out of fds)
  std::atomic<uint64_t> copy_fallbacks{0};  // bursts relayed by copy for want of a pipe
};

class PipePool {
 public:
  static constexpr size_t kDefaultPipeBytes = 1 << 20;  // F_SETPIPE_SZ: 1 MiB, see perf-floor

  PipePool(size_t max_pipes, size_t max_idle, size_t pipe_bytes = kDefaultPipeBytes);
  ~PipePool();
  PipePool(const PipePool&) = delete;
  PipePool& operator=(const PipePool&) = delete;

  Pipe* Acquire();
  void Release(Pipe* pipe, bool holds_bytes);
  // A leg relays a burst through its copy path because Acquire() gave it no pipe.
  void NoteCopyFallback() { Bump(counters_.copy_fallbacks); }

  const PipeCounters& counters() const { return counters_; }

  size_t lent() const { return lent_; }
  size_t idle() const { return idle_.size(); }
  size_t capacity_bytes() const { return pipe_bytes_; }

 private:
  // Single writer: a relaxed load and store, no locked instruction on the relay path.
  static void Bump(std::atomic<uint64_t>& counter) {
    counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  size_t max_pipes_;
  size_t max_idle_;
  size_t pipe_bytes_;
  size_t lent_ = 0;
  std::vector<Pipe*> idle_;
  static constexpr int64_t kRetryDelayMs = 100;
  int64_t retry_after_ms_ = 0;
  int64_t next_failure_log_ms_ = 0;
  PipeCounters counters_;
};

}  // namespace mailring::core
