#include "core/timer_wheel.h"

#include <vector>

#include "gtest/gtest.h"

namespace mailring::core {
namespace {

struct Recorder {
  std::vector<int>* fired;
  int id;
  static void Fire(void* self) {
    auto* r = static_cast<Recorder*>(self);
    r->fired->push_back(r->id);
  }
};

TEST(TimerWheelTest, FiresNeverEarlyAndAtMostOneTickLate) {
  std::vector<int> fired;
  TimerWheel wheel(0);
  Recorder r{&fired, 1};
  TimerWheel::Entry entry(&Recorder::Fire, &r);
  wheel.Schedule(&entry, 2500);
  EXPECT_EQ(wheel.Advance(2000), 0u);
  EXPECT_TRUE(fired.empty());
  EXPECT_EQ(wheel.Advance(2999), 0u);
  EXPECT_EQ(wheel.Advance(3000), 1u);
  EXPECT_EQ(fired, std::vector<int>{1});
  EXPECT_FALSE(entry.scheduled());
}

TEST(TimerWheelTest, CancelledEntryDoesNotFire) {
  std::vector<int> fired;
  TimerWheel wheel(0);
  Recorder r{&fired, 1};
  TimerWheel::Entry entry(&Recorder::Fire, &r);
  wheel.Schedule(&entry, 1000);
  wheel.Cancel(&entry);
  EXPECT_EQ(wheel.Advance(5000), 0u);
  EXPECT_TRUE(fired.empty());
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheelTest, DeadlineBeyondOneTurnWaitsForItsTurn) {
  std::vector<int> fired;
  TimerWheel wheel(0, /*slots=*/8);  // an 8-second wheel
  Recorder r{&fired, 7};
  TimerWheel::Entry entry(&Recorder::Fire, &r);
  wheel.Schedule(&entry, 20'000);
  for (int64_t t = 1000; t < 20'000; t += 1000) ASSERT_EQ(wheel.Advance(t), 0u) << t;
  EXPECT_EQ(wheel.Advance(20'000), 1u);
}

TEST(TimerWheelTest, RescheduleMovesTheDeadline) {
  std::vector<int> fired;
  TimerWheel wheel(0);
  Recorder r{&fired, 3};
  TimerWheel::Entry entry(&Recorder::Fire, &r);
  wheel.Schedule(&entry, 1000);
  wheel.Schedule(&entry, 4000);
  EXPECT_EQ(wheel.size(), 1u);
  EXPECT_EQ(wheel.Advance(3000), 0u);
  EXPECT_EQ(wheel.Advance(4000), 1u);
}

TEST(TimerWheelTest, OverdueDeadlineFiresOnNextAdvance) {
  std::vector<int> fired;
  TimerWheel wheel(10'000);
  Recorder r{&fired, 1};
  TimerWheel::Entry entry(&Recorder::Fire, &r);
  wheel.Schedule(&entry, 5'000);  // already in the past
  EXPECT_EQ(wheel.Advance(11'000), 1u);
}

struct Canceller {
  TimerWheel* wheel;
  TimerWheel::Entry* victim;
  int fired = 0;
  static void Fire(void* self) {
    auto* c = static_cast<Canceller*>(self);
    ++c->fired;
    c->wheel->Cancel(c->victim);
  }
};

TEST(TimerWheelTest, CallbackMayCancelAnotherEntryOfTheSameSlot) {
  TimerWheel wheel(0);
  std::vector<int> fired;
  Recorder victim_owner{&fired, 2};
  TimerWheel::Entry victim(&Recorder::Fire, &victim_owner);
  Canceller canceller{&wheel, &victim};
  TimerWheel::Entry first(&Canceller::Fire, &canceller);
  wheel.Schedule(&victim, 1000);
  wheel.Schedule(&first, 1000);  // head of the slot: fires first
  wheel.Advance(1000);
  EXPECT_EQ(canceller.fired, 1);
  EXPECT_TRUE(fired.empty());
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheelTest, ManyEntriesAllFireOnce) {
  TimerWheel wheel(0, 64);
  std::vector<int> fired;
  std::vector<Recorder> owners;
  owners.reserve(1000);
  std::vector<std::unique_ptr<TimerWheel::Entry>> entries;
  for (int i = 0; i < 1000; ++i) {
    owners.push_back(Recorder{&fired, i});
    entries.push_back(std::make_unique<TimerWheel::Entry>(&Recorder::Fire, &owners.back()));
    wheel.Schedule(entries.back().get(), (i % 200) * 1000 + 1);
  }
  for (int64_t t = 0; t <= 201'000; t += 1000) wheel.Advance(t);
  EXPECT_EQ(fired.size(), 1000u);
  EXPECT_EQ(wheel.size(), 0u);
}

}  // namespace
}  // namespace mailring::core
