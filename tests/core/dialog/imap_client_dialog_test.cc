#include "core/dialog/imap_client_dialog.h"

#include <string>
#include <vector>

#include "core/dialog/imap_protocol.h"
#include "gtest/gtest.h"
#include "proto/sasl.h"

namespace mailring::core {
namespace {

using Outcome = ClientDialog::Outcome;

const std::vector<std::string> kServerCapabilities = {"IMAP4rev1", "SASL-IR", "AUTH=PLAIN",
                                                      "IDLE", "LOGINDISABLED", "MOVE"};

ClientDialogOptions Options(bool client_authenticates) {
  ClientDialogOptions options;
  options.destination_name = "dest-a";
  options.client_authenticates = client_authenticates;
  options.credential_name = "refresh token";
  return options;
}

TEST(ImapClientDialogTest, PreauthGreetingRelaysAtOnceWithoutLoginCapabilities) {
  ImapClientDialog dialog(Options(false));
  ClientDialog::Step step = dialog.Greet(kServerCapabilities);
  ASSERT_EQ(step.outcome, Outcome::kRelay);
  EXPECT_EQ(step.reply,
            "* PREAUTH [CAPABILITY IMAP4rev1 IDLE MOVE] mailring: logged in to destination "
            "dest-a\r\n");
  EXPECT_TRUE(step.forward.empty());
}

TEST(ImapClientDialogTest, AuthenticatedAnswersUnderTheClientsTag) {
  ImapClientDialog dialog(Options(true));
  ClientDialog::Step step = dialog.Greet(kServerCapabilities);
  ASSERT_EQ(step.outcome, Outcome::kReply);
  EXPECT_EQ(step.reply.rfind("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 ID] ", 0), 0u);
  step = dialog.OnLine("a9 AUTHENTICATE XOAUTH2 " +
                       proto::Base64Encode(proto::EncodeXoauth2("alice", "refresh-1")));
  ASSERT_EQ(step.outcome, Outcome::kAuthenticate);
  EXPECT_EQ(step.bearer.bearer_token.Reveal(), "refresh-1");
  step = dialog.Authenticated(kServerCapabilities);
  ASSERT_EQ(step.outcome, Outcome::kRelay);
  EXPECT_EQ(step.reply, "a9 OK [CAPABILITY IMAP4rev1 IDLE MOVE] logged in to destination dest-a\r\n");
}

TEST(ImapClientDialogTest, RejectedAnswersTheTagAndClosesAfterThreeFailures) {
  ImapClientDialog dialog(Options(true));
  dialog.Greet(kServerCapabilities);
  const std::string authenticate =
      "t AUTHENTICATE XOAUTH2 " + proto::Base64Encode(proto::EncodeXoauth2("a", "r"));
  for (int attempt = 1; attempt <= ClientAuth::kMaxFailures; ++attempt) {
    ASSERT_EQ(dialog.OnLine(authenticate).outcome, Outcome::kAuthenticate);
    ClientDialog::Step step = dialog.Rejected("invalid_grant\r\n* injected");
    EXPECT_EQ(step.reply.rfind("t NO [AUTHENTICATIONFAILED] invalid_grant", 0), 0u) << step.reply;
    EXPECT_EQ(step.reply.find("\r\n* injected"), std::string::npos) << step.reply;
    EXPECT_EQ(step.outcome,
              attempt < ClientAuth::kMaxFailures ? Outcome::kReply : Outcome::kReplyAndClose);
  }
}

TEST(ImapProtocolTest, FailureLineIsAByeWithAPrintableReason) {
  EXPECT_EQ(ImapProtocol().FailureLine("server gone\r\nA1 OK"),
            "* BYE [UNAVAILABLE] server gone??A1 OK\r\n");
  EXPECT_EQ(ImapProtocol().name(), "IMAP");
  EXPECT_EQ(&ForProtocol(proto::MailProtocol::kImap4s), &ImapProtocol());
}

}  // namespace
}  // namespace mailring::core
