#include "core/dialog/smtp_client_dialog.h"

#include <string>
#include <vector>

#include "core/dialog/smtp_protocol.h"
#include "gtest/gtest.h"
#include "proto/sasl.h"

namespace mailring::core {
namespace {

using Outcome = ClientDialog::Outcome;

const std::vector<std::string> kServerExtensions = {
    "8BITMIME", "AUTH PLAIN LOGIN", "BURL imap", "CHUNKING", "ENHANCEDSTATUSCODES", "SIZE",
    "STARTTLS", "PIPELINING"};

ClientDialogOptions Options(bool client_authenticates) {
  ClientDialogOptions options;
  options.destination_name = "dest-s";
  options.client_authenticates = client_authenticates;
  options.credential_name = "refresh token";
  return options;
}

TEST(SmtpClientDialogTest, EhloShowsTheServersExtensionsWithoutAuthOrStarttls) {
  SmtpClientDialog dialog(Options(false));
  ClientDialog::Step step = dialog.Greet(kServerExtensions);
  ASSERT_EQ(step.outcome, Outcome::kReply);
  EXPECT_EQ(step.reply, "220 mailring ESMTP ready for destination dest-s\r\n");
  step = dialog.OnLine("EHLO app.example");
  ASSERT_EQ(step.outcome, Outcome::kReply);
  EXPECT_EQ(step.reply,
            "250-mailring greets app.example\r\n250-8BITMIME\r\n250-BURL imap\r\n250-CHUNKING\r\n"
            "250-ENHANCEDSTATUSCODES\r\n250-SIZE\r\n250 PIPELINING\r\n");
  step = dialog.OnLine("MAIL FROM:<alice@example.org>");
  ASSERT_EQ(step.outcome, Outcome::kRelay);
  EXPECT_EQ(step.forward, "MAIL FROM:<alice@example.org>\r\n");
}

TEST(SmtpClientDialogTest, SapSnippetSendsMailFromAtOnce) {
  SmtpClientDialog dialog(Options(false));
  dialog.Greet(kServerExtensions);
  EXPECT_EQ(dialog.OnLine("mail from:<a@b>").outcome, Outcome::kRelay);
}

TEST(SmtpClientDialogTest, LocalCommandsBeforeTheRelay) {
  SmtpClientDialog dialog(Options(false));
  dialog.Greet({});
  EXPECT_EQ(dialog.OnLine("EHLO x").reply, "250 mailring greets x\r\n");
  EXPECT_EQ(dialog.OnLine("HELO x").reply, "250 mailring\r\n");
  EXPECT_EQ(dialog.OnLine("NOOP").reply, "250 2.0.0 OK\r\n");
  EXPECT_EQ(dialog.OnLine("STARTTLS").reply.rfind("454 ", 0), 0u);
  EXPECT_EQ(dialog.OnLine("AUTH PLAIN AGFAYg==").reply.rfind("235 ", 0), 0u)
      << "the login is already done";
  ClientDialog::Step step = dialog.OnLine("QUIT");
  EXPECT_EQ(step.outcome, Outcome::kReplyAndClose);
  EXPECT_EQ(step.reply.rfind("221 ", 0), 0u);
}

TEST(SmtpClientDialogTest, RefreshTokenClientAuthenticatesWithXoauth2) {
  SmtpClientDialog dialog(Options(true));
  dialog.Greet(kServerExtensions);
  ClientDialog::Step step = dialog.OnLine("EHLO app");
  EXPECT_NE(step.reply.find("250 AUTH XOAUTH2\r\n"), std::string::npos) << step.reply;
  EXPECT_EQ(step.reply.find("PLAIN"), std::string::npos) << step.reply;
  step = dialog.OnLine("MAIL FROM:<a@b>");
  EXPECT_EQ(step.reply.rfind("530 5.7.0 ", 0), 0u) << step.reply;
  EXPECT_EQ(dialog.OnLine("AUTH PLAIN x").reply.rfind("504 ", 0), 0u);
  step = dialog.OnLine("AUTH XOAUTH2 " +
                       proto::Base64Encode(proto::EncodeXoauth2("alice", "refresh-1")));
  ASSERT_EQ(step.outcome, Outcome::kAuthenticate);
  EXPECT_EQ(step.bearer.bearer_token.Reveal(), "refresh-1");
  step = dialog.Authenticated(kServerExtensions);
  ASSERT_EQ(step.outcome, Outcome::kRelay);
  EXPECT_EQ(step.reply.rfind("235 2.7.0 ", 0), 0u);
}

TEST(SmtpClientDialogTest, TwoStepXoauth2AndRejections) {
  SmtpClientDialog dialog(Options(true));
  dialog.Greet(kServerExtensions);
  EXPECT_EQ(dialog.OnLine("AUTH XOAUTH2").reply, "334 \r\n");
  ClientDialog::Step step = dialog.OnLine("%%%");
  EXPECT_EQ(step.reply.rfind("535 5.7.8 ", 0), 0u) << step.reply;
  EXPECT_EQ(step.reply.find("%%%"), std::string::npos) << "input is not quoted";
  EXPECT_EQ(dialog.Rejected("invalid_grant").outcome, Outcome::kReply);
  step = dialog.Rejected("invalid_grant\r\n250 injected");
  EXPECT_EQ(step.outcome, Outcome::kReplyAndClose) << "third failure";
  EXPECT_EQ(step.reply.find("\r\n250"), std::string::npos);
}

TEST(SmtpProtocolTest, FailureLineIs421WithAPrintableReason) {
  EXPECT_EQ(SmtpProtocol().FailureLine("gone\r\n250 ok"), "421 4.3.0 gone??250 ok\r\n");
  EXPECT_EQ(&ForProtocol(proto::MailProtocol::kSmtps), &SmtpProtocol());
}

}  // namespace
}  // namespace mailring::core
