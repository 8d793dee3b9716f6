// RelayLeg: one direction of a relayed session (client → upstream or upstream → client).
//
// Two ways to move bytes, chosen per read by how much arrives:
//
//  - copy (small command/response traffic): the session keeps a multishot recv with provided
//    buffers armed on the source (IORING_OP_RECV + IORING_RECV_MULTISHOT); each completion's
//    bytes are sent on at once with a direct non-blocking send(2) and the buffer goes back to
//    the ring. No poll to re-arm, no pipe, two kernel entries fewer per message than splice.
//  - splice (bulk, e.g. FETCH literals): readiness first, direct syscalls second: the worker
//    waits for POLLIN/POLLOUT through its io_uring (a one-shot poll costs no kernel thread), then
//    Pump() moves bytes with non-blocking splice(2) through a pipe borrowed from the worker's
//    PipePool. IORING_OP_SPLICE is deliberately not used: the kernel punts every splice to
//    io-wq worker threads, and an armed splice on an idle socket pins a kernel thread
//    (perf-floor.md).
//
// The switch (measured in perf/, see docs/PERFORMANCE.md): a recv that fills its whole buffer
// means more is waiting, so the leg stops the recv and splices; a splice read shorter than a
// recv buffer means the burst is over, so the leg goes back to copy. Stopping a multishot recv
// is asynchronous: until its last completion (no IORING_CQE_F_MORE) arrives, bytes it still
// delivers are sent (or queued) in order, and no splice reads the source, so bytes are never
// reordered.
//
// No pipe to be had (the pool is lent out, e.g. to sessions whose clients stopped reading, or
// pipe(2) failed): the burst goes through the copy path instead of waiting (HAProxy's maxpipes
// rule), and stays there until a short read ends it; the next burst asks the pool again. A
// stalled leg keeps its pipe (the bytes in it are already taken from the source and cannot
// go back), so the pool bounds what stalled legs pin: max_pipes x pipe size per worker.
//
// A failing source (a reset) does not discard what it delivered: bytes queued or in the pipe,
// and what the kernel still holds from before the reset, reach the destination before the leg
// reports kFailed (source_failed()).
//
// Backpressure: a send that does not take everything keeps the rest in a small queue, stops the
// recv and waits for POLLOUT; splice reads from the source only while the pipe is empty. The
// kernel's socket buffers then push back on the sender. End of stream: after the source's EOF
// and once everything read has been written, the destination's write side is shut down
// (half-close is forwarded).
//
// kTLS (core/tls/ktls.h): either socket may be one whose records the kernel protects; copy and
// splice work on it unchanged (the kernel decrypts on recv/splice, encrypts on send/splice).
// set_ktls() says which end is one, for what the kernel leaves to us: a source read that fails
// with EIO (recv) or EINVAL/EIO (splice) has reached a record that is not application data, which
// the leg reads with ReadControlRecord() (a NewSessionTicket is dropped and reading goes on, a
// close_notify is the source's EOF, anything else fails the leg with failure_reason() saying
// why); a kTLS destination gets a TLS close_notify before its shutdown(SHUT_WR). A kTLS source
// hands out one record per splice(2), so a splice read keeps reading until the pipe holds a
// chunk or the source is drained (one read per chunk, as on a plain socket).
//
// Contract: both fds are non-blocking sockets owned by the session, which arms and cancels the
// recv the leg asks for (Pump() says kReceiving; recv_cancel_needed()) and reports each of its
// completions with OnRecv(). The leg owns `pipe_` only while bytes are in it (or during a
// Pump() call); Abandon() returns it to the pool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/pipe_pool.h"

namespace mailring::core {

class RelayLeg {
 public:
  enum class Wait : uint8_t {
    kReadable,   // splice: arm POLLIN on the source, then Pump() again
    kReceiving,  // copy: a multishot recv must be armed on the source (arm it unless it is)
    kRecvEnding, // a stopped recv has not delivered its last completion yet: wait for it
    kWritable,   // arm POLLOUT on the destination, then Pump() again
    kYield,      // the byte budget is spent but the source may have more: Pump() again soon
    kFinished,   // source EOF delivered and destination shut for writing
    kFailed,     // a socket error; error() has errno
  };

  RelayLeg() = default;
  // `copy_below_bytes`: reads shorter than this go back to copy mode (the recv buffer size);
  // 0 keeps the leg on splice only.
  RelayLeg(int from_fd, int to_fd, uint32_t copy_below_bytes = 0)
      : from_fd_(from_fd), to_fd_(to_fd), copy_below_bytes_(copy_below_bytes),
        wants_recv_(copy_below_bytes > 0) {}

  // Moves bytes until the source is drained, the destination is full, or `budget_bytes` moved,
  // and says what to wait for.
  Wait Pump(PipePool& pool, size_t budget_bytes);

  // A completion of the leg's multishot recv: `result` > 0 with `bytes` (the buffer may be
  // recycled when this returns), 0 at EOF, -errno on failure. `filled_buffer`: the recv filled
  // its whole buffer. `more`: the recv stays armed (IORING_CQE_F_MORE). Pump() next.
  void OnRecv(int result, std::string_view bytes, bool filled_buffer, bool more);
  void set_recv_armed() { recv_armed_ = true; }
  bool recv_armed() const { return recv_armed_; }
  // The leg no longer wants its armed recv: the session should cancel it (once).
  bool recv_cancel_needed() const { return recv_armed_ && !wants_recv_ && !cancel_sent_; }
  void set_cancel_sent() { cancel_sent_ = true; }
  bool recv_cancel_sent() const { return cancel_sent_; }
  // The one-shot poll armed for this leg (POLLIN on the source or POLLOUT on the destination),
  // as the session's completion tag (core/completion.h), 0 if none: with a recv also
  // reporting, the session must not arm a second one, and on close it cancels exactly this.
  void set_armed_poll(uint8_t op) { armed_poll_ = op; }
  uint8_t armed_poll() const { return armed_poll_; }

  // Which ends are kTLS sockets (see the top of this file); set before the first Pump().
  void set_ktls(bool source, bool destination) {
    ktls_source_ = source;
    ktls_destination_ = destination;
  }
  bool ktls() const { return ktls_source_ || ktls_destination_; }
  // Bytes moved by splice(2) (part of bytes_relayed()).
  uint64_t bytes_spliced() const { return bytes_spliced_; }
  // Records other than application data a kTLS source gave (session tickets, close_notify).
  uint32_t control_records() const { return control_records_; }
  // Why a kTLS source failed (an alert, a KeyUpdate, ...); empty otherwise (error() says it).
  std::string_view failure_reason() const {
    return failure_reason_ == nullptr ? std::string_view() : std::string_view(*failure_reason_);
  }

  // Gives back the pipe, if any (session closing). Bytes still in it are dropped.
  void Abandon(PipePool& pool);

  int from_fd() const { return from_fd_; }
  int to_fd() const { return to_fd_; }
  uint64_t bytes_relayed() const { return bytes_relayed_; }
  bool finished() const { return finished_; }
  int error() const { return error_; }
  // error() came from reading the source, after everything read before it was delivered (an
  // error writing the destination leaves source_failed() false).
  bool source_failed() const { return source_failed_; }

 private:
  // Bytes a send did not take; allocated only when that happens (a slow destination).
  struct Backlog {
    std::string bytes;
    size_t sent = 0;
  };

  Wait Splice(PipePool& pool, size_t budget_bytes);
  void Queue(std::string_view bytes);
  Wait Finish();
  void SalvageSource();
  // A kTLS source's next record is not application data: reads it. 0 when relaying goes on
  // (source_eof_ set for a close_notify), EPROTO with failure_reason_ set otherwise.
  int TakeControlRecord();

  // What a failed source may still hold, taken in one go (the session closes right after).
  static constexpr size_t kMaxSalvageBytes = 256 * 1024;

  int from_fd_ = -1;
  int to_fd_ = -1;
  Pipe* pipe_ = nullptr;      // valid while bytes_in_pipe_ > 0 (the HAProxy rule)
  std::unique_ptr<Backlog> backlog_;
  uint32_t bytes_in_pipe_ = 0;
  uint32_t copy_below_bytes_ = 0;
  bool wants_recv_ = false;   // copy mode: a multishot recv should be armed on the source
  bool recv_armed_ = false;   // a multishot recv is armed (its last completion not seen yet)
  bool cancel_sent_ = false;
  uint8_t armed_poll_ = 0;
  bool source_eof_ = false;
  bool finished_ = false;
  bool copy_fallback_ = false;  // this burst found no pipe: stay on copy until a short read
  bool source_failed_ = false;
  bool ktls_source_ = false;
  bool ktls_destination_ = false;
  uint32_t control_records_ = 0;
  int source_error_ = 0;        // the source failed; delivered as error_ once the rest is sent
  int error_ = 0;
  uint64_t bytes_relayed_ = 0;
  uint64_t bytes_spliced_ = 0;
  std::unique_ptr<std::string> failure_reason_;  // only after a kTLS source failed
};

}  // namespace mailring::core
