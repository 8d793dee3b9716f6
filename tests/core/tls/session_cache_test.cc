// TlsSessionCache on a fake clock: expiry, single use, LRU bound, key isolation.
#include "core/tls/session_cache.h"

#include <cstdint>
#include <optional>
#include <string>

#include "gtest/gtest.h"

namespace mailring::core {
namespace {

constexpr int64_t kSecond = 1000;

class TlsSessionCacheTest : public ::testing::Test {
 protected:
  TlsSessionCache MakeCache(size_t destinations = 256, size_t per_key = 4) {
    TlsSessionCacheOptions options;
    options.max_destinations = destinations;
    options.max_sessions_per_key = per_key;
    options.clock = [this] { return now_; };
    return TlsSessionCache(std::move(options));
  }
  int64_t now_ = 1'000'000;
};

TEST_F(TlsSessionCacheTest, SingleUseSessionIsTakenOnce) {
  TlsSessionCache cache = MakeCache();
  cache.Put("a", "ticket-1", 300 * kSecond, /*single_use=*/true);
  EXPECT_EQ(cache.sessions(), 1u);
  EXPECT_EQ(cache.Take("a"), std::optional<std::string>("ticket-1"));
  EXPECT_EQ(cache.Take("a"), std::nullopt);
  EXPECT_EQ(cache.sessions(), 0u);
  EXPECT_EQ(cache.session_bytes(), 0u);
}

TEST_F(TlsSessionCacheTest, SeveralTicketsRotateFreshestFirstEachOnce) {
  TlsSessionCache cache = MakeCache();
  cache.Put("a", "ticket-1", 300 * kSecond, true);
  now_ += kSecond;
  cache.Put("a", "ticket-2", 300 * kSecond, true);
  EXPECT_EQ(cache.Take("a"), std::optional<std::string>("ticket-2"));
  EXPECT_EQ(cache.Take("a"), std::optional<std::string>("ticket-1"));
  EXPECT_EQ(cache.Take("a"), std::nullopt);
}

TEST_F(TlsSessionCacheTest, ReusableSessionStaysAndTheNewestReplacesIt) {
  TlsSessionCache cache = MakeCache();
  cache.Put("a", "session-1", 300 * kSecond, /*single_use=*/false);
  EXPECT_EQ(cache.Take("a"), std::optional<std::string>("session-1"));
  EXPECT_EQ(cache.Take("a"), std::optional<std::string>("session-1"));
  cache.Put("a", "session-2", 300 * kSecond, false);
  EXPECT_EQ(cache.sessions(), 1u);
  EXPECT_EQ(cache.Take("a"), std::optional<std::string>("session-2"));
  EXPECT_EQ(cache.session_bytes(), std::string("session-2").size());
}

TEST_F(TlsSessionCacheTest, ExpiresWithTheLifetimeLessTheMargin) {
  TlsSessionCache cache = MakeCache();
  // 300 s less the margin (a twentieth: 15 s) = usable for 285 s.
  cache.Put("a", "ticket", 300 * kSecond, true);
  cache.Put("b", "ticket", 300 * kSecond, true);
  now_ += 285 * kSecond - 1;
  EXPECT_EQ(cache.Take("a"), std::optional<std::string>("ticket"));
  now_ += 1;
  EXPECT_EQ(cache.Take("b"), std::nullopt);
  EXPECT_EQ(cache.sessions(), 0u);
  EXPECT_EQ(cache.session_bytes(), 0u);
}

TEST_F(TlsSessionCacheTest, ShortLifetimeKeepsAtLeastOneSecondMargin) {
  TlsSessionCache cache = MakeCache();
  cache.Put("a", "ticket", 10 * kSecond, true);  // usable 9 s
  now_ += 9 * kSecond;
  EXPECT_EQ(cache.Take("a"), std::nullopt);
  cache.Put("a", "ticket", 1 * kSecond, true);  // nothing usable: not kept
  cache.Put("a", "ticket", 0, true);
  EXPECT_EQ(cache.sessions(), 0u);
}

TEST_F(TlsSessionCacheTest, LifetimeIsCappedAtSevenDays) {
  TlsSessionCache cache = MakeCache();
  cache.Put("a", "ticket", int64_t{30} * 24 * 3600 * kSecond, true);
  now_ += int64_t{7} * 24 * 3600 * kSecond;
  EXPECT_EQ(cache.Take("a"), std::nullopt);
}

TEST_F(TlsSessionCacheTest, KeysAreIsolated) {
  TlsSessionCache cache = MakeCache();
  cache.Put("imap.example.com", "ticket-a", 300 * kSecond, true);
  EXPECT_EQ(cache.Take("imap.example.org"), std::nullopt);
  EXPECT_EQ(cache.Take("imap.example.co"), std::nullopt);
  EXPECT_EQ(cache.Take(""), std::nullopt);
  cache.Forget("imap.example.org");
  EXPECT_EQ(cache.Take("imap.example.com"), std::optional<std::string>("ticket-a"));
}

TEST_F(TlsSessionCacheTest, LeastRecentlyUsedDestinationIsEvicted) {
  TlsSessionCache cache = MakeCache(/*destinations=*/3);
  cache.Put("a", "session-a", 300 * kSecond, false);
  cache.Put("b", "session-b", 300 * kSecond, false);
  cache.Put("c", "session-c", 300 * kSecond, false);
  ASSERT_TRUE(cache.Take("a").has_value());  // a is now the most recently used; b the least
  cache.Put("d", "session-d", 300 * kSecond, false);
  EXPECT_EQ(cache.destinations(), 3u);
  EXPECT_EQ(cache.sessions(), 3u);
  EXPECT_EQ(cache.Take("b"), std::nullopt);
  EXPECT_TRUE(cache.Take("a").has_value());
  EXPECT_TRUE(cache.Take("c").has_value());
  EXPECT_TRUE(cache.Take("d").has_value());
}

TEST_F(TlsSessionCacheTest, ManyDestinationsStayWithinTheBound) {
  TlsSessionCache cache = MakeCache(/*destinations=*/100, /*per_key=*/2);
  for (int i = 0; i < 1000; ++i) {
    for (int t = 0; t < 3; ++t)
      cache.Put("dest-" + std::to_string(i), "ticket", kSecond * 60, true);
  }
  EXPECT_EQ(cache.destinations(), 100u);
  EXPECT_EQ(cache.sessions(), 200u);
  EXPECT_EQ(cache.session_bytes(), 200u * 6);
  EXPECT_EQ(cache.Take("dest-0"), std::nullopt);
  EXPECT_TRUE(cache.Take("dest-999").has_value());
}

TEST_F(TlsSessionCacheTest, PerKeyBoundDropsTheOldestTicket) {
  TlsSessionCache cache = MakeCache(256, /*per_key=*/2);
  cache.Put("a", "ticket-1", 300 * kSecond, true);
  cache.Put("a", "ticket-2", 300 * kSecond, true);
  cache.Put("a", "ticket-3", 300 * kSecond, true);
  EXPECT_EQ(cache.Take("a"), std::optional<std::string>("ticket-3"));
  EXPECT_EQ(cache.Take("a"), std::optional<std::string>("ticket-2"));
  EXPECT_EQ(cache.Take("a"), std::nullopt);
}

TEST_F(TlsSessionCacheTest, TotalBoundTakesTheLeastRecentlyUsedDestinationsOldestFirst) {
  TlsSessionCacheOptions options;
  options.max_sessions = 3;
  options.clock = [this] { return now_; };
  TlsSessionCache cache(std::move(options));
  cache.Put("a", "a-1", 300 * kSecond, true);
  cache.Put("a", "a-2", 300 * kSecond, true);
  cache.Put("b", "b-1", 300 * kSecond, true);
  cache.Put("b", "b-2", 300 * kSecond, true);  // a is the least recently used: a-1 goes
  EXPECT_EQ(cache.sessions(), 3u);
  EXPECT_EQ(cache.session_bytes(), 9u);
  cache.Put("c", "c-1", 300 * kSecond, true);  // a-2 goes, and with it a's last session
  EXPECT_EQ(cache.Take("a"), std::nullopt);
  EXPECT_EQ(cache.Take("b"), std::optional<std::string>("b-2"));
  EXPECT_EQ(cache.Take("b"), std::optional<std::string>("b-1"));
  EXPECT_EQ(cache.Take("c"), std::optional<std::string>("c-1"));
}

TEST_F(TlsSessionCacheTest, DefaultsHoldATicketForEachOf64ConnectionsInFlight) {
  TlsSessionCache cache = MakeCache(256, TlsSessionCacheOptions().max_sessions_per_key);
  for (int i = 0; i < 64; ++i) cache.Put("busy", "ticket-" + std::to_string(i), kSecond * 60, true);
  for (int i = 0; i < 64; ++i) EXPECT_TRUE(cache.Take("busy").has_value()) << i;
  EXPECT_EQ(cache.Take("busy"), std::nullopt);
}

TEST_F(TlsSessionCacheTest, ForgetDropsEverySessionOfTheKey) {
  TlsSessionCache cache = MakeCache();
  cache.Put("a", "ticket-1", 300 * kSecond, true);
  cache.Put("a", "ticket-2", 300 * kSecond, true);
  cache.Put("b", "ticket-b", 300 * kSecond, true);
  cache.Forget("a");
  EXPECT_EQ(cache.Take("a"), std::nullopt);
  EXPECT_EQ(cache.sessions(), 1u);
  EXPECT_EQ(cache.Take("b"), std::optional<std::string>("ticket-b"));
}

TEST_F(TlsSessionCacheTest, OversizedSessionIsNotKept) {
  TlsSessionCacheOptions options;
  options.max_session_bytes = 8;
  options.clock = [this] { return now_; };
  TlsSessionCache cache(std::move(options));
  cache.Put("a", "123456789", 300 * kSecond, true);
  EXPECT_EQ(cache.sessions(), 0u);
  cache.Put("a", "12345678", 300 * kSecond, true);
  EXPECT_EQ(cache.sessions(), 1u);
}

TEST_F(TlsSessionCacheTest, ZeroDestinationsDisablesTheCache) {
  TlsSessionCache cache = MakeCache(/*destinations=*/0);
  cache.Put("a", "ticket", 300 * kSecond, true);
  EXPECT_EQ(cache.sessions(), 0u);
  EXPECT_EQ(cache.Take("a"), std::nullopt);
}

}  // namespace
}  // namespace mailring::core
