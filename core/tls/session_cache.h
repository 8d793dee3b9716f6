// TlsSessionCache: the TLS sessions a worker keeps per upstream destination, so that a session
// reconnecting to the same mail server resumes (TLS 1.3 PSK from a NewSessionTicket, TLS 1.2
// session ID or ticket) instead of running a full handshake with certificate verification.
//
// One cache per worker thread (it lives in the worker's TlsContext): no locks, no sharing. The
// cache knows nothing of wolfSSL: a stored session is the opaque serialized form TlsClient made
// of it (wolfSSL_i2d_SSL_SESSION), which is what bounds its memory (see below).
//
// Keys are the destination's upstream identity (TlsResumptionKey in core/tls/resumption_key.h):
// two destinations never share a session, and a session made under one verification setting is
// never offered under another.
//
// Rules:
//   - An entry expires with the lifetime the server gave it (the ticket lifetime, or the TLS 1.2
//     session timeout), measured on the injected clock from when it was stored, minus a margin so
//     that a ticket is never presented at the edge of its life.
//   - Single-use sessions (TLS 1.3 tickets, RFC 8446 C.4) leave the cache when taken: a server
//     that issues several tickets per connection has each one presented at most once, freshest
//     first. Reusable sessions (TLS 1.2) stay until they expire or are forgotten.
//   - Forget() drops every session of a key: TlsClient calls it when a handshake that offered a
//     session failed, or when the server declined to resume (its ticket keys rotated).
//   - Bounded: at most `max_destinations` keys (least recently used evicted first), each with at
//     most `max_sessions_per_key` sessions (oldest dropped first), at most `max_sessions` in all
//     (the least recently used destination's oldest go first), each at most `max_session_bytes`
//     serialized (larger ones are not kept).
//   - Why a key holds many: single-use tickets must cover the connections a destination opens
//     at once. Each connection takes one and brings one or two (OpenSSL servers send two after a
//     full handshake, one after a resumed one), but only once its handshake is done; 64 sessions
//     in flight to one destination find 64 tickets only if the key may hold that many (with 4,
//     measured: 26% of churn sessions resumed instead of nearly all).
//
// Memory: a wolfSSL 5.5.4 session serializes to about 1.1 KiB with a two-certificate P-256 chain
// (wolfSSL keeps the peer chain in the session: SESSION_CERTS), 2-5 KiB with RSA chains; plus
// about 100 bytes of bookkeeping per entry and the key (about 100 bytes) per destination. With
// the defaults (1 024 sessions in all) the worst case is about 1.2 MiB per worker with P-256
// chains and 5 MiB with large RSA chains; a destination with few sessions at a time holds a few
// KiB.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace mailring::core {

struct TlsSessionCacheOptions {
  size_t max_destinations = 256;  // 0 disables resumption (nothing is stored)
  size_t max_sessions_per_key = 64;
  size_t max_sessions = 1024;
  size_t max_session_bytes = 16 * 1024;
  // Lifetimes beyond this are cut to it (RFC 8446 4.6.1: tickets live at most 7 days).
  int64_t max_lifetime_ms = int64_t{7} * 24 * 3600 * 1000;
  // Monotonic milliseconds; tests inject a fake one. Null: core/clock.h's MonotonicMs.
  std::function<int64_t()> clock;
};

class TlsSessionCache {
 public:
  explicit TlsSessionCache(TlsSessionCacheOptions options = {});
  TlsSessionCache(const TlsSessionCache&) = delete;
  TlsSessionCache& operator=(const TlsSessionCache&) = delete;

  // Keeps `session` for `key` for `lifetime_ms` from now. A reusable session replaces the
  // reusable ones already kept for the key (the newest wins). Not kept when the lifetime (after
  // the margin) is not positive, the session is too large, or the cache is disabled.
  void Put(std::string_view key, std::string session, int64_t lifetime_ms, bool single_use);
  // The freshest unexpired session for `key`; a single-use one is removed. Marks the key as
  // recently used.
  std::optional<std::string> Take(std::string_view key);
  // Drops every session kept for `key`.
  void Forget(std::string_view key);

  size_t destinations() const { return index_.size(); }
  size_t sessions() const { return sessions_; }
  // Serialized bytes held (the sessions only, not the bookkeeping).
  size_t session_bytes() const { return session_bytes_; }
  int64_t now_ms() const;

 private:
  struct Entry {
    std::string session;
    int64_t expires_at_ms = 0;
    bool single_use = true;
  };
  struct Destination {
    std::string key;
    std::vector<Entry> entries;  // oldest first
  };
  using Lru = std::list<Destination>;  // most recently used first

  // The destination for `key` moved to the front, or null when absent; expired entries removed.
  Destination* Touch(std::string_view key, int64_t now);
  void RemoveEntry(Destination& destination, size_t index);
  void Erase(Lru::iterator it);

  TlsSessionCacheOptions options_;
  Lru lru_;
  absl::flat_hash_map<std::string, Lru::iterator> index_;  // key -> its node in lru_
  size_t sessions_ = 0;
  size_t session_bytes_ = 0;
};

}  // namespace mailring::core
