// mailring's login on the client's behalf against a real Dovecot: the PREAUTH greeting and its
// capabilities, passwords that need quoting or literals, a rejected password, the pure-relay
// mode (mail.imap4.auth "false"), and a client that tries to log in again.
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/integration/mailring_test.h"

namespace mailring::integration {
namespace {

using LoginTest = DovecotBackedTest;

// The capability atoms of "* PREAUTH [CAPABILITY a b c] text", or empty if there are none.
std::vector<std::string> GreetingCapabilities(const std::string& greeting) {
  const std::string kOpen = "[CAPABILITY ";
  size_t open = greeting.find(kOpen);
  if (open == std::string::npos) return {};
  size_t close = greeting.find(']', open);
  if (close == std::string::npos) return {};
  absl::string_view list =
      absl::string_view(greeting).substr(open + kOpen.size(), close - open - kOpen.size());
  return absl::StrSplit(list, ' ', absl::SkipEmpty());
}

TEST_F(LoginTest, PreauthGreetingAdvertisesCapabilitiesWithoutAuthMechanisms) {
  MR_ASSERT_OK(StartMailring({Alice()}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH [CAPABILITY "))
      << session.greeting.text;
  std::vector<std::string> capabilities = GreetingCapabilities(session.greeting.text);
  auto has = [&](absl::string_view atom) {
    for (const std::string& c : capabilities) {
      if (absl::EqualsIgnoreCase(c, atom)) return true;
    }
    return false;
  };
  EXPECT_TRUE(has("IMAP4rev1")) << session.greeting.text;
  // Dovecot's post-login capabilities, so the client sees what it can really use.
  EXPECT_TRUE(has("IDLE")) << session.greeting.text;
  for (const std::string& c : capabilities) {
    EXPECT_FALSE(absl::StartsWithIgnoreCase(c, "AUTH=")) << c << " in " << session.greeting.text;
    EXPECT_FALSE(absl::EqualsIgnoreCase(c, "SASL-IR")) << session.greeting.text;
    EXPECT_FALSE(absl::EqualsIgnoreCase(c, "LOGINDISABLED")) << session.greeting.text;
    EXPECT_FALSE(absl::EqualsIgnoreCase(c, "STARTTLS")) << session.greeting.text;
  }
  // The client may ask again; the relayed answer comes from Dovecot.
  MR_ASSERT_OK_AND_ASSIGN(auto capability, session.client->Command("1", "CAPABILITY"));
  EXPECT_EQ(capability.back().Status(), "OK") << Transcript(capability);
}

TEST_F(LoginTest, LogsInUserWhosePasswordNeedsQuoting) {
  const std::string password = "b\"o b";  // a double quote and a space
  MR_ASSERT_OK(StartMailring({BasicDestination("bob", password, dovecot().port())}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  MR_ASSERT_OK_AND_ASSIGN(auto select, session.client->Command("1", "SELECT INBOX"));
  EXPECT_EQ(select.back().Status(), "OK") << Transcript(select);
  EXPECT_FALSE(absl::StrContains(MailringLog(), password)) << "password in mailring's log";
}

TEST_F(LoginTest, LogsInUserWhosePasswordLooksLikeALiteral) {
  const std::string password = "p{5}ass\\";  // a literal announcement lookalike and a backslash
  MR_ASSERT_OK(StartMailring({BasicDestination("carol", password, dovecot().port())}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  MR_ASSERT_OK_AND_ASSIGN(auto select, session.client->Command("1", "SELECT INBOX"));
  EXPECT_EQ(select.back().Status(), "OK") << Transcript(select);
  EXPECT_FALSE(absl::StrContains(MailringLog(), password)) << "password in mailring's log";
}

TEST_F(LoginTest, ServesSeveralRoutesWithDifferentUsers) {
  MR_ASSERT_OK(StartMailring({Alice(), BasicDestination("bob", "b\"o b", dovecot().port())}));
  for (size_t route = 0; route < 2; ++route) {
    MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession(route));
    ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
    MR_ASSERT_OK_AND_ASSIGN(auto select, session.client->Command("1", "SELECT INBOX"));
    ASSERT_EQ(select.back().Status(), "OK") << Transcript(select);
    // alice's INBOX holds the fixture's messages, bob's is empty: each route logs in its own user.
    bool empty = false;
    for (const ImapResponse& r : select) empty = empty || r.text == "* 0 EXISTS";
    EXPECT_EQ(empty, route == 1) << "route " << route << ":\n" << Transcript(select);
  }
}

TEST_F(LoginTest, WrongPasswordGetsByeWithDovecotReasonAndNoSecretInLog) {
  const std::string password = "wrong-Pa55-zq7";
  MR_ASSERT_OK(StartMailring({BasicDestination("alice", password, dovecot().port())}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  EXPECT_TRUE(IsUnavailableBye(session.greeting)) << session.greeting.text;
  EXPECT_TRUE(absl::StrContains(session.greeting.text, "Authentication failed"))
      << session.greeting.text;
  EXPECT_FALSE(absl::StrContains(session.greeting.text, password));
  MR_ASSERT_OK(session.client->ExpectClosed());

  std::string log = MailringLog();
  EXPECT_FALSE(absl::StrContains(log, password)) << "password in mailring's log";
  EXPECT_TRUE(absl::StrContains(log, "session=")) << log;
  EXPECT_TRUE(absl::StrContains(log, "route=") || absl::StrContains(log, "dest=")) << log;
  EXPECT_TRUE(absl::StrContains(log, "Authentication failed")) << log;
}

TEST_F(LoginTest, RelaysUpstreamGreetingWhenAuthIsFalse) {
  Destination relay_only = Alice();
  relay_only["mail.imap4.auth"] = "false";
  MR_ASSERT_OK(StartMailring({relay_only}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  // Dovecot's own greeting (login_greeting in the fixture), with its AUTH= capabilities.
  EXPECT_TRUE(absl::StartsWith(session.greeting.text, "* OK ")) << session.greeting.text;
  EXPECT_TRUE(absl::StrContains(session.greeting.text, "mailring fixture ready."))
      << session.greeting.text;
  MR_ASSERT_OK_AND_ASSIGN(auto login, session.client->Command("1", "LOGIN alice secret"));
  ASSERT_EQ(login.back().Status(), "OK") << Transcript(login);
  MR_ASSERT_OK_AND_ASSIGN(auto fetch, session.client->Command("2", "SELECT INBOX"));
  EXPECT_EQ(fetch.back().Status(), "OK") << Transcript(fetch);
}

TEST_F(LoginTest, LoginAfterPreauthGetsTaggedBad) {
  MR_ASSERT_OK(StartMailring({Alice()}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  MR_ASSERT_OK_AND_ASSIGN(auto login, session.client->Command("a1", "LOGIN alice secret"));
  EXPECT_EQ(login.back().Status(), "BAD") << Transcript(login);
  MR_ASSERT_OK_AND_ASSIGN(auto authenticate,
                          session.client->Command("a2", "AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA=="));
  EXPECT_EQ(authenticate.back().Status(), "BAD") << Transcript(authenticate);
  // The session is still usable afterwards.
  MR_ASSERT_OK_AND_ASSIGN(auto noop, session.client->Command("a3", "NOOP"));
  EXPECT_EQ(noop.back().Status(), "OK") << Transcript(noop);
}

}  // namespace
}  // namespace mailring::integration
