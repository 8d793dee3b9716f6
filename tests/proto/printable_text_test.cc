#include "proto/printable_text.h"

#include "gtest/gtest.h"

namespace mailring::proto {
namespace {

TEST(PrintableTextTest, NoLineBreakOrControlCharacterSurvives) {
  EXPECT_EQ(PrintableText("invalid_grant\r\n* OK injected"), "invalid_grant??* OK injected");
  EXPECT_EQ(PrintableText(std::string("a\0b\x7f\xc3\xa9", 5)), "a?b??");
  EXPECT_EQ(PrintableText("plain text"), "plain text");
}

TEST(PrintableTextTest, IsBounded) {
  EXPECT_EQ(PrintableText(std::string(1000, 'x')).size(), 300u);
  EXPECT_EQ(PrintableText("abcdef", 3), "abc");
}

}  // namespace
}  // namespace mailring::proto
