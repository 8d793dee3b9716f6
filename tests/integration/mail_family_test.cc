// SMTP and POP3 destinations through mailring against Dovecot's real submission and POP3
// services: the client is greeted only after mailring logged in upstream, its EHLO / CAPA /
// USER / PASS are answered locally, and from the first transaction command on it talks to the
// server through the relay; smtps / pop3s speak TLS from the first byte, smtp / pop3 upgrade
// with STARTTLS / STLS when the destination asks; a refused login reaches the client as the
// protocol's failure line.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/integration/line_test_client.h"
#include "tests/integration/mailring_test.h"

namespace mailring::integration {
namespace {

constexpr char kPassword[] = "secret";

Destination MailDestination(const std::string& protocol, uint16_t port,
                            const std::string& password = kPassword) {
  return {{"Name", absl::StrCat("example-dest-", protocol)},
          {"Type", "MAIL"},
          {"Authentication", "BasicAuthentication"},
          {"mail.user", "alice"},
          {"mail.password", password},
          {"mail.transport.protocol", protocol},
          {absl::StrCat("mail.", protocol, ".host"), "localhost"},
          {absl::StrCat("mail.", protocol, ".port"), absl::StrCat(port)},
          {absl::StrCat("mail.", protocol, ".auth"), "true"},
          {"ProxyType", "Internet"}};
}

// One Dovecot with TLS, POP3 and submission for the suite.
class MailFamilyTest : public MailringTest {
 protected:
  static void SetUpTestSuite() {
    skip_reason_.clear();
    setup_error_.clear();
    if (FindDovecot().empty()) {
      skip_reason_ = "dovecot is not installed (scripts/test.sh installs it)";
      return;
    }
    ca_dir_ = new TempDir();
    absl::StatusOr<TestCa> ca = MakeTestCa(ca_dir_->path() + "/ca");
    if (!ca.ok()) {
      setup_error_ = ca.status().ToString();
      return;
    }
    ca_ = *ca;
    DovecotOptions options;
    options.tls_cert = ca_.chain("server");
    options.tls_key = ca_.key("server");
    options.pop3 = true;
    options.submission = true;
    absl::StatusOr<std::unique_ptr<DovecotServer>> server = DovecotServer::Start(options);
    if (!server.ok()) {
      setup_error_ = server.status().ToString();
      return;
    }
    dovecot_ = server->release();
  }
  static void TearDownTestSuite() {
    delete dovecot_;
    dovecot_ = nullptr;
    delete ca_dir_;
    ca_dir_ = nullptr;
  }
  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
  }
  void TearDown() override {
    if (mailring_ != nullptr) {
      mailring_->Signal(SIGTERM);
      (void)mailring_->WaitExit(absl::Seconds(10));
    }
    MailringTest::TearDown();
  }

  absl::Status Start(const Destination& destination, std::vector<std::string> flags = {}) {
    flags.push_back("--ca-file=" + ca_.ca_pem());
    return StartMailring({destination}, flags);
  }
  absl::StatusOr<std::unique_ptr<LineClient>> Connect() {
    return LineClient::Connect(listen_ports_[0]);
  }

  // Sends one message through an SMTP session that has been greeted; returns the final reply.
  static void SendMessage(LineClient& client, const std::string& body) {
    absl::StatusOr<std::string> reply = client.Smtp("MAIL FROM:<alice@example.org>");
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_TRUE(absl::StartsWith(*reply, "250")) << *reply;
    reply = client.Smtp("RCPT TO:<bob@example.org>");
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_TRUE(absl::StartsWith(*reply, "250")) << *reply;
    reply = client.Smtp("DATA");
    ASSERT_TRUE(reply.ok()) << reply.status();
    ASSERT_TRUE(absl::StartsWith(*reply, "354")) << *reply;
    reply = client.Smtp(absl::StrCat("Subject: via mailring\r\n\r\n", body, "\r\n."));
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_TRUE(absl::StartsWith(*reply, "250")) << *reply;
  }

  // Waits for the sink's newest message to contain `body`.
  static void ExpectDelivered(const std::string& body) {
    for (int n = 1; n <= 50; ++n) {
      absl::StatusOr<std::string> message =
          dovecot_->SinkMessage(n, n == 1 ? absl::Seconds(10) : absl::Milliseconds(0));
      if (!message.ok()) break;
      if (absl::StrContains(*message, body)) return;
    }
    ADD_FAILURE() << "no message with '" << body << "' reached the sink";
  }

  static DovecotServer* dovecot_;
  static TempDir* ca_dir_;
  static TestCa ca_;
  static std::string skip_reason_;
  static std::string setup_error_;
};

DovecotServer* MailFamilyTest::dovecot_ = nullptr;
TempDir* MailFamilyTest::ca_dir_ = nullptr;
TestCa MailFamilyTest::ca_;
std::string MailFamilyTest::skip_reason_;
std::string MailFamilyTest::setup_error_;

TEST_F(MailFamilyTest, SmtpClientsEhloIsAnsweredWithoutAuthAndItsMailIsDelivered) {
  MR_ASSERT_OK(Start(MailDestination("smtp", dovecot_->submission_port())));
  MR_ASSERT_OK_AND_ASSIGN(auto client, Connect());
  MR_ASSERT_OK_AND_ASSIGN(std::string greeting, client->ReadSmtpReply());
  EXPECT_TRUE(absl::StartsWith(greeting, "220 ")) << greeting;
  EXPECT_TRUE(absl::StrContains(greeting, "ESMTP")) << greeting;
  MR_ASSERT_OK_AND_ASSIGN(std::string ehlo, client->Smtp("EHLO app.example"));
  EXPECT_TRUE(absl::StartsWith(ehlo, "250")) << ehlo;
  EXPECT_TRUE(absl::StrContains(ehlo, "8BITMIME")) << "the server's extensions: " << ehlo;
  EXPECT_FALSE(absl::StrContains(ehlo, "AUTH")) << ehlo;
  EXPECT_FALSE(absl::StrContains(ehlo, "STARTTLS")) << ehlo;
  SendMessage(*client, "sent through mailring with EHLO first");
  MR_ASSERT_OK_AND_ASSIGN(std::string quit, client->Smtp("QUIT"));
  EXPECT_TRUE(absl::StartsWith(quit, "221")) << quit;
  ExpectDelivered("sent through mailring with EHLO first");
  EXPECT_FALSE(absl::StrContains(MailringLog(), kPassword)) << "password in mailring's log";
}

TEST_F(MailFamilyTest, SmtpClientMaySendMailFromRightAfterTheGreeting) {
  // SAP's own snippet: no EHLO at all.
  MR_ASSERT_OK(Start(MailDestination("smtp", dovecot_->submission_port())));
  MR_ASSERT_OK_AND_ASSIGN(auto client, Connect());
  MR_ASSERT_OK_AND_ASSIGN(std::string greeting, client->ReadSmtpReply());
  ASSERT_TRUE(absl::StartsWith(greeting, "220 ")) << greeting;
  SendMessage(*client, "sent with MAIL FROM first");
  ExpectDelivered("sent with MAIL FROM first");
}

TEST_F(MailFamilyTest, SmtpUpgradesWithStarttlsWhenTheDestinationRequiresIt) {
  Destination destination = MailDestination("smtp", dovecot_->submission_port());
  destination["mail.smtp.starttls.required"] = "true";
  MR_ASSERT_OK(Start(destination));
  MR_ASSERT_OK_AND_ASSIGN(auto client, Connect());
  MR_ASSERT_OK_AND_ASSIGN(std::string greeting, client->ReadSmtpReply());
  ASSERT_TRUE(absl::StartsWith(greeting, "220 ")) << greeting << "\n" << MailringLog();
  SendMessage(*client, "sent over STARTTLS upstream");
  ExpectDelivered("sent over STARTTLS upstream");
  EXPECT_TRUE(absl::StrContains(MailringLog(), "TLS established")) << MailringLog();
}

TEST_F(MailFamilyTest, SmtpsSpeaksTlsFromTheFirstByte) {
  MR_ASSERT_OK(Start(MailDestination("smtps", dovecot_->submissions_port())));
  MR_ASSERT_OK_AND_ASSIGN(auto client, Connect());
  MR_ASSERT_OK_AND_ASSIGN(std::string greeting, client->ReadSmtpReply());
  ASSERT_TRUE(absl::StartsWith(greeting, "220 ")) << greeting << "\n" << MailringLog();
  MR_ASSERT_OK_AND_ASSIGN(std::string ehlo, client->Smtp("EHLO app.example"));
  EXPECT_TRUE(absl::StartsWith(ehlo, "250")) << ehlo;
  SendMessage(*client, "sent over smtps");
  ExpectDelivered("sent over smtps");
}

TEST_F(MailFamilyTest, SmtpRefusedLoginReachesTheClientAsA421) {
  MR_ASSERT_OK(Start(MailDestination("smtp", dovecot_->submission_port(), "wrong")));
  MR_ASSERT_OK_AND_ASSIGN(auto client, Connect());
  MR_ASSERT_OK_AND_ASSIGN(std::string reply, client->ReadSmtpReply());
  EXPECT_TRUE(absl::StartsWith(reply, "421 4.")) << reply;
  EXPECT_GT(reply.size(), 10u) << "a reason follows the code: " << reply;
  EXPECT_FALSE(client->ReadLine().ok()) << "closed after the 421";
}

TEST_F(MailFamilyTest, Pop3ClientsLoginIsAnsweredLocallyAndMessagesAreRelayed) {
  MR_ASSERT_OK(Start(MailDestination("pop3", dovecot_->pop3_port())));
  MR_ASSERT_OK_AND_ASSIGN(auto client, Connect());
  MR_ASSERT_OK_AND_ASSIGN(std::string greeting, client->ReadLine());
  EXPECT_TRUE(absl::StartsWith(greeting, "+OK")) << greeting;
  MR_ASSERT_OK_AND_ASSIGN(std::string capa, client->Pop3("CAPA"));
  ASSERT_TRUE(absl::StartsWith(capa, "+OK")) << capa;
  MR_ASSERT_OK_AND_ASSIGN(std::string capabilities, client->ReadPop3Body());
  EXPECT_TRUE(absl::StrContains(capabilities, "UIDL")) << capabilities;
  EXPECT_FALSE(absl::StrContains(capabilities, "STLS")) << capabilities;
  EXPECT_FALSE(absl::StrContains(capabilities, "SASL")) << capabilities;
  // A library that insists on logging in: any USER / PASS is accepted; the destination holds
  // the real credentials.
  MR_ASSERT_OK_AND_ASSIGN(std::string user, client->Pop3("USER whoever"));
  EXPECT_TRUE(absl::StartsWith(user, "+OK")) << user;
  MR_ASSERT_OK_AND_ASSIGN(std::string pass, client->Pop3("PASS anything"));
  EXPECT_TRUE(absl::StartsWith(pass, "+OK")) << pass;
  MR_ASSERT_OK_AND_ASSIGN(std::string stat, client->Pop3("STAT"));
  EXPECT_EQ(stat, absl::StrCat("+OK 4 ", 20948042)) << "Dovecot's own answer, relayed";
  MR_ASSERT_OK_AND_ASSIGN(std::string retr, client->Pop3("RETR 1"));
  ASSERT_TRUE(absl::StartsWith(retr, "+OK")) << retr;
  MR_ASSERT_OK_AND_ASSIGN(std::string message, client->ReadPop3Body());
  EXPECT_TRUE(absl::StrContains(message, DovecotServer::SmallMessageText(1))) << message;
  MR_ASSERT_OK_AND_ASSIGN(std::string quit, client->Pop3("QUIT"));
  EXPECT_TRUE(absl::StartsWith(quit, "+OK")) << quit;
  EXPECT_FALSE(absl::StrContains(MailringLog(), kPassword)) << "password in mailring's log";
}

TEST_F(MailFamilyTest, Pop3sRetrievesTheTwentyMebibyteMessageByteIdentical) {
  // SAP's snippet goes straight to the transaction commands.
  MR_ASSERT_OK(Start(MailDestination("pop3s", dovecot_->pop3s_port())));
  MR_ASSERT_OK_AND_ASSIGN(auto client, Connect());
  MR_ASSERT_OK_AND_ASSIGN(std::string greeting, client->ReadLine());
  ASSERT_TRUE(absl::StartsWith(greeting, "+OK")) << greeting << "\n" << MailringLog();
  MR_ASSERT_OK_AND_ASSIGN(std::string list, client->Pop3("LIST"));
  ASSERT_TRUE(absl::StartsWith(list, "+OK")) << list;
  MR_ASSERT_OK_AND_ASSIGN(std::string listing, client->ReadPop3Body());
  EXPECT_TRUE(absl::StrContains(listing, "4 ")) << listing;
  MR_ASSERT_OK_AND_ASSIGN(std::string retr, client->Pop3(
                                                absl::StrCat("RETR ", DovecotServer::kBigMessage)));
  ASSERT_TRUE(absl::StartsWith(retr, "+OK")) << retr;
  MR_ASSERT_OK_AND_ASSIGN(std::string message, client->ReadPop3Body());
  MR_ASSERT_OK_AND_ASSIGN(std::string expected, ReadFile(dovecot_->dir() + "/big.eml"));
  EXPECT_EQ(message.size(), expected.size());
  EXPECT_TRUE(message == expected) << "the 20 MiB message differs after the relay";
}

TEST_F(MailFamilyTest, Pop3UpgradesWithStlsWhenTheDestinationRequiresIt) {
  Destination destination = MailDestination("pop3", dovecot_->pop3_port());
  destination["mail.pop3.starttls.required"] = "true";
  MR_ASSERT_OK(Start(destination));
  MR_ASSERT_OK_AND_ASSIGN(auto client, Connect());
  MR_ASSERT_OK_AND_ASSIGN(std::string greeting, client->ReadLine());
  ASSERT_TRUE(absl::StartsWith(greeting, "+OK")) << greeting << "\n" << MailringLog();
  MR_ASSERT_OK_AND_ASSIGN(std::string stat, client->Pop3("STAT"));
  EXPECT_TRUE(absl::StartsWith(stat, "+OK 4 ")) << stat;
  EXPECT_TRUE(absl::StrContains(MailringLog(), "TLS established")) << MailringLog();
}

TEST_F(MailFamilyTest, Pop3RefusedLoginReachesTheClientAsErr) {
  MR_ASSERT_OK(Start(MailDestination("pop3", dovecot_->pop3_port(), "wrong")));
  MR_ASSERT_OK_AND_ASSIGN(auto client, Connect());
  MR_ASSERT_OK_AND_ASSIGN(std::string reply, client->ReadLine());
  EXPECT_TRUE(absl::StartsWith(reply, "-ERR ")) << reply;
  EXPECT_GT(reply.size(), 6u) << "a reason follows: " << reply;
  EXPECT_FALSE(client->ReadLine().ok()) << "closed after the -ERR";
}

TEST_F(MailFamilyTest, SilentPop3ClientIsToldWhyWhenItsTimeRunsOut) {
  MR_ASSERT_OK(Start(MailDestination("pop3", dovecot_->pop3_port()),
                     {"--client-auth-timeout=1s"}));
  MR_ASSERT_OK_AND_ASSIGN(auto client, Connect());
  MR_ASSERT_OK_AND_ASSIGN(std::string greeting, client->ReadLine());
  ASSERT_TRUE(absl::StartsWith(greeting, "+OK")) << greeting;
  MR_ASSERT_OK_AND_ASSIGN(std::string bye, client->ReadLine());
  EXPECT_TRUE(absl::StartsWith(bye, "-ERR ")) << bye;
  EXPECT_TRUE(absl::StrContains(bye, "timed out after 1s")) << bye;
  EXPECT_FALSE(client->ReadLine().ok()) << "closed after the -ERR";
}

}  // namespace
}  // namespace mailring::integration
