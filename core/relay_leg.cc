#include "core/relay_leg.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>

namespace mailring::core {

RelayLeg::Wait RelayLeg::Pump(PipePool& pool, size_t budget_bytes) {
  if (finished_) return Wait::kFinished;
  if (error_ != 0) return Wait::kFailed;
  size_t moved = 0;
  const size_t chunk = pool.capacity_bytes();
  // A read that returned less than asked for drained the socket (as far as we can tell); once
  // those bytes are written, wait for readiness instead of paying a splice that says EAGAIN.
  // The one-shot poll checks readiness when it is armed, so nothing that arrived meanwhile is
  // missed.
  bool drained_source = false;
  while (true) {
    // 1. Drain the pipe into the destination.
    while (bytes_in_pipe_ > 0) {
      const ssize_t n = ::splice(pipe_->read_fd, nullptr, to_fd_, nullptr, bytes_in_pipe_,
                                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        bytes_in_pipe_ -= static_cast<uint32_t>(n);
        bytes_relayed_ += static_cast<uint64_t>(n);
        moved += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return Wait::kWritable;
      error_ = n < 0 ? errno : EPIPE;
      return Wait::kFailed;
    }
    // 2. The pipe is empty: it goes back to the pool unless we read again right away.
    if (source_eof_) {
      if (pipe_ != nullptr) {
        pool.Release(pipe_, false);
        pipe_ = nullptr;
      }
      ::shutdown(to_fd_, SHUT_WR);
      finished_ = true;
      return Wait::kFinished;
    }
    if (drained_source) {
      if (pipe_ != nullptr) {
        pool.Release(pipe_, false);
        pipe_ = nullptr;
      }
      return Wait::kReadable;
    }
    if (moved >= budget_bytes) {
      if (pipe_ != nullptr) {
        pool.Release(pipe_, false);
        pipe_ = nullptr;
      }
      return Wait::kYield;
    }
    // 3. Fill the pipe from the source.
    if (pipe_ == nullptr) {
      pipe_ = pool.Acquire();
      if (pipe_ == nullptr) return Wait::kPipe;
    }
    const ssize_t n = ::splice(from_fd_, nullptr, pipe_->write_fd, nullptr, chunk,
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      bytes_in_pipe_ = static_cast<uint32_t>(n);
      drained_source = static_cast<size_t>(n) < chunk;
      continue;
    }
    if (n == 0) {
      source_eof_ = true;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      pool.Release(pipe_, false);
      pipe_ = nullptr;
      return Wait::kReadable;
    }
    error_ = errno;
    return Wait::kFailed;
  }
}

void RelayLeg::Abandon(PipePool& pool) {
  if (pipe_ == nullptr) return;
  pool.Release(pipe_, bytes_in_pipe_ > 0);
  pipe_ = nullptr;
  bytes_in_pipe_ = 0;
}

}  // namespace mailring::core
