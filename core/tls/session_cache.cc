#include "core/tls/session_cache.h"

#include <algorithm>
#include <utility>

#include "core/clock.h"
#include "proto/absl_string_view.h"

namespace mailring::core {
namespace {

// What is cut from a lifetime before it counts: a twentieth, at least one second. The server
// measures the ticket's age from when it sent it, we from when we stored it, and the two clocks
// and the network disagree a little; a ticket presented after its end only costs a full
// handshake, but one presented just before it is wasted work for both sides.
int64_t UsableLifetimeMs(int64_t lifetime_ms) {
  return lifetime_ms - std::max<int64_t>(1000, lifetime_ms / 20);
}

}  // namespace

TlsSessionCache::TlsSessionCache(TlsSessionCacheOptions options) : options_(std::move(options)) {
  if (!options_.clock) options_.clock = MonotonicMs;
}

int64_t TlsSessionCache::now_ms() const { return options_.clock(); }

void TlsSessionCache::Put(std::string_view key, std::string session, int64_t lifetime_ms,
                          bool single_use) {
  if (options_.max_destinations == 0 || options_.max_sessions_per_key == 0 ||
      options_.max_sessions == 0) {
    return;
  }
  if (session.empty() || session.size() > options_.max_session_bytes) return;
  const int64_t usable = UsableLifetimeMs(std::min(lifetime_ms, options_.max_lifetime_ms));
  if (usable <= 0) return;
  const int64_t now = now_ms();

  Destination* destination = Touch(key, now);
  if (destination == nullptr) {
    lru_.push_front(Destination{std::string(key), {}});
    index_.emplace(lru_.front().key, lru_.begin());
    destination = &lru_.front();
    // Bounded: the least recently used destination goes (the new one is at the front).
    while (index_.size() > options_.max_destinations) Erase(std::prev(lru_.end()));
  }
  if (!single_use) {
    // A reusable session supersedes the reusable ones before it: one is all a client needs.
    for (size_t i = destination->entries.size(); i-- > 0;) {
      if (!destination->entries[i].single_use) RemoveEntry(*destination, i);
    }
  }
  while (destination->entries.size() >= options_.max_sessions_per_key) {
    RemoveEntry(*destination, 0);  // the oldest
  }
  session_bytes_ += session.size();
  ++sessions_;
  destination->entries.push_back(Entry{std::move(session), now + usable, single_use});
  // Bounded in all: the least recently used destination gives up its oldest first. The loop
  // ends: each pass removes an entry or a destination, and the new entry (the front
  // destination's newest) is the last one left when max_sessions is 1.
  while (sessions_ > options_.max_sessions) {
    const Lru::iterator last = std::prev(lru_.end());
    if (last->entries.empty()) {
      Erase(last);
    } else {
      RemoveEntry(*last, 0);
    }
  }
}

std::optional<std::string> TlsSessionCache::Take(std::string_view key) {
  Destination* destination = Touch(key, now_ms());
  if (destination == nullptr || destination->entries.empty()) return std::nullopt;
  const size_t newest = destination->entries.size() - 1;
  Entry& entry = destination->entries[newest];
  if (!entry.single_use) return entry.session;  // a copy: it stays for the next connection
  std::string session = std::move(entry.session);
  entry.session.clear();  // RemoveEntry subtracts what the entry still holds
  session_bytes_ -= session.size();
  RemoveEntry(*destination, newest);
  return session;
}

void TlsSessionCache::Forget(std::string_view key) {
  const auto it = index_.find(proto::AsAbsl(key));
  if (it != index_.end()) Erase(it->second);
}

TlsSessionCache::Destination* TlsSessionCache::Touch(std::string_view key, int64_t now) {
  const auto it = index_.find(proto::AsAbsl(key));
  if (it == index_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);  // iterators stay valid
  Destination& destination = lru_.front();
  for (size_t i = destination.entries.size(); i-- > 0;) {
    if (destination.entries[i].expires_at_ms <= now) RemoveEntry(destination, i);
  }
  return &destination;
}

void TlsSessionCache::RemoveEntry(Destination& destination, size_t index) {
  session_bytes_ -= destination.entries[index].session.size();
  --sessions_;
  destination.entries.erase(destination.entries.begin() + static_cast<std::ptrdiff_t>(index));
}

void TlsSessionCache::Erase(Lru::iterator it) {
  for (const Entry& entry : it->entries) session_bytes_ -= entry.session.size();
  sessions_ -= it->entries.size();
  index_.erase(it->key);
  lru_.erase(it);
}

}  // namespace mailring::core
