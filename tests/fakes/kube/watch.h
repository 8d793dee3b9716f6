// WatchHub: the watch side of the Kubernetes API fake. It keeps the bounded history of events,
// fans new events out to every open watch, sends BOOKMARKs, and answers a watch from a
// resourceVersion older than its history with an ERROR event of code 410 (reason Expired).
//
// It shares the store's mutex (given to the constructor): the store records an event in the
// same critical section as the write that makes it, so no watch sees a write without its event
// or an event without its write. Methods named ...Locked need that mutex held; Run() takes it
// itself and must be called without it.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tests/fakes/kube/json.h"

namespace mailring::fakes::kube {

struct WatchEvent {
  int64_t rv = 0;
  std::string type;  // ADDED, MODIFIED, DELETED
  std::string key;   // the resource type's key (plural.group)
  Json object;
};

// One watch event line: {"type":...,"object":...} and a newline.
std::string EventLine(std::string_view type, const Json& object);

class WatchHub {
 public:
  enum class End { kClean, kAbrupt };  // with the final chunk, or by closing the connection

  // One watch's request.
  struct Params {
    bool initial = false;  // resourceVersion absent or "0": the current objects as ADDED first
    int64_t from_rv = 0;   // otherwise: the events after this one
    bool bookmarks = false;
    absl::Duration timeout;  // then the watch ends cleanly
  };
  // What one watch needs from the store; called with the mutex held.
  struct Source {
    std::function<int64_t()> resource_version;   // the store's current resourceVersion
    std::function<std::string()> initial_lines;  // ADDED lines of the matching objects
    // The event's line for this watch; "" when the event is not for it.
    std::function<std::string(const WatchEvent&)> line;
    // A BOOKMARK line at a resourceVersion (called without the mutex).
    std::function<std::string(int64_t rv)> bookmark;
  };

  WatchHub(absl::Mutex* mu, int history_limit, absl::Duration bookmark_interval);

  // Appends an event (its rv is the store's new resourceVersion) and wakes every watch. The
  // oldest events beyond the history limit are forgotten.
  void RecordLocked(WatchEvent event);
  // Every event with a resourceVersion above this is in the history; a watch or an Exact list
  // from an older one is expired.
  int64_t floor_locked() const { return floor_; }
  // Forgets the history: every resourceVersion older than `resource_version` is expired.
  void CompactLocked(int64_t resource_version);
  // Ends every open watch abruptly, as a broken connection would.
  void DropAllLocked();
  // Stopping: open watches end abruptly, new ones at once. Start() turns it off.
  void SetStoppingLocked(bool stopping);
  void SetBookmarkIntervalLocked(absl::Duration interval) { bookmark_interval_ = interval; }
  int open_watches_locked() const { return open_watches_; }

  // Streams one watch: `write` sends a chunk of event lines (false when the peer is gone),
  // `peer_open` says whether the client still holds the connection. Returns how to end it.
  End Run(const Params& params, const Source& source,
          const std::function<bool(const std::string&)>& write,
          const std::function<bool()>& peer_open);

 private:
  static std::string ExpiredLine(int64_t rv, int64_t floor);

  absl::Mutex* const mu_;
  absl::CondVar changed_;  // an event was recorded, or watches must end
  const int history_limit_;
  // All guarded by *mu_.
  std::deque<WatchEvent> history_;
  int64_t floor_ = 0;
  uint64_t drop_generation_ = 0;
  bool stopping_ = false;
  int open_watches_ = 0;
  absl::Duration bookmark_interval_;
};

}  // namespace mailring::fakes::kube
