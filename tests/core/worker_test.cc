// Worker and Session end to end on loopback, against scripted upstream servers: the paths a
// real Dovecot does not take on demand (silence, BYE greetings, synchronizing literals, drain).
// Timeouts and retries run on the worker's clock, which the test moves (TestClock); the test
// waits only on what it can observe (lines, EOF, the worker's counters and loop iterations).
#include "core/worker.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "core/clock.h"
#include "gtest/gtest.h"
#include "tests/core/worker_test_env.h"

namespace mailring::core {
namespace {

using testing::FreePort;
using testing::LoopbackRoute;
using testing::PollUntil;
using testing::ReadLine;
using testing::RouteTableOf;
using testing::ScriptedUpstream;
using testing::SendText;
using testing::WaitForEof;

// Answers like a minimal IMAP server: greeting, LOGIN (with a synchronizing literal when the
// client sends one), then echoes "tag OK" for every command until LOGOUT or EOF.
void MinimalImapServer(int fd, std::string* login_seen) {
  SendText(fd, "* OK [CAPABILITY IMAP4rev1 IDLE] scripted ready\r\n");
  std::string line = ReadLine(fd);
  if (login_seen != nullptr) *login_seen = line;
  if (line.size() >= 3 && line.compare(line.size() - 3, 3, "}\r\n") == 0) {
    SendText(fd, "+ go ahead\r\n");
    line = ReadLine(fd);
    if (login_seen != nullptr) *login_seen += line;
  }
  SendText(fd, "M2 OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in\r\n");
  while (true) {
    line = ReadLine(fd, 10000);
    if (line.empty()) return;
    const std::string tag = line.substr(0, line.find(' '));
    if (line.find("LOGOUT") != std::string::npos) {
      SendText(fd, "* BYE bye\r\n" + tag + " OK done\r\n");
      return;
    }
    SendText(fd, tag + " OK done\r\n");
  }
}

// The worker's clock in these tests: real monotonic time plus an offset the test advances, so
// a timeout fires when the test says, without waiting for it. Frozen, it stands still until
// advanced (a test that must not see a timer fire on its own). Never goes backwards.
class TestClock {
 public:
  int64_t NowMs() const {
    absl::MutexLock lock(&mutex_);
    return frozen_ ? frozen_at_ms_ : MonotonicMs() + offset_ms_;
  }
  void Advance(absl::Duration by) {
    absl::MutexLock lock(&mutex_);
    (frozen_ ? frozen_at_ms_ : offset_ms_) += absl::ToInt64Milliseconds(by);
  }
  void Freeze() {
    absl::MutexLock lock(&mutex_);
    frozen_at_ms_ = MonotonicMs() + offset_ms_;
    frozen_ = true;
  }
  void Thaw() {
    absl::MutexLock lock(&mutex_);
    offset_ms_ = frozen_at_ms_ - MonotonicMs();
    frozen_ = false;
  }

 private:
  mutable absl::Mutex mutex_;
  bool frozen_ = false;
  int64_t frozen_at_ms_ = 0;
  int64_t offset_ms_ = 0;
};

// True when `fd` has something to read (bytes or EOF) right now.
bool Readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1;
}

class WorkerTest : public testing::WorkerFixture {
 protected:
  WorkerTest() {
    options_.now_ms = [this] { return clock_.NowMs(); };
  }
  void StartWorker(uint16_t upstream_port, std::string password = "secret",
                   bool login_on_behalf = true, Route::Tls tls = Route::Tls::kNone) {
    listen_port_ = FreePort();
    auto route = LoopbackRoute(listen_port_, upstream_port, "scripted");
    route->destination.password = proto::Secret(std::move(password));
    route->destination.login_on_behalf = login_on_behalf;
    route->tls = tls;
    StartWorkerOn(route, {}, drain_timeout_);
  }

  // Returns once the worker has run a whole loop iteration after this call: it has read its
  // clock, run its due timers and handled its wake-ups (routes, drain). False if it did not
  // within the bound (its thread ended).
  bool SyncWithWorker() {
    const uint64_t seen = worker_->iterations();
    return PollUntil([&] {
      if (worker_->iterations() >= seen + 2) return true;
      worker_->Wake();  // again: one eventfd read may have taken several wake-ups
      return false;
    });
  }
  // Moves the worker's clock and lets it act on the new time.
  void AdvanceClock(absl::Duration by) {
    clock_.Advance(by);
    ASSERT_TRUE(SyncWithWorker());
  }

  TestClock clock_;
  absl::Duration drain_timeout_ = absl::Seconds(1);
};

TEST_F(WorkerTest, LoginWithSynchronizingLiteralThenRelays) {
  std::string login_seen;
  ScriptedUpstream upstream([&](int fd) { MinimalImapServer(fd, &login_seen); });
  StartWorker(upstream.port(), "pa\xc3\xa9ss");  // 8-bit password: a literal
  const int client = Connect();
  ASSERT_GE(client, 0);
  const std::string greeting = ReadLine(client);
  EXPECT_EQ(greeting.rfind("* PREAUTH [CAPABILITY IMAP4rev1 IDLE MOVE]", 0), 0u) << greeting;
  ASSERT_TRUE(SendText(client, "a1 NOOP\r\n"));
  EXPECT_EQ(ReadLine(client), "a1 OK done\r\n");
  ASSERT_TRUE(SendText(client, "a2 LOGOUT\r\n"));
  EXPECT_EQ(ReadLine(client), "* BYE bye\r\n");
  EXPECT_EQ(ReadLine(client), "a2 OK done\r\n");
  EXPECT_TRUE(WaitForEof(client));
  ::close(client);
  EXPECT_EQ(login_seen, "M2 LOGIN carol {6}\r\npa\xc3\xa9ss\r\n");
}

TEST_F(WorkerTest, SilentUpstreamTimesOutWithBye) {
  ScriptedUpstream upstream([](int fd) { WaitForEof(fd, 5000); });
  StartWorker(upstream.port());
  const int client = Connect();
  ASSERT_GE(client, 0);
  // The login timeout (30 s) passes on the worker's clock, not the test's.
  ASSERT_TRUE(PollUntil([&] { return worker_->counters().sessions_open.load() == 1; }));
  AdvanceClock(options_.login_timeout + absl::Seconds(1));
  const std::string line = ReadLine(client, 5000);
  EXPECT_EQ(line.rfind("* BYE [UNAVAILABLE] ", 0), 0u) << line;
  EXPECT_NE(line.find("timed out"), std::string::npos) << line;
  EXPECT_NE(line.find("reading the upstream greeting"), std::string::npos) << line;
  EXPECT_TRUE(WaitForEof(client));
  ::close(client);
}

TEST_F(WorkerTest, ByeGreetingReachesTheClient) {
  ScriptedUpstream upstream([](int fd) { SendText(fd, "* BYE Too many connections\r\n"); });
  StartWorker(upstream.port());
  const int client = Connect();
  const std::string line = ReadLine(client);
  EXPECT_EQ(line.rfind("* BYE [UNAVAILABLE] ", 0), 0u) << line;
  EXPECT_NE(line.find("Too many connections"), std::string::npos) << line;
  ::close(client);
}

TEST_F(WorkerTest, RefusedUpstreamGivesBye) {
  StartWorker(FreePort());  // nobody listens there
  const int client = Connect();
  const std::string line = ReadLine(client);
  EXPECT_EQ(line.rfind("* BYE [UNAVAILABLE] ", 0), 0u) << line;
  EXPECT_NE(line.find("connection refused"), std::string::npos) << line;
  ::close(client);
}

TEST_F(WorkerTest, OversizeUpstreamLineFailsCleanly) {
  ScriptedUpstream upstream([](int fd) {
    SendText(fd, "* OK " + std::string(64 * 1024, 'x') + "\r\n");
    WaitForEof(fd, 5000);
  });
  StartWorker(upstream.port());
  const int client = Connect();
  const std::string line = ReadLine(client);
  EXPECT_EQ(line.rfind("* BYE [UNAVAILABLE] ", 0), 0u) << line;
  ::close(client);
}

// The fault campaign's case: a server answers garbage with BAD lines and a BYE, then resets the
// connection while the client is still sending. Whatever the server sent before its RST must
// reach the client (a direct client gets it all): the relay drains the server's side before it
// closes, even when writing to the server is what failed first.
TEST_F(WorkerTest, ServersLastWordsBeforeItsResetReachTheClient) {
  const std::string last_words =
      "x1 BAD Error in IMAP command: Unknown command.\r\n"
      "x2 BAD Error in IMAP command: Unknown command.\r\n"
      "* BYE Too many invalid IMAP commands.\r\n";
  constexpr int kSessions = 30;
  std::atomic<int> served{0};
  ScriptedUpstream upstream([&](int fd) {
    SendText(fd, "* OK [CAPABILITY IMAP4rev1] scripted ready\r\n");
    ReadLine(fd);  // the login
    SendText(fd, "M2 OK [CAPABILITY IMAP4rev1] Logged in\r\n");
    ReadLine(fd);
    SendText(fd, last_words);
    linger reset{1, 0};  // close(2) sends RST
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    ++served;
  });
  StartWorker(upstream.port());
  int complete = 0;
  for (int i = 0; i < kSessions; ++i) {
    const int client = Connect();
    ASSERT_GE(client, 0);
    ASSERT_EQ(ReadLine(client).rfind("* PREAUTH", 0), 0u);
    // Junk without pause: the proxy is still writing to the server when the RST comes.
    const std::string junk(64 * 1024, 'x');
    SendText(client, "x0 junk\r\n");
    for (int burst = 0; burst < 64; ++burst) {
      if (::send(client, junk.data(), junk.size(), MSG_NOSIGNAL | MSG_DONTWAIT) <= 0) break;
    }
    const std::string received = testing::ReceiveUntilEof(client, 5000);
    ::close(client);
    if (received == last_words) ++complete;
  }
  EXPECT_EQ(complete, kSessions) << "sessions in which the client got every byte the server "
                                    "sent before resetting";
}

TEST_F(WorkerTest, PureRelayShowsTheUpstreamGreeting) {
  ScriptedUpstream upstream([](int fd) { MinimalImapServer(fd, nullptr); });
  StartWorker(upstream.port(), "unused", /*login_on_behalf=*/false);
  const int client = Connect();
  EXPECT_EQ(ReadLine(client), "* OK [CAPABILITY IMAP4rev1 IDLE] scripted ready\r\n");
  ASSERT_TRUE(SendText(client, "a1 LOGIN me pw\r\n"));
  EXPECT_EQ(ReadLine(client), "M2 OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in\r\n");
  ::close(client);
}

TEST_F(WorkerTest, IdleRelayedSessionIsClosedAfterIdleTimeout) {
  ScriptedUpstream upstream([](int fd) { MinimalImapServer(fd, nullptr); });
  StartWorker(upstream.port());
  const int client = Connect();
  ASSERT_EQ(ReadLine(client).rfind("* PREAUTH", 0), 0u);
  // A second before the idle timeout (30 min of the worker's clock) the session is still open.
  AdvanceClock(options_.idle_timeout - absl::Seconds(1));
  EXPECT_FALSE(Readable(client)) << "closed before the idle timeout";
  EXPECT_EQ(worker_->counters().sessions_open.load(), 1u);
  // Past it (timers fire at most one one-second tick late): closed.
  AdvanceClock(absl::Seconds(2));
  EXPECT_TRUE(WaitForEof(client, 5000));
  ::close(client);
}

TEST_F(WorkerTest, DrainStopsAcceptingAndByesOpenSessions) {
  ScriptedUpstream upstream([](int fd) { MinimalImapServer(fd, nullptr); });
  drain_timeout_ = absl::Seconds(1);
  StartWorker(upstream.port());
  const int client = Connect();
  ASSERT_EQ(ReadLine(client).rfind("* PREAUTH", 0), 0u);
  worker_->RequestDrain();
  ASSERT_TRUE(SyncWithWorker()) << "the worker began draining";
  // New connections are refused once the listener is shut.
  EXPECT_LT(Connect(), 0);
  // The session may run until the drain timeout, then gets a BYE. (No SyncWithWorker(): the
  // worker's thread ends with its last session.)
  clock_.Advance(drain_timeout_);
  worker_->Wake();
  EXPECT_EQ(ReadLine(client, 5000), "* BYE [UNAVAILABLE] shutting down\r\n");
  EXPECT_TRUE(WaitForEof(client));
  worker_->Join();
  EXPECT_EQ(worker_->counters().sessions_open.load(), 0u);
  ::close(client);
}

TEST_F(WorkerTest, HundredConcurrentSessionsEachLogInOnce) {
  ScriptedUpstream upstream([](int fd) { MinimalImapServer(fd, nullptr); });
  StartWorker(upstream.port());
  std::vector<int> clients;
  for (int i = 0; i < 100; ++i) {
    clients.push_back(Connect());
    ASSERT_GE(clients.back(), 0);
  }
  for (size_t i = 0; i < clients.size(); ++i) {
    ASSERT_EQ(ReadLine(clients[i]).rfind("* PREAUTH", 0), 0u) << i;
    ASSERT_TRUE(SendText(clients[i], "t" + std::to_string(i) + " NOOP\r\n"));
  }
  for (size_t i = 0; i < clients.size(); ++i) {
    EXPECT_EQ(ReadLine(clients[i]), "t" + std::to_string(i) + " OK done\r\n");
    ::close(clients[i]);
  }
  EXPECT_EQ(upstream.connections(), 100);
  EXPECT_EQ(worker_->counters().logins_ok.load(), 100u);
}

// The relay's copy path and the logins share the worker's provided-buffer ring. With a ring of
// one buffer, concurrent sessions keep finding it empty: every such read must fall back (poll +
// recv before the relay, splice during it) and come back, losing and reordering nothing.
TEST_F(WorkerTest, OneBufferRingStillRelaysEveryResponseInOrder) {
  options_.recv_buffer_count = 1;
  ScriptedUpstream upstream([](int fd) { MinimalImapServer(fd, nullptr); });
  StartWorker(upstream.port());
  constexpr int kSessions = 24;
  constexpr int kCommands = 40;
  std::vector<int> clients;
  for (int i = 0; i < kSessions; ++i) {
    clients.push_back(Connect());
    ASSERT_GE(clients.back(), 0);
  }
  for (int i = 0; i < kSessions; ++i) {
    ASSERT_EQ(ReadLine(clients[i]).rfind("* PREAUTH", 0), 0u) << i;
  }
  // Every client pipelines all its commands at once; all sessions are busy together.
  for (int i = 0; i < kSessions; ++i) {
    std::string burst;
    for (int c = 0; c < kCommands; ++c) {
      burst += "s" + std::to_string(i) + "c" + std::to_string(c) + " NOOP\r\n";
    }
    ASSERT_TRUE(SendText(clients[i], burst));
  }
  for (int i = 0; i < kSessions; ++i) {
    for (int c = 0; c < kCommands; ++c) {
      ASSERT_EQ(ReadLine(clients[i]), "s" + std::to_string(i) + "c" + std::to_string(c) +
                                          " OK done\r\n")
          << "session " << i;
    }
    ::close(clients[i]);
  }
  EXPECT_EQ(worker_->counters().logins_ok.load(), static_cast<uint64_t>(kSessions));
  // Not asserted (it depends on scheduling), but shown: how often the ring was found empty.
  std::printf("recv_ring_empty=%llu\n",
              static_cast<unsigned long long>(worker_->counters().recv_ring_empty.load()));
}

TEST_F(WorkerTest, RoutesChangeWithoutDisturbingOpenSessions) {
  ScriptedUpstream upstream([](int fd) { MinimalImapServer(fd, nullptr); });
  StartWorker(upstream.port());
  const uint16_t old_port = listen_port_;
  const int old_session = Connect();
  ASSERT_EQ(ReadLine(old_session).rfind("* PREAUTH", 0), 0u);

  // Replace the route: a new listen port, the old one gone.
  const uint16_t new_port = FreePort();
  worker_->UpdateRoutes(
      RouteTableOf(LoopbackRoute(new_port, upstream.port(), "scripted-2", "test2")));
  ASSERT_TRUE(SyncWithWorker()) << "the worker applied the routes";

  listen_port_ = new_port;
  const int fresh = Connect();
  ASSERT_GE(fresh, 0) << "the new route's listener opened";
  const std::string greeting = ReadLine(fresh);
  EXPECT_NE(greeting.find("scripted-2"), std::string::npos) << greeting;
  ::close(fresh);
  listen_port_ = old_port;
  EXPECT_LT(Connect(), 0) << "the old route's listener closed";
  EXPECT_EQ(worker_->listening(), 1u);
  // The session opened on the old route still works.
  ASSERT_TRUE(SendText(old_session, "z NOOP\r\n"));
  EXPECT_EQ(ReadLine(old_session), "z OK done\r\n");
  ::close(old_session);
}

TEST_F(WorkerTest, ListenerOnABusyPortIsOpenedOnceThePortIsFree) {
  ScriptedUpstream upstream([](int fd) { MinimalImapServer(fd, nullptr); });
  StartWorker(upstream.port());
  // Somebody else holds the new route's port (no SO_REUSEPORT: the worker cannot share it).
  const uint16_t busy_port = FreePort();
  const int squatter = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(busy_port);
  ASSERT_EQ(::bind(squatter, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(squatter, 1), 0);
  worker_->UpdateRoutes(RouteTableOf(LoopbackRoute(busy_port, upstream.port(), "late", "late")));
  ASSERT_TRUE(SyncWithWorker()) << "the worker applied the routes";
  EXPECT_GE(worker_->listen_failures(), 1u);
  EXPECT_EQ(worker_->listening(), 0u);
  ::close(squatter);
  listen_port_ = busy_port;
  // The worker tries again two seconds (of its clock) after the failure.
  AdvanceClock(absl::Seconds(2));
  EXPECT_EQ(worker_->listening(), 1u);
  std::string greeting;
  if (const int client = Connect(); client >= 0) {
    greeting = ReadLine(client, 2000);
    ::close(client);
  }
  EXPECT_EQ(greeting.rfind("* PREAUTH", 0), 0u) << "the worker retried the listener";
}

TEST_F(WorkerTest, RequiredStartTlsNotOfferedGivesByeAndSendsNoCredentials) {
  std::promise<std::string> next_line;
  std::future<std::string> seen_future = next_line.get_future();
  ScriptedUpstream upstream([&](int fd) {
    SendText(fd, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] plain only\r\n");
    // Whatever mailring sends next (nothing expected): returns at its close.
    next_line.set_value(ReadLine(fd, 2000));
  });
  StartWorker(upstream.port(), "secret", true, Route::Tls::kStartTlsRequired);
  const int client = Connect();
  const std::string line = ReadLine(client);
  EXPECT_EQ(line.rfind("* BYE [UNAVAILABLE] ", 0), 0u) << line;
  EXPECT_NE(line.find("STARTTLS"), std::string::npos) << line;
  ::close(client);
  ASSERT_EQ(seen_future.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  const std::string seen = seen_future.get();
  EXPECT_EQ(seen.find("secret"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("LOGIN"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("AUTHENTICATE"), std::string::npos) << seen;
}

// Lowers the process's fd limit and, on Exhaust(), takes every fd number left below it; the
// destructor gives everything back, also when an assertion ends the test early.
//
// Why fill rather than only lower: io_uring reads the limit when an accept is submitted (a
// multishot accept armed before the limit fell would keep the old one), so the accept fails
// for certain only when no fd number below either limit is free.
class FdExhaustion {
 public:
  explicit FdExhaustion(rlim_t headroom) {
    ::getrlimit(RLIMIT_NOFILE, &original_);
    const int lowest_free = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ::close(lowest_free);
    rlimit tight = original_;
    tight.rlim_cur = static_cast<rlim_t>(lowest_free) + headroom;
    ok_ = ::setrlimit(RLIMIT_NOFILE, &tight) == 0;
  }
  ~FdExhaustion() { Release(); }
  bool ok() const { return ok_; }
  // Opens fds until the limit refuses one; false if it never did.
  bool Exhaust() {
    for (int i = 0; i < 4096; ++i) {
      const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0) return errno == EMFILE;
      fillers_.push_back(fd);
    }
    return false;
  }
  void Release() {
    for (int fd : fillers_) ::close(fd);
    fillers_.clear();
    if (ok_) ::setrlimit(RLIMIT_NOFILE, &original_);
    ok_ = false;
  }

 private:
  rlimit original_{};
  bool ok_ = false;
  std::vector<int> fillers_;
};

double CpuSeconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

TEST_F(WorkerTest, OutOfFdsPausesAcceptsInsteadOfSpinningAndRecovers) {
  ScriptedUpstream upstream([](int fd) { MinimalImapServer(fd, nullptr); });
  // The worker's clock stands still: the one-second pause cannot end by itself while the test
  // looks, however slow the machine.
  clock_.Freeze();
  // Room for the worker's own fds and twenty clients' sockets, then none.
  FdExhaustion fds(/*headroom=*/64);
  ASSERT_TRUE(fds.ok());
  StartWorker(upstream.port());
  ASSERT_TRUE(SyncWithWorker());  // its accept is armed, under the lowered limit
  std::vector<int> clients;
  for (int i = 0; i < 20; ++i) clients.push_back(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(fds.Exhaust());
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(listen_port_);
  for (int fd : clients) {
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  }
  ASSERT_TRUE(PollUntil([&] { return worker_->accept_failures() >= 1; }))
      << "the worker ran out of fds";
  ASSERT_TRUE(SyncWithWorker());  // failures already in flight have arrived
  const uint64_t failures = worker_->accept_failures();
  // While the clock stands still the worker runs iteration after iteration (woken) and never
  // tries to accept again: a failing accept is not retried in a tight loop ...
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(SyncWithWorker());
  EXPECT_EQ(worker_->accept_failures(), failures);
  // ... nor does it burn CPU while paused. A measurement window, not a wait for an event: a
  // spinning worker would use most of it.
  const double cpu_before = CpuSeconds();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const double cpu_used = CpuSeconds() - cpu_before;
  EXPECT_LT(cpu_used, 0.25) << "a failing accept must not be retried in a tight loop";
  EXPECT_EQ(worker_->accept_failures(), failures);
  // Once the pause is over (a second of the worker's clock), it tries again and, still out of
  // fds, pauses again.
  AdvanceClock(absl::Seconds(1));
  EXPECT_TRUE(PollUntil([&] { return worker_->accept_failures() > failures; }));
  for (int fd : clients) ::close(fd);
  fds.Release();
  // Once fds are free again, new clients are served after the pause.
  AdvanceClock(absl::Seconds(1));
  clock_.Thaw();  // sessions and the drain run on real time again
  std::string greeting;
  for (int attempt = 0; attempt < 30 && greeting.rfind("* PREAUTH", 0) != 0; ++attempt) {
    const int client = Connect();
    if (client < 0) continue;
    greeting = ReadLine(client, 3000);
    ::close(client);
  }
  EXPECT_EQ(greeting.rfind("* PREAUTH", 0), 0u) << greeting;
}

}  // namespace
}  // namespace mailring::core
