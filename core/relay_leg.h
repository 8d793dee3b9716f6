// RelayLeg: one direction of a relayed session (client → upstream or upstream → client),
// moved with zero-copy splice(2) through a pipe borrowed from the worker's PipePool.
//
// Readiness first, direct syscalls second: the worker waits for POLLIN/POLLOUT through its
// io_uring (a one-shot poll costs no kernel thread), then Pump() issues non-blocking splice
// calls directly. IORING_OP_SPLICE is deliberately not used: the kernel punts every splice to
// io-wq worker threads, and an armed splice on an idle socket pins a kernel thread
// (perf-floor.md).
//
// Backpressure: Pump() reads from the source only while the pipe is empty, so a slow reader
// on the destination stops the source being read; the kernel's socket buffers then push back
// on the sender. End of stream: after the source's EOF and once everything read has been
// written, the destination's write side is shut down (half-close is forwarded).
//
// Contract: both fds are non-blocking sockets owned by the session. The leg owns `pipe_` only
// while bytes are in it (or during a Pump() call); Abandon() returns it to the pool.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/pipe_pool.h"

namespace mailring::core {

class RelayLeg {
 public:
  enum class Wait : uint8_t {
    kReadable,  // arm POLLIN on the source, then Pump() again
    kWritable,  // arm POLLOUT on the destination, then Pump() again
    kPipe,      // the pool is exhausted: Pump() again once a pipe is released
    kYield,     // the byte budget is spent but the source may have more: Pump() again soon
    kFinished,  // source EOF delivered and destination shut for writing
    kFailed,    // a socket error; error() has errno
  };

  RelayLeg() = default;
  RelayLeg(int from_fd, int to_fd) : from_fd_(from_fd), to_fd_(to_fd) {}

  // Moves bytes until the source is drained, the destination is full, or `budget_bytes` moved.
  Wait Pump(PipePool& pool, size_t budget_bytes);

  // Gives back the pipe, if any (session closing). Bytes still in it are dropped.
  void Abandon(PipePool& pool);

  int from_fd() const { return from_fd_; }
  int to_fd() const { return to_fd_; }
  uint64_t bytes_relayed() const { return bytes_relayed_; }
  bool finished() const { return finished_; }
  int error() const { return error_; }

 private:
  int from_fd_ = -1;
  int to_fd_ = -1;
  Pipe* pipe_ = nullptr;      // valid while bytes_in_pipe_ > 0 (the HAProxy rule)
  uint32_t bytes_in_pipe_ = 0;
  bool source_eof_ = false;
  bool finished_ = false;
  int error_ = 0;
  uint64_t bytes_relayed_ = 0;
};

}  // namespace mailring::core
