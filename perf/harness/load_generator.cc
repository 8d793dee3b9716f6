// mailring_load_generator: drives IMAP sessions through a proxy (or straight at the synthetic
// upstream) and prints one key=value line with what it measured.
//
//   --mode=throughput --sessions=8 --fetches=4
//       Every session logs in, SELECTs, and once all are ready they FETCH 1 BODY[] --fetches
//       times in sequence. The literal's size is parsed from the response and its bytes are
//       received into one buffer and dropped. Reports literal bytes, wall seconds, GB/s (1e9).
//   --mode=idle --sessions=5000 --hold=3 --pid=PROXY_PID[,PID...]
//       Opens the sessions (at most --connect-concurrency being set up at once), puts each in
//       IDLE, samples the proxy's VmRSS, threads and fds before and while holding them, then
//       DONE, LOGOUT, close. Reports KiB of proxy RSS per held session.
//   --mode=churn --in-flight=64 --duration=5
//       --in-flight loops of connect, greeting, NOOP, LOGOUT, close. Reports sessions/s and the
//       latency of a whole session (connect to the tagged LOGOUT OK): p50, p90, p99, max.
//
// A `* PREAUTH` greeting means the proxy logged in for us; an `* OK` greeting gets
// `a LOGIN --user --password` (direct runs, HAProxy, nginx mail). With --pid, the proxy's CPU
// time (utime+stime of the listed processes) over the measured interval is reported too.
//
// Threads: --threads I/O threads (default 1), each with its own epoll and an equal share of the
// sessions; the main thread only coordinates (barrier, /proc sampling) and sleeps otherwise.
// Everything is bounded by --timeout; a session that makes no progress for --session-timeout
// fails. Exit status: 0 when the run completed (failed sessions are counted, not fatal), 1 on
// a harness error or when --timeout cut the run short, 2 on bad flags.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "perf/harness/harness_common.h"

namespace mailring::perf {
namespace {

enum class Mode { kThroughput, kIdle, kChurn };

struct Options {
  Mode mode = Mode::kThroughput;
  std::string host = "127.0.0.1";
  int port = 0;
  int sessions = 8;
  int fetches = 4;
  int in_flight = 64;
  double duration_s = 5;
  double hold_s = 3;
  double timeout_s = 300;
  double session_timeout_s = 20;
  int threads = 1;
  int connect_concurrency = 256;
  size_t recv_buffer = 256 * 1024;
  bool discard_trunc = false;  // MSG_TRUNC: the kernel drops literal bytes without a copy
  bool select = true;
  std::string user = "u";
  std::string password = "p";
  std::vector<int> pids;
};

enum class Phase : uint8_t {
  kUnused,      // slot holds no session
  kConnecting,  // non-blocking connect in progress
  kGreeting,    // waiting for the greeting
  kLogin,       // sent `a LOGIN`
  kSelect,      // sent `s SELECT INBOX`
  kReady,       // throughput: logged in, waiting for the start signal
  kFetching,    // sent `fN FETCH 1 BODY[]`
  kIdleStart,   // sent `i IDLE`
  kIdling,      // got `+ idling`
  kIdleDone,    // sent DONE
  kNoop,        // sent `n NOOP`
  kLogout,      // sent `l LOGOUT`
  kDone,
  kFailed,
};

const char* PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kUnused:
      return "unused";
    case Phase::kConnecting:
      return "connecting";
    case Phase::kGreeting:
      return "greeting";
    case Phase::kLogin:
      return "login";
    case Phase::kSelect:
      return "select";
    case Phase::kReady:
      return "ready";
    case Phase::kFetching:
      return "fetching";
    case Phase::kIdleStart:
      return "idle-start";
    case Phase::kIdling:
      return "idling";
    case Phase::kIdleDone:
      return "idle-done";
    case Phase::kNoop:
      return "noop";
    case Phase::kLogout:
      return "logout";
    case Phase::kDone:
      return "done";
    case Phase::kFailed:
      return "failed";
  }
  return "?";
}

// One client session. The fd is open from StartSession until Finish.
struct Session {
  int fd = -1;
  Phase phase = Phase::kUnused;
  bool writable_wanted = false;
  uint32_t fetches_done = 0;
  uint64_t literal_left = 0;  // bytes of a literal still to drop
  uint64_t started_ns = 0;
  uint64_t progress_ns = 0;  // last byte received or phase change
  std::string line;          // a partial response line
  std::string out;           // bytes not yet sent
  size_t out_offset = 0;
};

// What the coordinator and the I/O threads share.
struct Shared {
  std::atomic<int> ready{0};         // throughput: sessions waiting for `go`
  std::atomic<int> idling{0};        // idle: sessions in IDLE
  std::atomic<int> resolved{0};      // sessions that ended before reaching the barrier
  std::atomic<bool> go{false};       // throughput: start fetching
  std::atomic<bool> release{false};  // idle: leave IDLE and log out
  std::atomic<int> dropped{0};       // idle: sessions the proxy closed while held
  std::atomic<bool> abort{false};    // --timeout
  uint64_t deadline_ns = 0;          // --timeout
};

struct ThreadResult {
  uint64_t sessions_ok = 0;
  uint64_t failed = 0;
  uint64_t preauth = 0;
  uint64_t ok_greeting = 0;
  uint64_t literal_bytes = 0;
  uint64_t literals = 0;
  uint64_t bytes_in = 0;
  uint64_t fetches_ok = 0;
  uint64_t last_fetch_ns = 0;
  uint64_t connect_retries = 0;
  std::vector<uint32_t> latencies_us;
  std::map<std::string, uint64_t> errors;
  bool complete = true;
};

bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && text.compare(0, prefix.size(), prefix) == 0;
}

bool StartsWithIgnoreCase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(text[i])) !=
        std::toupper(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

// "{123}" or "{123+}" ending a response line: the literal that follows it.
bool TrailingLiteral(std::string_view line, uint64_t* size) {
  if (line.empty() || line.back() != '}') return false;
  const size_t open = line.rfind('{');
  if (open == std::string_view::npos) return false;
  std::string_view digits = line.substr(open + 1, line.size() - open - 2);
  if (!digits.empty() && digits.back() == '+') digits.remove_suffix(1);
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), *size);
  return !digits.empty() && ec == std::errc() && ptr == digits.data() + digits.size();
}

// The tagged status of `tag`: "OK", "NO", "BAD", or empty when the line is not tagged so.
std::string_view TaggedStatus(std::string_view line, std::string_view tag) {
  if (line.size() <= tag.size() + 1 || line.compare(0, tag.size(), tag) != 0 ||
      line[tag.size()] != ' ') {
    return {};
  }
  std::string_view rest = line.substr(tag.size() + 1);
  if (StartsWithIgnoreCase(rest, "OK")) return "OK";
  if (StartsWithIgnoreCase(rest, "NO")) return "NO";
  if (StartsWithIgnoreCase(rest, "BAD")) return "BAD";
  return "?";
}

// Drives one thread's share of the sessions on its own epoll.
class IoThread {
 public:
  IoThread(const Options& options, Shared& shared, int session_count, sockaddr_in target)
      : options_(options), shared_(shared), sessions_(session_count), target_(target) {
    buffer_.resize(options_.recv_buffer);
  }

  ThreadResult Run() {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    const uint64_t start = NowNs();
    churn_deadline_ns_ = start + static_cast<uint64_t>(options_.duration_s * 1e9);
    const int concurrency = options_.mode == Mode::kChurn
                                ? static_cast<int>(sessions_.size())
                                : std::max(1, options_.connect_concurrency / options_.threads);
    std::vector<epoll_event> events(512);
    uint64_t next_sweep = start + 100'000'000u;
    bool fetch_started = false, released = false;
    while (live_ > 0 || next_to_open_ < sessions_.size() ||
           (!retry_.empty() && NowNs() < churn_deadline_ns_)) {
      const uint64_t now = NowNs();
      if (now >= shared_.deadline_ns || shared_.abort.load(std::memory_order_relaxed)) {
        shared_.abort = true;
        result_.complete = false;
        break;
      }
      // Open more sessions while the set-up window has room (idle and throughput).
      while (next_to_open_ < sessions_.size() && opening_ < concurrency) {
        StartSession(next_to_open_++);
      }
      if (!fetch_started && options_.mode == Mode::kThroughput && shared_.go.load()) {
        fetch_started = true;
        for (size_t i = 0; i < sessions_.size(); ++i) {
          if (sessions_[i].phase == Phase::kReady) SendFetch(i);
        }
      }
      if (!released && options_.mode == Mode::kIdle && shared_.release.load()) {
        released = true;
        for (size_t i = 0; i < sessions_.size(); ++i) {
          if (sessions_[i].phase == Phase::kIdling) {
            Send(i, "DONE\r\n", Phase::kIdleDone);
          } else if (sessions_[i].fd >= 0) {
            Fail(i, "not idling when released");
          }
        }
      }
      // Waiting for the throughput barrier: look at `go` often, the fetches start on it.
      const bool waiting = options_.mode == Mode::kThroughput && !fetch_started;
      const int n =
          epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), waiting ? 1 : 20);
      for (int i = 0; i < n; ++i) HandleEvent(events[i].data.u64, events[i].events);
      if (NowNs() >= next_sweep) {
        Sweep();
        next_sweep = NowNs() + 100'000'000u;
      }
    }
    for (size_t i = 0; i < sessions_.size(); ++i) {
      if (sessions_[i].fd >= 0) Fail(i, "unfinished at --timeout");
    }
    close(epoll_);
    return std::move(result_);
  }

 private:
  void StartSession(size_t index) {
    Session& s = sessions_[index];
    s = Session();
    s.started_ns = s.progress_ns = NowNs();
    s.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s.fd < 0) return Fail(index, std::string("socket: ") + std::strerror(errno));
    const int one = 1;
    setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ++live_;
    ++opening_;
    s.phase = Phase::kConnecting;
    if (connect(s.fd, reinterpret_cast<const sockaddr*>(&target_), sizeof(target_)) == 0) {
      s.phase = Phase::kGreeting;
      Watch(index, EPOLLIN, EPOLL_CTL_ADD);
      return;
    }
    if (errno != EINPROGRESS) {
      if (errno == EADDRNOTAVAIL) ++result_.connect_retries;
      return Fail(index, std::string("connect: ") + std::strerror(errno));
    }
    Watch(index, EPOLLOUT, EPOLL_CTL_ADD);
  }

  void Watch(size_t index, uint32_t events, int op) {
    epoll_event event{};
    event.events = events;
    event.data.u64 = index;
    epoll_ctl(epoll_, op, sessions_[index].fd, &event);
  }

  void HandleEvent(size_t index, uint32_t events) {
    Session& s = sessions_[index];
    if (s.fd < 0) return;
    if (s.phase == Phase::kConnecting) {
      int error = 0;
      socklen_t length = sizeof(error);
      getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &error, &length);
      if (error != 0) return Fail(index, std::string("connect: ") + std::strerror(error));
      s.phase = Phase::kGreeting;
      Watch(index, EPOLLIN, EPOLL_CTL_MOD);
      return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
      if (!Receive(index)) return;
    }
    if (s.fd >= 0 && (events & EPOLLOUT)) Flush(index);
  }

  // False when the session ended.
  bool Receive(size_t index) {
    Session& s = sessions_[index];
    for (int round = 0; round < 16 && s.fd >= 0; ++round) {
      ssize_t n;
      if (options_.discard_trunc && s.literal_left > 0) {
        const size_t want = std::min<uint64_t>(s.literal_left, 1 << 30);
        n = recv(s.fd, nullptr, want, MSG_TRUNC);
        if (n > 0) {
          s.literal_left -= static_cast<uint64_t>(n);
          result_.literal_bytes += static_cast<uint64_t>(n);
          result_.bytes_in += static_cast<uint64_t>(n);
          s.progress_ns = NowNs();
          continue;
        }
      } else {
        n = recv(s.fd, buffer_.data(), buffer_.size(), 0);
      }
      if (n == 0) {
        OnEof(index);
        return false;
      }
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return true;
        Fail(index, std::string("recv: ") + std::strerror(errno));
        return false;
      }
      result_.bytes_in += static_cast<uint64_t>(n);
      s.progress_ns = NowNs();
      if (!Consume(index, buffer_.data(), static_cast<size_t>(n))) return false;
      if (static_cast<size_t>(n) < buffer_.size()) return true;
    }
    return s.fd >= 0;
  }

  // Splits bytes into response lines and literals. False when the session ended.
  bool Consume(size_t index, const char* data, size_t length) {
    Session& s = sessions_[index];
    while (length > 0) {
      if (s.literal_left > 0) {
        const size_t take = std::min<uint64_t>(s.literal_left, length);
        s.literal_left -= take;
        result_.literal_bytes += take;
        data += take;
        length -= take;
        continue;
      }
      const char* newline = static_cast<const char*>(std::memchr(data, '\n', length));
      if (newline == nullptr) {
        s.line.append(data, length);
        if (s.line.size() > 64 * 1024) {
          Fail(index, "response line over 64 KiB");
          return false;
        }
        return true;
      }
      const size_t take = static_cast<size_t>(newline - data) + 1;
      std::string_view line;
      if (s.line.empty()) {
        line = std::string_view(data, take - 1);
      } else {
        s.line.append(data, take - 1);
        line = s.line;
      }
      data += take;
      length -= take;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      uint64_t literal = 0;
      if (TrailingLiteral(line, &literal)) {
        s.literal_left = literal;
        ++result_.literals;
      }
      const bool alive = OnLine(index, line);
      s.line.clear();
      if (!alive) return false;
    }
    return true;
  }

  // One response line. False when the session ended.
  bool OnLine(size_t index, std::string_view line) {
    Session& s = sessions_[index];
    if (StartsWithIgnoreCase(line, "* BYE") && s.phase != Phase::kLogout) {
      Fail(index,
           std::string("BYE in ") + PhaseName(s.phase) + ": " + std::string(line.substr(0, 80)));
      return false;
    }
    switch (s.phase) {
      case Phase::kGreeting:
        if (StartsWithIgnoreCase(line, "* PREAUTH")) {
          ++result_.preauth;
          return AfterLogin(index);
        }
        if (StartsWithIgnoreCase(line, "* OK")) {
          ++result_.ok_greeting;
          Send(index, "a LOGIN \"" + options_.user + "\" \"" + options_.password + "\"\r\n",
               Phase::kLogin);
          return s.fd >= 0;
        }
        return Unexpected(index, line);
      case Phase::kLogin:
        return Tagged(index, line, "a", [&] { return AfterLogin(index); });
      case Phase::kSelect:
        return Tagged(index, line, "s", [&] {
          s.phase = Phase::kReady;
          Opened();
          shared_.ready.fetch_add(1);
          return true;
        });
      case Phase::kFetching:
        return Tagged(index, line, "f", [&] {
          ++result_.fetches_ok;
          if (++s.fetches_done < static_cast<uint32_t>(options_.fetches)) {
            SendFetch(index);
          } else {
            result_.last_fetch_ns = std::max(result_.last_fetch_ns, NowNs());
            Send(index, "l LOGOUT\r\n", Phase::kLogout);
          }
          return s.fd >= 0;
        });
      case Phase::kIdleStart:
        if (StartsWith(line, "+")) {
          s.phase = Phase::kIdling;
          Opened();
          shared_.idling.fetch_add(1);
          return true;
        }
        return Tagged(index, line, "i", [&] { return Unexpected(index, line); });
      case Phase::kIdling:
        if (StartsWith(line, "*")) return true;  // untagged updates are fine
        return Unexpected(index, line);
      case Phase::kIdleDone:
        return Tagged(index, line, "i", [&] {
          Send(index, "l LOGOUT\r\n", Phase::kLogout);
          return s.fd >= 0;
        });
      case Phase::kNoop:
        return Tagged(index, line, "n", [&] {
          Send(index, "l LOGOUT\r\n", Phase::kLogout);
          return s.fd >= 0;
        });
      case Phase::kLogout:
        return Tagged(index, line, "l", [&] {
          Complete(index);
          return false;
        });
      default:
        return Unexpected(index, line);
    }
  }

  // Untagged lines pass; `tag OK` runs on_ok; `tag NO/BAD` or another tag fails the session.
  template <typename OnOk>
  bool Tagged(size_t index, std::string_view line, std::string_view tag, OnOk on_ok) {
    if (StartsWith(line, "*") || StartsWith(line, "+") || line == ")" || line.empty()) {
      return true;
    }
    if (TaggedStatus(line, tag) == "OK") {
      sessions_[index].progress_ns = NowNs();
      return on_ok();
    }
    return Unexpected(index, line);
  }

  bool Unexpected(size_t index, std::string_view line) {
    Fail(index, std::string("unexpected in ") + PhaseName(sessions_[index].phase) + ": " +
                    std::string(line.substr(0, 80)));
    return false;
  }

  bool AfterLogin(size_t index) {
    switch (options_.mode) {
      case Mode::kThroughput:
        if (options_.select) {
          Send(index, "s SELECT INBOX\r\n", Phase::kSelect);
        } else {
          sessions_[index].phase = Phase::kReady;
          Opened();
          shared_.ready.fetch_add(1);
        }
        break;
      case Mode::kIdle:
        Send(index, "i IDLE\r\n", Phase::kIdleStart);
        break;
      case Mode::kChurn:
        Send(index, "n NOOP\r\n", Phase::kNoop);
        break;
    }
    return sessions_[index].fd >= 0;
  }

  // A session left the set-up window (ready or idling).
  void Opened() { --opening_; }

  void SendFetch(size_t index) { Send(index, "f FETCH 1 BODY[]\r\n", Phase::kFetching); }

  void Send(size_t index, std::string_view bytes, Phase next) {
    Session& s = sessions_[index];
    s.phase = next;
    s.progress_ns = NowNs();
    s.out.append(bytes);
    Flush(index);
  }

  void Flush(size_t index) {
    Session& s = sessions_[index];
    while (s.out_offset < s.out.size()) {
      const ssize_t n =
          send(s.fd, s.out.data() + s.out_offset, s.out.size() - s.out_offset, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN) break;
        return Fail(index, std::string("send: ") + std::strerror(errno));
      }
      s.out_offset += static_cast<size_t>(n);
    }
    const bool pending = s.out_offset < s.out.size();
    if (!pending) {
      s.out.clear();
      s.out_offset = 0;
    }
    if (pending != s.writable_wanted) {
      s.writable_wanted = pending;
      Watch(index, EPOLLIN | (pending ? uint32_t{EPOLLOUT} : 0u), EPOLL_CTL_MOD);
    }
  }

  void OnEof(size_t index) {
    if (sessions_[index].phase == Phase::kLogout) return Complete(index);
    if (sessions_[index].phase == Phase::kIdling) shared_.dropped.fetch_add(1);
    Fail(index, std::string("closed by peer in ") + PhaseName(sessions_[index].phase));
  }

  void Complete(size_t index) {
    Session& s = sessions_[index];
    const uint64_t now = NowNs();
    ++result_.sessions_ok;
    if (options_.mode == Mode::kChurn) {
      result_.latencies_us.push_back(
          static_cast<uint32_t>(std::min<uint64_t>((now - s.started_ns) / 1000, UINT32_MAX)));
    }
    End(index, Phase::kDone);
    if (options_.mode == Mode::kChurn && now < churn_deadline_ns_) StartSession(index);
  }

  void Fail(size_t index, std::string reason) {
    Session& s = sessions_[index];
    const Phase phase = s.phase;
    ++result_.failed;
    if (result_.errors.size() < 16 || result_.errors.count(reason)) ++result_.errors[reason];
    // A session that never reached the barrier still counts toward it.
    if (phase != Phase::kReady && phase != Phase::kIdling && phase != Phase::kFetching &&
        phase != Phase::kIdleDone && phase != Phase::kLogout && phase != Phase::kNoop) {
      if (options_.mode != Mode::kChurn) shared_.resolved.fetch_add(1);
    }
    End(index, Phase::kFailed);
    if (options_.mode == Mode::kChurn && NowNs() < churn_deadline_ns_) {
      // Do not spin on a refused connect: the slot waits for the next sweep.
      retry_.push_back(index);
    }
  }

  void End(size_t index, Phase phase) {
    Session& s = sessions_[index];
    if (s.fd >= 0) {
      close(s.fd);
      s.fd = -1;
      --live_;
      if (s.phase == Phase::kConnecting || s.phase == Phase::kGreeting ||
          s.phase == Phase::kLogin || s.phase == Phase::kSelect || s.phase == Phase::kIdleStart) {
        --opening_;
      }
    }
    s.phase = phase;
    s.line.clear();
    s.line.shrink_to_fit();
    s.out.clear();
    s.out.shrink_to_fit();
  }

  // Fails sessions that made no progress for --session-timeout, and restarts churn slots
  // whose connect failed.
  void Sweep() {
    const uint64_t now = NowNs();
    const uint64_t limit = static_cast<uint64_t>(options_.session_timeout_s * 1e9);
    for (size_t i = 0; i < sessions_.size(); ++i) {
      Session& s = sessions_[i];
      if (s.fd < 0 || s.phase == Phase::kReady || s.phase == Phase::kIdling) continue;
      if (now - s.progress_ns > limit) {
        Fail(i, std::string("no progress for --session-timeout in ") + PhaseName(s.phase));
      }
    }
    std::vector<size_t> retry;
    retry.swap(retry_);
    for (size_t index : retry) {
      if (NowNs() < churn_deadline_ns_) StartSession(index);
    }
  }

  const Options& options_;
  Shared& shared_;
  std::vector<Session> sessions_;
  sockaddr_in target_;
  std::vector<char> buffer_;
  int epoll_ = -1;
  int live_ = 0;     // sessions with an open fd
  int opening_ = 0;  // sessions being set up (connect .. IDLE or ready); unused by churn
  size_t next_to_open_ = 0;
  uint64_t churn_deadline_ns_ = 0;
  std::vector<size_t> retry_;
  ThreadResult result_;
};

uint64_t Percentile(const std::vector<uint32_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t rank = std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()));
  return sorted[rank];
}

std::string EscapeValue(std::string text) {
  for (char& c : text) {
    if (c == ' ' || c == '=' || c == ';' || c == '\t' || c == ',') c = '_';
  }
  return text;
}

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

int Run(const Options& options) {
  const uint64_t nofile = RaiseFileLimit();
  signal(SIGPIPE, SIG_IGN);
  sockaddr_in target{};
  target.sin_family = AF_INET;
  target.sin_port = htons(static_cast<uint16_t>(options.port));
  if (inet_pton(AF_INET, options.host.c_str(), &target.sin_addr) != 1) {
    std::fprintf(stderr, "load_generator: --host is not an IPv4 address: %s\n",
                 options.host.c_str());
    return 2;
  }
  const int total = options.mode == Mode::kChurn ? options.in_flight : options.sessions;
  if (static_cast<uint64_t>(total) + 64 > nofile) {
    std::fprintf(stderr, "load_generator: %d sessions need more fds than RLIMIT_NOFILE=%llu\n",
                 total, static_cast<unsigned long long>(nofile));
    return 1;
  }
  Shared shared;
  const uint64_t start = NowNs();
  shared.deadline_ns = start + static_cast<uint64_t>(options.timeout_s * 1e9);
  const double tick = TicksPerSecond();
  auto sample = [&] { return SampleProcesses(options.pids); };
  const ProcessSample before = sample();

  const int threads = std::max(1, std::min(options.threads, total));
  std::vector<ThreadResult> results(static_cast<size_t>(threads));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    const int share = total / threads + (t < total % threads ? 1 : 0);
    workers.emplace_back([&, t, share] {
      IoThread io(options, shared, share, target);
      results[static_cast<size_t>(t)] = io.Run();
    });
  }

  // Coordinate: the throughput barrier, or the idle hold and its samples.
  uint64_t measure_start = start;
  ProcessSample at_start = before;
  std::vector<ProcessSample> held;
  int idling_at_hold = 0;
  double setup_s = 0;
  auto past_deadline = [&] { return NowNs() >= shared.deadline_ns || shared.abort.load(); };
  if (options.mode == Mode::kThroughput) {
    while (!past_deadline() && shared.ready.load() + shared.resolved.load() < total) SleepMs(1);
    measure_start = NowNs();
    setup_s = static_cast<double>(measure_start - start) / 1e9;
    at_start = sample();
    shared.go = true;
  } else if (options.mode == Mode::kIdle) {
    while (!past_deadline() && shared.idling.load() + shared.resolved.load() < total) SleepMs(5);
    setup_s = static_cast<double>(NowNs() - start) / 1e9;
    idling_at_hold = shared.idling.load();
    // Let the proxy settle, then sample a few times while the sessions sit in IDLE.
    const uint64_t hold_end = NowNs() + static_cast<uint64_t>(options.hold_s * 1e9);
    SleepMs(std::min(500, static_cast<int>(options.hold_s * 500)));
    while (!past_deadline()) {
      held.push_back(sample());
      if (NowNs() >= hold_end) break;
      SleepMs(250);
    }
    shared.release = true;
  }
  for (std::thread& worker : workers) worker.join();
  const uint64_t end = NowNs();
  const ProcessSample after = sample();

  ThreadResult total_result;
  total_result.last_fetch_ns = 0;
  for (ThreadResult& r : results) {
    total_result.sessions_ok += r.sessions_ok;
    total_result.failed += r.failed;
    total_result.preauth += r.preauth;
    total_result.ok_greeting += r.ok_greeting;
    total_result.literal_bytes += r.literal_bytes;
    total_result.literals += r.literals;
    total_result.bytes_in += r.bytes_in;
    total_result.fetches_ok += r.fetches_ok;
    total_result.connect_retries += r.connect_retries;
    total_result.last_fetch_ns = std::max(total_result.last_fetch_ns, r.last_fetch_ns);
    total_result.complete = total_result.complete && r.complete;
    total_result.latencies_us.insert(total_result.latencies_us.end(), r.latencies_us.begin(),
                                     r.latencies_us.end());
    for (const auto& [reason, count] : r.errors) total_result.errors[reason] += count;
  }
  const bool complete = total_result.complete && !shared.abort.load();

  std::string line;
  char field[256];
  auto add = [&](const char* format, auto... values) {
    std::snprintf(field, sizeof(field), format, values...);
    if (!line.empty()) line += ' ';
    line += field;
  };
  const char* mode_name = options.mode == Mode::kThroughput ? "throughput"
                          : options.mode == Mode::kIdle     ? "idle"
                                                            : "churn";
  add("mode=%s", mode_name);
  add("target=%s:%d", options.host.c_str(), options.port);
  add("threads=%d", threads);
  add("greeting=%s", total_result.preauth > 0 && total_result.ok_greeting > 0 ? "mixed"
                     : total_result.preauth > 0                               ? "preauth"
                     : total_result.ok_greeting > 0                           ? "ok"
                                                                              : "none");
  add("complete=%d", complete ? 1 : 0);
  add("sessions_ok=%llu", static_cast<unsigned long long>(total_result.sessions_ok));
  add("failed=%llu", static_cast<unsigned long long>(total_result.failed));
  const bool have_proxy = !options.pids.empty() && before.ok && after.ok;
  if (options.mode == Mode::kThroughput) {
    const uint64_t fetch_end = total_result.last_fetch_ns ? total_result.last_fetch_ns : end;
    const double seconds = static_cast<double>(fetch_end - measure_start) / 1e9;
    const double gb = static_cast<double>(total_result.literal_bytes) / 1e9;
    add("sessions=%d", options.sessions);
    add("fetches_ok=%llu", static_cast<unsigned long long>(total_result.fetches_ok));
    add("literal_bytes=%llu", static_cast<unsigned long long>(total_result.literal_bytes));
    add("bytes_in=%llu", static_cast<unsigned long long>(total_result.bytes_in));
    add("setup_s=%.3f", setup_s);
    add("seconds=%.3f", seconds);
    add("gbps=%.3f", seconds > 0 ? gb / seconds : 0.0);
    if (have_proxy) {
      const double cpu = static_cast<double>(after.cpu_ticks - at_start.cpu_ticks) / tick;
      add("proxy_cpu_s=%.2f", cpu);
      add("proxy_cpu_s_per_gb=%.3f", gb > 0 ? cpu / gb : 0.0);
    }
  } else if (options.mode == Mode::kIdle) {
    add("sessions=%d", options.sessions);
    add("idling=%d", idling_at_hold);
    add("dropped=%d", shared.dropped.load());
    add("setup_s=%.3f", setup_s);
    if (have_proxy && !held.empty()) {
      std::vector<uint64_t> rss;
      uint64_t threads_held = 0, fds_held = 0;
      for (const ProcessSample& h : held) {
        rss.push_back(h.rss_kib);
        threads_held = std::max(threads_held, h.threads);
        fds_held = std::max(fds_held, h.fds);
      }
      std::sort(rss.begin(), rss.end());
      const uint64_t rss_held = rss[rss.size() / 2];
      add("rss_before_kib=%llu", static_cast<unsigned long long>(before.rss_kib));
      add("rss_held_kib=%llu", static_cast<unsigned long long>(rss_held));
      add("rss_held_max_kib=%llu", static_cast<unsigned long long>(rss.back()));
      add("kib_per_session=%.3f", idling_at_hold > 0 ? (static_cast<double>(rss_held) -
                                                        static_cast<double>(before.rss_kib)) /
                                                           idling_at_hold
                                                     : 0.0);
      add("threads_before=%llu", static_cast<unsigned long long>(before.threads));
      add("threads_held=%llu", static_cast<unsigned long long>(threads_held));
      add("fds_before=%llu", static_cast<unsigned long long>(before.fds));
      add("fds_held=%llu", static_cast<unsigned long long>(fds_held));
      add("rss_after_kib=%llu", static_cast<unsigned long long>(after.rss_kib));
      add("threads_after=%llu", static_cast<unsigned long long>(after.threads));
    }
  } else {
    std::vector<uint32_t>& latencies = total_result.latencies_us;
    std::sort(latencies.begin(), latencies.end());
    // Sessions per second over the time the loops ran (the last ones drain after --duration).
    const double seconds = static_cast<double>(end - start) / 1e9;
    add("in_flight=%d", options.in_flight);
    add("seconds=%.3f", seconds);
    add("sessions_per_s=%.1f", seconds > 0 ? total_result.sessions_ok / seconds : 0.0);
    add("p50_us=%llu", static_cast<unsigned long long>(Percentile(latencies, 0.50)));
    add("p90_us=%llu", static_cast<unsigned long long>(Percentile(latencies, 0.90)));
    add("p99_us=%llu", static_cast<unsigned long long>(Percentile(latencies, 0.99)));
    add("max_us=%llu", static_cast<unsigned long long>(latencies.empty() ? 0 : latencies.back()));
    add("connect_addr_busy=%llu", static_cast<unsigned long long>(total_result.connect_retries));
    if (have_proxy) {
      const double cpu = static_cast<double>(after.cpu_ticks - before.cpu_ticks) / tick;
      add("proxy_cpu_s=%.2f", cpu);
      add("proxy_cpu_us_per_session=%.1f",
          total_result.sessions_ok ? cpu * 1e6 / static_cast<double>(total_result.sessions_ok)
                                   : 0.0);
    }
  }
  if (!options.pids.empty() && !have_proxy) add("proxy_sample=unreadable");
  std::string errors;
  for (const auto& [reason, count] : total_result.errors) {
    if (!errors.empty()) errors += ';';
    errors += EscapeValue(reason) + ":" + std::to_string(count);
  }
  if (!errors.empty()) add("errors=%s", errors.c_str());
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  return complete ? 0 : 1;
}

}  // namespace
}  // namespace mailring::perf

int main(int argc, char** argv) {
  using mailring::perf::Flags;
  using mailring::perf::Mode;
  Flags flags(argc, argv);
  if (flags.Has("help")) {
    std::printf(
        "mailring_load_generator --port=N --mode=throughput|idle|churn [--host=127.0.0.1]\n"
        "  throughput: --sessions=8 --fetches=4 [--no-select] [--recv-buffer=256K]\n"
        "              [--discard=copy|trunc]\n"
        "  idle:       --sessions=5000 --hold=3 --pid=PID[,PID] [--connect-concurrency=256]\n"
        "  churn:      --in-flight=64 --duration=5\n"
        "  all:        [--pid=PID[,PID]] [--threads=1] [--timeout=300] [--session-timeout=20]\n"
        "              [--user=u] [--password=p]\n");
    return 0;
  }
  mailring::perf::Options options;
  const std::string mode = flags.GetString("mode", "throughput");
  options.host = flags.GetString("host", options.host);
  options.port = static_cast<int>(flags.GetInt("port", 0));
  options.sessions = static_cast<int>(flags.GetInt("sessions", mode == "idle" ? 5000 : 8));
  options.fetches = static_cast<int>(flags.GetInt("fetches", options.fetches));
  options.in_flight = static_cast<int>(flags.GetInt("in-flight", options.in_flight));
  options.duration_s = flags.GetDouble("duration", options.duration_s);
  options.hold_s = flags.GetDouble("hold", options.hold_s);
  options.timeout_s = flags.GetDouble("timeout", options.timeout_s);
  options.session_timeout_s = flags.GetDouble("session-timeout", options.session_timeout_s);
  options.threads = static_cast<int>(flags.GetInt("threads", options.threads));
  options.connect_concurrency =
      static_cast<int>(flags.GetInt("connect-concurrency", options.connect_concurrency));
  options.recv_buffer = static_cast<size_t>(flags.GetInt("recv-buffer", 256 * 1024));
  const std::string discard = flags.GetString("discard", "copy");
  options.select = !flags.GetBool("no-select", false);
  options.user = flags.GetString("user", options.user);
  options.password = flags.GetString("password", options.password);
  const std::string pids = flags.GetString("pid", "");
  std::string error;
  if (!flags.Finish(&error)) {
    std::fprintf(stderr, "load_generator: %s (see --help)\n", error.c_str());
    return 2;
  }
  if (mode == "throughput") {
    options.mode = Mode::kThroughput;
  } else if (mode == "idle") {
    options.mode = Mode::kIdle;
  } else if (mode == "churn") {
    options.mode = Mode::kChurn;
  } else {
    std::fprintf(stderr, "load_generator: --mode must be throughput, idle or churn\n");
    return 2;
  }
  if (!pids.empty()) {
    options.pids = mailring::perf::ParsePidList(pids);
    if (options.pids.empty()) {
      std::fprintf(stderr, "load_generator: --pid: expected PID[,PID...]\n");
      return 2;
    }
  }
  if (discard != "copy" && discard != "trunc") {
    std::fprintf(stderr, "load_generator: --discard must be copy or trunc\n");
    return 2;
  }
  options.discard_trunc = discard == "trunc";
  if (options.port <= 0 || options.port > 65535 || options.sessions <= 0 || options.fetches <= 0 ||
      options.in_flight <= 0 || options.threads <= 0 || options.timeout_s <= 0 ||
      options.duration_s <= 0 || options.hold_s < 0 || options.recv_buffer < 4096 ||
      options.connect_concurrency <= 0) {
    std::fprintf(stderr, "load_generator: --port is required; sizes and times must be positive\n");
    return 2;
  }
  return mailring::perf::Run(options);
}
