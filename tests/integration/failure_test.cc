// Upstream failures before the relay starts: each reaches the client as one
// "* BYE [UNAVAILABLE] <reason>" line followed by close, and the log names session, route and
// cause. These need no Dovecot: the upstream is a port nobody listens on or a listener of ours.
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/mailring_test.h"

namespace mailring::integration {
namespace {

using UpstreamFailureTest = MailringTest;

bool ContainsAnyIgnoreCase(absl::string_view text, std::initializer_list<absl::string_view> words) {
  std::string lower = absl::AsciiStrToLower(std::string(text));
  for (absl::string_view word : words) {
    if (absl::StrContains(lower, absl::AsciiStrToLower(std::string(word)))) return true;
  }
  return false;
}

void ExpectLogNamesSessionAndRoute(const std::string& log) {
  EXPECT_TRUE(absl::StrContains(log, "session=")) << log;
  EXPECT_TRUE(absl::StrContains(log, "route=") || absl::StrContains(log, "dest=")) << log;
}

TEST_F(UpstreamFailureTest, UpstreamDownGetsByeWithRefusedReason) {
  uint16_t nobody = PickFreeLoopbackPort();
  MR_ASSERT_OK(StartMailring({BasicDestination("alice", "secret", nobody)}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  EXPECT_TRUE(IsUnavailableBye(session.greeting)) << session.greeting.text;
  EXPECT_TRUE(ContainsAnyIgnoreCase(session.greeting.text, {"refused", "unreachable"}))
      << session.greeting.text;
  MR_ASSERT_OK(session.client->ExpectClosed());
  std::string log = MailringLog();
  ExpectLogNamesSessionAndRoute(log);
  EXPECT_TRUE(ContainsAnyIgnoreCase(log, {"refused", "unreachable"})) << log;
}

TEST_F(UpstreamFailureTest, UpstreamGreetingTimeoutGetsByeMentioningTimeout) {
  SilentUpstream upstream(SilentUpstream::Behaviour::kHoldOpen);
  MR_ASSERT_OK(StartMailring({BasicDestination("alice", "secret", upstream.port())},
                             {"--login-timeout=2s"}));
  absl::Time start = absl::Now();
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession(0, absl::Seconds(10)));
  absl::Duration waited = absl::Now() - start;
  EXPECT_TRUE(IsUnavailableBye(session.greeting)) << session.greeting.text;
  EXPECT_TRUE(ContainsAnyIgnoreCase(session.greeting.text, {"timeout", "timed out", "time out"}))
      << session.greeting.text;
  EXPECT_GE(waited, absl::Milliseconds(1500)) << "gave up before --login-timeout";
  EXPECT_LE(waited, absl::Seconds(6)) << "--login-timeout=2s not honoured";
  MR_ASSERT_OK(session.client->ExpectClosed());
  ExpectLogNamesSessionAndRoute(MailringLog());
}

TEST_F(UpstreamFailureTest, UpstreamClosingBeforeGreetingGetsBye) {
  SilentUpstream upstream(SilentUpstream::Behaviour::kCloseAtOnce);
  MR_ASSERT_OK(StartMailring({BasicDestination("alice", "secret", upstream.port())}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  EXPECT_TRUE(IsUnavailableBye(session.greeting)) << session.greeting.text;
  MR_ASSERT_OK(session.client->ExpectClosed());
  ExpectLogNamesSessionAndRoute(MailringLog());
}

}  // namespace
}  // namespace mailring::integration
