// BytePattern: deterministic test bytes for transfers that must arrive byte-identical.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace mailring::testing {

// `size` bytes from a linear congruential generator seeded with `seed`: not periodic in any small
// or record-sized step, so a dropped, repeated or reordered piece shows.
inline std::string BytePattern(size_t size, uint32_t seed) {
  std::string bytes(size, '\0');
  uint32_t state = seed;
  for (char& byte : bytes) {
    state = state * 1664525u + 1013904223u;
    byte = static_cast<char>(state >> 24);
  }
  return bytes;
}

}  // namespace mailring::testing
