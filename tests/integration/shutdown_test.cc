// SIGTERM/SIGINT: mailring stops accepting, lets open sessions finish for up to --drain-timeout,
// then ends the rest with "* BYE [UNAVAILABLE] shutting down" and exits 0.
#include <signal.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/mailring_test.h"

namespace mailring::integration {
namespace {

using ShutdownTest = DovecotBackedTest;

TEST_F(ShutdownTest, SigtermByesOpenSessionAfterDrainTimeoutAndExitsZero) {
  MR_ASSERT_OK(StartMailring({Alice()}, {"--drain-timeout=2s"}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  MR_ASSERT_OK_AND_ASSIGN(auto select, session.client->Command("1", "SELECT INBOX"));
  ASSERT_EQ(select.back().Status(), "OK") << Transcript(select);

  absl::Time start = absl::Now();
  mailring_->Signal(SIGTERM);
  MR_ASSERT_OK_AND_ASSIGN(ImapResponse bye, session.client->ReadResponse());
  absl::Duration waited = absl::Now() - start;
  EXPECT_EQ(bye.text, "* BYE [UNAVAILABLE] shutting down");
  EXPECT_GE(waited, absl::Milliseconds(1500)) << "session cut before --drain-timeout";
  EXPECT_LE(waited, absl::Seconds(6)) << "--drain-timeout=2s not honoured";
  MR_ASSERT_OK(session.client->ExpectClosed());
  MR_ASSERT_OK_AND_ASSIGN(int exit_code, mailring_->WaitExit(absl::Seconds(5)));
  EXPECT_EQ(exit_code, 0);
}

TEST_F(ShutdownTest, SessionFinishingDuringDrainLetsProcessExitEarly) {
  MR_ASSERT_OK(StartMailring({Alice()}, {"--drain-timeout=20s"}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;

  absl::Time start = absl::Now();
  mailring_->Signal(SIGTERM);
  ASSERT_TRUE(WaitFor([&] { return !PortAcceptsConnections(listen_ports_[0]); }, absl::Seconds(10)))
      << "mailring did not begin draining";
  // Draining sessions keep working until they end on their own.
  MR_ASSERT_OK_AND_ASSIGN(auto noop, session.client->Command("1", "NOOP"));
  EXPECT_EQ(noop.back().Status(), "OK") << Transcript(noop);
  MR_ASSERT_OK_AND_ASSIGN(auto logout, session.client->Command("2", "LOGOUT"));
  EXPECT_EQ(logout.back().Status(), "OK") << Transcript(logout);
  MR_ASSERT_OK(session.client->ExpectClosed());
  MR_ASSERT_OK_AND_ASSIGN(int exit_code, mailring_->WaitExit(absl::Seconds(10)));
  EXPECT_EQ(exit_code, 0);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10)) << "waited for the drain timeout anyway";
}

TEST_F(ShutdownTest, SigtermStopsAcceptingNewConnections) {
  MR_ASSERT_OK(StartMailring({Alice()}, {"--drain-timeout=5s"}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());  // keeps the drain going
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  mailring_->Signal(SIGTERM);
  EXPECT_TRUE(WaitFor([&] { return !PortAcceptsConnections(listen_ports_[0]); }, absl::Seconds(10)))
      << "still accepting while draining";
  MR_ASSERT_OK_AND_ASSIGN(int exit_code, mailring_->WaitExit(absl::Seconds(15)));
  EXPECT_EQ(exit_code, 0);
}

class IdleShutdownTest : public DovecotBackedTest, public testing::WithParamInterface<int> {};

TEST_P(IdleShutdownTest, ExitsZeroPromptlyWithoutSessions) {
  const uint16_t admin_port = PickFreeLoopbackPort();
  MR_ASSERT_OK(StartMailring(
      {Alice()}, {"--drain-timeout=30s", absl::StrCat("--admin-listen=127.0.0.1:", admin_port)}));
  ASSERT_TRUE(WaitForSessionsSettled(admin_port, /*accepted=*/1))
      << "the readiness probe's session did not end";
  mailring_->Signal(GetParam());
  MR_ASSERT_OK_AND_ASSIGN(int exit_code, mailring_->WaitExit(absl::Seconds(5)));
  EXPECT_EQ(exit_code, 0);
}

INSTANTIATE_TEST_SUITE_P(Signals, IdleShutdownTest, testing::Values(SIGTERM, SIGINT),
                         [](const testing::TestParamInfo<int>& info) {
                           return info.param == SIGTERM ? "Sigterm" : "Sigint";
                         });

}  // namespace
}  // namespace mailring::integration
