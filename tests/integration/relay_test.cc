// Sessions through mailring in front of a real Dovecot: the seed's session without LOGIN, a
// 20 MiB fetch byte for byte, IDLE notifications, 200 concurrent sessions, and closing.
#include <chrono>
#include <filesystem>
#include <iostream>
#include <latch>
#include <mutex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/mailring_test.h"
#include "tests/integration/sha256.h"

namespace mailring::integration {
namespace {

using RelayTest = DovecotBackedTest;

// The first response among `responses` that carries a literal and whose text starts with `prefix`.
const ImapResponse* FindLiteralResponse(const std::vector<ImapResponse>& responses,
                                        absl::string_view prefix) {
  for (const ImapResponse& response : responses) {
    if (!response.literals.empty() && absl::StartsWith(response.text, prefix)) return &response;
  }
  return nullptr;
}

bool AnyTextContains(const std::vector<ImapResponse>& responses, absl::string_view needle) {
  for (const ImapResponse& response : responses) {
    if (absl::StrContains(response.text, needle)) return true;
  }
  return false;
}

TEST_F(RelayTest, SeedSessionWorksWithoutLogin) {
  MR_ASSERT_OK(StartMailring({Alice()}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;

  MR_ASSERT_OK_AND_ASSIGN(auto list, session.client->Command("2", "LIST \"\" \"*\""));
  EXPECT_EQ(list.back().Status(), "OK") << Transcript(list);
  EXPECT_TRUE(AnyTextContains(list, "* LIST ") && AnyTextContains(list, "INBOX"))
      << Transcript(list);

  MR_ASSERT_OK_AND_ASSIGN(auto select, session.client->Command("3", "SELECT INBOX"));
  EXPECT_EQ(select.back().Status(), "OK") << Transcript(select);
  EXPECT_TRUE(AnyTextContains(select, " EXISTS")) << Transcript(select);

  MR_ASSERT_OK_AND_ASSIGN(auto fetch, session.client->Command("5", "FETCH 1 BODY[TEXT]"));
  EXPECT_EQ(fetch.back().Status(), "OK") << Transcript(fetch);
  const ImapResponse* body = FindLiteralResponse(fetch, "* 1 FETCH ");
  ASSERT_NE(body, nullptr) << Transcript(fetch);
  EXPECT_EQ(body->literals[0], DovecotServer::SmallMessageText(1));
}

// Fetches message kBigMessage on `client` (mailbox selected) and returns its literal.
absl::StatusOr<std::string> FetchBigMessage(ImapTestClient& client, absl::string_view tag) {
  absl::StatusOr<std::vector<ImapResponse>> fetch =
      client.Command(tag, absl::StrCat("FETCH ", DovecotServer::kBigMessage, " BODY[]"));
  if (!fetch.ok()) return fetch.status();
  const ImapResponse* body =
      FindLiteralResponse(*fetch, absl::StrCat("* ", DovecotServer::kBigMessage, " FETCH "));
  if (fetch->back().Status() != "OK" || body == nullptr) {
    return absl::InternalError(absl::StrCat("FETCH failed: ", Transcript(*fetch)));
  }
  return body->literals[0];
}

TEST_F(RelayTest, FetchesTwentyMebibytesByteIdentical) {
  MR_ASSERT_OK(StartMailring({Alice()}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  MR_ASSERT_OK_AND_ASSIGN(auto select, session.client->Command("1", "SELECT INBOX"));
  ASSERT_EQ(select.back().Status(), "OK") << Transcript(select);
  MR_ASSERT_OK_AND_ASSIGN(auto direct, DirectAliceSession());
  MR_ASSERT_OK_AND_ASSIGN(auto direct_select, direct->Command("1", "SELECT INBOX"));
  ASSERT_EQ(direct_select.back().Status(), "OK") << Transcript(direct_select);

  // Best of three each way: the numbers go into the closing note.
  absl::Duration best_proxy = absl::InfiniteDuration();
  absl::Duration best_direct = absl::InfiniteDuration();
  for (int round = 0; round < 3; ++round) {
    absl::Time start = absl::Now();
    MR_ASSERT_OK_AND_ASSIGN(std::string via_proxy,
                            FetchBigMessage(*session.client, absl::StrCat("p", round)));
    best_proxy = std::min(best_proxy, absl::Now() - start);
    ASSERT_EQ(via_proxy.size(), dovecot().big_size());
    ASSERT_EQ(Sha256Hex(via_proxy), dovecot().big_sha256()) << "round " << round;

    start = absl::Now();
    MR_ASSERT_OK_AND_ASSIGN(std::string straight,
                            FetchBigMessage(*direct, absl::StrCat("d", round)));
    best_direct = std::min(best_direct, absl::Now() - start);
    ASSERT_EQ(straight.size(), dovecot().big_size());
  }
  std::cout << "[ MEASURED ] 20 MiB FETCH BODY[] best of 3: through mailring "
            << absl::FormatDuration(best_proxy) << ", direct to Dovecot "
            << absl::FormatDuration(best_direct) << "\n";
  RecordProperty("fetch_20mib_proxy_ms", static_cast<int>(absl::ToInt64Milliseconds(best_proxy)));
  RecordProperty("fetch_20mib_direct_ms", static_cast<int>(absl::ToInt64Milliseconds(best_direct)));
}

TEST_F(RelayTest, PipelinedLogoutAfterBigFetchDeliversEverythingBeforeClose) {
  MR_ASSERT_OK(StartMailring({Alice()}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  // One write: Dovecot answers all three and closes right after the last byte, so the proxy must
  // deliver every byte it still holds before it closes the client.
  MR_ASSERT_OK(session.client->Send(absl::StrCat(
      "a SELECT INBOX\r\nb FETCH ", DovecotServer::kBigMessage, " BODY[]\r\nc LOGOUT\r\n")));
  MR_ASSERT_OK_AND_ASSIGN(auto select, session.client->ReadUntilTagged("a"));
  ASSERT_EQ(select.back().Status(), "OK") << Transcript(select);
  MR_ASSERT_OK_AND_ASSIGN(auto fetch, session.client->ReadUntilTagged("b"));
  ASSERT_EQ(fetch.back().Status(), "OK") << Transcript(fetch);
  const ImapResponse* body = FindLiteralResponse(fetch, "* 4 FETCH ");
  ASSERT_NE(body, nullptr) << Transcript(fetch);
  EXPECT_EQ(Sha256Hex(body->literals[0]), dovecot().big_sha256());
  MR_ASSERT_OK_AND_ASSIGN(auto logout, session.client->ReadUntilTagged("c"));
  EXPECT_TRUE(AnyTextContains(logout, "* BYE")) << Transcript(logout);
  EXPECT_EQ(logout.back().Status(), "OK") << Transcript(logout);
  MR_ASSERT_OK(session.client->ExpectClosed());
}

TEST_F(RelayTest, IdleSeesExistsWhenAnotherSessionAppends) {
  MR_ASSERT_OK(StartMailring({Alice()}));
  const std::string mailbox = absl::StrCat("idle-", listen_ports_[0]);
  MR_ASSERT_OK_AND_ASSIGN(auto direct, DirectAliceSession());
  MR_ASSERT_OK_AND_ASSIGN(auto create, direct->Command("c", "CREATE " + mailbox));
  ASSERT_EQ(create.back().Status(), "OK") << Transcript(create);

  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  MR_ASSERT_OK_AND_ASSIGN(auto select, session.client->Command("s", "SELECT " + mailbox));
  ASSERT_EQ(select.back().Status(), "OK") << Transcript(select);
  ASSERT_TRUE(AnyTextContains(select, "* 0 EXISTS")) << Transcript(select);
  MR_ASSERT_OK(session.client->Send("i IDLE\r\n"));
  MR_ASSERT_OK_AND_ASSIGN(ImapResponse idling, session.client->ReadResponse());
  ASSERT_TRUE(absl::StartsWith(idling.text, "+")) << idling.text;

  const std::string message =
      "From: bob@example.org\r\nTo: alice@example.org\r\nSubject: wake up\r\n\r\nIDLE test\r\n";
  MR_ASSERT_OK(direct->Send(absl::StrCat("a APPEND ", mailbox, " {", message.size(), "}\r\n")));
  MR_ASSERT_OK_AND_ASSIGN(ImapResponse go_ahead, direct->ReadResponse());
  ASSERT_TRUE(absl::StartsWith(go_ahead.text, "+")) << go_ahead.text;
  MR_ASSERT_OK(direct->Send(message + "\r\n"));
  MR_ASSERT_OK_AND_ASSIGN(auto append, direct->ReadUntilTagged("a"));
  ASSERT_EQ(append.back().Status(), "OK") << Transcript(append);

  // Each read waits at most the client timeout (10 s); Dovecot notices within ~1 s.
  std::vector<ImapResponse> seen;
  while (true) {
    absl::StatusOr<ImapResponse> update = session.client->ReadResponse();
    ASSERT_TRUE(update.ok()) << update.status() << "; seen while idling:\n" << Transcript(seen);
    seen.push_back(*update);
    if (update->text == "* 1 EXISTS") break;
    ASSERT_TRUE(absl::StartsWith(update->text, "* ")) << Transcript(seen);
  }
  MR_ASSERT_OK(session.client->Send("DONE\r\n"));
  MR_ASSERT_OK_AND_ASSIGN(auto done, session.client->ReadUntilTagged("i"));
  EXPECT_EQ(done.back().Status(), "OK") << Transcript(done);
}

TEST_F(RelayTest, TwoHundredConcurrentSessionsEachFetchTheirMessage) {
  constexpr int kSessions = 200;
  MR_ASSERT_OK(StartMailring({Alice()}));
  std::mutex mu;
  std::vector<std::string> failures;
  std::latch all_connected(kSessions);
  auto run = [&](int index) -> std::string {
    absl::StatusOr<ProxySession> session = OpenSession();
    all_connected.count_down();
    if (!session.ok()) return session.status().ToString();
    if (!absl::StartsWith(session->greeting.text, "* PREAUTH ")) {
      return "greeting: " + session->greeting.text;
    }
    all_connected.wait();  // all 200 sessions are open at once before anyone fetches
    ImapTestClient& client = *session->client;
    absl::StatusOr<std::vector<ImapResponse>> select = client.Command("s", "EXAMINE INBOX");
    if (!select.ok()) return select.status().ToString();
    if (select->back().Status() != "OK") return "EXAMINE: " + Transcript(*select);
    int sequence = 1 + index % DovecotServer::kSmallMessages;
    absl::StatusOr<std::vector<ImapResponse>> fetch =
        client.Command("f", absl::StrCat("FETCH ", sequence, " BODY.PEEK[TEXT]"));
    if (!fetch.ok()) return fetch.status().ToString();
    const ImapResponse* body = FindLiteralResponse(*fetch, absl::StrCat("* ", sequence, " FETCH"));
    if (fetch->back().Status() != "OK" || body == nullptr) return "FETCH: " + Transcript(*fetch);
    if (body->literals[0] != DovecotServer::SmallMessageText(sequence)) {
      return absl::StrCat("message ", sequence, " has the wrong text: ", body->literals[0]);
    }
    absl::StatusOr<std::vector<ImapResponse>> logout = client.Command("l", "LOGOUT");
    if (!logout.ok()) return logout.status().ToString();
    if (absl::Status closed = client.ExpectClosed(); !closed.ok()) return closed.ToString();
    return "";
  };

  absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int i = 0; i < kSessions; ++i) {
    threads.emplace_back([&, i] {
      std::string failure = run(i);
      if (!failure.empty()) {
        std::lock_guard<std::mutex> lock(mu);
        failures.push_back(absl::StrCat("session ", i, ": ", failure));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::cout << "[ MEASURED ] " << kSessions << " concurrent sessions done in "
            << absl::FormatDuration(absl::Now() - start) << "\n";
  std::string first_failures;
  for (size_t i = 0; i < failures.size() && i < 5; ++i) first_failures += failures[i] + "\n";
  EXPECT_TRUE(failures.empty()) << failures.size() << " of " << kSessions
                                << " sessions failed, e.g.:\n"
                                << first_failures;
}

// Threads of process `pid` (io_uring's io-wq workers included) and its open pipe descriptors.
struct ProcessCost {
  int threads = 0;
  int pipes = 0;
};
ProcessCost MeasureProcess(pid_t pid) {
  ProcessCost cost;
  std::error_code ignored;
  for (const auto& entry :
       std::filesystem::directory_iterator(absl::StrCat("/proc/", pid, "/task"), ignored)) {
    (void)entry;
    ++cost.threads;
  }
  for (const auto& entry :
       std::filesystem::directory_iterator(absl::StrCat("/proc/", pid, "/fd"), ignored)) {
    std::string target = std::filesystem::read_symlink(entry.path(), ignored).string();
    if (absl::StartsWith(target, "pipe:")) ++cost.pipes;
  }
  return cost;
}

TEST_F(RelayTest, ThousandIdleSessionsCostNoThreadsAndNoPipes) {
  constexpr int kSessions = 1000;
  // Pure relay (no login), so Dovecot holds the sessions in one imap-login process.
  Destination relay_only = Alice();
  relay_only["mail.imap4.auth"] = "false";
  const uint16_t admin_port = PickFreeLoopbackPort();
  MR_ASSERT_OK(
      StartMailring({relay_only}, {absl::StrCat("--admin-listen=127.0.0.1:", admin_port)}));
  ASSERT_TRUE(WaitForSessionsSettled(admin_port, /*accepted=*/1))
      << "the readiness probe's session did not end";
  ProcessCost at_rest = MeasureProcess(mailring_->pid());

  std::vector<ProxySession> sessions;
  sessions.reserve(kSessions);
  for (int i = 0; i < kSessions; ++i) {
    MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
    ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* OK ")) << session.greeting.text;
    sessions.push_back(std::move(session));
  }
  // A settling window, not a wait for an event: io-wq workers, if the sessions made the kernel
  // start any, would appear in it.
  absl::SleepFor(absl::Milliseconds(200));
  ProcessCost idle = MeasureProcess(mailring_->pid());
  std::cout << "[ MEASURED ] mailring threads: " << at_rest.threads << " at rest, " << idle.threads
            << " with " << kSessions << " idle relayed sessions; pipe fds: " << at_rest.pipes
            << " at rest, " << idle.pipes << " with the sessions\n";
  EXPECT_EQ(idle.threads, at_rest.threads) << "idle sessions cost threads (io-wq workers?)";
  EXPECT_LT(idle.pipes, kSessions / 4) << "idle sessions hold pipes";

  // Still a working proxy with all of them open.
  MR_ASSERT_OK_AND_ASSIGN(auto login, sessions.back().client->Command("1", "LOGIN alice secret"));
  EXPECT_EQ(login.back().Status(), "OK") << Transcript(login);
}

TEST_F(RelayTest, LogoutEndsBothLegs) {
  MR_ASSERT_OK(StartMailring({Alice()}));
  // The readiness probe's session must not leave an upstream leg behind either.
  ASSERT_EQ(WaitForOpenConnectionsTo(dovecot().port(), 0, absl::Seconds(5)), 0)
      << "upstream connections still open before the test session";
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  ASSERT_EQ(OpenConnectionsTo(dovecot().port()), 1) << "expected exactly one upstream leg";

  MR_ASSERT_OK_AND_ASSIGN(auto logout, session.client->Command("9", "LOGOUT"));
  EXPECT_TRUE(absl::StartsWith(logout.front().text, "* BYE")) << Transcript(logout);
  EXPECT_EQ(logout.back().Status(), "OK") << Transcript(logout);
  MR_ASSERT_OK(session.client->ExpectClosed());
  EXPECT_EQ(WaitForOpenConnectionsTo(dovecot().port(), 0, absl::Seconds(3)), 0)
      << "mailring kept the upstream leg open after LOGOUT";
}

TEST_F(RelayTest, ClientDisconnectClosesUpstreamLeg) {
  MR_ASSERT_OK(StartMailring({Alice()}));
  ASSERT_EQ(WaitForOpenConnectionsTo(dovecot().port(), 0, absl::Seconds(5)), 0)
      << "upstream connections still open before the test session";
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  MR_ASSERT_OK_AND_ASSIGN(auto select, session.client->Command("1", "SELECT INBOX"));
  ASSERT_EQ(select.back().Status(), "OK") << Transcript(select);
  ASSERT_EQ(OpenConnectionsTo(dovecot().port()), 1) << "expected exactly one upstream leg";

  session.client.reset();  // the client vanishes without LOGOUT
  EXPECT_EQ(WaitForOpenConnectionsTo(dovecot().port(), 0, absl::Seconds(3)), 0)
      << "mailring kept the upstream leg open after the client closed";
}

}  // namespace
}  // namespace mailring::integration
