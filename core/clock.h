// The data plane's clock: CLOCK_MONOTONIC in milliseconds. Token expiries, timers and
// deadlines all use it, so that a wall-clock step (NTP) never expires or revives a credential.
#pragma once

#include <time.h>

#include <cstdint>

namespace mailring::core {

inline int64_t MonotonicMs() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1000000;
}

}  // namespace mailring::core
