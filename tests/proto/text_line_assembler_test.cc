#include "proto/text_line_assembler.h"

#include <string>

#include "gtest/gtest.h"

namespace mailring::proto {
namespace {

TEST(TextLineAssemblerTest, SplitsCrlfAndBareLfLinesAcrossAppends) {
  TextLineAssembler lines(64);
  ASSERT_TRUE(lines.Append("USER al").ok());
  EXPECT_FALSE(lines.NextLine().has_value());
  ASSERT_TRUE(lines.Append("ice\r\nPASS x\nST").ok());
  EXPECT_EQ(lines.NextLine(), "USER alice");
  EXPECT_EQ(lines.NextLine(), "PASS x");
  EXPECT_FALSE(lines.NextLine().has_value());
  ASSERT_TRUE(lines.Append("AT\r").ok());
  EXPECT_FALSE(lines.NextLine().has_value()) << "a CR alone does not end a line";
  ASSERT_TRUE(lines.Append("\n\r\n").ok());
  EXPECT_EQ(lines.NextLine(), "STAT");
  EXPECT_EQ(lines.NextLine(), "") << "an empty line is a line";
}

TEST(TextLineAssemblerTest, TakePendingReturnsEverythingAfterTheLastLineHandedOut) {
  TextLineAssembler lines(64);
  ASSERT_TRUE(lines.Append("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDA").ok());
  EXPECT_EQ(lines.NextLine(), "MAIL FROM:<a@b>");
  EXPECT_EQ(lines.TakePending(), "RCPT TO:<c@d>\r\nDA");
  EXPECT_FALSE(lines.NextLine().has_value());
  EXPECT_EQ(lines.TakePending(), "");
}

TEST(TextLineAssemblerTest, OversizeLineFailsWithoutQuotingAndKeepsEarlierLines) {
  TextLineAssembler lines(8);
  ASSERT_TRUE(lines.Append("12345678\r\n").ok()) << "exactly the limit is fine";
  const absl::Status status = lines.Append("ok\r\nSECRETSECRET\r\nlater\r\n");
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(std::string(status.message()).find("SECRET"), std::string::npos) << status;
  EXPECT_EQ(lines.NextLine(), "12345678");
  EXPECT_EQ(lines.NextLine(), "ok");
  EXPECT_FALSE(lines.NextLine().has_value()) << "nothing from the offending line on";
  EXPECT_FALSE(lines.Append("x\r\n").ok()) << "stays failed";
}

TEST(TextLineAssemblerTest, UnfinishedOversizeLineFailsBeforeItsEndArrives) {
  TextLineAssembler lines(8);
  EXPECT_TRUE(lines.Append("12345678\r").ok()) << "nine bytes: an 8-byte line and its CR";
  EXPECT_FALSE(lines.Append("0").ok()) << "a tenth byte without a line end cannot fit";
}

}  // namespace
}  // namespace mailring::proto
