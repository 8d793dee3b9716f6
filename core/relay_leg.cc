#include "core/relay_leg.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>

#include "core/send_some.h"
#include "core/tls/ktls.h"

namespace mailring::core {

void RelayLeg::OnRecv(int result, std::string_view bytes, bool filled_buffer, bool more) {
  if (!more) {
    recv_armed_ = false;
    cancel_sent_ = false;
  }
  if (result > 0) {
    if (error_ != 0) return;
    if (backlog_ != nullptr) {
      Queue(bytes);  // behind what is already waiting: order is kept
      return;
    }
    const ssize_t sent = SendSome(to_fd_, bytes);
    if (sent < 0) {
      error_ = static_cast<int>(-sent);
      wants_recv_ = false;
      return;
    }
    bytes_relayed_ += static_cast<uint64_t>(sent);
    if (static_cast<size_t>(sent) < bytes.size()) {
      Queue(bytes.substr(static_cast<size_t>(sent)));  // the destination is full: stop reading
    } else if (filled_buffer && !copy_fallback_) {
      wants_recv_ = false;  // a burst: more is waiting, splice it
    } else if (!filled_buffer) {
      copy_fallback_ = false;  // the burst is over: the next one tries the pool again
    }
    return;
  }
  if (result == 0) {
    source_eof_ = true;
    wants_recv_ = false;
    return;
  }
  switch (-result) {
    case ECANCELED:  // we stopped it
      return;
    case ENOBUFS:  // the worker's buffer ring ran dry: splice until the next short read
      wants_recv_ = false;
      return;
    case EIO:
      if (ktls_source_) {  // a record that is not data; what came before it was delivered
        if (const int error = TakeControlRecord(); error != 0) {
          source_error_ = error;
          source_eof_ = true;
          wants_recv_ = false;
        } else if (source_eof_) {
          wants_recv_ = false;
        }
        return;  // a ticket: the recv is armed again by Pump()
      }
      [[fallthrough]];
    default:
      // The source failed (e.g. the server reset the connection after its last words). The
      // kernel may still hold bytes that arrived before the reset (io_uring can report the
      // error first): take them, and deliver everything queued before failing.
      SalvageSource();
      source_error_ = -result;
      source_eof_ = true;
      wants_recv_ = false;
      return;
  }
}

void RelayLeg::SalvageSource() {
  char buffer[16 * 1024];
  for (size_t taken = 0; taken < kMaxSalvageBytes;) {
    const ssize_t n = ::recv(from_fd_, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n <= 0) return;
    Queue(std::string_view(buffer, static_cast<size_t>(n)));
    taken += static_cast<size_t>(n);
  }
}

int RelayLeg::TakeControlRecord() {
  const absl::StatusOr<ControlRecord> record = ReadControlRecord(from_fd_);
  if (!record.ok()) {
    failure_reason_ = std::make_unique<std::string>(record.status().message());
    return EPROTO;
  }
  ++control_records_;
  if (*record == ControlRecord::kCloseNotify) source_eof_ = true;
  return 0;
}

void RelayLeg::Queue(std::string_view bytes) {
  if (backlog_ == nullptr) backlog_ = std::make_unique<Backlog>();
  backlog_->bytes.append(bytes);
  wants_recv_ = false;
}

RelayLeg::Wait RelayLeg::Finish() {
  if (source_error_ != 0) {  // everything read before the failure has been delivered
    error_ = source_error_;
    source_failed_ = true;
    return Wait::kFailed;
  }
  // The kernel does not end a kTLS stream itself; a failure here leaves the FIN to say it.
  if (ktls_destination_) (void)SendCloseNotify(to_fd_);
  ::shutdown(to_fd_, SHUT_WR);
  finished_ = true;
  return Wait::kFinished;
}

RelayLeg::Wait RelayLeg::Pump(PipePool& pool, size_t budget_bytes) {
  if (finished_) return Wait::kFinished;
  if (error_ != 0) return Wait::kFailed;
  if (backlog_ != nullptr) {
    const std::string_view rest = std::string_view(backlog_->bytes).substr(backlog_->sent);
    const ssize_t sent = SendSome(to_fd_, rest);
    if (sent < 0) {
      error_ = static_cast<int>(-sent);
      return Wait::kFailed;
    }
    bytes_relayed_ += static_cast<uint64_t>(sent);
    backlog_->sent += static_cast<size_t>(sent);
    if (static_cast<size_t>(sent) < rest.size()) return Wait::kWritable;
    backlog_.reset();
  }
  // A recv still armed owns the source until its last completion: no splice may read it.
  if (recv_armed_) return wants_recv_ ? Wait::kReceiving : Wait::kRecvEnding;
  if (source_eof_) return Finish();
  if (wants_recv_) return Wait::kReceiving;
  return Splice(pool, budget_bytes);
}

RelayLeg::Wait RelayLeg::Splice(PipePool& pool, size_t budget_bytes) {
  size_t moved = 0;
  const size_t chunk = pool.capacity_bytes();
  // A read that returned less than asked for drained the socket (as far as we can tell); once
  // those bytes are written, wait for readiness instead of paying a splice that says EAGAIN.
  // The one-shot poll checks readiness when it is armed, so nothing that arrived meanwhile is
  // missed.
  bool drained_source = false;
  size_t last_read = 0;
  while (true) {
    // 1. Drain the pipe into the destination.
    while (bytes_in_pipe_ > 0) {
      const ssize_t n = ::splice(pipe_->read_fd, nullptr, to_fd_, nullptr, bytes_in_pipe_,
                                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        bytes_in_pipe_ -= static_cast<uint32_t>(n);
        bytes_relayed_ += static_cast<uint64_t>(n);
        bytes_spliced_ += static_cast<uint64_t>(n);
        moved += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return Wait::kWritable;
      error_ = n < 0 ? errno : EPIPE;
      return Wait::kFailed;
    }
    // 2. The pipe is empty: it goes back to the pool unless we read again right away.
    if (source_eof_ || drained_source || moved >= budget_bytes) {
      if (pipe_ != nullptr) {
        pool.Release(pipe_, false);
        pipe_ = nullptr;
      }
      if (source_eof_) return Finish();
      if (moved >= budget_bytes && !drained_source) return Wait::kYield;
      // The burst is over: small traffic goes back to the copy path.
      if (last_read < copy_below_bytes_) {
        wants_recv_ = true;
        return Wait::kReceiving;
      }
      return Wait::kReadable;
    }
    // 3. Fill the pipe from the source.
    if (pipe_ == nullptr) {
      pipe_ = pool.Acquire();
      if (pipe_ == nullptr) {
        // No pipe (the pool is lent out, e.g. to clients that stopped reading, or pipe(2)
        // failed): relay this burst through the copy path rather than wait for one.
        pool.NoteCopyFallback();
        copy_fallback_ = true;
        wants_recv_ = true;
        return Wait::kReceiving;
      }
    }
    // A kTLS source gives one record per splice: read on until the pipe holds a chunk or the
    // source is drained, so that "shorter than asked" still means "drained".
    size_t filled = 0;
    int read_error = 0;
    while (filled < chunk) {
      const ssize_t n = ::splice(from_fd_, nullptr, pipe_->write_fd, nullptr, chunk - filled,
                                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        filled += static_cast<size_t>(n);
        if (!ktls_source_) break;
        continue;
      }
      if (n == 0) {
        source_eof_ = true;
        break;
      }
      if (errno == EINTR) continue;
      read_error = errno;
      break;
    }
    if (filled > 0) {  // an EOF or error after them is met again once they are delivered
      bytes_in_pipe_ = static_cast<uint32_t>(filled);
      last_read = filled;
      drained_source = filled < chunk;
      continue;
    }
    if (source_eof_) continue;
    if (read_error == EAGAIN) {
      pool.Release(pipe_, false);
      pipe_ = nullptr;
      return Wait::kReadable;
    }
    if (ktls_source_ && (read_error == EINVAL || read_error == EIO)) {
      read_error = TakeControlRecord();  // not data: a ticket, a close_notify or the end
      if (read_error == 0) continue;
    }
    // The pipe is empty here: everything read before the failure has been delivered.
    error_ = read_error;
    source_failed_ = true;
    return Wait::kFailed;
  }
}

void RelayLeg::Abandon(PipePool& pool) {
  backlog_.reset();
  if (pipe_ == nullptr) return;
  pool.Release(pipe_, bytes_in_pipe_ > 0);
  pipe_ = nullptr;
  bytes_in_pipe_ = 0;
}

}  // namespace mailring::core
