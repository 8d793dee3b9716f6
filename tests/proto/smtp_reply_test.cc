#include "proto/smtp_reply.h"

#include <string>

#include "gtest/gtest.h"

namespace mailring::proto {
namespace {

TEST(SmtpReplyAssemblerTest, GroupsAMultiLineEhloReply) {
  SmtpReplyAssembler replies;
  for (const char* line : {"250-mailring-fixture.test", "250-8BITMIME", "250-AUTH PLAIN LOGIN"}) {
    absl::StatusOr<std::optional<SmtpReply>> step = replies.OnLine(line);
    ASSERT_TRUE(step.ok()) << step.status();
    EXPECT_FALSE(step->has_value());
  }
  absl::StatusOr<std::optional<SmtpReply>> step = replies.OnLine("250 PIPELINING");
  ASSERT_TRUE(step.ok() && step->has_value());
  EXPECT_EQ((*step)->code, 250);
  ASSERT_EQ((*step)->lines.size(), 4u);
  EXPECT_EQ((*step)->lines[2], "AUTH PLAIN LOGIN");
  EXPECT_EQ((*step)->last(), "PIPELINING");
}

TEST(SmtpReplyAssemblerTest, BareCodeAndSingleLineReplies) {
  SmtpReplyAssembler replies;
  absl::StatusOr<std::optional<SmtpReply>> step = replies.OnLine("354");
  ASSERT_TRUE(step.ok() && step->has_value());
  EXPECT_EQ((*step)->code, 354);
  EXPECT_EQ((*step)->last(), "");
  step = replies.OnLine("535 5.7.8 Authentication failed");
  ASSERT_TRUE(step.ok() && step->has_value());
  EXPECT_EQ((*step)->last(), "5.7.8 Authentication failed");
}

TEST(SmtpReplyAssemblerTest, MalformedLinesAreErrorsThatQuoteNothing) {
  for (const char* line : {"", "25", "abc hello", "2500 x", "250xSECRET", "999 x"}) {
    SmtpReplyAssembler replies;
    absl::StatusOr<std::optional<SmtpReply>> step = replies.OnLine(line);
    EXPECT_FALSE(step.ok()) << line;
    if (!step.ok()) {
      EXPECT_EQ(std::string(step.status().message()).find("SECRET"), std::string::npos);
    }
  }
  SmtpReplyAssembler replies;
  ASSERT_TRUE(replies.OnLine("250-a").ok());
  EXPECT_FALSE(replies.OnLine("550 b").ok()) << "the code changed within a reply";
}

TEST(SmtpReplyAssemblerTest, EndlessContinuationIsCut) {
  SmtpReplyAssembler replies;
  absl::Status last;
  for (size_t i = 0; i <= SmtpReplyAssembler::kMaxLines && last.ok(); ++i) {
    last = replies.OnLine("250-x").status();
  }
  EXPECT_FALSE(last.ok());
}

}  // namespace
}  // namespace mailring::proto
