// Worker and Session end to end on loopback, against scripted upstream servers: the paths a
// real Dovecot does not take on demand (silence, BYE greetings, synchronizing literals, drain).
#include "core/worker.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/core/scripted_upstream.h"

namespace mailring::core {
namespace {

using testing::FreePort;
using testing::ReadLine;
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

class WorkerTest : public ::testing::Test {
 protected:
  // As control/main.cc does: splice(2) to a socket the client closed raises SIGPIPE otherwise.
  void SetUp() override { ::signal(SIGPIPE, SIG_IGN); }
  void StartWorker(uint16_t upstream_port, std::string password = "secret",
                   bool login_on_behalf = true, Route::Tls tls = Route::Tls::kNone) {
    auto route = std::make_shared<Route>();
    listen_port_ = FreePort();
    route->listen = *SocketAddress::ParseNumeric("127.0.0.1:" + std::to_string(listen_port_));
    route->upstream = *SocketAddress::ParseNumeric("127.0.0.1:" + std::to_string(upstream_port));
    route->destination.name = "scripted";
    route->destination.user = "carol";
    route->destination.password = proto::Secret(std::move(password));
    route->destination.login_on_behalf = login_on_behalf;
    route->log_label = "route=test dest=scripted";
    route->tls = tls;
    auto table = std::make_shared<RouteTable>();
    table->push_back(route);
    worker_ = std::make_unique<Worker>(0, table, options_);
    ASSERT_TRUE(worker_->Start(drain_timeout_).ok());
  }
  void TearDown() override {
    if (worker_ != nullptr) {
      worker_->RequestDrain();
      worker_->Join();
    }
  }
  int Connect() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(listen_port_);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  WorkerOptions options_;
  absl::Duration drain_timeout_ = absl::Seconds(1);
  uint16_t listen_port_ = 0;
  std::unique_ptr<Worker> worker_;
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
  options_.login_timeout = absl::Seconds(1);
  StartWorker(upstream.port());
  const int client = Connect();
  ASSERT_GE(client, 0);
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
    std::string received;
    char buffer[4096];
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{client, POLLIN, 0};
      if (::poll(&p, 1, 50) != 1) continue;
      const ssize_t n = ::recv(client, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      received.append(buffer, static_cast<size_t>(n));
    }
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
  options_.idle_timeout = absl::Seconds(1);
  StartWorker(upstream.port());
  const int client = Connect();
  ASSERT_EQ(ReadLine(client).rfind("* PREAUTH", 0), 0u);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(WaitForEof(client, 5000));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(900));
  ::close(client);
}

TEST_F(WorkerTest, DrainStopsAcceptingAndByesOpenSessions) {
  ScriptedUpstream upstream([](int fd) { MinimalImapServer(fd, nullptr); });
  drain_timeout_ = absl::Seconds(1);
  StartWorker(upstream.port());
  const int client = Connect();
  ASSERT_EQ(ReadLine(client).rfind("* PREAUTH", 0), 0u);
  worker_->RequestDrain();
  // New connections are refused once the listener is shut.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_LT(Connect(), 0);
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
  auto route = std::make_shared<Route>();
  const uint16_t new_port = FreePort();
  route->listen = *SocketAddress::ParseNumeric("127.0.0.1:" + std::to_string(new_port));
  route->upstream = *SocketAddress::ParseNumeric("127.0.0.1:" + std::to_string(upstream.port()));
  route->destination.name = "scripted-2";
  route->destination.user = "carol";
  route->destination.password = proto::Secret("secret");
  route->log_label = "route=test2 dest=scripted-2";
  auto table = std::make_shared<RouteTable>();
  table->push_back(route);
  worker_->UpdateRoutes(table);

  listen_port_ = new_port;
  int fresh = -1;
  for (int i = 0; i < 100 && fresh < 0; ++i) {
    fresh = Connect();
    if (fresh < 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
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
  auto route = std::make_shared<Route>();
  route->listen = *SocketAddress::ParseNumeric("127.0.0.1:" + std::to_string(busy_port));
  route->upstream = *SocketAddress::ParseNumeric("127.0.0.1:" + std::to_string(upstream.port()));
  route->destination.name = "late";
  route->destination.user = "carol";
  route->destination.password = proto::Secret("secret");
  route->log_label = "route=late dest=late";
  auto table = std::make_shared<RouteTable>();
  table->push_back(route);
  worker_->UpdateRoutes(table);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_GE(worker_->listen_failures(), 1u);
  ::close(squatter);
  listen_port_ = busy_port;
  std::string greeting;
  for (int i = 0; i < 50 && greeting.rfind("* PREAUTH", 0) != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const int client = Connect();
    if (client < 0) continue;
    greeting = ReadLine(client, 2000);
    ::close(client);
  }
  EXPECT_EQ(greeting.rfind("* PREAUTH", 0), 0u) << "the worker retried the listener";
}

TEST_F(WorkerTest, RequiredStartTlsNotOfferedGivesByeAndSendsNoCredentials) {
  std::string seen;
  ScriptedUpstream upstream([&](int fd) {
    SendText(fd, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] plain only\r\n");
    seen = ReadLine(fd, 2000);  // whatever mailring sends next (nothing expected)
  });
  StartWorker(upstream.port(), "secret", true, Route::Tls::kStartTlsRequired);
  const int client = Connect();
  const std::string line = ReadLine(client);
  EXPECT_EQ(line.rfind("* BYE [UNAVAILABLE] ", 0), 0u) << line;
  EXPECT_NE(line.find("STARTTLS"), std::string::npos) << line;
  ::close(client);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(seen.find("secret"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("LOGIN"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("AUTHENTICATE"), std::string::npos) << seen;
}

size_t OpenFds() {
  size_t n = 0;
  for (int fd = 0; fd < 4096; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1) ++n;
  }
  return n;
}

double CpuSeconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

TEST_F(WorkerTest, OutOfFdsPausesAcceptsInsteadOfSpinningAndRecovers) {
  ScriptedUpstream upstream([](int fd) { MinimalImapServer(fd, nullptr); });
  StartWorker(upstream.port());
  rlimit original{};
  ::getrlimit(RLIMIT_NOFILE, &original);
  rlimit tight = original;
  tight.rlim_cur = OpenFds() + 24;  // room for a few sessions, not for twenty
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
  std::vector<int> clients;
  for (int i = 0; i < 20; ++i) {
    const int fd = Connect();
    if (fd < 0) break;
    clients.push_back(fd);
  }
  const double cpu_before = CpuSeconds();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const double cpu_used = CpuSeconds() - cpu_before;
  EXPECT_LT(cpu_used, 0.5) << "a failing accept must not be retried in a tight loop";
  for (int fd : clients) ::close(fd);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &original), 0);
  // Once fds are free again, new clients are served (after the one-second pause).
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
