#include "proto/imap_response.h"

#include "gtest/gtest.h"

namespace mailring::proto {
namespace {

using Kind = ImapResponse::Kind;

TEST(ImapResponseTest, DovecotGreetingCarriesCapabilities) {
  auto response = ParseImapResponse(
      "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS "
      "AUTH=PLAIN] Dovecot ready.");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->kind, Kind::kUntagged);
  EXPECT_EQ(response->tag, "");
  EXPECT_TRUE(response->IsStatus("ok"));
  EXPECT_EQ(response->code,
            "CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS "
            "AUTH=PLAIN");
  EXPECT_EQ(response->text, "Dovecot ready.");
  EXPECT_EQ(response->Capabilities(),
            "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN");
}

TEST(ImapResponseTest, TaggedOkWithCapabilityCode) {
  auto response = ParseImapResponse("A1 OK [CAPABILITY IMAP4rev1 IDLE] Logged in");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->kind, Kind::kTagged);
  EXPECT_EQ(response->tag, "A1");
  EXPECT_EQ(response->keyword, "OK");
  EXPECT_EQ(response->Capabilities(), "IMAP4rev1 IDLE");
  EXPECT_EQ(response->text, "Logged in");
}

TEST(ImapResponseTest, UntaggedCapabilityResponse) {
  auto response = ParseImapResponse("* CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->kind, Kind::kUntagged);
  EXPECT_TRUE(response->IsStatus("CAPABILITY"));
  EXPECT_EQ(response->code, "");
  EXPECT_EQ(response->Capabilities(), "IMAP4rev1 LITERAL+ AUTH=PLAIN");
}

TEST(ImapResponseTest, EmptyContinuation) {
  auto response = ParseImapResponse("+ ");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->kind, Kind::kContinuation);
  EXPECT_EQ(response->tag, "");
  EXPECT_EQ(response->keyword, "");
  EXPECT_EQ(response->text, "");
}

TEST(ImapResponseTest, BareContinuationIsTolerated) {
  auto response = ParseImapResponse("+");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->kind, Kind::kContinuation);
  EXPECT_EQ(response->text, "");
}

TEST(ImapResponseTest, ContinuationWithBase64Challenge) {
  auto response = ParseImapResponse("+ eyJzdGF0dXMiOiI0MDEifQ==");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->kind, Kind::kContinuation);
  EXPECT_EQ(response->text, "eyJzdGF0dXMiOiI0MDEifQ==");
  EXPECT_EQ(response->Capabilities(), std::nullopt);
}

TEST(ImapResponseTest, ContinuationWithCode) {
  auto response = ParseImapResponse("+ [ALERT] go ahead");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->code, "ALERT");
  EXPECT_EQ(response->text, "go ahead");
}

TEST(ImapResponseTest, TaggedNoWithResponseCode) {
  auto response = ParseImapResponse("A1 NO [AUTHENTICATIONFAILED] Authentication failed.");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->kind, Kind::kTagged);
  EXPECT_TRUE(response->IsStatus("NO"));
  EXPECT_FALSE(response->IsStatus("OK"));
  EXPECT_EQ(response->code, "AUTHENTICATIONFAILED");
  EXPECT_EQ(response->text, "Authentication failed.");
  EXPECT_EQ(response->Capabilities(), std::nullopt);
}

TEST(ImapResponseTest, UntaggedByeWithoutCode) {
  auto response = ParseImapResponse("* BYE Server shutting down.");
  ASSERT_TRUE(response.has_value());
  EXPECT_TRUE(response->IsStatus("bye"));
  EXPECT_EQ(response->code, "");
  EXPECT_EQ(response->text, "Server shutting down.");
}

TEST(ImapResponseTest, NumericUntaggedResponse) {
  auto response = ParseImapResponse("* 3 EXISTS");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->keyword, "3");
  EXPECT_EQ(response->text, "EXISTS");
}

TEST(ImapResponseTest, PreauthGreeting) {
  auto response = ParseImapResponse("* PREAUTH [CAPABILITY IMAP4rev1] mailring");
  ASSERT_TRUE(response.has_value());
  EXPECT_TRUE(response->IsStatus("PREAUTH"));
  EXPECT_EQ(response->Capabilities(), "IMAP4rev1");
}

TEST(ImapResponseTest, StatusWithoutText) {
  auto response = ParseImapResponse("A7 OK");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->keyword, "OK");
  EXPECT_EQ(response->text, "");
  auto with_code = ParseImapResponse("A7 OK [READ-WRITE]");
  ASSERT_TRUE(with_code.has_value());
  EXPECT_EQ(with_code->code, "READ-WRITE");
  EXPECT_EQ(with_code->text, "");
}

TEST(ImapResponseTest, UnclosedCodeIsKeptAsText) {
  auto response = ParseImapResponse("* OK [ALERT oops");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->code, "");
  EXPECT_EQ(response->text, "[ALERT oops");
}

TEST(ImapResponseTest, CodeNotNamedCapabilityIsNotCapabilities) {
  auto response = ParseImapResponse("* OK [CAPABILITYX foo] hi");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->Capabilities(), std::nullopt);
  auto tagged = ParseImapResponse("A1 CAPABILITY IMAP4rev1");
  ASSERT_TRUE(tagged.has_value());
  EXPECT_EQ(tagged->Capabilities(), std::nullopt);
}

TEST(ImapResponseTest, KeywordCasePreservedAndComparedCaseInsensitively) {
  auto response = ParseImapResponse("a1 ok [capability imap4rev1] fine");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->tag, "a1");
  EXPECT_EQ(response->keyword, "ok");
  EXPECT_TRUE(response->IsStatus("OK"));
  EXPECT_EQ(response->Capabilities(), "imap4rev1");
}

TEST(ImapResponseTest, NonResponsesAreRejected) {
  for (std::string_view line : {"", "A1", "*", "* ", " OK", "+x", "A1  OK"}) {
    EXPECT_EQ(ParseImapResponse(line), std::nullopt) << '"' << line << '"';
  }
}

}  // namespace
}  // namespace mailring::proto
