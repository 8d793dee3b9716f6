#include "core/pipe_pool.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/clock.h"
#include "core/log.h"

namespace mailring::core {

PipePool::PipePool(size_t max_pipes, size_t max_idle, size_t pipe_bytes)
    : max_pipes_(max_pipes), max_idle_(max_idle), pipe_bytes_(pipe_bytes) {}

PipePool::~PipePool() {
  for (Pipe* pipe : idle_) {
    ::close(pipe->read_fd);
    ::close(pipe->write_fd);
    delete pipe;
  }
}

Pipe* PipePool::Acquire() {
  if (!idle_.empty()) {
    Pipe* pipe = idle_.back();
    idle_.pop_back();
    ++lent_;
    counters_.in_use.store(lent_, std::memory_order_relaxed);
    return pipe;
  }
  if (lent_ >= max_pipes_) {
    Bump(counters_.exhausted);
    return nullptr;
  }
  // pipe(2) failed moments ago (out of fds): do not retry it for every burst.
  if (retry_after_ms_ != 0 && MonotonicMs() < retry_after_ms_) return nullptr;
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    const int error = errno;
    const int64_t now = MonotonicMs();
    retry_after_ms_ = now + kRetryDelayMs;
    Bump(counters_.create_failures);
    if (now >= next_failure_log_ms_) {  // at most one line a second
      next_failure_log_ms_ = now + 1000;
      MAILRING_LOG(kWarning, "cannot create a relay pipe: ", std::strerror(error), " (",
                   counters_.create_failures.load(std::memory_order_relaxed),
                   " failures so far, ", lent_, " pipes lent); relaying by copy meanwhile");
    }
    return nullptr;
  }
  // Larger pipes mean fewer splice calls per byte. The kernel may refuse the size (per-user
  // pipe quota for unprivileged users); the default 64 KiB still works, only slower.
  const int granted = ::fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(pipe_bytes_));
  if (granted < 0) {
    MAILRING_LOG(kDebug, "F_SETPIPE_SZ ", pipe_bytes_, " refused (errno ", errno,
                 "), using the default pipe size");
  }
  ++lent_;
  counters_.in_use.store(lent_, std::memory_order_relaxed);
  return new Pipe{fds[0], fds[1]};
}

void PipePool::Release(Pipe* pipe, bool holds_bytes) {
  --lent_;
  counters_.in_use.store(lent_, std::memory_order_relaxed);
  if (holds_bytes || idle_.size() >= max_idle_) {
    ::close(pipe->read_fd);
    ::close(pipe->write_fd);
    delete pipe;
    return;
  }
  idle_.push_back(pipe);
}

}  // namespace mailring::core
