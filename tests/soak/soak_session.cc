#include "tests/soak/soak_session.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace mailring::soak {
namespace {

constexpr size_t kMaxLine = 64 * 1024;
constexpr size_t kMaxTail = 64 * 1024;
// After a divergence, how long the rest of the stream is read to see whether it is a failure
// line followed by the close.
constexpr absl::Duration kTailWait = absl::Seconds(3);

// The client side of one connection: a receive buffer over a blocking socket, every read bounded
// by the inactivity timeout and the session deadline.
class Wire {
 public:
  Wire(int fd, absl::Duration inactivity, absl::Time deadline)
      : fd_(fd), inactivity_(inactivity), deadline_(deadline) {}
  ~Wire() { ::close(fd_); }

  // Appends what the socket has. >0: bytes read; 0: EOF; -errno on error; -ETIMEDOUT when no
  // byte came within the inactivity timeout (or `within`, if shorter) or the deadline passed.
  ssize_t Fill(absl::Duration within = absl::InfiniteDuration()) {
    const absl::Time now = absl::Now();
    const absl::Duration wait = std::min({inactivity_, within, deadline_ - now});
    if (wait <= absl::ZeroDuration()) return -ETIMEDOUT;
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(wait)) + 1);
    if (ready == 0) return -ETIMEDOUT;
    if (ready < 0) return -errno;
    Compact();
    const size_t old = buffer_.size();
    buffer_.resize(old + kChunk);
    const ssize_t n = ::recv(fd_, buffer_.data() + old, kChunk, 0);
    buffer_.resize(old + (n > 0 ? static_cast<size_t>(n) : 0));
    if (n < 0) return -errno;
    return n;
  }

  size_t available() const { return buffer_.size() - pos_; }
  const char* data() const { return buffer_.data() + pos_; }
  void Consume(size_t n) { pos_ += n; }

  // One line without its CRLF in *line; the Fill() code that stopped it otherwise (<= 0), or
  // -EMSGSIZE for a line longer than kMaxLine.
  ssize_t ReadLine(std::string* line) {
    size_t scanned = 0;
    while (true) {
      absl::string_view have(data(), available());
      const size_t end = have.find("\r\n", scanned > 0 ? scanned - 1 : 0);
      if (end != absl::string_view::npos) {
        line->assign(have.data(), end);
        Consume(end + 2);
        return 1;
      }
      if (have.size() > kMaxLine) return -EMSGSIZE;
      scanned = have.size();
      const ssize_t n = Fill();
      if (n <= 0) return n;
    }
  }

  // Sends all of `bytes`; errors are not reported: what the peer sent before it went away is
  // still read, and the read then reports the end.
  void Send(absl::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
  }

 private:
  static constexpr size_t kChunk = 256 * 1024;

  void Compact() {
    if (pos_ == buffer_.size()) {
      buffer_.clear();
      pos_ = 0;
    } else if (pos_ > 4 * kChunk) {
      buffer_.erase(0, pos_);
      pos_ = 0;
    }
  }

  const int fd_;
  const absl::Duration inactivity_;
  const absl::Time deadline_;
  std::string buffer_;
  size_t pos_ = 0;
};

// "{N}" at the end of `line`: N, or -1 when the line does not announce a literal.
int64_t LiteralSize(absl::string_view line) {
  if (!absl::EndsWith(line, "}")) return -1;
  const size_t open = line.rfind('{');
  if (open == absl::string_view::npos) return -1;
  int64_t size = -1;
  if (!absl::SimpleAtoi(line.substr(open + 1, line.size() - open - 2), &size)) return -1;
  return size;
}

// Up to 24 bytes of `bytes` at `offset`, escaped for a report line.
std::string Excerpt(absl::string_view bytes, size_t offset) {
  if (offset >= bytes.size()) return "(end)";
  return absl::StrCat("\"", absl::CHexEscape(bytes.substr(offset, 24)), "\"");
}

class SessionRun {
 public:
  SessionRun(int fd, const SessionOptions& options, const ReferenceMail& reference,
             absl::Time started)
      : wire_(fd, options.inactivity_timeout, started + options.deadline),
        reference_(reference),
        big_fetches_(options.big_fetches) {
    outcome_.started = started;
  }

  SessionOutcome Run() {
    bool ok = Greeting() && Exchange("S", "SELECT INBOX", "SELECT") &&
              Exchange("F", "FETCH 1:3 (BODY.PEEK[TEXT])", "FETCH small") && ExpectLiterals(3, 0);
    for (int i = 1; ok && i <= big_fetches_; ++i) {
      ok = Exchange(absl::StrCat("B", i), "FETCH 4 (BODY.PEEK[])", "FETCH big") &&
           ExpectLiterals(3 + i, i);
    }
    if (ok && Exchange("L", "LOGOUT", "LOGOUT")) {
      outcome_.end = SessionEnd::kCompleted;
      outcome_.line.clear();
    }
    outcome_.ended = absl::Now();
    return std::move(outcome_);
  }

 private:
  bool Fail(SessionEnd end, std::string line) {
    outcome_.end = end;
    outcome_.line = std::move(line);
    return false;
  }

  // A read that stopped with `code` (Wire::Fill's convention) while doing `what`.
  bool FailRead(ssize_t code, const std::string& what) {
    if (code == 0) {
      // Before the greeting nothing was relayed yet: a silent close there is never clear.
      return Fail(outcome_.stage == "greeting" ? SessionEnd::kUnclear : SessionEnd::kClosedNoLine,
                  absl::StrCat("connection closed ", what));
    }
    if (code == -ETIMEDOUT) return Fail(SessionEnd::kHang, absl::StrCat("no byte ", what));
    return Fail(SessionEnd::kUnclear,
                absl::StrCat(std::strerror(static_cast<int>(-code)), " ", what));
  }

  bool Greeting() {
    outcome_.stage = "greeting";
    std::string line;
    const ssize_t n = wire_.ReadLine(&line);
    if (n <= 0) return FailRead(n, "before a greeting line");
    if (absl::StartsWith(line, "* PREAUTH ")) return true;
    if (absl::StartsWith(line, "* BYE ")) return Fail(SessionEnd::kProtocolLine, line);
    return Fail(SessionEnd::kUnclear, absl::StrCat("unexpected greeting: ", line));
  }

  // The reference bytes of the literal that `response` (the response up to its "{N}")
  // announces, or nullptr when it is not one this session asked for.
  const std::string* ExpectedLiteral(absl::string_view response) const {
    absl::string_view rest = response;
    if (!absl::ConsumePrefix(&rest, "* ")) return nullptr;
    const size_t space = rest.find(' ');
    int sequence = 0;
    if (space == absl::string_view::npos || !absl::SimpleAtoi(rest.substr(0, space), &sequence)) {
      return nullptr;
    }
    if (!absl::StartsWith(rest.substr(space), " FETCH (")) return nullptr;
    const absl::string_view before = response.substr(0, response.rfind('{'));
    if (sequence == 4 && absl::EndsWith(before, "BODY[] ")) return &reference_.big;
    if (sequence >= 1 && sequence <= static_cast<int>(reference_.small_text.size()) &&
        absl::EndsWith(before, "BODY[TEXT] ")) {
      return &reference_.small_text[sequence - 1];
    }
    return nullptr;
  }

  // Reads a literal of `size` bytes, comparing each with `expected` (nullptr: not checked).
  bool StreamLiteral(size_t size, const std::string* expected) {
    if (expected != nullptr && size != expected->size()) {
      return Fail(SessionEnd::kMismatch,
                  absl::StrCat(outcome_.stage, ": a literal of ", size,
                               " bytes where the reference has ", expected->size()));
    }
    size_t offset = 0;
    while (offset < size) {
      if (wire_.available() == 0) {
        const ssize_t n = wire_.Fill();
        if (n <= 0) {
          return FailRead(n, absl::StrCat("inside a literal after ", offset, " of ", size,
                                          " bytes (all of them correct)"));
        }
      }
      const size_t take = std::min(size - offset, wire_.available());
      if (expected != nullptr && std::memcmp(wire_.data(), expected->data() + offset, take) != 0) {
        size_t k = 0;
        while (wire_.data()[k] == (*expected)[offset + k]) ++k;
        outcome_.verified_bytes += k;
        return Diverged(offset + k, size, *expected, k);
      }
      outcome_.verified_bytes += expected != nullptr ? take : 0;
      wire_.Consume(take);
      offset += take;
    }
    if (expected != nullptr) {
      ++outcome_.literals_verified;
      if (expected == &reference_.big) ++outcome_.big_verified;
    }
    return true;
  }

  // A delivered byte differs from the reference at `offset` of a `size`-byte literal; the first
  // differing byte is at `skip` in the wire's buffer. Clear only if what follows the correct
  // prefix is a failure line (after an optional CRLF) and then the close; a mismatch otherwise.
  bool Diverged(size_t offset, size_t size, const std::string& expected, size_t skip) {
    std::string tail(wire_.data() + skip, wire_.available() - skip);
    wire_.Consume(wire_.available());
    const absl::Time stop = absl::Now() + kTailWait;
    ssize_t n = 1;
    while (tail.size() < kMaxTail && absl::Now() < stop) {
      n = wire_.Fill(stop - absl::Now());
      if (n <= 0) break;
      tail.append(wire_.data(), wire_.available());
      wire_.Consume(wire_.available());
    }
    absl::string_view rest = tail;
    absl::ConsumePrefix(&rest, "\r\n");
    const size_t end = rest.find("\r\n");
    const absl::string_view line = rest.substr(0, end);
    const bool failure_line = absl::StartsWith(line, "* BYE ") ||
                              absl::StartsWith(line, absl::StrCat(tag_, " NO ")) ||
                              absl::StartsWith(line, absl::StrCat(tag_, " BAD "));
    if (n == 0 && failure_line && end != absl::string_view::npos) {
      outcome_.stage = absl::StrCat(outcome_.stage, " (literal cut after ", offset, " of ", size,
                                    " bytes, all correct)");
      return Fail(SessionEnd::kProtocolLine, std::string(line));
    }
    return Fail(SessionEnd::kMismatch,
                absl::StrCat(outcome_.stage, ": byte ", offset, " of a ", size,
                             "-byte literal differs: expected ", Excerpt(expected, offset),
                             ", got ", Excerpt(tail, 0)));
  }

  // Sends `command` and reads its responses up to the tagged one; true when that is OK.
  bool Exchange(const std::string& tag, const std::string& command, const std::string& stage) {
    outcome_.stage = stage;
    tag_ = tag;
    wire_.Send(absl::StrCat(tag, " ", command, "\r\n"));
    while (true) {
      std::string response;  // the response's text, literals left out
      std::string line;
      while (true) {
        const ssize_t n = wire_.ReadLine(&line);
        if (n == -EMSGSIZE) {
          return Fail(SessionEnd::kUnclear,
                      absl::StrCat(stage, ": a line over ", kMaxLine, " bytes"));
        }
        if (n <= 0) return FailRead(n, absl::StrCat("waiting for the answer to ", stage));
        response += line;
        const int64_t size = LiteralSize(line);
        if (size < 0) break;
        if (!StreamLiteral(static_cast<size_t>(size), ExpectedLiteral(response))) return false;
      }
      if (absl::StartsWith(response, tag + " ")) {
        if (absl::StartsWith(response, tag + " OK")) return true;
        return Fail(SessionEnd::kProtocolLine, response);
      }
      if (absl::StartsWith(response, "* BYE") && tag != "L") {
        return Fail(SessionEnd::kProtocolLine, response);
      }
    }
  }

  // After a FETCH answered OK: the literals it must have delivered were there and whole.
  bool ExpectLiterals(int total, int big) {
    if (outcome_.literals_verified == total && outcome_.big_verified == big) return true;
    return Fail(SessionEnd::kUnclear,
                absl::StrCat(outcome_.stage, " answered OK with ", outcome_.literals_verified,
                             " of ", total, " expected literals (", outcome_.big_verified, " of ",
                             big, " big ones) verified so far"));
  }

  Wire wire_;
  const ReferenceMail& reference_;
  const int big_fetches_;
  SessionOutcome outcome_;
  std::string tag_;
};

}  // namespace

const char* SessionEndName(SessionEnd end) {
  switch (end) {
    case SessionEnd::kCompleted:
      return "completed";
    case SessionEnd::kProtocolLine:
      return "failure line";
    case SessionEnd::kClosedNoLine:
      return "closed without a line";
    case SessionEnd::kMismatch:
      return "MISMATCH";
    case SessionEnd::kUnclear:
      return "UNCLEAR";
    case SessionEnd::kHang:
      return "HANG";
  }
  return "?";
}

SessionOutcome RunSession(const SessionOptions& options, const ReferenceMail& reference) {
  const absl::Time started = absl::Now();
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(options.port);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    SessionOutcome outcome;
    outcome.end = SessionEnd::kUnclear;
    outcome.stage = "connect";
    outcome.line = absl::StrCat("connect to 127.0.0.1:", options.port, ": ", std::strerror(errno));
    if (fd >= 0) ::close(fd);
    outcome.started = started;
    outcome.ended = absl::Now();
    return outcome;
  }
  return SessionRun(fd, options, reference, started).Run();
}

}  // namespace mailring::soak
