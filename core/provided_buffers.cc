#include "core/provided_buffers.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>

#include "proto/str_cat.h"

namespace mailring::core {

ProvidedBuffers::~ProvidedBuffers() {
  if (buf_ring_ != nullptr) {
    io_uring_unregister_buf_ring(ring_, group_id_);
    munmap(buf_ring_, ring_bytes_);
  }
  std::free(memory_);
}

absl::Status ProvidedBuffers::Register(io_uring* ring, uint16_t group_id, uint32_t count,
                                       uint32_t buffer_bytes) {
  if (count == 0 || (count & (count - 1)) != 0 || count > 32768) {
    return absl::InvalidArgumentError("provided buffer count must be a power of two <= 32768");
  }
  ring_ = ring;
  group_id_ = group_id;
  count_ = count;
  buffer_bytes_ = buffer_bytes;
  ring_bytes_ = count * sizeof(io_uring_buf);
  void* mapped = mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE,
                      -1, 0);
  if (mapped == MAP_FAILED) {
    return absl::ResourceExhaustedError(mailring::StrCat("mmap of buffer ring: ", strerror(errno)));
  }
  buf_ring_ = static_cast<io_uring_buf_ring*>(mapped);
  io_uring_buf_ring_init(buf_ring_);
  io_uring_buf_reg registration{};
  registration.ring_addr = reinterpret_cast<uint64_t>(buf_ring_);
  registration.ring_entries = count;
  registration.bgid = group_id;
  if (const int rc = io_uring_register_buf_ring(ring, &registration, 0); rc != 0) {
    munmap(buf_ring_, ring_bytes_);
    buf_ring_ = nullptr;
    return absl::InternalError(mailring::StrCat("io_uring_register_buf_ring: ", strerror(-rc)));
  }
  memory_ = static_cast<char*>(std::aligned_alloc(4096, static_cast<size_t>(count) * buffer_bytes));
  if (memory_ == nullptr) return absl::ResourceExhaustedError("provided buffer memory");
  const int mask = io_uring_buf_ring_mask(count);
  for (uint32_t id = 0; id < count; ++id) {
    io_uring_buf_ring_add(buf_ring_, Buffer(static_cast<uint16_t>(id)), buffer_bytes,
                          static_cast<unsigned short>(id), mask, static_cast<int>(id));
  }
  io_uring_buf_ring_advance(buf_ring_, static_cast<int>(count));
  return absl::OkStatus();
}

void ProvidedBuffers::Recycle(uint16_t id) {
  io_uring_buf_ring_add(buf_ring_, Buffer(id), buffer_bytes_, id, io_uring_buf_ring_mask(count_),
                        0);
  io_uring_buf_ring_advance(buf_ring_, 1);
}

}  // namespace mailring::core
