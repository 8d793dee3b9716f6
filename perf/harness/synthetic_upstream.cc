// mailring_synthetic_upstream: an IMAP server for benchmarks, built to be much cheaper per byte
// and per session than any proxy placed in front of it.
//
//   mailring_synthetic_upstream --port=1993 [--literal-bytes=64M] [--stats-file=FILE]
//                               [--auth-http-port=PORT] [--host=127.0.0.1]
//
// One thread, level-triggered epoll, non-blocking sockets. It accepts any credentials and
// speaks just enough IMAP for the load generator and the proxies: the greeting, CAPABILITY,
// LOGIN (atoms, quoted strings, {N} and {N+} literals), AUTHENTICATE PLAIN and XOAUTH2 (with or
// without SASL-IR), SELECT/EXAMINE, NOOP, IDLE/DONE, LOGOUT and `FETCH n BODY[]`, which answers
// a literal of --literal-bytes taken from one shared, preallocated buffer (each connection keeps
// only an offset into it, so a 64 MiB literal costs no per-connection memory).
//
// With --auth-http-port it also answers nginx's mail auth_http requests on that port with
// "Auth-Status: OK" pointing at itself, so nginx can be benchmarked without another process.
//
// Counters (sessions, logins, fetches, ...) go to --stats-file as one key=value line, every
// second and on SIGUSR1; `seq=` grows with every write so a reader can wait for a fresh one.
// SIGTERM/SIGINT write the file a last time and exit.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "perf/harness/harness_common.h"

namespace mailring::perf {
namespace {

constexpr std::string_view kGreeting =
    "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN AUTH=XOAUTH2 IDLE LITERAL+] synthetic ready\r\n";
constexpr std::string_view kCapabilitiesBeforeLogin =
    "IMAP4rev1 SASL-IR AUTH=PLAIN AUTH=XOAUTH2 IDLE LITERAL+";
constexpr std::string_view kCapabilitiesAfterLogin = "IMAP4rev1 IDLE LITERAL+";
// A command line (without its literals) longer than this closes the connection.
constexpr size_t kMaxLineBytes = 64 * 1024;
// A literal in a command (a LOGIN password) larger than this closes the connection.
constexpr uint64_t kMaxCommandLiteral = 1 << 20;
// Stop reading a connection's commands while this many bytes of text wait to be sent.
constexpr size_t kMaxPendingText = 1 << 20;
// The literal is sent from a buffer of at most this size, cycled: small enough to stay in cache.
constexpr size_t kMaxSourceBuffer = 1 << 20;

struct Counters {
  uint64_t sessions = 0;        // IMAP connections accepted
  uint64_t active = 0;          // IMAP connections open now
  uint64_t logins = 0;          // successful LOGIN + AUTHENTICATE
  uint64_t login_commands = 0;  // of which LOGIN
  uint64_t auth_plain = 0;      // of which AUTHENTICATE PLAIN
  uint64_t auth_xoauth2 = 0;    // of which AUTHENTICATE XOAUTH2
  uint64_t commands = 0;
  uint64_t fetches = 0;
  uint64_t literal_bytes = 0;  // FETCH literal bytes queued
  uint64_t bytes_out = 0;      // all bytes written
  uint64_t idles = 0;
  uint64_t logouts = 0;
  uint64_t protocol_errors = 0;
  uint64_t auth_http = 0;  // auth_http requests answered
};

// One output item: text, or `literal` bytes of the shared source buffer.
struct Segment {
  std::string text;
  uint64_t literal = 0;
};

// A client connection. The fd is open for the object's whole life; the destructor closes it.
struct Connection {
  enum class Kind : uint8_t { kImap, kAuthHttp };
  enum class State : uint8_t { kNotAuthenticated, kAuthenticated, kIdling, kSaslResponse };

  explicit Connection(int fd_in, Kind kind_in) : fd(fd_in), kind(kind_in) {}
  ~Connection() { close(fd); }

  int fd;
  Kind kind;
  State state = State::kNotAuthenticated;
  bool close_after_flush = false;
  uint32_t events = 0;  // what epoll watches now

  std::string in;                 // received, not yet consumed
  std::string command;            // a command being assembled across literals
  uint64_t command_literal = 0;   // literal bytes still to read into `command`
  std::string pending_tag;        // IDLE or AUTHENTICATE waiting for its next line
  std::string pending_mechanism;  // AUTHENTICATE waiting for its response line

  std::deque<Segment> out;
  size_t out_offset = 0;          // within out.front()
  uint64_t literal_position = 0;  // into the shared buffer, for the current literal segment
  size_t pending_text = 0;
};

struct Options {
  std::string host = "127.0.0.1";
  int port = 1993;
  uint64_t literal_bytes = 64 << 20;
  std::string stats_file;
  int auth_http_port = 0;
  int backlog = 4096;
};

// IMAP astring/atom tokenizer for the few commands we parse. Contract: `text` is one command
// with literals inlined as "{N}\r\n<N bytes>" (or "{N+}"); Next() yields the next token's value.
class Tokenizer {
 public:
  explicit Tokenizer(std::string_view text) : text_(text) {}

  bool Next(std::string* token) {
    while (pos_ < text_.size() && text_[pos_] == ' ') ++pos_;
    if (pos_ >= text_.size()) return false;
    token->clear();
    if (text_[pos_] == '"') {
      for (++pos_; pos_ < text_.size(); ++pos_) {
        char c = text_[pos_];
        if (c == '\\' && pos_ + 1 < text_.size()) {
          token->push_back(text_[++pos_]);
        } else if (c == '"') {
          ++pos_;
          return true;
        } else {
          token->push_back(c);
        }
      }
      return false;  // unterminated
    }
    if (text_[pos_] == '{') {
      const size_t close = text_.find('}', pos_);
      if (close == std::string_view::npos) return false;
      uint64_t size = 0;
      auto [ptr, ec] = std::from_chars(text_.data() + pos_ + 1, text_.data() + close, size);
      if (ec != std::errc() || (ptr != text_.data() + close && *ptr != '+')) return false;
      size_t start = close + 1;
      if (text_.compare(start, 2, "\r\n") != 0 || start + 2 + size > text_.size()) return false;
      start += 2;
      token->assign(text_.substr(start, size));
      pos_ = start + size;
      return true;
    }
    const size_t end = text_.find(' ', pos_);
    token->assign(text_.substr(pos_, end == std::string_view::npos ? end : end - pos_));
    pos_ = end == std::string_view::npos ? text_.size() : end;
    return true;
  }

  std::string_view Rest() {
    while (pos_ < text_.size() && text_[pos_] == ' ') ++pos_;
    return text_.substr(pos_);
  }

 private:
  std::string_view text_;
  size_t pos_ = 0;
};

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::toupper(x) == std::toupper(y);
         });
}

bool ContainsIgnoreCase(std::string_view haystack, std::string_view needle) {
  return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(),
                     [](char x, char y) { return std::toupper(x) == std::toupper(y); }) !=
         haystack.end();
}

// "{123}" or "{123+}" at the end of a line: the literal's size and whether it is synchronizing.
bool TrailingLiteral(std::string_view line, uint64_t* size, bool* synchronizing) {
  if (line.empty() || line.back() != '}') return false;
  const size_t open = line.rfind('{');
  if (open == std::string_view::npos) return false;
  std::string_view digits = line.substr(open + 1, line.size() - open - 2);
  *synchronizing = true;
  if (!digits.empty() && digits.back() == '+') {
    digits.remove_suffix(1);
    *synchronizing = false;
  }
  if (digits.empty()) return false;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), *size);
  return ec == std::errc() && ptr == digits.data() + digits.size();
}

class Server {
 public:
  explicit Server(Options options) : options_(std::move(options)) {}

  int Run() {
    const uint64_t limit = RaiseFileLimit();
    signal(SIGPIPE, SIG_IGN);
    source_.resize(
        std::min<uint64_t>(std::max<uint64_t>(options_.literal_bytes, 1), kMaxSourceBuffer));
    // Printable text in 78-character lines, like a message body.
    for (size_t i = 0; i < source_.size(); ++i) {
      const size_t column = i % 80;
      source_[i] = column == 78 ? '\r' : column == 79 ? '\n' : static_cast<char>('a' + i % 26);
    }
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    std::string error;
    imap_listener_ = Listen(options_.host, options_.port, options_.backlog, &error);
    if (imap_listener_ < 0) return Fail(error);
    Watch(imap_listener_, EPOLLIN);
    if (options_.auth_http_port != 0) {
      auth_listener_ = Listen(options_.host, options_.auth_http_port, options_.backlog, &error);
      if (auth_listener_ < 0) return Fail(error);
      Watch(auth_listener_, EPOLLIN);
    }
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGUSR1);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigprocmask(SIG_BLOCK, &signals, nullptr);
    signal_fd_ = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
    Watch(signal_fd_, EPOLLIN);
    std::printf(
        "synthetic_upstream ready host=%s port=%d auth_http_port=%d literal_bytes=%llu "
        "nofile=%llu\n",
        options_.host.c_str(), LocalPort(imap_listener_),
        auth_listener_ >= 0 ? LocalPort(auth_listener_) : 0,
        static_cast<unsigned long long>(options_.literal_bytes),
        static_cast<unsigned long long>(limit));
    std::fflush(stdout);
    WriteStats();

    std::vector<epoll_event> events(1024);
    uint64_t next_stats = NowNs() + 1'000'000'000u;
    while (!stopping_) {
      const int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 200);
      if (n < 0 && errno != EINTR) return Fail(std::string("epoll_wait: ") + std::strerror(errno));
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == imap_listener_) {
          Accept(imap_listener_, Connection::Kind::kImap);
        } else if (fd == auth_listener_) {
          Accept(auth_listener_, Connection::Kind::kAuthHttp);
        } else if (fd == signal_fd_) {
          HandleSignals();
        } else {
          HandleEvent(fd, events[i].events);
        }
      }
      if (const uint64_t now = NowNs(); now >= next_stats) {
        WriteStats();
        next_stats = now + 1'000'000'000u;
      }
    }
    WriteStats();
    return 0;
  }

 private:
  int Fail(const std::string& message) {
    std::fprintf(stderr, "synthetic_upstream: %s\n", message.c_str());
    return 1;
  }

  void Watch(int fd, uint32_t events) {
    epoll_event event{};
    event.events = events;
    event.data.fd = fd;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event);
  }

  void Accept(int listener, Connection::Kind kind) {
    for (int i = 0; i < 256; ++i) {
      const int fd = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
          std::fprintf(stderr, "synthetic_upstream: accept: %s\n", std::strerror(errno));
        }
        return;
      }
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      auto connection = std::make_unique<Connection>(fd, kind);
      Connection& c = *connection;
      connections_[fd] = std::move(connection);
      c.events = EPOLLIN;
      Watch(fd, c.events);
      if (kind == Connection::Kind::kImap) {
        ++counters_.sessions;
        ++counters_.active;
        Queue(c, kGreeting);
        Flush(c);
      }
    }
  }

  void HandleSignals() {
    signalfd_siginfo info;
    while (read(signal_fd_, &info, sizeof(info)) == sizeof(info)) {
      if (info.ssi_signo == SIGUSR1) {
        WriteStats();
      } else {
        stopping_ = true;
      }
    }
  }

  void HandleEvent(int fd, uint32_t events) {
    auto it = connections_.find(fd);
    if (it == connections_.end()) return;
    Connection& c = *it->second;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
      if (!Read(c)) return Close(fd);
    }
    if (!Flush(c)) return Close(fd);
    if (c.close_after_flush && c.out.empty()) return Close(fd);
    UpdateEvents(c);
  }

  void Close(int fd) {
    auto it = connections_.find(fd);
    if (it == connections_.end()) return;
    if (it->second->kind == Connection::Kind::kImap) --counters_.active;
    epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
    connections_.erase(it);
  }

  void UpdateEvents(Connection& c) {
    uint32_t wanted = 0;
    if (!c.close_after_flush && c.pending_text < kMaxPendingText && !HasLiteralQueued(c)) {
      wanted |= EPOLLIN;
    }
    if (!c.out.empty()) wanted |= EPOLLOUT;
    if (wanted == c.events) return;
    c.events = wanted;
    epoll_event event{};
    event.events = wanted;
    event.data.fd = c.fd;
    epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &event);
  }

  // While a big literal is being sent, the client's next commands wait in the socket: the
  // server answers in order anyway, and not reading keeps the loop cheap.
  static bool HasLiteralQueued(const Connection& c) {
    return !c.out.empty() && (c.out.front().literal != 0 || c.out.size() > 1);
  }

  // Reads what is available and answers complete commands. False: close the connection.
  bool Read(Connection& c) {
    char buffer[64 * 1024];
    for (int round = 0; round < 4; ++round) {
      const ssize_t n = recv(c.fd, buffer, sizeof(buffer), 0);
      if (n == 0) return false;
      if (n < 0) return errno == EAGAIN || errno == EINTR;
      c.in.append(buffer, static_cast<size_t>(n));
      if (!Consume(c)) return false;
      if (static_cast<size_t>(n) < sizeof(buffer)) break;
    }
    return true;
  }

  bool Consume(Connection& c) {
    if (c.kind == Connection::Kind::kAuthHttp) return ConsumeAuthHttp(c);
    size_t pos = 0;
    bool ok = true;
    while (ok && !c.close_after_flush) {
      if (c.command_literal > 0) {
        const size_t take = std::min<uint64_t>(c.command_literal, c.in.size() - pos);
        c.command.append(c.in, pos, take);
        pos += take;
        c.command_literal -= take;
        if (c.command_literal > 0) break;
        continue;
      }
      const size_t eol = c.in.find('\n', pos);
      if (eol == std::string::npos) {
        if (c.in.size() - pos > kMaxLineBytes) {
          ++counters_.protocol_errors;
          ok = false;
        }
        break;
      }
      std::string_view line(c.in.data() + pos, eol - pos);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      pos = eol + 1;
      uint64_t literal = 0;
      bool synchronizing = false;
      if (c.state != Connection::State::kIdling && c.state != Connection::State::kSaslResponse &&
          TrailingLiteral(line, &literal, &synchronizing)) {
        if (literal > kMaxCommandLiteral || c.command.size() > kMaxLineBytes) {
          ++counters_.protocol_errors;
          ok = false;
          break;
        }
        c.command.append(line);
        c.command.append("\r\n");
        c.command_literal = literal;
        if (synchronizing) Queue(c, "+ Ready for literal data\r\n");
        continue;
      }
      c.command.append(line);
      ok = HandleLine(c, c.command);
      c.command.clear();
    }
    c.in.erase(0, pos);
    return ok;
  }

  // One complete command (or IDLE's DONE, or a SASL response). False: close the connection.
  bool HandleLine(Connection& c, std::string_view line) {
    ++counters_.commands;
    if (c.state == Connection::State::kIdling) {
      if (EqualsIgnoreCase(line, "DONE")) {
        c.state = Connection::State::kAuthenticated;
        Queue(c, c.pending_tag, " OK IDLE terminated\r\n");
        return true;
      }
      ++counters_.protocol_errors;
      Queue(c, "* BAD expected DONE\r\n");
      return true;
    }
    if (c.state == Connection::State::kSaslResponse) {
      c.state = Connection::State::kNotAuthenticated;
      if (line == "*") {
        Queue(c, c.pending_tag, " BAD AUTHENTICATE cancelled\r\n");
        return true;
      }
      CompleteAuthenticate(c, c.pending_tag, c.pending_mechanism);
      return true;
    }
    Tokenizer tokens(line);
    std::string tag, name;
    if (!tokens.Next(&tag) || !tokens.Next(&name)) {
      ++counters_.protocol_errors;
      Queue(c, "* BAD empty command\r\n");
      return true;
    }
    const bool authenticated = c.state == Connection::State::kAuthenticated;
    if (EqualsIgnoreCase(name, "UID")) {
      if (!tokens.Next(&name)) name.clear();
    }
    if (EqualsIgnoreCase(name, "NOOP")) {
      Queue(c, tag, " OK NOOP completed\r\n");
    } else if (EqualsIgnoreCase(name, "CAPABILITY")) {
      Queue(c, "* CAPABILITY ", authenticated ? kCapabilitiesAfterLogin : kCapabilitiesBeforeLogin,
            "\r\n", tag, " OK CAPABILITY completed\r\n");
    } else if (EqualsIgnoreCase(name, "LOGIN")) {
      std::string user, password;
      if (authenticated) {
        Queue(c, tag, " BAD already authenticated\r\n");
      } else if (!tokens.Next(&user) || !tokens.Next(&password)) {
        ++counters_.protocol_errors;
        Queue(c, tag, " BAD LOGIN expects user and password\r\n");
      } else {
        ++counters_.login_commands;
        LoggedIn(c, tag);
      }
    } else if (EqualsIgnoreCase(name, "AUTHENTICATE")) {
      std::string mechanism, initial;
      if (authenticated) {
        Queue(c, tag, " BAD already authenticated\r\n");
      } else if (!tokens.Next(&mechanism) || (!EqualsIgnoreCase(mechanism, "PLAIN") &&
                                              !EqualsIgnoreCase(mechanism, "XOAUTH2"))) {
        Queue(c, tag, " NO unsupported mechanism\r\n");
      } else if (tokens.Next(&initial)) {
        CompleteAuthenticate(c, tag, mechanism);
      } else {
        c.state = Connection::State::kSaslResponse;
        c.pending_tag = tag;
        c.pending_mechanism = mechanism;
        Queue(c, "+ \r\n");
      }
    } else if (EqualsIgnoreCase(name, "LOGOUT")) {
      ++counters_.logouts;
      Queue(c, "* BYE synthetic logging out\r\n", tag, " OK LOGOUT completed\r\n");
      c.close_after_flush = true;
    } else if (!authenticated) {
      Queue(c, tag, " NO not authenticated\r\n");
    } else if (EqualsIgnoreCase(name, "SELECT") || EqualsIgnoreCase(name, "EXAMINE")) {
      Queue(c,
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n* 1 EXISTS\r\n"
            "* 0 RECENT\r\n* OK [UIDVALIDITY 1] UIDs valid\r\n* OK [UIDNEXT 2] next\r\n",
            tag, " OK [READ-WRITE] SELECT completed\r\n");
    } else if (EqualsIgnoreCase(name, "IDLE")) {
      ++counters_.idles;
      c.state = Connection::State::kIdling;
      c.pending_tag = tag;
      Queue(c, "+ idling\r\n");
    } else if (EqualsIgnoreCase(name, "FETCH")) {
      std::string sequence;
      tokens.Next(&sequence);
      if (sequence.empty() || !std::all_of(sequence.begin(), sequence.end(),
                                           [](char ch) { return std::isdigit(ch); })) {
        sequence = "1";
      }
      std::string_view items = tokens.Rest();
      if (ContainsIgnoreCase(items, "BODY[]") || ContainsIgnoreCase(items, "BODY.PEEK[]") ||
          ContainsIgnoreCase(items, "RFC822")) {
        ++counters_.fetches;
        counters_.literal_bytes += options_.literal_bytes;
        Queue(c, "* ", sequence, " FETCH (UID 1 BODY[] {", std::to_string(options_.literal_bytes),
              "}\r\n");
        QueueLiteral(c, options_.literal_bytes);
        Queue(c, ")\r\n", tag, " OK FETCH completed\r\n");
      } else {
        Queue(c, "* ", sequence, " FETCH (UID 1 FLAGS (\\Seen))\r\n", tag,
              " OK FETCH completed\r\n");
      }
    } else {
      Queue(c, tag, " BAD unknown command\r\n");
    }
    return true;
  }

  void CompleteAuthenticate(Connection& c, std::string_view tag, std::string_view mechanism) {
    if (EqualsIgnoreCase(mechanism, "PLAIN")) {
      ++counters_.auth_plain;
    } else {
      ++counters_.auth_xoauth2;
    }
    LoggedIn(c, tag);
  }

  void LoggedIn(Connection& c, std::string_view tag) {
    ++counters_.logins;
    c.state = Connection::State::kAuthenticated;
    Queue(c, tag, " OK [CAPABILITY ", kCapabilitiesAfterLogin, "] Logged in\r\n");
  }

  // nginx's auth_http: one request per connection; any request is allowed, to ourselves.
  bool ConsumeAuthHttp(Connection& c) {
    if (c.close_after_flush) return true;
    if (c.in.find("\r\n\r\n") == std::string::npos) return c.in.size() < kMaxLineBytes;
    ++counters_.auth_http;
    Queue(c, "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: ", options_.host,
          "\r\nAuth-Port: ", std::to_string(LocalPort(imap_listener_)), "\r\n\r\n");
    c.close_after_flush = true;
    c.in.clear();
    return true;
  }

  template <typename... Parts>
  void Queue(Connection& c, const Parts&... parts) {
    if (c.out.empty() || c.out.back().literal != 0) c.out.emplace_back();
    std::string& text = c.out.back().text;
    const size_t before = text.size();
    (text.append(std::string_view(parts)), ...);
    c.pending_text += text.size() - before;
  }

  void QueueLiteral(Connection& c, uint64_t bytes) {
    if (bytes == 0) return;
    Segment segment;
    segment.literal = bytes;
    c.out.push_back(std::move(segment));
  }

  // Writes until the socket is full or the queue is empty. False: close the connection.
  bool Flush(Connection& c) {
    while (!c.out.empty()) {
      Segment& front = c.out.front();
      const char* data;
      size_t length;
      if (front.literal == 0) {
        data = front.text.data() + c.out_offset;
        length = front.text.size() - c.out_offset;
      } else {
        const size_t at = c.literal_position % source_.size();
        data = source_.data() + at;
        length = std::min<uint64_t>(front.literal - c.out_offset, source_.size() - at);
      }
      // MSG_MORE while more output follows: the tagged OK leaves with the literal's tail.
      const int flags = MSG_NOSIGNAL | (c.out.size() > 1 ? MSG_MORE : 0);
      const ssize_t n = send(c.fd, data, length, flags);
      if (n < 0) return errno == EAGAIN || errno == EINTR;
      counters_.bytes_out += static_cast<uint64_t>(n);
      c.out_offset += static_cast<size_t>(n);
      if (front.literal != 0) c.literal_position += static_cast<uint64_t>(n);
      const size_t segment_size = front.literal != 0 ? front.literal : front.text.size();
      if (c.out_offset < segment_size) {
        if (static_cast<size_t>(n) < length) return true;  // socket full
        continue;
      }
      if (front.literal == 0) c.pending_text -= front.text.size();
      c.out.pop_front();
      c.out_offset = 0;
      c.literal_position = 0;
    }
    return true;
  }

  void WriteStats() {
    ++stats_seq_;
    char line[1024];
    const int length = std::snprintf(
        line, sizeof(line),
        "seq=%llu sessions=%llu active=%llu logins=%llu login_commands=%llu auth_plain=%llu "
        "auth_xoauth2=%llu commands=%llu fetches=%llu literal_bytes=%llu bytes_out=%llu "
        "idles=%llu logouts=%llu protocol_errors=%llu auth_http=%llu\n",
        static_cast<unsigned long long>(stats_seq_),
        static_cast<unsigned long long>(counters_.sessions),
        static_cast<unsigned long long>(counters_.active),
        static_cast<unsigned long long>(counters_.logins),
        static_cast<unsigned long long>(counters_.login_commands),
        static_cast<unsigned long long>(counters_.auth_plain),
        static_cast<unsigned long long>(counters_.auth_xoauth2),
        static_cast<unsigned long long>(counters_.commands),
        static_cast<unsigned long long>(counters_.fetches),
        static_cast<unsigned long long>(counters_.literal_bytes),
        static_cast<unsigned long long>(counters_.bytes_out),
        static_cast<unsigned long long>(counters_.idles),
        static_cast<unsigned long long>(counters_.logouts),
        static_cast<unsigned long long>(counters_.protocol_errors),
        static_cast<unsigned long long>(counters_.auth_http));
    if (options_.stats_file.empty()) return;
    // Written whole, then renamed over the old file: a reader never sees half a line.
    const std::string temporary = options_.stats_file + ".tmp";
    if (FILE* file = std::fopen(temporary.c_str(), "w")) {
      std::fwrite(line, 1, static_cast<size_t>(length), file);
      std::fclose(file);
      std::rename(temporary.c_str(), options_.stats_file.c_str());
    }
  }

  Options options_;
  std::string source_;
  int epoll_ = -1;
  int imap_listener_ = -1;
  int auth_listener_ = -1;
  int signal_fd_ = -1;
  bool stopping_ = false;
  uint64_t stats_seq_ = 0;
  Counters counters_;
  std::unordered_map<int, std::unique_ptr<Connection>> connections_;
};

}  // namespace
}  // namespace mailring::perf

int main(int argc, char** argv) {
  using mailring::perf::Flags;
  Flags flags(argc, argv);
  if (flags.Has("help")) {
    std::printf(
        "mailring_synthetic_upstream --port=N [--host=127.0.0.1] [--literal-bytes=64M]\n"
        "    [--stats-file=FILE] [--auth-http-port=N] [--backlog=4096]\n");
    return 0;
  }
  mailring::perf::Options options;
  options.host = flags.GetString("host", options.host);
  options.port = static_cast<int>(flags.GetInt("port", options.port));
  options.literal_bytes = static_cast<uint64_t>(flags.GetInt("literal-bytes", 64 << 20));
  options.stats_file = flags.GetString("stats-file", "");
  options.auth_http_port = static_cast<int>(flags.GetInt("auth-http-port", 0));
  options.backlog = static_cast<int>(flags.GetInt("backlog", options.backlog));
  std::string error;
  if (!flags.Finish(&error)) {
    std::fprintf(stderr, "synthetic_upstream: %s (see --help)\n", error.c_str());
    return 2;
  }
  return mailring::perf::Server(std::move(options)).Run();
}
