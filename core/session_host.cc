#include "core/session_host.h"

#include <cstring>

#include "proto/str_cat.h"

namespace mailring::core {

namespace {
constexpr uint16_t kBufferGroup = 1;
}  // namespace

SessionHost::SessionHost(int index, const WorkerOptions& options, WorkerServices services)
    : index_(index),
      options_(options),
      services_(services),
      pipes_(options.max_pipes, /*max_idle=*/16, options.pipe_bytes) {}

SessionHost::~SessionHost() {
  if (ring_ready_) CloseRing();
}

absl::Status SessionHost::OpenRing() {
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE |
                 IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
  params.cq_entries = options_.ring_entries * 8;
  if (const int rc = io_uring_queue_init_params(options_.ring_entries, &ring_, &params); rc < 0) {
    return absl::InternalError(mailring::StrCat("io_uring_queue_init: ", std::strerror(-rc)));
  }
  ring_ready_ = true;
  // Saves an fd lookup on every io_uring_enter.
  io_uring_register_ring_fd(&ring_);
  if (absl::Status status = buffers_.Register(&ring_, kBufferGroup, options_.recv_buffer_count,
                                              options_.recv_buffer_bytes);
      !status.ok()) {
    return status;
  }
  ReadClock();
  timers_ = std::make_unique<TimerWheel>(now_ms_);
  const int64_t connect_ms = absl::ToInt64Milliseconds(options_.connect_timeout);
  connect_timeout_spec_.tv_sec = connect_ms / 1000;
  connect_timeout_spec_.tv_nsec = (connect_ms % 1000) * 1000000;
  return absl::OkStatus();
}

void SessionHost::CloseRing() {
  timers_.reset();
  io_uring_queue_exit(&ring_);
  ring_ready_ = false;
}

io_uring_sqe* SessionHost::GetSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  // With SUBMIT_ALL and a CQ eight times the SQ, a freshly flushed SQ always has room.
  return sqe;
}

void SessionHost::ReserveSqes(unsigned count) {
  if (io_uring_sq_space_left(&ring_) < count) io_uring_submit(&ring_);
}

}  // namespace mailring::core
