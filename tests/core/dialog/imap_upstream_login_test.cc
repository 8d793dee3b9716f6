#include "core/dialog/imap_upstream_login.h"

#include <string>

#include "gtest/gtest.h"

namespace mailring::core {
namespace {

using Outcome = UpstreamLogin::Outcome;

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
  credentials.port = 143;
  return credentials;
}

TEST(UpstreamLoginTest, GreetingWithCapabilitiesGoesStraightToAuthenticatePlain) {
  ImapUpstreamLogin login(Password("alice", "secret"));
  UpstreamLogin::Step step =
      login.OnLine("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN LITERAL+] Dovecot ready.");
  ASSERT_EQ(step.outcome, Outcome::kSend);
  // base64("\0alice\0secret")
  EXPECT_EQ(step.send, "M2 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n");
  step = login.OnLine("M2 OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in");
  EXPECT_EQ(step.outcome, Outcome::kLoggedIn);
  EXPECT_EQ(login.capability_set().ForPreauthenticatedClient(), "IMAP4rev1 IDLE MOVE");
}

TEST(UpstreamLoginTest, GreetingWithoutCapabilitiesAsksForThem) {
  ImapUpstreamLogin login(Password("alice", "secret"));
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
  ImapUpstreamLogin login(Password("alice", "secret"));
  login.OnLine("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready");
  UpstreamLogin::Step step = login.OnLine("M2 OK Logged in");
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "M3 CAPABILITY\r\n");
  login.OnLine("* CAPABILITY IMAP4rev1 IDLE");
  EXPECT_EQ(login.OnLine("M3 OK done").outcome, Outcome::kLoggedIn);
  EXPECT_EQ(login.capability_set().ForPreauthenticatedClient(), "IMAP4rev1 IDLE");
}

TEST(UpstreamLoginTest, SynchronizingLiteralWaitsForContinuation) {
  ImapUpstreamLogin login(Password("carol", "pa\xc3\xa9ss"));  // 8-bit: needs a literal
  UpstreamLogin::Step step = login.OnLine("* OK [CAPABILITY IMAP4rev1] ready");
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "M2 LOGIN carol {6}\r\n");
  step = login.OnLine("+ go ahead");
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "pa\xc3\xa9ss\r\n");
  EXPECT_EQ(login.OnLine("M2 OK [CAPABILITY IMAP4rev1] hi").outcome, Outcome::kLoggedIn);
}

TEST(UpstreamLoginTest, NonSynchronizingLiteralWithLiteralPlus) {
  ImapUpstreamLogin login(Password("carol", "pa\xc3\xa9ss"));
  UpstreamLogin::Step step = login.OnLine("* OK [CAPABILITY IMAP4rev1 LITERAL+] ready");
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "M2 LOGIN carol {6+}\r\npa\xc3\xa9ss\r\n");
}

TEST(UpstreamLoginTest, RejectedLoginQuotesServerButNeverThePassword) {
  ImapUpstreamLogin login(Password("alice", "hunter2"));
  login.OnLine("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready");
  UpstreamLogin::Step step =
      login.OnLine("M2 NO [AUTHENTICATIONFAILED] Authentication failed.");
  ASSERT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_EQ(step.failure,
            "upstream rejected the login: [AUTHENTICATIONFAILED] Authentication failed.");
  EXPECT_EQ(step.failure.find("hunter2"), std::string::npos);
}

TEST(UpstreamLoginTest, LoginDisabledWithoutPlainFails) {
  ImapUpstreamLogin login(Password("alice", "secret"));
  UpstreamLogin::Step step = login.OnLine("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] ready");
  ASSERT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_NE(step.failure.find("LOGINDISABLED"), std::string::npos);
}

TEST(UpstreamLoginTest, ByeGreetingFailsWithServerText) {
  ImapUpstreamLogin login(Password("alice", "secret"));
  UpstreamLogin::Step step = login.OnLine("* BYE Too many connections");
  ASSERT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_NE(step.failure.find("Too many connections"), std::string::npos);
}

TEST(UpstreamLoginTest, PreauthGreetingNeedsNoLogin) {
  ImapUpstreamLogin login(Password("alice", "secret"));
  EXPECT_EQ(login.OnLine("* PREAUTH [CAPABILITY IMAP4rev1 IDLE] hi").outcome,
            Outcome::kLoggedIn);
}

TEST(UpstreamLoginTest, UnexpectedChallengeIsCancelled) {
  ImapUpstreamLogin login(Password("alice", "secret"));
  login.OnLine("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready");
  UpstreamLogin::Step step = login.OnLine("+ ");
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "*\r\n");
  EXPECT_EQ(login.OnLine("M2 BAD cancelled").outcome, Outcome::kFailed);
}

TEST(UpstreamLoginTest, ControlCharactersInServerTextAreNeutralised) {
  ImapUpstreamLogin login(Password("alice", "secret"));
  login.OnLine("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready");
  UpstreamLogin::Step step = login.OnLine(std::string("M2 NO bad\x1b[31m"));
  ASSERT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_EQ(step.failure.find('\x1b'), std::string::npos);
}

TEST(UpstreamLoginTest, MalformedLineFails) {
  ImapUpstreamLogin login(Password("alice", "secret"));
  EXPECT_EQ(login.OnLine("").outcome, Outcome::kFailed);
}

TEST(UpstreamLoginTest, BearerLoginWaitsForTokenThenUsesXoauth2WithSaslIr) {
  ImapUpstreamLogin login(Bearer("alice"));
  UpstreamLogin::Step step =
      login.OnLine("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER] ready");
  ASSERT_EQ(step.outcome, Outcome::kNeedToken);
  EXPECT_EQ(login.action(), "waiting for an access token");
  step = login.ProvideToken(proto::Secret("tok"), "");
  ASSERT_EQ(step.outcome, Outcome::kSend);
  // base64("user=alice\x01auth=Bearer tok\x01\x01")
  EXPECT_EQ(step.send, "M2 AUTHENTICATE XOAUTH2 dXNlcj1hbGljZQFhdXRoPUJlYXJlciB0b2sBAQ==\r\n");
  EXPECT_EQ(login.OnLine("M2 OK [CAPABILITY IMAP4rev1 IDLE] Logged in").outcome,
            Outcome::kLoggedIn);
}

TEST(UpstreamLoginTest, BearerWithoutSaslIrSendsResponseAfterContinuation) {
  ImapUpstreamLogin login(Bearer("alice"));
  ASSERT_EQ(login.OnLine("* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] ready").outcome,
            Outcome::kNeedToken);
  UpstreamLogin::Step step = login.ProvideToken(proto::Secret("tok"), "");
  EXPECT_EQ(step.send, "M2 AUTHENTICATE XOAUTH2\r\n");
  step = login.OnLine("+ ");
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "dXNlcj1hbGljZQFhdXRoPUJlYXJlciB0b2sBAQ==\r\n");
}

TEST(UpstreamLoginTest, OauthBearerWhenXoauth2IsNotOffered) {
  ImapUpstreamLogin login(Bearer("alice"));
  login.OnLine("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=OAUTHBEARER] ready");
  UpstreamLogin::Step step = login.ProvideToken(proto::Secret("tok"), "");
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send.rfind("M2 AUTHENTICATE OAUTHBEARER ", 0), 0u) << step.send;
}

TEST(UpstreamLoginTest, NoBearerMechanismFails) {
  ImapUpstreamLogin login(Bearer("alice"));
  login.OnLine("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready");
  UpstreamLogin::Step step = login.ProvideToken(proto::Secret("tok"), "");
  ASSERT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_NE(step.failure.find("XOAUTH2"), std::string::npos);
}

TEST(UpstreamLoginTest, RejectedTokenAnswersErrorChallengeWithEmptyLineAndCanRetry) {
  ImapUpstreamLogin login(Bearer("alice"));
  login.OnLine("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] ready");
  login.ProvideToken(proto::Secret("expired-token"), "");
  // base64({"status":"401","schemes":"bearer"})
  UpstreamLogin::Step step = login.OnLine("+ eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=");
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "\r\n");
  step = login.OnLine("M2 NO [AUTHENTICATIONFAILED] Authentication failed.");
  ASSERT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_NE(step.failure.find("401"), std::string::npos) << step.failure;
  EXPECT_EQ(step.failure.find("expired-token"), std::string::npos);
  ASSERT_TRUE(login.can_retry());
  login.PrepareRetry();
  step = login.ProvideToken(proto::Secret("fresh"), "");
  EXPECT_EQ(step.outcome, Outcome::kSend);
}

TEST(UpstreamLoginTest, ClientUserIsUsedWhenTheDestinationNamesNone) {
  ImapUpstreamLogin login(Bearer(""));
  login.OnLine("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] ready");
  UpstreamLogin::Step step = login.ProvideToken(proto::Secret("tok"), "alice");
  EXPECT_EQ(step.send, "M2 AUTHENTICATE XOAUTH2 dXNlcj1hbGljZQFhdXRoPUJlYXJlciB0b2sBAQ==\r\n");
}

UpstreamCredentials WithStartTls(UpstreamCredentials credentials,
                                 UpstreamCredentials::StartTls mode) {
  credentials.starttls = mode;
  return credentials;
}

TEST(UpstreamLoginTest, StartTlsComesFirstAndCapabilitiesAreAskedAgain) {
  ImapUpstreamLogin login(
      WithStartTls(Password("alice", "secret"), UpstreamCredentials::StartTls::kRequired));
  UpstreamLogin::Step step =
      login.OnLine("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready");
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "M0 STARTTLS\r\n");
  EXPECT_EQ(login.action(), "starting TLS with STARTTLS");
  EXPECT_EQ(login.OnLine("M0 OK Begin TLS negotiation now.").outcome, Outcome::kStartTls);
  step = login.OnTlsEstablished();
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "M1 CAPABILITY\r\n");
  login.OnLine("* CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN");
  step = login.OnLine("M1 OK done");
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send.rfind("M2 AUTHENTICATE PLAIN ", 0), 0u) << "no second STARTTLS";
}

TEST(UpstreamLoginTest, RequiredStartTlsNotOfferedFailsWithoutSendingCredentials) {
  ImapUpstreamLogin login(
      WithStartTls(Password("alice", "secret"), UpstreamCredentials::StartTls::kRequired));
  UpstreamLogin::Step step = login.OnLine("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready");
  ASSERT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_NE(step.failure.find("does not offer it"), std::string::npos) << step.failure;
  EXPECT_NE(step.failure.find("no credentials were sent"), std::string::npos);
}

TEST(UpstreamLoginTest, OpportunisticStartTlsFallsBackToPlainWhenNotOffered) {
  ImapUpstreamLogin login(
      WithStartTls(Password("alice", "secret"), UpstreamCredentials::StartTls::kIfOffered));
  UpstreamLogin::Step step = login.OnLine("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready");
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send.rfind("M2 AUTHENTICATE PLAIN ", 0), 0u);
}

TEST(UpstreamLoginTest, RefusedStartTlsFails) {
  ImapUpstreamLogin login(
      WithStartTls(Password("alice", "secret"), UpstreamCredentials::StartTls::kIfOffered));
  login.OnLine("* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] ready");
  UpstreamLogin::Step step = login.OnLine("M0 NO no TLS today");
  ASSERT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_NE(step.failure.find("refused STARTTLS"), std::string::npos);
}

}  // namespace
}  // namespace mailring::core
