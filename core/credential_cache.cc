#include "core/credential_cache.h"

#include <algorithm>

#include "proto/str_cat.h"

namespace mailring::core {

std::string CredentialKey(std::string_view destination, std::string_view tenant,
                          std::string_view subject) {
  return mailring::StrCat(destination, "\x1f", tenant, "\x1f", subject);
}

CredentialCache::CredentialCache(int readers)
    : current_(new Snapshot()), readers_(new ReaderSlot[readers]), reader_count_(readers) {
  for (int i = 0; i < readers; ++i) readers_[i].epoch.store(kOffline, std::memory_order_relaxed);
}

CredentialCache::~CredentialCache() {
  for (const Retired& retired : retired_) delete retired.snapshot;
  delete current_.load();
}

const Credential* CredentialCache::Find(int reader, std::string_view key) const {
  // Pairs with the exchange in Replace(): the snapshot's contents are visible. seq_cst rather
  // than acquire for SetOnline()'s sake (see there).
  const Snapshot* snapshot = current_.load(std::memory_order_seq_cst);
  auto it = snapshot->entries.find(absl::string_view(key.data(), key.size()));
  return it == snapshot->entries.end() ? nullptr : it->second.get();
}

void CredentialCache::Quiescent(int reader) {
  // Everything this reader read before happens-before the store; the writer's acquire load of
  // the slot in Reclaim() then knows those reads are over.
  readers_[reader].epoch.store(global_epoch_.load(std::memory_order_acquire),
                               std::memory_order_release);
}

void CredentialCache::SetOnline(int reader, bool online) {
  if (online) {
    // Coming online is the one store that lowers a slot (from kOffline), and a writer that
    // still saw kOffline would free what this reader is about to load. So this store, the
    // readers' loads of `current_` (Find) and the writer's exchange of `current_` and loads of
    // the slots (Replace, Reclaim) are seq_cst: in their single total order, either the writer
    // sees this epoch, or this reader's next Find() sees the new snapshot. With release/acquire
    // only, the x86 store buffer lets the reader's load pass its own store (the stress test
    // crashed about once in 40 runs under load). seq_cst loads cost what acquire loads cost on
    // x86 and ARMv8; this store is once per worker start.
    readers_[reader].epoch.store(global_epoch_.load(std::memory_order_seq_cst),
                                 std::memory_order_seq_cst);
  } else {
    readers_[reader].epoch.store(kOffline, std::memory_order_release);
  }
}

void CredentialCache::Replace(std::unique_ptr<Snapshot> next) {
  const Snapshot* previous = current_.exchange(next.release(), std::memory_order_seq_cst);
  // Readers that announce this epoch (or later) read `current_` after the exchange above, so
  // they cannot be holding `previous`.
  const uint64_t epoch = global_epoch_.fetch_add(1, std::memory_order_acq_rel) + 1;
  retired_.push_back(Retired{previous, epoch});
  Reclaim();
}

void CredentialCache::Publish(const std::string& key, Credential credential) {
  auto next = std::make_unique<Snapshot>(*current_.load(std::memory_order_acquire));
  next->entries[key] = std::make_shared<const Credential>(std::move(credential));
  Replace(std::move(next));
}

void CredentialCache::Erase(const std::string& key) {
  const Snapshot* current = current_.load(std::memory_order_acquire);
  if (!current->entries.contains(key)) return;
  auto next = std::make_unique<Snapshot>(*current);
  next->entries.erase(key);
  Replace(std::move(next));
}

void CredentialCache::Reclaim() {
  uint64_t oldest_seen = kOffline;
  for (int i = 0; i < reader_count_; ++i) {
    oldest_seen = std::min(oldest_seen, readers_[i].epoch.load(std::memory_order_seq_cst));
  }
  std::erase_if(retired_, [oldest_seen](const Retired& retired) {
    if (retired.epoch > oldest_seen) return false;
    delete retired.snapshot;
    return true;
  });
}

size_t CredentialCache::size() const {
  return current_.load(std::memory_order_acquire)->entries.size();
}

}  // namespace mailring::core
