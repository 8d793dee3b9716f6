#include "core/timer_wheel.h"

namespace mailring::core {

TimerWheel::Entry::~Entry() {
  if (wheel_ != nullptr) wheel_->Cancel(this);
}

TimerWheel::TimerWheel(int64_t now_ms, uint32_t slots)
    : slots_(slots, nullptr), current_tick_(now_ms / kTickMs) {}

TimerWheel::~TimerWheel() {
  for (Entry*& head : slots_) {
    while (head != nullptr) Cancel(head);
  }
}

uint32_t TimerWheel::SlotOf(int64_t deadline_ms) const {
  // Round up so that a timer never fires before its deadline.
  const int64_t tick = (deadline_ms + kTickMs - 1) / kTickMs;
  return static_cast<uint32_t>(tick % static_cast<int64_t>(slots_.size()));
}

void TimerWheel::Schedule(Entry* entry, int64_t deadline_ms) {
  if (entry->wheel_ != nullptr) Cancel(entry);
  // A deadline at or before the tick already processed goes into the next tick's slot.
  const int64_t earliest = (current_tick_ + 1) * kTickMs;
  entry->deadline_ms_ = deadline_ms;
  entry->slot_ = SlotOf(deadline_ms < earliest ? earliest : deadline_ms);
  Entry*& head = slots_[entry->slot_];
  entry->prev_ = nullptr;
  entry->next_ = head;
  if (head != nullptr) head->prev_ = entry;
  head = entry;
  entry->wheel_ = this;
  ++size_;
}

void TimerWheel::Cancel(Entry* entry) {
  if (entry->wheel_ != this) return;
  if (entry->prev_ != nullptr) {
    entry->prev_->next_ = entry->next_;
  } else {
    slots_[entry->slot_] = entry->next_;
  }
  if (entry->next_ != nullptr) entry->next_->prev_ = entry->prev_;
  entry->prev_ = entry->next_ = nullptr;
  entry->wheel_ = nullptr;
  --size_;
}

size_t TimerWheel::Advance(int64_t now_ms) {
  const int64_t target_tick = now_ms / kTickMs;
  size_t fired = 0;
  // Bounded: at most one full turn of the wheel per call covers every slot once.
  int64_t turns = 0;
  while (current_tick_ < target_tick && turns <= static_cast<int64_t>(slots_.size())) {
    ++current_tick_;
    ++turns;
    Entry* entry = slots_[current_tick_ % static_cast<int64_t>(slots_.size())];
    while (entry != nullptr) {
      Entry* next = entry->next_;
      if (entry->deadline_ms_ <= now_ms) {
        Cancel(entry);
        ++fired;
        entry->callback_(entry->owner_);
        // The callback may have cancelled `next`; restart from the slot head in that case.
        if (next != nullptr && next->wheel_ != this) {
          next = slots_[current_tick_ % static_cast<int64_t>(slots_.size())];
        }
      }
      entry = next;
    }
  }
  if (current_tick_ < target_tick) current_tick_ = target_tick;
  return fired;
}

}  // namespace mailring::core
