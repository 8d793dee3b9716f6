// CredentialCache: access tokens published by the control thread, read by every worker with
// one atomic load, no lock and no shared reference count on the read path.
//
// The cache is a sequence of immutable snapshots (key → Credential). The control thread (the
// only writer) copies the current snapshot, changes it and publishes the copy with one atomic
// exchange; the replaced snapshot is retired, not freed. Workers read the current snapshot
// between two quiescent points of their event loop: Quiescent(reader) says "I hold no pointer
// into the cache", and a retired snapshot is freed once every reader has announced a quiescent
// point after its retirement (quiescent-state-based reclamation, QSBR). A reader that is
// offline (a worker that has stopped) does not hold reclamation back.
//
// Contract:
//  - One writer thread calls Publish/Erase/Reclaim. Any number of readers, fixed at
//    construction, each with its index; reader i calls Find/Quiescent/SetOnline only from its
//    own thread.
//  - A Credential* returned by Find(reader, …) is valid until that reader's next Quiescent().
//    A session that needs a token across event-loop iterations copies it (see core/session.cc).
//  - Credentials hold secrets: nothing here logs or prints them.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "proto/secret.h"

namespace mailring::core {

struct Credential {
  proto::Secret access_token;  // empty when no token could be obtained yet
  int64_t expires_at_ms = 0;   // MonotonicMs() deadline of access_token
  std::string failure;         // why the last attempt failed ("" after a success); safe to log
  int64_t failed_at_ms = 0;    // when `failure` happened

  bool UsableAt(int64_t now_ms) const { return !access_token.empty() && now_ms < expires_at_ms; }
};

// "destination\x1ftenant\x1fsubject": subject is empty for client credentials and a hash of the
// refresh token or code for the per-user grants.
std::string CredentialKey(std::string_view destination, std::string_view tenant,
                          std::string_view subject = {});

class CredentialCache {
 public:
  explicit CredentialCache(int readers);
  ~CredentialCache();
  CredentialCache(const CredentialCache&) = delete;
  CredentialCache& operator=(const CredentialCache&) = delete;

  // --- readers ---
  const Credential* Find(int reader, std::string_view key) const;
  void Quiescent(int reader);
  // An offline reader holds no pointers and is ignored by reclamation until it comes back.
  void SetOnline(int reader, bool online);

  // --- the writer ---
  void Publish(const std::string& key, Credential credential);
  void Erase(const std::string& key);
  // Frees retired snapshots no reader can still see. Publish calls it; the control thread also
  // calls it periodically so memory is returned when nothing is published.
  void Reclaim();
  size_t retired_snapshots() const { return retired_.size(); }
  size_t size() const;

 private:
  struct Snapshot {
    absl::flat_hash_map<std::string, std::shared_ptr<const Credential>> entries;
  };
  struct alignas(64) ReaderSlot {
    // The global epoch this reader saw at its last quiescent point; kOffline when offline.
    std::atomic<uint64_t> epoch{0};
  };
  static constexpr uint64_t kOffline = ~uint64_t{0};

  void Replace(std::unique_ptr<Snapshot> next);

  std::atomic<const Snapshot*> current_;
  std::atomic<uint64_t> global_epoch_{1};
  std::unique_ptr<ReaderSlot[]> readers_;
  int reader_count_;
  // Writer-only state.
  struct Retired {
    const Snapshot* snapshot;
    uint64_t epoch;  // freed once every online reader's epoch >= this
  };
  std::vector<Retired> retired_;
};

}  // namespace mailring::core
