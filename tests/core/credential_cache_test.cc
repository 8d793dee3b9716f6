#include "core/credential_cache.h"

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace mailring::core {
namespace {

Credential TokenCredential(const std::string& token, int64_t expires_at_ms) {
  Credential credential;
  credential.access_token = proto::Secret(token);
  credential.expires_at_ms = expires_at_ms;
  return credential;
}

TEST(CredentialCacheTest, PublishedCredentialIsFound) {
  CredentialCache cache(1);
  cache.SetOnline(0, true);
  EXPECT_EQ(cache.Find(0, CredentialKey("dest", "")), nullptr);
  cache.Publish(CredentialKey("dest", ""), TokenCredential("tok", 1000));
  const Credential* found = cache.Find(0, CredentialKey("dest", ""));
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->access_token.Reveal(), "tok");
  EXPECT_TRUE(found->UsableAt(999));
  EXPECT_FALSE(found->UsableAt(1000));
  EXPECT_EQ(cache.Find(0, CredentialKey("dest", "tenant")), nullptr);
}

TEST(CredentialCacheTest, KeysSeparateDestinationTenantAndSubject) {
  EXPECT_NE(CredentialKey("a", "b"), CredentialKey("a\x1f" "b", ""));
  EXPECT_NE(CredentialKey("a", "", "s"), CredentialKey("a", "s"));
}

TEST(CredentialCacheTest, RetiredSnapshotWaitsForEveryOnlineReader) {
  CredentialCache cache(2);
  cache.SetOnline(0, true);
  cache.SetOnline(1, true);
  cache.Publish("k", TokenCredential("v1", 10));
  // Reader 0 has not passed a quiescent point since: the first snapshot stays.
  EXPECT_EQ(cache.retired_snapshots(), 1u);
  cache.Quiescent(0);
  cache.Reclaim();
  EXPECT_EQ(cache.retired_snapshots(), 1u) << "reader 1 may still hold it";
  cache.Quiescent(1);
  cache.Reclaim();
  EXPECT_EQ(cache.retired_snapshots(), 0u);
}

TEST(CredentialCacheTest, OfflineReaderDoesNotHoldReclamationBack) {
  CredentialCache cache(2);
  cache.SetOnline(0, true);
  cache.Publish("k", TokenCredential("v1", 10));
  cache.Quiescent(0);
  cache.Reclaim();
  EXPECT_EQ(cache.retired_snapshots(), 0u);
}

TEST(CredentialCacheTest, EraseRemovesOnlyThatKey) {
  CredentialCache cache(1);
  cache.SetOnline(0, true);
  cache.Publish("a", TokenCredential("1", 10));
  cache.Publish("b", TokenCredential("2", 10));
  cache.Erase("a");
  EXPECT_EQ(cache.Find(0, "a"), nullptr);
  ASSERT_NE(cache.Find(0, "b"), nullptr);
  EXPECT_EQ(cache.size(), 1u);
}

// A writer publishing continuously while a reader per core reads: every read must see a whole
// record (token and expiry written together) and never freed memory. Run under TSan and ASan.
TEST(CredentialCacheStressTest, ReadersNeverSeeTornOrFreedRecords) {
  const int readers = std::max(2u, std::thread::hardware_concurrency());
  CredentialCache cache(readers);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0};
  std::atomic<uint64_t> torn{0};
  std::vector<std::thread> threads;
  for (int r = 0; r < readers; ++r) {
    threads.emplace_back([&, r] {
      cache.SetOnline(r, true);
      uint64_t local = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        for (int i = 0; i < 64; ++i) {
          const Credential* c = cache.Find(r, "dest\x1f\x1f");
          if (c == nullptr) continue;
          // The writer stores token "t<N>" with expiry N: a mismatch is a torn record.
          const std::string_view token = c->access_token.Reveal();
          if (token.size() < 2 || std::to_string(c->expires_at_ms) != token.substr(1)) {
            torn.fetch_add(1);
          }
          ++local;
        }
        cache.Quiescent(r);
      }
      cache.SetOnline(r, false);
      reads.fetch_add(local);
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  int64_t n = 0;
  while (std::chrono::steady_clock::now() < deadline && n < 2'000'000) {
    ++n;
    cache.Publish("dest\x1f\x1f", TokenCredential("t" + std::to_string(n), n));
    if (n % 16 == 0) cache.Publish("other\x1f\x1f", TokenCredential("x", 0));
  }
  stop = true;
  for (std::thread& t : threads) t.join();
  cache.Reclaim();
  EXPECT_EQ(torn.load(), 0u);
  EXPECT_GT(reads.load(), 0u);
  EXPECT_GT(n, 100);
  EXPECT_EQ(cache.retired_snapshots(), 0u) << "every reader went offline: all reclaimable";
}

}  // namespace
}  // namespace mailring::core
