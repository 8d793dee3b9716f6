#include "tests/fakes/kube/watch.h"

#include <algorithm>
#include <utility>

#include "proto/str_cat.h"
#include "tests/fakes/kube/status.h"

namespace mailring::fakes::kube {
namespace {

// How often a waiting watch looks at its peer and its deadline.
constexpr absl::Duration kPollSlice = absl::Milliseconds(200);

}  // namespace

std::string EventLine(std::string_view type, const Json& object) {
  std::string line = mailring::StrCat("{\"type\":\"", type, "\",\"object\":");
  object.DumpTo(&line);
  line += "}\n";
  return line;
}

WatchHub::WatchHub(absl::Mutex* mu, int history_limit, absl::Duration bookmark_interval)
    : mu_(mu), history_limit_(std::max(1, history_limit)), bookmark_interval_(bookmark_interval) {}

void WatchHub::RecordLocked(WatchEvent event) {
  history_.push_back(std::move(event));
  while (static_cast<int>(history_.size()) > history_limit_) {
    floor_ = history_.front().rv;
    history_.pop_front();
  }
  changed_.SignalAll();
}

void WatchHub::CompactLocked(int64_t resource_version) {
  history_.clear();
  floor_ = resource_version;
  changed_.SignalAll();
}

void WatchHub::DropAllLocked() {
  ++drop_generation_;
  changed_.SignalAll();
}

void WatchHub::SetStoppingLocked(bool stopping) {
  stopping_ = stopping;
  changed_.SignalAll();
}

std::string WatchHub::ExpiredLine(int64_t rv, int64_t floor) {
  return EventLine(
      "ERROR", StatusObject(410, "Expired",
                            mailring::StrCat("too old resource version: ", rv, " (", floor, ")")));
}

WatchHub::End WatchHub::Run(const Params& params, const Source& source,
                            const std::function<bool(const std::string&)>& write,
                            const std::function<bool()>& peer_open) {
  const absl::Time deadline = absl::Now() + params.timeout;
  int64_t cursor = 0;
  uint64_t generation = 0;
  std::string first;
  bool expired_at_start = false;
  absl::Duration bookmark_interval;
  {
    absl::MutexLock lock(mu_);
    if (stopping_) return End::kAbrupt;
    if (!params.initial && params.from_rv < floor_) {
      first = ExpiredLine(params.from_rv, floor_);
      expired_at_start = true;
    } else {
      ++open_watches_;
      generation = drop_generation_;
      bookmark_interval = bookmark_interval_;
      if (params.initial) {
        cursor = source.resource_version();
        first = source.initial_lines();
      } else {
        cursor = params.from_rv;
      }
    }
  }
  if (expired_at_start) {
    write(first);
    return End::kClean;
  }
  struct Closer {
    WatchHub* hub;
    ~Closer() {
      absl::MutexLock lock(hub->mu_);
      --hub->open_watches_;
    }
  } closer{this};
  if (!write(first)) return End::kAbrupt;
  absl::Time next_bookmark = absl::Now() + bookmark_interval;
  for (;;) {
    std::string lines;
    bool bookmark_due = false;
    bool expired = false;
    {
      absl::MutexLock lock(mu_);
      const absl::Time wake = std::min({deadline, next_bookmark, absl::Now() + kPollSlice});
      while (!stopping_ && drop_generation_ == generation && source.resource_version() <= cursor &&
             floor_ <= cursor && absl::Now() < wake) {
        changed_.WaitWithDeadline(mu_, wake);
      }
      if (stopping_ || drop_generation_ != generation) return End::kAbrupt;
      if (cursor < floor_) {
        lines = ExpiredLine(cursor, floor_);
        expired = true;
      }
      auto it = std::upper_bound(history_.begin(), history_.end(), cursor,
                                 [](int64_t rv, const WatchEvent& e) { return rv < e.rv; });
      for (; !expired && it != history_.end(); ++it) lines += source.line(*it);
      cursor = source.resource_version();
      if (params.bookmarks && absl::Now() >= next_bookmark) {
        bookmark_due = true;
        next_bookmark = absl::Now() + bookmark_interval_;
      }
    }
    if (expired) {
      write(lines);
      return End::kClean;
    }
    if (bookmark_due) lines += source.bookmark(cursor);
    if (!lines.empty() && !write(lines)) return End::kAbrupt;
    if (!peer_open()) return End::kAbrupt;
    if (absl::Now() >= deadline) return End::kClean;
  }
}

}  // namespace mailring::fakes::kube
