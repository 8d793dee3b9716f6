#include "core/dialog/pop3_client_dialog.h"

#include <string>
#include <vector>

#include "core/dialog/pop3_protocol.h"
#include "gtest/gtest.h"
#include "proto/sasl.h"

namespace mailring::core {
namespace {

using Outcome = ClientDialog::Outcome;

const std::vector<std::string> kServerCapabilities = {
    "CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "STLS", "USER",
    "SASL PLAIN LOGIN"};

ClientDialogOptions Options(bool client_authenticates) {
  ClientDialogOptions options;
  options.destination_name = "dest-p";
  options.client_authenticates = client_authenticates;
  options.credential_name = "refresh token";
  return options;
}

TEST(Pop3ClientDialogTest, SapSnippetGoesStraightToTheTransaction) {
  Pop3ClientDialog dialog(Options(false));
  ClientDialog::Step step = dialog.Greet(kServerCapabilities);
  ASSERT_EQ(step.outcome, Outcome::kReply);
  EXPECT_EQ(step.reply, "+OK mailring ready for destination dest-p\r\n");
  step = dialog.OnLine("list");
  ASSERT_EQ(step.outcome, Outcome::kRelay);
  EXPECT_EQ(step.forward, "list\r\n");
  EXPECT_TRUE(step.reply.empty());
}

TEST(Pop3ClientDialogTest, LibraryLoginIsAnsweredLocally) {
  Pop3ClientDialog dialog(Options(false));
  dialog.Greet(kServerCapabilities);
  ClientDialog::Step step = dialog.OnLine("CAPA");
  ASSERT_EQ(step.outcome, Outcome::kReply);
  EXPECT_EQ(step.reply,
            "+OK capability list follows\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\n"
            "AUTH-RESP-CODE\r\nUSER\r\n.\r\n");
  EXPECT_EQ(dialog.OnLine("USER someone").reply, "+OK\r\n");
  step = dialog.OnLine("PASS whatever");
  ASSERT_EQ(step.outcome, Outcome::kReply);
  EXPECT_EQ(step.reply, "+OK logged in to destination dest-p\r\n");
  EXPECT_EQ(dialog.OnLine("AUTH PLAIN").reply, "+ \r\n");
  EXPECT_EQ(dialog.OnLine("AGFAYg==").outcome, Outcome::kReply);
  step = dialog.OnLine("STAT");
  ASSERT_EQ(step.outcome, Outcome::kRelay);
  EXPECT_EQ(step.forward, "STAT\r\n");
}

TEST(Pop3ClientDialogTest, QuitBeforeTheRelayEndsTheSession) {
  Pop3ClientDialog dialog(Options(false));
  dialog.Greet(kServerCapabilities);
  ClientDialog::Step step = dialog.OnLine("quit");
  EXPECT_EQ(step.outcome, Outcome::kReplyAndClose);
  EXPECT_EQ(step.reply.rfind("+OK", 0), 0u);
}

TEST(Pop3ClientDialogTest, RefreshTokenClientAuthenticatesWithXoauth2) {
  Pop3ClientDialog dialog(Options(true));
  ClientDialog::Step step = dialog.Greet(kServerCapabilities);
  EXPECT_NE(step.reply.find("AUTH XOAUTH2 with your refresh token"), std::string::npos);
  step = dialog.OnLine("CAPA");
  EXPECT_NE(step.reply.find("SASL XOAUTH2\r\n"), std::string::npos) << step.reply;
  EXPECT_EQ(step.reply.find("USER\r\n"), std::string::npos) << step.reply;
  step = dialog.OnLine("STAT");
  ASSERT_EQ(step.outcome, Outcome::kReply);
  EXPECT_EQ(step.reply.rfind("-ERR [AUTH] authenticate first", 0), 0u) << step.reply;
  step = dialog.OnLine("AUTH XOAUTH2 " +
                       proto::Base64Encode(proto::EncodeXoauth2("alice", "refresh-1")));
  ASSERT_EQ(step.outcome, Outcome::kAuthenticate);
  EXPECT_EQ(step.bearer.user, "alice");
  EXPECT_EQ(step.bearer.bearer_token.Reveal(), "refresh-1");
  step = dialog.Authenticated(kServerCapabilities);
  ASSERT_EQ(step.outcome, Outcome::kRelay);
  EXPECT_EQ(step.reply, "+OK logged in to destination dest-p\r\n");
}

TEST(Pop3ClientDialogTest, TwoStepXoauth2AndBadBase64) {
  Pop3ClientDialog dialog(Options(true));
  dialog.Greet(kServerCapabilities);
  EXPECT_EQ(dialog.OnLine("AUTH XOAUTH2").reply, "+ \r\n");
  ClientDialog::Step step = dialog.OnLine("not*base64");
  ASSERT_EQ(step.outcome, Outcome::kReply);
  EXPECT_EQ(step.reply.rfind("-ERR [AUTH] ", 0), 0u) << step.reply;
  EXPECT_EQ(step.reply.find("not*base64"), std::string::npos) << "input is not quoted";
  EXPECT_EQ(dialog.OnLine("AUTH XOAUTH2").reply, "+ \r\n");
  EXPECT_EQ(dialog.OnLine(proto::Base64Encode(proto::EncodeXoauth2("a", "r"))).outcome,
            Outcome::kAuthenticate);
}

TEST(Pop3ClientDialogTest, ThreeRejectionsCloseTheSession) {
  Pop3ClientDialog dialog(Options(true));
  dialog.Greet(kServerCapabilities);
  for (int attempt = 1; attempt <= Pop3ClientDialog::kMaxFailures; ++attempt) {
    ClientDialog::Step step = dialog.Rejected("invalid_grant\r\n+OK injected");
    EXPECT_EQ(step.reply.find("\r\n+OK"), std::string::npos) << step.reply;
    EXPECT_EQ(step.outcome, attempt < Pop3ClientDialog::kMaxFailures ? Outcome::kReply
                                                                     : Outcome::kReplyAndClose);
  }
}

TEST(Pop3ProtocolTest, FailureLineIsErrWithAPrintableReason) {
  EXPECT_EQ(Pop3Protocol().FailureLine("gone\r\n+OK"), "-ERR gone??+OK\r\n");
  EXPECT_EQ(&ForProtocol(proto::MailProtocol::kPop3s), &Pop3Protocol());
  EXPECT_EQ(Pop3Protocol().name(), "POP3");
}

}  // namespace
}  // namespace mailring::core
