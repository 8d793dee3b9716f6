#include "core/dialog/pop3_upstream_login.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "proto/sasl.h"

namespace mailring::core {
namespace {

using Outcome = UpstreamLogin::Outcome;

// What Dovecot 2.3's POP3 service says (observed on the test fixture).
const std::vector<std::string> kDovecotCapa = {"+OK", "CAPA", "TOP", "UIDL", "RESP-CODES",
                                               "PIPELINING", "AUTH-RESP-CODE", "STLS", "USER",
                                               "SASL PLAIN LOGIN XOAUTH2 OAUTHBEARER", "."};

UpstreamCredentials Password(std::string user, std::string password) {
  UpstreamCredentials credentials;
  credentials.user = std::move(user);
  credentials.password = proto::Secret(std::move(password));
  return credentials;
}

UpstreamCredentials Bearer(std::string user) {
  UpstreamCredentials credentials;
  credentials.kind = UpstreamCredentials::Kind::kBearerToken;
  credentials.user = std::move(user);
  credentials.host = "mail.example.org";
  credentials.port = 110;
  return credentials;
}

// Feeds the greeting and `capa` (its lines after "CAPA" was asked); returns the last step.
UpstreamLogin::Step Open(Pop3UpstreamLogin& login, const std::vector<std::string>& capa) {
  UpstreamLogin::Step step = login.OnLine("+OK mailring fixture ready.");
  EXPECT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "CAPA\r\n");
  for (const std::string& line : capa) step = login.OnLine(line);
  return step;
}

TEST(Pop3UpstreamLoginTest, PasswordUsesAuthPlainWhenOffered) {
  Pop3UpstreamLogin login(Password("alice", "secret"));
  UpstreamLogin::Step step = Open(login, kDovecotCapa);
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "AUTH PLAIN " + proto::Base64Encode(std::string("\0alice\0secret", 13)) +
                           "\r\n");
  step = login.OnLine("+OK Logged in.");
  EXPECT_EQ(step.outcome, Outcome::kLoggedIn);
  EXPECT_EQ(login.capabilities().size(), 9u);
  EXPECT_EQ(login.capabilities()[1], "TOP");
}

TEST(Pop3UpstreamLoginTest, PasswordFallsBackToUserPassWithoutSaslPlain) {
  Pop3UpstreamLogin login(Password("alice", "pa ss"));
  UpstreamLogin::Step step = Open(login, {"+OK", "UIDL", "USER", "."});
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "USER alice\r\n");
  step = login.OnLine("+OK");
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "PASS pa ss\r\n");
  EXPECT_EQ(login.OnLine("+OK Logged in.").outcome, Outcome::kLoggedIn);
}

TEST(Pop3UpstreamLoginTest, ServerWithoutCapaGetsUserPass) {
  Pop3UpstreamLogin login(Password("alice", "secret"));
  UpstreamLogin::Step step = Open(login, {"-ERR Unknown command"});
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "USER alice\r\n");
}

TEST(Pop3UpstreamLoginTest, RefusedPasswordQuotesTheServerButNotThePassword) {
  Pop3UpstreamLogin login(Password("alice", "hunter2"));
  Open(login, kDovecotCapa);
  UpstreamLogin::Step step = login.OnLine("-ERR [AUTH] Authentication failed.");
  ASSERT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_EQ(step.failure, "the POP3 server refused the login: [AUTH] Authentication failed.");
  EXPECT_FALSE(login.can_retry());
}

TEST(Pop3UpstreamLoginTest, StlsRequiredUpgradesThenAsksCapabilitiesAgain) {
  UpstreamCredentials credentials = Password("alice", "secret");
  credentials.starttls = UpstreamCredentials::StartTls::kRequired;
  Pop3UpstreamLogin login(credentials);
  UpstreamLogin::Step step = Open(login, kDovecotCapa);
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "STLS\r\n");
  EXPECT_EQ(login.OnLine("+OK Begin TLS negotiation now.").outcome, Outcome::kStartTls);
  step = login.OnTlsEstablished();
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "CAPA\r\n");
  EXPECT_TRUE(login.capabilities().empty()) << "what the server said before TLS is forgotten";
  step = login.OnLine("+OK");
  for (const char* line : {"UIDL", "USER", "SASL PLAIN", "."}) step = login.OnLine(line);
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send.rfind("AUTH PLAIN ", 0), 0u) << "no STLS twice";
}

TEST(Pop3UpstreamLoginTest, StlsRequiredButNotOfferedFailsBeforeAnyCredentialIsSent) {
  UpstreamCredentials credentials = Password("alice", "secret");
  credentials.starttls = UpstreamCredentials::StartTls::kRequired;
  Pop3UpstreamLogin login(credentials);
  UpstreamLogin::Step step = Open(login, {"+OK", "USER", "SASL PLAIN", "."});
  ASSERT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_NE(step.failure.find("STLS"), std::string::npos) << step.failure;
}

TEST(Pop3UpstreamLoginTest, StlsIfOfferedGoesOnInClearWhenNotOffered) {
  UpstreamCredentials credentials = Password("alice", "secret");
  credentials.starttls = UpstreamCredentials::StartTls::kIfOffered;
  Pop3UpstreamLogin login(credentials);
  EXPECT_EQ(Open(login, {"+OK", "SASL PLAIN", "."}).send.rfind("AUTH PLAIN ", 0), 0u);
}

TEST(Pop3UpstreamLoginTest, ShortTokenTravelsOnTheAuthLine) {
  Pop3UpstreamLogin login(Bearer("alice"));
  ASSERT_EQ(Open(login, kDovecotCapa).outcome, Outcome::kNeedToken);
  UpstreamLogin::Step step = login.ProvideToken(proto::Secret("tok"), "");
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send,
            "AUTH XOAUTH2 " + proto::Base64Encode(proto::EncodeXoauth2("alice", "tok")) + "\r\n");
  EXPECT_EQ(login.OnLine("+OK Logged in.").outcome, Outcome::kLoggedIn);
}

TEST(Pop3UpstreamLoginTest, LongTokenWaitsForTheContinuation) {
  // RFC 5034: an AUTH line with its initial response must fit in 255 octets.
  const std::string token(600, 'j');
  Pop3UpstreamLogin login(Bearer("alice"));
  Open(login, kDovecotCapa);
  UpstreamLogin::Step step = login.ProvideToken(proto::Secret(token), "");
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "AUTH XOAUTH2\r\n");
  step = login.OnLine("+ ");
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, proto::Base64Encode(proto::EncodeXoauth2("alice", token)) + "\r\n");
  EXPECT_EQ(login.OnLine("+OK Logged in.").outcome, Outcome::kLoggedIn);
}

TEST(Pop3UpstreamLoginTest, RefusedTokenAnswersTheErrorChallengeAndIsRetryable) {
  Pop3UpstreamLogin login(Bearer(""));
  Open(login, kDovecotCapa);
  login.ProvideToken(proto::Secret("expired"), "bob");
  UpstreamLogin::Step step =
      login.OnLine("+ " + proto::Base64Encode(R"({"status":"invalid_token"})"));
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "\r\n");
  step = login.OnLine("-ERR [AUTH] Authentication failed.");
  ASSERT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_TRUE(login.can_retry());
  EXPECT_NE(step.failure.find("invalid_token"), std::string::npos) << step.failure;
  EXPECT_EQ(step.failure.find("expired"), std::string::npos) << "never the token";
  login.PrepareRetry();
  step = login.ProvideToken(proto::Secret("fresh"), "bob");
  EXPECT_EQ(step.send,
            "AUTH XOAUTH2 " + proto::Base64Encode(proto::EncodeXoauth2("bob", "fresh")) + "\r\n");
}

TEST(Pop3UpstreamLoginTest, TokenWithoutABearerMechanismFails) {
  Pop3UpstreamLogin login(Bearer("alice"));
  Open(login, {"+OK", "SASL PLAIN", "."});
  UpstreamLogin::Step step = login.ProvideToken(proto::Secret("tok"), "");
  ASSERT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_NE(step.failure.find("XOAUTH2"), std::string::npos) << step.failure;
}

TEST(Pop3UpstreamLoginTest, RefusedGreetingFailsWithABoundedPrintableReason) {
  Pop3UpstreamLogin login(Password("alice", "secret"));
  UpstreamLogin::Step step = login.OnLine("-ERR " + std::string(5000, 'x') + "\x01");
  ASSERT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_LT(step.failure.size(), 300u);
  EXPECT_EQ(step.failure.find('\x01'), std::string::npos);
}

}  // namespace
}  // namespace mailring::core
