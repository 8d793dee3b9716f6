#include "core/upstream_login.h"

#include <string>

#include "gtest/gtest.h"

namespace mailring::core {
namespace {

using Outcome = UpstreamLogin::Outcome;

TEST(UpstreamLoginTest, GreetingWithCapabilitiesGoesStraightToAuthenticatePlain) {
  UpstreamLogin login("alice", proto::Secret("secret"));
  UpstreamLogin::Step step =
      login.OnLine("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN LITERAL+] Dovecot ready.");
  ASSERT_EQ(step.outcome, Outcome::kSend);
  // base64("\0alice\0secret")
  EXPECT_EQ(step.send, "M2 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n");
  step = login.OnLine("M2 OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in");
  EXPECT_EQ(step.outcome, Outcome::kLoggedIn);
  EXPECT_EQ(login.capabilities().ForPreauthenticatedClient(), "IMAP4rev1 IDLE MOVE");
}

TEST(UpstreamLoginTest, GreetingWithoutCapabilitiesAsksForThem) {
  UpstreamLogin login("alice", proto::Secret("secret"));
  UpstreamLogin::Step step = login.OnLine("* OK ready");
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "M1 CAPABILITY\r\n");
  EXPECT_EQ(login.OnLine("* CAPABILITY IMAP4rev1 AUTH=PLAIN").outcome, Outcome::kNeedMore);
  step = login.OnLine("M1 OK done");
  ASSERT_EQ(step.outcome, Outcome::kSend);
  // No SASL-IR: LOGIN with atoms.
  EXPECT_EQ(step.send, "M2 LOGIN alice secret\r\n");
}

TEST(UpstreamLoginTest, LoginResponseWithoutCapabilitiesAsksAgainAfterLogin) {
  UpstreamLogin login("alice", proto::Secret("secret"));
  login.OnLine("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready");
  UpstreamLogin::Step step = login.OnLine("M2 OK Logged in");
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "M3 CAPABILITY\r\n");
  login.OnLine("* CAPABILITY IMAP4rev1 IDLE");
  EXPECT_EQ(login.OnLine("M3 OK done").outcome, Outcome::kLoggedIn);
  EXPECT_EQ(login.capabilities().ForPreauthenticatedClient(), "IMAP4rev1 IDLE");
}

TEST(UpstreamLoginTest, SynchronizingLiteralWaitsForContinuation) {
  UpstreamLogin login("carol", proto::Secret("pa\xc3\xa9ss"));  // 8-bit: needs a literal
  UpstreamLogin::Step step = login.OnLine("* OK [CAPABILITY IMAP4rev1] ready");
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "M2 LOGIN carol {6}\r\n");
  step = login.OnLine("+ go ahead");
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "pa\xc3\xa9ss\r\n");
  EXPECT_EQ(login.OnLine("M2 OK [CAPABILITY IMAP4rev1] hi").outcome, Outcome::kLoggedIn);
}

TEST(UpstreamLoginTest, NonSynchronizingLiteralWithLiteralPlus) {
  UpstreamLogin login("carol", proto::Secret("pa\xc3\xa9ss"));
  UpstreamLogin::Step step = login.OnLine("* OK [CAPABILITY IMAP4rev1 LITERAL+] ready");
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "M2 LOGIN carol {6+}\r\npa\xc3\xa9ss\r\n");
}

TEST(UpstreamLoginTest, RejectedLoginQuotesServerButNeverThePassword) {
  UpstreamLogin login("alice", proto::Secret("hunter2"));
  login.OnLine("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready");
  UpstreamLogin::Step step =
      login.OnLine("M2 NO [AUTHENTICATIONFAILED] Authentication failed.");
  ASSERT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_EQ(step.failure,
            "upstream rejected the login: [AUTHENTICATIONFAILED] Authentication failed.");
  EXPECT_EQ(step.failure.find("hunter2"), std::string::npos);
}

TEST(UpstreamLoginTest, LoginDisabledWithoutPlainFails) {
  UpstreamLogin login("alice", proto::Secret("secret"));
  UpstreamLogin::Step step = login.OnLine("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] ready");
  ASSERT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_NE(step.failure.find("LOGINDISABLED"), std::string::npos);
}

TEST(UpstreamLoginTest, ByeGreetingFailsWithServerText) {
  UpstreamLogin login("alice", proto::Secret("secret"));
  UpstreamLogin::Step step = login.OnLine("* BYE Too many connections");
  ASSERT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_NE(step.failure.find("Too many connections"), std::string::npos);
}

TEST(UpstreamLoginTest, PreauthGreetingNeedsNoLogin) {
  UpstreamLogin login("alice", proto::Secret("secret"));
  EXPECT_EQ(login.OnLine("* PREAUTH [CAPABILITY IMAP4rev1 IDLE] hi").outcome,
            Outcome::kLoggedIn);
}

TEST(UpstreamLoginTest, UnexpectedChallengeIsCancelled) {
  UpstreamLogin login("alice", proto::Secret("secret"));
  login.OnLine("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready");
  UpstreamLogin::Step step = login.OnLine("+ ");
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "*\r\n");
  EXPECT_EQ(login.OnLine("M2 BAD cancelled").outcome, Outcome::kFailed);
}

TEST(UpstreamLoginTest, ControlCharactersInServerTextAreNeutralised) {
  UpstreamLogin login("alice", proto::Secret("secret"));
  login.OnLine("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready");
  UpstreamLogin::Step step = login.OnLine(std::string("M2 NO bad\x1b[31m"));
  ASSERT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_EQ(step.failure.find('\x1b'), std::string::npos);
}

TEST(UpstreamLoginTest, MalformedLineFails) {
  UpstreamLogin login("alice", proto::Secret("secret"));
  EXPECT_EQ(login.OnLine("").outcome, Outcome::kFailed);
}

}  // namespace
}  // namespace mailring::core
