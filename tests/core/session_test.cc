// Session against a scripted host: the test owns the reactor (its own io_uring, buffers, pipes,
// timers, and a clock it advances), the client's end of a loopback connection and the upstream's
// listening socket, all on one thread. Every step is explicit: the host runs one batch of
// completions, the test plays a peer, and timeouts fire when the test moves the clock, with no
// real waiting.
#include "core/session.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "core/completion.h"
#include "core/log.h"
#include "core/session_host.h"
#include "gtest/gtest.h"
#include "tests/core/loopback.h"

namespace mailring::core {
namespace {

// Starts on a whole second, so that a deadline N seconds later falls on a timer-wheel tick and
// fires exactly when the clock reaches it (the wheel rounds deadlines up to whole seconds).
constexpr int64_t kStartMs = 1'000'000;

// A reactor for sessions, driven step by step by the test.
//
// Freed sessions are destroyed (fds closed, gauges moved) but their memory is kept until the
// host goes: a completion that still carried a freed session's tag is then detected
// (stale_completions()) instead of being a use after free.
class ScriptedHost final : public SessionHost {
 public:
  static WorkerOptions WithClock(WorkerOptions options, const int64_t* clock) {
    options.now_ms = [clock] { return *clock; };
    return options;
  }

  explicit ScriptedHost(const WorkerOptions& options, WorkerServices services = {})
      : SessionHost(0, WithClock(options, &clock_ms_), services) {
    ring_status_ = OpenRing();
  }

  ~ScriptedHost() override {
    // Sessions still open are shut down and run to their end, as a draining worker does.
    for (Session* session : std::vector<Session*>(live_.begin(), live_.end())) {
      session->Shutdown();
    }
    RunUntil([this] { return live_.empty(); });
    for (void* storage : freed_storage_) {
      ::operator delete(storage, std::align_val_t(alignof(Session)));
    }
    CloseRing();
  }

  const absl::Status& ring_status() const { return ring_status_; }

  // A session for `client_fd` (non-blocking, owned by the session from now on), started.
  Session* Open(std::shared_ptr<const Route> route, int client_fd) {
    void* storage = ::operator new(sizeof(Session), std::align_val_t(alignof(Session)));
    auto* session = new (storage) Session(this, std::move(route), client_fd, next_id_++);
    live_.insert(session);
    session->Start();
    return session;
  }

  // One iteration of a worker's loop: submit, wait (at most `wait_ms` of real time) for a
  // completion, read the clock, dispatch the batch, run the timers, free what was scheduled.
  void RunOnce(int wait_ms = 5) {
    __kernel_timespec wait{};
    wait.tv_nsec = static_cast<long>(wait_ms) * 1000000;
    io_uring_cqe* cqe = nullptr;
    io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &wait, nullptr);
    ReadClock();
    unsigned head;
    unsigned seen = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++seen;
      if (cqe->user_data == 0) continue;  // cancel requests
      auto* session = TagOwner<Session>(cqe->user_data);
      if (!live_.contains(session)) {
        ++stale_completions_;
        continue;
      }
      session->OnCompletion(static_cast<uint8_t>(TagOp(cqe->user_data)), *cqe);
    }
    io_uring_cq_advance(&ring_, seen);
    timers().Advance(now_ms());
    DestroyScheduled();
  }

  // Runs iterations until `done` holds; false after `timeout_ms` of real time (a bound for a
  // broken test, never a wait the test relies on).
  bool RunUntil(const std::function<bool()>& done, int timeout_ms = 5000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      RunOnce();
    }
    return true;
  }

  // The test's clock; the host reads it at its next iteration.
  void Advance(absl::Duration by) { clock_ms_ += absl::ToInt64Milliseconds(by); }

  bool freed(const Session* session) const {
    return !live_.contains(const_cast<Session*>(session));
  }
  int stale_completions() const { return stale_completions_; }
  // ScheduleDestroy() calls that broke the contract: requests outstanding, or not closing.
  int early_destroys() const { return early_destroys_; }
  size_t credential_waiters() const { return credential_waiters_.size(); }

  // --- SessionHost ---
  void WaitForCredentials(Session* session) override { credential_waiters_.push_back(session); }
  void ForgetCredentialWait(Session* session) override { std::erase(credential_waiters_, session); }
  void ScheduleDestroy(Session* session) override {
    if (session->pending_ops() != 0 || session->phase() != Session::Phase::kClosing) {
      ++early_destroys_;
    }
    to_destroy_.push_back(session);
  }

 private:
  void DestroyScheduled() {
    for (Session* session : to_destroy_) {
      live_.erase(session);
      session->~Session();
      freed_storage_.push_back(session);
    }
    to_destroy_.clear();
  }

  int64_t clock_ms_ = kStartMs;
  absl::Status ring_status_;
  uint64_t next_id_ = 1;
  absl::flat_hash_set<Session*> live_;
  std::vector<Session*> to_destroy_;
  std::vector<void*> freed_storage_;
  std::vector<Session*> credential_waiters_;
  int stale_completions_ = 0;
  int early_destroys_ = 0;
};

// One end of a connection, played by the test: non-blocking reads into a buffer, so that the
// host keeps running while the test waits for a line.
class Peer {
 public:
  explicit Peer(int fd = -1) : fd_(fd) {}
  ~Peer() { Close(); }
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  int fd() const { return fd_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool Send(std::string_view bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n =
          ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }
  // Reads what is there without blocking; false once the peer saw EOF or an error.
  bool Pull() {
    char buffer[64 * 1024];
    while (true) {
      const ssize_t n = ::recv(fd_, buffer, sizeof(buffer), MSG_DONTWAIT);
      if (n > 0) {
        input_.append(buffer, static_cast<size_t>(n));
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) eof_ = true;
      return !eof_;
    }
  }
  bool HasLine() {
    Pull();
    return input_.find('\n') != std::string::npos;
  }
  bool SawEof() {
    Pull();
    return eof_;
  }
  size_t buffered() {
    Pull();
    return input_.size();
  }
  // The first line, with its CRLF; "" when there is none.
  std::string TakeLine() {
    const size_t end = input_.find('\n');
    if (end == std::string::npos) return {};
    std::string line = input_.substr(0, end + 1);
    input_.erase(0, end + 1);
    return line;
  }
  std::string TakeAll() { return std::exchange(input_, {}); }

 private:
  int fd_;
  std::string input_;
  bool eof_ = false;
};

// Whatever the log writes to stderr while it lives (a memfd stands in for fd 2).
class StderrCapture {
 public:
  StderrCapture() {
    saved_ = ::dup(STDERR_FILENO);
    file_ = ::memfd_create("session_test_log", MFD_CLOEXEC);
    ::dup2(file_, STDERR_FILENO);
  }
  ~StderrCapture() {
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    ::close(file_);
  }
  std::string Text() const {
    std::string text;
    char buffer[4096];
    for (off_t offset = 0;;) {
      const ssize_t n = ::pread(file_, buffer, sizeof(buffer), offset);
      if (n <= 0) break;
      text.append(buffer, static_cast<size_t>(n));
      offset += n;
    }
    return text;
  }

 private:
  int saved_ = -1;
  int file_ = -1;
};

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::signal(SIGPIPE, SIG_IGN);  // as control/main.cc: splice to a closed client
    upstream_listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(upstream_listener_, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
              0);
    ASSERT_EQ(::listen(upstream_listener_, 8), 0);
    socklen_t length = sizeof(address);
    ::getsockname(upstream_listener_, reinterpret_cast<sockaddr*>(&address), &length);
    upstream_port_ = ntohs(address.sin_port);
    host_ = std::make_unique<ScriptedHost>(options_);
    ASSERT_TRUE(host_->ring_status().ok()) << host_->ring_status().message();
  }
  void TearDown() override {
    host_.reset();
    ::close(upstream_listener_);
  }

  std::shared_ptr<Route> ImapRoute() {
    auto route = std::make_shared<Route>();
    route->upstream = *SocketAddress::ParseNumeric("127.0.0.1:" + std::to_string(upstream_port_));
    route->destination.name = "scripted";
    route->destination.user = "carol";
    route->destination.password = proto::Secret("secret");
    route->destination.login_on_behalf = true;
    route->log_label = "route=test dest=scripted";
    return route;
  }

  // Opens a session for a fresh loopback client and accepts its upstream connection.
  Session* OpenSession(std::shared_ptr<const Route> route) {
    auto [client_end, session_end] = testing::TcpPair();
    testing::SetNonBlocking(session_end);
    testing::SetNonBlocking(client_end);
    client_ = std::make_unique<Peer>(client_end);
    Session* session = host_->Open(std::move(route), session_end);
    int upstream = -1;
    const bool accepted = host_->RunUntil([&] {
      upstream = ::accept4(upstream_listener_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      return upstream >= 0;
    });
    EXPECT_TRUE(accepted) << "the session connected upstream";
    upstream_ = std::make_unique<Peer>(upstream);
    // Connected: the session waits for the greeting (its connect completion is processed).
    EXPECT_TRUE(host_->RunUntil([&] { return session->phase() != Session::Phase::kConnecting; }));
    return session;
  }

  std::string ClientLine() {
    EXPECT_TRUE(host_->RunUntil([&] { return client_->HasLine(); })) << "a line for the client";
    return client_->TakeLine();
  }
  std::string UpstreamLine() {
    EXPECT_TRUE(host_->RunUntil([&] { return upstream_->HasLine(); })) << "a line upstream";
    return upstream_->TakeLine();
  }

  // Greeting and login on the scripted server's side, up to the client's PREAUTH.
  void LogIn(Session* session) {
    ASSERT_TRUE(upstream_->Send("* OK [CAPABILITY IMAP4rev1 IDLE] scripted ready\r\n"));
    EXPECT_EQ(UpstreamLine(), "M2 LOGIN carol secret\r\n");
    ASSERT_TRUE(upstream_->Send("M2 OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in\r\n"));
    EXPECT_EQ(ClientLine(),
              "* PREAUTH [CAPABILITY IMAP4rev1 IDLE MOVE] mailring: logged in to destination "
              "scripted\r\n");
    EXPECT_EQ(session->phase(), Session::Phase::kRelay);
  }

  WorkerOptions options_;
  int upstream_listener_ = -1;
  uint16_t upstream_port_ = 0;
  std::unique_ptr<ScriptedHost> host_;
  std::unique_ptr<Peer> client_;
  std::unique_ptr<Peer> upstream_;
};

TEST_F(SessionTest, ImapLoginGreetsWithPreauthThenRelaysBothWays) {
  Session* session = OpenSession(ImapRoute());
  LogIn(session);
  EXPECT_EQ(host_->counters().logins_ok.load(), 1u);

  ASSERT_TRUE(client_->Send("a1 NOOP\r\n"));
  EXPECT_EQ(UpstreamLine(), "a1 NOOP\r\n");
  ASSERT_TRUE(upstream_->Send("a1 OK done\r\n"));
  EXPECT_EQ(ClientLine(), "a1 OK done\r\n");

  // A burst larger than a provided buffer: the leg switches to splice and back, byte-exact.
  std::string literal(3 * 1024 * 1024 + 17, '\0');
  for (size_t i = 0; i < literal.size(); ++i) literal[i] = static_cast<char>('a' + i % 26);
  size_t sent = 0;
  ASSERT_TRUE(host_->RunUntil(
      [&] {
        const ssize_t n = ::send(upstream_->fd(), literal.data() + sent, literal.size() - sent,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) sent += static_cast<size_t>(n);
        return sent == literal.size() && client_->buffered() == literal.size();
      },
      20000));
  EXPECT_EQ(client_->TakeAll(), literal);
  EXPECT_EQ(session->phase(), Session::Phase::kRelay);

  ASSERT_TRUE(client_->Send("a2 LOGOUT\r\n"));
  EXPECT_EQ(UpstreamLine(), "a2 LOGOUT\r\n");
  ASSERT_TRUE(upstream_->Send("* BYE bye\r\na2 OK done\r\n"));
  upstream_->Close();
  EXPECT_EQ(ClientLine(), "* BYE bye\r\n");
  EXPECT_EQ(ClientLine(), "a2 OK done\r\n");
  EXPECT_TRUE(host_->RunUntil([&] { return client_->SawEof(); }));
  EXPECT_TRUE(host_->RunUntil([&] { return host_->freed(session); }));
  EXPECT_EQ(host_->counters().sessions_open.load(), 0u);
}

TEST_F(SessionTest, SilentUpstreamGreetingTimesOutOnTheClockWithoutRealWaiting) {
  const auto real_start = std::chrono::steady_clock::now();
  Session* session = OpenSession(ImapRoute());
  EXPECT_EQ(session->phase(), Session::Phase::kUpstreamGreeting);
  // One second before the login timeout (30 s) nothing happens.
  host_->Advance(options_.login_timeout - absl::Seconds(1));
  host_->RunOnce();
  host_->RunOnce();
  EXPECT_EQ(session->phase(), Session::Phase::kUpstreamGreeting);
  EXPECT_FALSE(client_->HasLine());
  host_->Advance(absl::Seconds(1));
  EXPECT_EQ(ClientLine(),
            "* BYE [UNAVAILABLE] destination scripted: timed out after 30s while reading the "
            "upstream greeting\r\n");
  EXPECT_TRUE(host_->RunUntil([&] { return host_->freed(session); }));
  EXPECT_TRUE(host_->RunUntil([&] { return upstream_->SawEof(); })) << "upstream closed too";
  EXPECT_LT(std::chrono::steady_clock::now() - real_start, std::chrono::seconds(10));
}

TEST_F(SessionTest, ClientThatDoesNotAuthenticateTimesOut) {
  std::shared_ptr<Route> route = ImapRoute();
  route->destination.authentication = proto::AuthenticationType::kOAuth2RefreshToken;
  route->destination.password = proto::Secret();
  Session* session = OpenSession(route);
  ASSERT_TRUE(
      upstream_->Send("* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2 SASL-IR] scripted ready\r\n"));
  // The server offers XOAUTH2; the token is the client's to bring: it is greeted with OK.
  const std::string greeting = ClientLine();
  EXPECT_EQ(greeting.rfind("* OK [CAPABILITY ", 0), 0u) << greeting;
  EXPECT_NE(greeting.find("AUTH=XOAUTH2"), std::string::npos) << greeting;
  EXPECT_EQ(session->phase(), Session::Phase::kClientDialog);
  // The client-auth timeout (2 min) replaced the login timeout (30 s).
  host_->Advance(options_.login_timeout);
  host_->RunOnce();
  host_->Advance(options_.client_auth_timeout - options_.login_timeout - absl::Seconds(1));
  host_->RunOnce();
  EXPECT_EQ(session->phase(), Session::Phase::kClientDialog);
  EXPECT_FALSE(client_->HasLine());
  host_->Advance(absl::Seconds(1));
  EXPECT_EQ(ClientLine(),
            "* BYE [UNAVAILABLE] destination scripted: timed out after 2m while waiting for the "
            "client to authenticate\r\n");
  EXPECT_TRUE(host_->RunUntil([&] { return host_->freed(session); }));
  EXPECT_EQ(host_->credential_waiters(), 0u);
}

TEST_F(SessionTest, RefusedLoginGivesTheClientAByeWithTheServersReason) {
  Session* session = OpenSession(ImapRoute());
  ASSERT_TRUE(upstream_->Send("* OK [CAPABILITY IMAP4rev1] scripted ready\r\n"));
  EXPECT_EQ(UpstreamLine(), "M2 LOGIN carol secret\r\n");
  ASSERT_TRUE(upstream_->Send("M2 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"));
  EXPECT_EQ(ClientLine(),
            "* BYE [UNAVAILABLE] upstream rejected the login: [AUTHENTICATIONFAILED] "
            "Authentication failed.\r\n");
  EXPECT_TRUE(host_->RunUntil([&] { return client_->SawEof(); }));
  EXPECT_TRUE(host_->RunUntil([&] { return host_->freed(session); }));
  EXPECT_EQ(host_->counters().logins_failed.load(), 1u);
  EXPECT_EQ(host_->counters().logins_ok.load(), 0u);
}

TEST_F(SessionTest, CloseLineCountsTheBytesRelayedEachWay) {
  StderrCapture log;
  Session* session = OpenSession(ImapRoute());
  LogIn(session);
  const std::string from_client = "a1 NOOP\r\na2 SELECT INBOX\r\n";  // 25 bytes
  const std::string from_server = "a1 OK done\r\n* 3 EXISTS\r\na2 OK [READ-WRITE] done\r\n";
  ASSERT_TRUE(client_->Send(from_client));
  ASSERT_TRUE(host_->RunUntil([&] { return upstream_->buffered() == from_client.size(); }));
  ASSERT_TRUE(upstream_->Send(from_server));
  ASSERT_TRUE(host_->RunUntil([&] { return client_->buffered() == from_server.size(); }));
  upstream_->Close();
  EXPECT_TRUE(host_->RunUntil([&] { return host_->freed(session); }));
  const std::string text = log.Text();
  const std::string expected = "closed: upstream closed the session (0 ms, client→upstream " +
                               std::to_string(from_client.size()) + " B, upstream→client " +
                               std::to_string(from_server.size()) + " B)";
  EXPECT_NE(text.find(expected), std::string::npos) << text;
  // The same figures reach the worker's counters when the session is freed.
  EXPECT_EQ(host_->counters().bytes_client_to_upstream.load(), from_client.size());
  EXPECT_EQ(host_->counters().bytes_upstream_to_client.load(), from_server.size());
}

TEST_F(SessionTest, ClosingSessionIsFreedOnlyAfterItsLastCompletion) {
  Session* session = OpenSession(ImapRoute());
  LogIn(session);
  // Relaying idle: each leg has a multishot recv armed.
  host_->RunOnce();
  ASSERT_EQ(session->pending_ops(), 2u);
  host_->Advance(options_.idle_timeout);
  host_->RunOnce();  // the idle timer fires: Close() cancels both recvs
  EXPECT_EQ(session->phase(), Session::Phase::kClosing);
  EXPECT_FALSE(host_->freed(session)) << "two cancelled recvs have not completed yet";
  EXPECT_EQ(session->pending_ops(), 2u);
  EXPECT_TRUE(host_->RunUntil([&] { return host_->freed(session); }));
  EXPECT_EQ(host_->early_destroys(), 0);
  EXPECT_EQ(ClientLine(), "* BYE [UNAVAILABLE] idle for 30m\r\n");
  EXPECT_TRUE(host_->RunUntil([&] { return client_->SawEof(); }));
  // No completion arrives for it afterwards.
  for (int i = 0; i < 20; ++i) host_->RunOnce(1);
  EXPECT_EQ(host_->stale_completions(), 0);
  EXPECT_EQ(host_->counters().sessions_open.load(), 0u);
}

}  // namespace
}  // namespace mailring::core
