#include "proto/secret.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace mailring::proto {
namespace {

TEST(SecretTest, StrCatPrintsRedacted) {
  const Secret secret("hunter2");
  EXPECT_EQ(absl::StrCat(secret), "<redacted>");
  EXPECT_EQ(absl::StrCat("password=", secret, "."), "password=<redacted>.");
}

TEST(SecretTest, StrAppendPrintsRedacted) {
  const Secret secret("hunter2");
  std::string out = "x=";
  absl::StrAppend(&out, secret);
  EXPECT_EQ(out, "x=<redacted>");
}

TEST(SecretTest, RevealGivesTheValue) {
  const Secret secret("hunter2");
  EXPECT_EQ(secret.Reveal(), "hunter2");
  EXPECT_EQ(secret.size(), 7u);
  EXPECT_FALSE(secret.empty());
  EXPECT_TRUE(Secret().empty());
}

}  // namespace
}  // namespace mailring::proto
