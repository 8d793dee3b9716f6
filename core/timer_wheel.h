// TimerWheel: a worker's coarse timers (connect, login, idle, drain), one-second resolution.
//
// A hashed wheel of intrusive lists: scheduling and cancelling are O(1) and allocate nothing,
// which is what thousands of sessions re-arming timeouts need. A timer further away than the
// wheel's span simply stays in its slot for more turns (its deadline is checked when the slot
// comes round). Timers fire at most one tick late and never early.
//
// Contract: single-threaded (one wheel per worker). An Entry must be cancelled (or have fired)
// before it is destroyed; the destructor cancels for safety. Fire callbacks may schedule or
// cancel any entry, including the one firing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mailring::core {

class TimerWheel {
 public:
  using Callback = void (*)(void* owner);

  class Entry {
   public:
    Entry(Callback callback, void* owner) : callback_(callback), owner_(owner) {}
    ~Entry();
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;

    bool scheduled() const { return wheel_ != nullptr; }
    int64_t deadline_ms() const { return deadline_ms_; }

   private:
    friend class TimerWheel;
    Entry* prev_ = nullptr;
    Entry* next_ = nullptr;
    TimerWheel* wheel_ = nullptr;
    int64_t deadline_ms_ = 0;
    uint32_t slot_ = 0;
    Callback callback_;
    void* owner_;
  };

  // `now_ms` is the monotonic clock reading the wheel starts at.
  explicit TimerWheel(int64_t now_ms, uint32_t slots = 4096);
  ~TimerWheel();

  // (Re)schedules `entry` to fire at `deadline_ms` (monotonic milliseconds).
  void Schedule(Entry* entry, int64_t deadline_ms);
  void Cancel(Entry* entry);

  // Fires every entry whose deadline is <= now_ms. Returns how many fired.
  size_t Advance(int64_t now_ms);

  size_t size() const { return size_; }

 private:
  static constexpr int64_t kTickMs = 1000;
  uint32_t SlotOf(int64_t deadline_ms) const;

  std::vector<Entry*> slots_;  // heads of circular-free doubly linked lists
  int64_t current_tick_;       // the tick Advance() processed last
  size_t size_ = 0;
};

}  // namespace mailring::core
