// ProvidedBuffers: a worker's ring of provided buffers (IORING_REGISTER_PBUF_RING) for recv
// with IOSQE_BUFFER_SELECT: the pre-relay phase's reads and the relay's copy path (multishot
// recv, core/relay_leg.h).
//
// Why: a session waiting for an upstream greeting, or an idle relayed session, holds no buffer
// of its own; the kernel picks a buffer only when bytes arrive, and the session copies or sends
// the bytes on and recycles the buffer at once. So thousands of sessions share a few buffers.
//
// Contract: single-threaded, owned by one worker and its ring. A buffer id handed out by a
// completion belongs to the caller until Recycle(id). The ring never deadlocks: every buffer is
// recycled within the completion that received it, and a recv that finds the ring empty
// (-ENOBUFS) falls back to poll + recv(2) before the relay, to splice during it.
#pragma once

#include <liburing.h>

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"

namespace mailring::core {

class ProvidedBuffers {
 public:
  ProvidedBuffers() = default;
  ~ProvidedBuffers();
  ProvidedBuffers(const ProvidedBuffers&) = delete;
  ProvidedBuffers& operator=(const ProvidedBuffers&) = delete;

  // `count` must be a power of two <= 32768.
  absl::Status Register(io_uring* ring, uint16_t group_id, uint32_t count, uint32_t buffer_bytes);

  uint16_t group_id() const { return group_id_; }
  uint32_t buffer_bytes() const { return buffer_bytes_; }
  char* Buffer(uint16_t id) { return memory_ + static_cast<size_t>(id) * buffer_bytes_; }
  void Recycle(uint16_t id);

 private:
  io_uring* ring_ = nullptr;
  io_uring_buf_ring* buf_ring_ = nullptr;
  size_t ring_bytes_ = 0;
  char* memory_ = nullptr;
  uint32_t count_ = 0;
  uint32_t buffer_bytes_ = 0;
  uint16_t group_id_ = 0;
};

}  // namespace mailring::core
