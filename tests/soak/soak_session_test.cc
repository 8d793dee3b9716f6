// The soak's session classifier against a scripted IMAP server on loopback: the harness must see
// a flipped byte, dropped bytes, a cut literal with and without a BYE, a reset and a stall for
// what they are (soak.cc's header has the rules); a soak that cannot see them proves nothing.
#include "tests/soak/soak_session.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace mailring::soak {
namespace {

// What the scripted server does to the answer of the first FETCH of the big message.
enum class Fault {
  kNone,            // every answer correct
  kFlipByte,        // one byte in the middle altered, length kept
  kDropBytes,       // 100 bytes in the middle left out, then the rest and the close
  kCutThenBye,      // half the literal, CRLF, "* BYE [UNAVAILABLE] upstream gone", close
  kCutSilently,     // half the literal, then an orderly close
  kCutThenReset,    // half the literal, then a reset (RST)
  kStallAtSelect,   // never answers SELECT
  kCloseAtGreeting  // closes before any greeting
};

ReferenceMail TestReference() {
  ReferenceMail reference;
  for (int i = 0; i < 20000; ++i) {
    absl::StrAppend(&reference.big, absl::Dec(i, absl::kZeroPad9), " line of the big one\r\n");
  }
  reference.small_text = {"one\r\n", "two\r\n", "three\r\n"};
  return reference;
}

// One connection, answered from `reference` with `fault` applied.
class ScriptedServer {
 public:
  ScriptedServer(const ReferenceMail& reference, Fault fault)
      : reference_(reference), fault_(fault) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(listen_fd_, 1), 0);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScriptedServer() {
    thread_.join();
    ::close(listen_fd_);
  }
  uint16_t port() const { return port_; }

 private:
  void Send(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;
      sent += static_cast<size_t>(n);
    }
  }

  // The next command line, or "" when the client went away.
  std::string ReadCommand() {
    std::string line;
    char c;
    while (!absl::EndsWith(line, "\r\n")) {
      if (::recv(fd_, &c, 1, 0) != 1) return "";
      line += c;
    }
    return line.substr(0, line.size() - 2);
  }

  void Serve() {
    fd_ = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd_ < 0) return;
    if (fault_ == Fault::kCloseAtGreeting) {
      ::close(fd_);
      return;
    }
    Send("* PREAUTH scripted\r\n");
    bool big_sent = false;
    while (true) {
      const std::string command = ReadCommand();
      if (command.empty()) break;
      const std::string tag = command.substr(0, command.find(' '));
      if (absl::StrContains(command, "SELECT")) {
        if (fault_ == Fault::kStallAtSelect) {
          ReadCommand();  // until the client gives up
          break;
        }
        Send(absl::StrCat("* 4 EXISTS\r\n", tag, " OK selected\r\n"));
      } else if (absl::StrContains(command, "FETCH 1:3")) {
        for (int i = 0; i < 3; ++i) {
          const std::string& text = reference_.small_text[i];
          Send(absl::StrCat("* ", i + 1, " FETCH (BODY[TEXT] {", text.size(), "}\r\n", text,
                            ")\r\n"));
        }
        Send(tag + " OK fetched\r\n");
      } else if (absl::StrContains(command, "FETCH 4")) {
        const std::string& big = reference_.big;
        const size_t half = big.size() / 2;
        Send(absl::StrCat("* 4 FETCH (BODY[] {", big.size(), "}\r\n"));
        if (big_sent || fault_ == Fault::kNone || fault_ == Fault::kStallAtSelect) {
          Send(big + ")\r\n" + tag + " OK fetched\r\n");
        } else if (fault_ == Fault::kFlipByte) {
          std::string altered = big;
          altered[half] ^= 0x20;
          Send(altered + ")\r\n" + tag + " OK fetched\r\n");
        } else if (fault_ == Fault::kDropBytes) {
          Send(big.substr(0, half) + big.substr(half + 100) + ")\r\n" + tag + " OK fetched\r\n");
          break;
        } else {
          Send(big.substr(0, half));
          if (fault_ == Fault::kCutThenBye) Send("\r\n* BYE [UNAVAILABLE] upstream gone\r\n");
          if (fault_ == Fault::kCutThenReset) {
            linger reset{1, 0};
            ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
          }
          break;
        }
        big_sent = true;
      } else if (absl::StrContains(command, "LOGOUT")) {
        Send(absl::StrCat("* BYE logging out\r\n", tag, " OK bye\r\n"));
        break;
      }
    }
    ::close(fd_);
  }

  const ReferenceMail& reference_;
  const Fault fault_;
  int listen_fd_ = -1;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

// `inactivity`: generous but for the stall case (the stall is the one real wait, kept short).
SessionOutcome RunAgainst(const ReferenceMail& reference, Fault fault,
                          absl::Duration inactivity = absl::Seconds(20)) {
  ScriptedServer server(reference, fault);
  SessionOptions options;
  options.port = server.port();
  options.inactivity_timeout = inactivity;
  return RunSession(options, reference);
}

TEST(SoakSessionTest, CorrectServerCompletesWithEveryByteVerified) {
  const ReferenceMail reference = TestReference();
  const SessionOutcome outcome = RunAgainst(reference, Fault::kNone);
  EXPECT_EQ(outcome.end, SessionEnd::kCompleted) << outcome.stage << ": " << outcome.line;
  EXPECT_EQ(outcome.big_verified, 3);
  EXPECT_EQ(outcome.literals_verified, 6);
  EXPECT_EQ(outcome.verified_bytes, 3 * reference.big.size() + 5 + 5 + 7);
}

TEST(SoakSessionTest, FlippedByteIsAMismatchNamingItsOffset) {
  const ReferenceMail reference = TestReference();
  const SessionOutcome outcome = RunAgainst(reference, Fault::kFlipByte);
  EXPECT_EQ(outcome.end, SessionEnd::kMismatch) << outcome.line;
  EXPECT_TRUE(absl::StrContains(outcome.line, absl::StrCat("byte ", reference.big.size() / 2, " ")))
      << outcome.line;
}

TEST(SoakSessionTest, DroppedBytesAreAMismatch) {
  const ReferenceMail reference = TestReference();
  const SessionOutcome outcome = RunAgainst(reference, Fault::kDropBytes);
  EXPECT_EQ(outcome.end, SessionEnd::kMismatch) << outcome.line;
}

TEST(SoakSessionTest, CutLiteralThenByeIsAClearLineAfterACorrectPrefix) {
  const ReferenceMail reference = TestReference();
  const SessionOutcome outcome = RunAgainst(reference, Fault::kCutThenBye);
  EXPECT_EQ(outcome.end, SessionEnd::kProtocolLine) << outcome.line;
  EXPECT_EQ(outcome.line, "* BYE [UNAVAILABLE] upstream gone");
  EXPECT_TRUE(absl::StrContains(outcome.stage, "literal cut after")) << outcome.stage;
  EXPECT_EQ(outcome.big_verified, 0);
}

TEST(SoakSessionTest, CutLiteralThenOrderlyCloseIsClosedWithoutLine) {
  const ReferenceMail reference = TestReference();
  const SessionOutcome outcome = RunAgainst(reference, Fault::kCutSilently);
  EXPECT_EQ(outcome.end, SessionEnd::kClosedNoLine) << outcome.line;
  EXPECT_EQ(outcome.stage, "FETCH big");
  EXPECT_EQ(outcome.verified_bytes, reference.big.size() / 2 + 5 + 5 + 7);
}

TEST(SoakSessionTest, ResetIsUnclear) {
  const ReferenceMail reference = TestReference();
  const SessionOutcome outcome = RunAgainst(reference, Fault::kCutThenReset);
  EXPECT_EQ(outcome.end, SessionEnd::kUnclear) << outcome.line;
}

TEST(SoakSessionTest, SilentServerIsAHang) {
  const ReferenceMail reference = TestReference();
  const SessionOutcome outcome =
      RunAgainst(reference, Fault::kStallAtSelect, absl::Milliseconds(300));
  EXPECT_EQ(outcome.end, SessionEnd::kHang) << outcome.line;
  EXPECT_EQ(outcome.stage, "SELECT");
}

TEST(SoakSessionTest, CloseBeforeGreetingIsUnclear) {
  const ReferenceMail reference = TestReference();
  const SessionOutcome outcome = RunAgainst(reference, Fault::kCloseAtGreeting);
  EXPECT_EQ(outcome.end, SessionEnd::kUnclear) << outcome.line;
  EXPECT_EQ(outcome.stage, "greeting");
}

}  // namespace
}  // namespace mailring::soak
