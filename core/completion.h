// Completion tags: how a worker routes an io_uring completion back to its owner.
//
// user_data = owner pointer | Op. Owners are 16-byte aligned, so the low four bits are free
// for the operation kind. user_data 0 marks completions nobody waits for (cancel requests).
#pragma once

#include <cstdint>

namespace mailring::core {

enum class Op : uint8_t {
  kNone = 0,
  // Session operations (owner: Session).
  kConnect = 1,
  kConnectTimeout = 2,
  kUpstreamRecv = 3,       // pre-relay recv with a provided buffer
  kUpstreamReadable = 4,   // pre-relay poll fallback when the buffer ring is empty
  kClientReadable = 5,     // relay: POLLIN on the client (client → upstream leg)
  kUpstreamWritable = 6,   // relay: POLLOUT on the upstream (client → upstream leg)
  kRelayUpstreamReadable = 7,  // relay: POLLIN on the upstream (upstream → client leg)
  kClientWritable = 8,     // relay: POLLOUT on the client (upstream → client leg)
  kClientRecv = 11,         // pre-relay recv from the client with a provided buffer
  kClientPreRelayReadable = 12,  // pre-relay poll fallback when the buffer ring is empty
  kClientRelayRecv = 13,   // relay: multishot recv on the client (client → upstream leg)
  kUpstreamRelayRecv = 14, // relay: multishot recv on the upstream (upstream → client leg)
  // Worker operations.
  kAccept = 9,             // owner: Listener
  kWake = 10,              // owner: Worker (eventfd read)
};

inline constexpr uint64_t kOpMask = 0xf;

inline uint64_t Tag(const void* owner, Op op) {
  return reinterpret_cast<uint64_t>(owner) | static_cast<uint64_t>(op);
}
inline Op TagOp(uint64_t user_data) { return static_cast<Op>(user_data & kOpMask); }
template <typename T>
T* TagOwner(uint64_t user_data) {
  return reinterpret_cast<T*>(user_data & ~kOpMask);
}

}  // namespace mailring::core
