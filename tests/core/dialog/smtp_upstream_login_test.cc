#include "core/dialog/smtp_upstream_login.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "proto/sasl.h"

namespace mailring::core {
namespace {

using Outcome = UpstreamLogin::Outcome;

// Dovecot 2.3's submission service (observed on the test fixture).
const std::vector<std::string> kDovecotEhlo = {
    "250-mailring-fixture.test", "250-8BITMIME", "250-AUTH PLAIN LOGIN", "250-BURL imap",
    "250-CHUNKING", "250-ENHANCEDSTATUSCODES", "250-SIZE", "250-STARTTLS", "250 PIPELINING"};

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
  credentials.host = "smtp.example.org";
  credentials.port = 587;
  return credentials;
}

UpstreamLogin::Step Open(SmtpUpstreamLogin& login, const std::vector<std::string>& ehlo) {
  UpstreamLogin::Step step = login.OnLine("220 mailring-fixture.test mailring fixture ready.");
  EXPECT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "EHLO mailring\r\n");
  for (const std::string& line : ehlo) step = login.OnLine(line);
  return step;
}

TEST(SmtpUpstreamLoginTest, PasswordUsesAuthPlainWithInitialResponse) {
  SmtpUpstreamLogin login(Password("alice", "secret"));
  UpstreamLogin::Step step = Open(login, kDovecotEhlo);
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "AUTH PLAIN " + proto::Base64Encode(std::string("\0alice\0secret", 13)) +
                           "\r\n");
  EXPECT_EQ(login.OnLine("235 2.7.0 Logged in.").outcome, Outcome::kLoggedIn);
  ASSERT_EQ(login.capabilities().size(), 8u) << "the extensions, without the server's name";
  EXPECT_EQ(login.capabilities()[0], "8BITMIME");
}

TEST(SmtpUpstreamLoginTest, PasswordFallsBackToAuthLogin) {
  SmtpUpstreamLogin login(Password("alice", "secret"));
  UpstreamLogin::Step step = Open(login, {"250-mx", "250 AUTH LOGIN"});
  EXPECT_EQ(step.send, "AUTH LOGIN\r\n");
  step = login.OnLine("334 VXNlcm5hbWU6");
  EXPECT_EQ(step.send, proto::Base64Encode("alice") + "\r\n");
  step = login.OnLine("334 UGFzc3dvcmQ6");
  EXPECT_EQ(step.send, proto::Base64Encode("secret") + "\r\n");
  EXPECT_EQ(login.OnLine("235 2.7.0 Authentication successful").outcome, Outcome::kLoggedIn);
}

TEST(SmtpUpstreamLoginTest, RefusedPasswordQuotesTheServersReply) {
  SmtpUpstreamLogin login(Password("alice", "hunter2"));
  Open(login, kDovecotEhlo);
  UpstreamLogin::Step step = login.OnLine("535 5.7.8 Authentication failed");
  ASSERT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_EQ(step.failure, "the SMTP server refused the login: 535 5.7.8 Authentication failed");
  EXPECT_EQ(step.failure.find("hunter2"), std::string::npos);
}

TEST(SmtpUpstreamLoginTest, NoAuthOfferedSuggestsStarttls) {
  SmtpUpstreamLogin login(Password("alice", "secret"));
  UpstreamLogin::Step step = Open(login, {"250-mx", "250 STARTTLS"});
  ASSERT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_NE(step.failure.find("mail.smtp.starttls.enable"), std::string::npos) << step.failure;
}

TEST(SmtpUpstreamLoginTest, StarttlsRequiredUpgradesThenEhlosAgain) {
  UpstreamCredentials credentials = Password("alice", "secret");
  credentials.starttls = UpstreamCredentials::StartTls::kRequired;
  credentials.client_name = "node-1.cluster.local";
  SmtpUpstreamLogin login(credentials);
  UpstreamLogin::Step step = login.OnLine("220 mx ESMTP");
  EXPECT_EQ(step.send, "EHLO node-1.cluster.local\r\n");
  for (const std::string& line : kDovecotEhlo) step = login.OnLine(line);
  EXPECT_EQ(step.send, "STARTTLS\r\n");
  EXPECT_EQ(login.OnLine("220 2.0.0 Begin TLS negotiation now.").outcome, Outcome::kStartTls);
  step = login.OnTlsEstablished();
  EXPECT_EQ(step.send, "EHLO node-1.cluster.local\r\n");
  EXPECT_TRUE(login.capabilities().empty()) << "what the server said before TLS is forgotten";
  step = login.OnLine("250-mx");
  step = login.OnLine("250 AUTH PLAIN");
  EXPECT_EQ(step.send.rfind("AUTH PLAIN ", 0), 0u) << "no STARTTLS twice";
}

TEST(SmtpUpstreamLoginTest, StarttlsRequiredButNotOfferedFailsBeforeAnyCredential) {
  UpstreamCredentials credentials = Password("alice", "secret");
  credentials.starttls = UpstreamCredentials::StartTls::kRequired;
  SmtpUpstreamLogin login(credentials);
  UpstreamLogin::Step step = Open(login, {"250-mx", "250 AUTH PLAIN"});
  ASSERT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_NE(step.failure.find("STARTTLS"), std::string::npos);
}

TEST(SmtpUpstreamLoginTest, TokenUsesXoauth2AndAnswersTheErrorChallenge) {
  SmtpUpstreamLogin login(Bearer("alice"));
  ASSERT_EQ(Open(login, {"250-mx", "250 AUTH PLAIN XOAUTH2 OAUTHBEARER"}).outcome,
            Outcome::kNeedToken);
  UpstreamLogin::Step step = login.ProvideToken(proto::Secret("expired"), "");
  EXPECT_EQ(step.send,
            "AUTH XOAUTH2 " + proto::Base64Encode(proto::EncodeXoauth2("alice", "expired")) +
                "\r\n");
  step = login.OnLine("334 " + proto::Base64Encode(R"({"status":"401"})"));
  EXPECT_EQ(step.send, "\r\n");
  step = login.OnLine("535 5.7.8 Authentication failed");
  ASSERT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_TRUE(login.can_retry());
  EXPECT_NE(step.failure.find("401"), std::string::npos) << step.failure;
  EXPECT_EQ(step.failure.find("expired"), std::string::npos);
  login.PrepareRetry();
  step = login.ProvideToken(proto::Secret("fresh"), "");
  EXPECT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(login.OnLine("235 2.7.0 OK").outcome, Outcome::kLoggedIn);
}

TEST(SmtpUpstreamLoginTest, OauthbearerWhenOnlyThatIsOffered) {
  SmtpUpstreamLogin login(Bearer("alice"));
  Open(login, {"250-mx", "250 AUTH OAUTHBEARER"});
  UpstreamLogin::Step step = login.ProvideToken(proto::Secret("tok"), "");
  EXPECT_EQ(step.send, "AUTH OAUTHBEARER " +
                           proto::Base64Encode(proto::EncodeOauthBearer(
                               "alice", "tok", "smtp.example.org", 587)) +
                           "\r\n");
}

TEST(SmtpUpstreamLoginTest, MalformedReplyFailsWithoutQuotingIt) {
  SmtpUpstreamLogin login(Password("alice", "secret"));
  UpstreamLogin::Step step = login.OnLine("HELLO SECRET");
  ASSERT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_EQ(step.failure.find("SECRET"), std::string::npos) << step.failure;
}

TEST(SmtpUpstreamLoginTest, RefusedGreetingFails) {
  SmtpUpstreamLogin login(Password("alice", "secret"));
  UpstreamLogin::Step step = login.OnLine("554 5.3.2 not accepting mail\x01");
  ASSERT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_EQ(step.failure.find('\x01'), std::string::npos);
  EXPECT_NE(step.failure.find("554 5.3.2"), std::string::npos) << step.failure;
}

}  // namespace
}  // namespace mailring::core
