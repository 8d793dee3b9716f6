#include "core/dialog/imap_client_auth.h"

#include <string>

#include "gtest/gtest.h"
#include "proto/sasl.h"

namespace mailring::core {
namespace {

using Outcome = ClientAuth::Outcome;

std::string Xoauth2Base64(const std::string& user, const std::string& token) {
  return proto::Base64Encode(proto::EncodeXoauth2(user, token));
}

TEST(ClientAuthTest, GreetingAdvertisesXoauth2WithSaslIr) {
  ClientAuth auth("refresh token");
  const std::string greeting = auth.Greeting("dest");
  EXPECT_EQ(greeting.rfind("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 ID] ", 0), 0u);
  EXPECT_EQ(greeting.substr(greeting.size() - 2), "\r\n");
}

TEST(ClientAuthTest, SaslIrAuthenticateYieldsTheBearer) {
  ClientAuth auth("refresh token");
  ClientAuth::Step step =
      auth.OnLine("1 AUTHENTICATE XOAUTH2 " + Xoauth2Base64("alice", "refresh-123"));
  ASSERT_EQ(step.outcome, Outcome::kAuthenticate);
  EXPECT_EQ(step.tag, "1");
  EXPECT_EQ(step.bearer.user, "alice");
  EXPECT_EQ(step.bearer.bearer_token.Reveal(), "refresh-123");
}

TEST(ClientAuthTest, TwoStepExchangeAsksForTheResponse) {
  ClientAuth auth("refresh token");
  ClientAuth::Step step = auth.OnLine("a7 authenticate xoauth2");
  ASSERT_EQ(step.outcome, Outcome::kReply);
  EXPECT_EQ(step.reply, "+ \r\n");
  step = auth.OnLine(Xoauth2Base64("bob", "r"));
  ASSERT_EQ(step.outcome, Outcome::kAuthenticate);
  EXPECT_EQ(step.tag, "a7");
}

TEST(ClientAuthTest, StarCancelsTheTwoStepExchange) {
  ClientAuth auth("refresh token");
  auth.OnLine("a1 AUTHENTICATE XOAUTH2");
  ClientAuth::Step step = auth.OnLine("*");
  ASSERT_EQ(step.outcome, Outcome::kReply);
  EXPECT_EQ(step.reply, "a1 BAD AUTHENTICATE cancelled\r\n");
}

TEST(ClientAuthTest, MalformedBase64GetsAuthenticationFailed) {
  ClientAuth auth("refresh token");
  ClientAuth::Step step = auth.OnLine("1 AUTHENTICATE XOAUTH2 not*base64");
  ASSERT_EQ(step.outcome, Outcome::kReply);
  EXPECT_EQ(step.reply.rfind("1 NO [AUTHENTICATIONFAILED] ", 0), 0u) << step.reply;
  EXPECT_NE(step.reply.find("base64"), std::string::npos) << step.reply;
}

TEST(ClientAuthTest, MalformedXoauth2PayloadGetsAuthenticationFailed) {
  ClientAuth auth("refresh token");
  ClientAuth::Step step =
      auth.OnLine("1 AUTHENTICATE XOAUTH2 " + proto::Base64Encode("user=alice\x01no auth"));
  ASSERT_EQ(step.outcome, Outcome::kReply);
  EXPECT_EQ(step.reply.rfind("1 NO [AUTHENTICATIONFAILED] malformed XOAUTH2 response", 0), 0u)
      << step.reply;
}

TEST(ClientAuthTest, PreAuthenticationCommandsAreAnsweredLocally) {
  ClientAuth auth("authorization code");
  EXPECT_EQ(auth.OnLine("c CAPABILITY").reply,
            "* CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 ID\r\nc OK CAPABILITY completed\r\n");
  EXPECT_EQ(auth.OnLine("n NOOP").reply, "n OK NOOP completed\r\n");
  EXPECT_EQ(auth.OnLine("i ID NIL").reply, "* ID (\"name\" \"mailring\")\r\ni OK ID completed\r\n");
  ClientAuth::Step login = auth.OnLine("l LOGIN alice secret");
  EXPECT_EQ(login.reply.rfind("l NO [CANNOT] ", 0), 0u) << login.reply;
  EXPECT_NE(login.reply.find("authorization code"), std::string::npos);
  EXPECT_EQ(login.reply.find("secret"), std::string::npos);
  ClientAuth::Step select = auth.OnLine("s SELECT INBOX");
  EXPECT_EQ(select.reply.rfind("s BAD ", 0), 0u) << select.reply;
  ClientAuth::Step plain = auth.OnLine("p AUTHENTICATE PLAIN");
  EXPECT_EQ(plain.reply.rfind("p NO [CANNOT] ", 0), 0u) << plain.reply;
  ClientAuth::Step logout = auth.OnLine("o LOGOUT");
  EXPECT_EQ(logout.outcome, Outcome::kReplyAndClose);
  EXPECT_EQ(logout.reply, "* BYE logging out\r\no OK LOGOUT completed\r\n");
}

TEST(ClientAuthTest, EmptyLineAndBadTagGetUntaggedBad) {
  ClientAuth auth("refresh token");
  EXPECT_EQ(auth.OnLine("").reply, "* BAD empty command line\r\n");
  EXPECT_EQ(auth.OnLine("a{b NOOP").reply, "* BAD invalid tag\r\n");
}

TEST(ClientAuthTest, RejectionReasonCannotInjectAResponseLine) {
  ClientAuth auth("refresh token");
  ClientAuth::Step step = auth.Reject("1", "token service: bad\r\n* OK [CAPABILITY x] forged");
  EXPECT_EQ(step.reply.find("\r\n"), step.reply.size() - 2) << step.reply;
}

TEST(ClientAuthTest, ThirdFailureDisconnects) {
  ClientAuth auth("refresh token");
  EXPECT_EQ(auth.Reject("1", "invalid_grant").outcome, Outcome::kReply);
  EXPECT_EQ(auth.OnLine("2 AUTHENTICATE XOAUTH2 !!!").outcome, Outcome::kReply);
  ClientAuth::Step third = auth.Reject("3", "invalid_grant");
  EXPECT_EQ(third.outcome, Outcome::kReplyAndClose);
  EXPECT_NE(third.reply.find("* BYE "), std::string::npos);
}

}  // namespace
}  // namespace mailring::core
