// RejectedTokens: a refused token is recognised under its key until the cache moves on.
#include "core/rejected_tokens.h"

#include <string>

#include "gtest/gtest.h"

namespace mailring::core {
namespace {

TEST(RejectedTokensTest, RefusedTokenIsRecognisedUnderItsKeyOnly) {
  RejectedTokens rejected;
  rejected.Remember("dest/t1", proto::Secret("old-token"));
  EXPECT_TRUE(rejected.Contains("dest/t1", proto::Secret("old-token")));
  EXPECT_TRUE(rejected.Contains("dest/t1", proto::Secret("old-token"))) << "asked twice";
  EXPECT_FALSE(rejected.Contains("dest/t2", proto::Secret("old-token")));
  EXPECT_FALSE(rejected.Contains("other", proto::Secret("old-token")));
}

TEST(RejectedTokensTest, AnotherTokenUnderTheKeyForgetsTheRefusedOne) {
  RejectedTokens rejected;
  rejected.Remember("dest", proto::Secret("old-token"));
  // The control thread published a new token: it is usable, and the old one is forgotten.
  EXPECT_FALSE(rejected.Contains("dest", proto::Secret("new-token")));
  EXPECT_EQ(rejected.size(), 0u);
  EXPECT_FALSE(rejected.Contains("dest", proto::Secret("old-token")));
}

TEST(RejectedTokensTest, LaterRejectionReplacesTheEarlierOne) {
  RejectedTokens rejected;
  rejected.Remember("dest", proto::Secret("first"));
  rejected.Remember("dest", proto::Secret("second"));
  EXPECT_EQ(rejected.size(), 1u);
  EXPECT_TRUE(rejected.Contains("dest", proto::Secret("second")));
}

TEST(RejectedTokensTest, StaysBoundedUnderManyKeys) {
  RejectedTokens rejected;
  for (size_t i = 0; i < 3 * RejectedTokens::kMaxKeys; ++i) {
    rejected.Remember("key" + std::to_string(i), proto::Secret("token"));
    ASSERT_LE(rejected.size(), RejectedTokens::kMaxKeys) << i;
  }
  // The newest rejection survives the wholesale clearing.
  EXPECT_TRUE(rejected.Contains("key" + std::to_string(3 * RejectedTokens::kMaxKeys - 1),
                                proto::Secret("token")));
}

}  // namespace
}  // namespace mailring::core
