// TLS to the mail server end to end: mailring in front of a real Dovecot that speaks IMAPS and
// STARTTLS with a certificate of a throw-away CA (test_ca.sh), and of a plaintext-only Dovecot
// that offers no STARTTLS.
//
//   imap4s                    TLS from the first byte, verified against --ca-file (the test CA)
//   STARTTLS                  required or enabled per destination, or --upstream-starttls
//                             opportunistic; "required" and not offered → BYE, no credentials
//                             sent (checked in Dovecot's log)
//   bad certificates          wrong host, expired, unknown CA → BYE with the reason; the
//                             destination's ssl.trust / checkserveridentity opt-outs work
//   relay                     20 MiB byte-identical over TLS; LOGOUT ends the session
//
// Dovecot logs every login with the transport ("..., TLS, session=<...>" over TLS, "secured" for
// plaintext from loopback); the tests read the lines logged after they started.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/integration/mailring_test.h"
#include "tests/integration/sha256.h"

namespace mailring::integration {
namespace {

constexpr char kDestinationName[] = "tls-dest";
// carol's password (dovecot_fixture.sh): distinctive enough to look for in mailring's log.
constexpr char kCarolPassword[] = "p{5}ass\\";

// Everything after the first `mark` bytes of `text`.
std::string Since(const std::string& text, size_t mark) {
  return mark <= text.size() ? text.substr(mark) : text;
}

// The first line of `text` containing `needle`, or "".
std::string LineWith(const std::string& text, absl::string_view needle) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StrContains(line, needle)) return std::string(line);
  }
  return "";
}

// Polls Dovecot's log (after `mark`) until a line contains `needle`; that line, or "" after
// `timeout`.
std::string WaitForDovecotLine(const DovecotServer& dovecot, size_t mark, absl::string_view needle,
                               absl::Duration timeout = absl::Seconds(5)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    std::string line = LineWith(Since(dovecot.Log(), mark), needle);
    if (!line.empty() || absl::Now() > deadline) return line;
    absl::SleepFor(absl::Milliseconds(20));
  }
}

// utime + stime of `pid` in seconds, from /proc/PID/stat; negative when unreadable.
double CpuSeconds(pid_t pid) {
  absl::StatusOr<std::string> stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat.ok()) return -1;
  // The command name (field 2) is in parentheses and may contain spaces: split after it.
  const size_t close = stat->rfind(')');
  if (close == std::string::npos) return -1;
  std::vector<std::string> fields = absl::StrSplit(stat->substr(close + 2), ' ');
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  if (fields.size() < 13) return -1;
  double utime = 0, stime = 0;
  if (!absl::SimpleAtod(fields[11], &utime) || !absl::SimpleAtod(fields[12], &stime)) return -1;
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// mailring_tls_handshakes_total{kind="<kind>"} from /metrics on `admin_port`; -1 when absent.
int64_t TlsHandshakes(uint16_t admin_port, absl::string_view kind) {
  return MetricValue(AdminGet(admin_port, "/metrics"),
                     absl::StrCat("mailring_tls_handshakes_total{kind=\"", kind, "\"}"));
}

const ImapResponse* FindLiteralResponse(const std::vector<ImapResponse>& responses,
                                        absl::string_view prefix) {
  for (const ImapResponse& response : responses) {
    if (!response.literals.empty() && absl::StartsWith(response.text, prefix)) return &response;
  }
  return nullptr;
}

// SELECT INBOX and FETCH 1 BODY[TEXT] through `client`: the fixture's first message.
void ExpectInboxReadable(ImapTestClient& client) {
  MR_ASSERT_OK_AND_ASSIGN(auto select, client.Command("S1", "SELECT INBOX"));
  ASSERT_EQ(select.back().Status(), "OK") << Transcript(select);
  EXPECT_TRUE(absl::StrContains(Transcript(select), " EXISTS")) << Transcript(select);
  MR_ASSERT_OK_AND_ASSIGN(auto fetch, client.Command("S2", "FETCH 1 BODY[TEXT]"));
  ASSERT_EQ(fetch.back().Status(), "OK") << Transcript(fetch);
  const ImapResponse* body = FindLiteralResponse(fetch, "* 1 FETCH ");
  ASSERT_NE(body, nullptr) << Transcript(fetch);
  EXPECT_EQ(body->literals[0], DovecotServer::SmallMessageText(1));
}

// FETCH of the big message (mailbox selected): its literal.
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

Destination ImapsDestination(const std::string& user, const std::string& password,
                             const std::string& host, uint16_t port) {
  return {{"Name", kDestinationName},
          {"Type", "MAIL"},
          {"Authentication", "BasicAuthentication"},
          {"mail.user", user},
          {"mail.password", password},
          {"mail.transport.protocol", "imap4s"},
          {"mail.imap4s.host", host},
          {"mail.imap4s.port", absl::StrCat(port)},
          {"mail.imap4s.auth", "true"},
          {"ProxyType", "Internet"}};
}

// imap4 to host:port, with `starttls_key` ("mail.imap4.starttls.required" / ".enable") = "true"
// unless it is empty.
Destination Imap4Destination(const std::string& user, const std::string& password,
                             const std::string& host, uint16_t port,
                             const std::string& starttls_key) {
  Destination destination = BasicDestination(user, password, port);
  destination["Name"] = kDestinationName;
  destination["mail.imap4.host"] = host;
  if (!starttls_key.empty()) destination[starttls_key] = "true";
  return destination;
}

// One Dovecot per certificate kind of the test CA, started on first use and kept for the suite.
class TlsTest : public MailringTest {
 protected:
  static void SetUpTestSuite() {
    skip_reason_.clear();
    setup_error_.clear();
    if (FindDovecot().empty()) {
      skip_reason_ = "dovecot is not installed (apt-get install dovecot-imapd; scripts/test.sh does)";
      return;
    }
    ca_dir_ = new TempDir();
    absl::StatusOr<TestCa> ca = MakeTestCa(ca_dir_->path() + "/ca");
    if (!ca.ok()) {
      setup_error_ = ca.status().ToString();
      return;
    }
    ca_ = *ca;
  }

  static void TearDownTestSuite() {
    for (DovecotServer** server : {&valid_, &wrong_host_, &expired_, &plain_}) {
      delete *server;
      *server = nullptr;
    }
    delete ca_dir_;
    ca_dir_ = nullptr;
  }

  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
  }

  void TearDown() override {
    if (mailring_ != nullptr) {
      mailring_->Signal(SIGTERM);
      (void)mailring_->WaitExit(absl::Seconds(10));
      EXPECT_FALSE(absl::StrContains(MailringLog(), kCarolPassword))
          << "carol's password appears in mailring's log " << mailring_->log_path();
    }
    MailringTest::TearDown();
  }

  // The Dovecot presenting `kind` ("server", "wronghost", "expired"), or a plaintext-only one
  // ("plain"). Fails the test when it cannot start.
  static DovecotServer* Dovecot(const std::string& kind) {
    DovecotServer** slot = kind == "server"      ? &valid_
                           : kind == "wronghost" ? &wrong_host_
                           : kind == "expired"   ? &expired_
                                                 : &plain_;
    if (*slot == nullptr) {
      DovecotOptions options;
      if (kind != "plain") {
        options.tls_cert = ca_.chain(kind);
        options.tls_key = ca_.key(kind);
      }
      absl::StatusOr<std::unique_ptr<DovecotServer>> server = DovecotServer::Start(options);
      if (!server.ok()) {
        ADD_FAILURE() << "starting the " << kind << " Dovecot: " << server.status();
        return nullptr;
      }
      *slot = server->release();
    }
    return *slot;
  }

  static std::string CaFlag() { return "--ca-file=" + ca_.ca_pem(); }
  std::string mailring_flags_;  // an extra flag a measurement runs mailring with

  static TempDir* ca_dir_;
  static TestCa ca_;
  static DovecotServer* valid_;
  static DovecotServer* wrong_host_;
  static DovecotServer* expired_;
  static DovecotServer* plain_;
  static std::string skip_reason_;
  static std::string setup_error_;
};

TempDir* TlsTest::ca_dir_ = nullptr;
TestCa TlsTest::ca_;
DovecotServer* TlsTest::valid_ = nullptr;
DovecotServer* TlsTest::wrong_host_ = nullptr;
DovecotServer* TlsTest::expired_ = nullptr;
DovecotServer* TlsTest::plain_ = nullptr;
std::string TlsTest::skip_reason_;
std::string TlsTest::setup_error_;

#define MR_DOVECOT(var, kind)             \
  DovecotServer* var = Dovecot(kind);     \
  ASSERT_NE(var, nullptr) << "no " kind " Dovecot"

// --- imap4s ------------------------------------------------------------------------------------

TEST_F(TlsTest, ImapsPreauthSelectFetch) {
  MR_DOVECOT(dovecot, "server");
  const size_t mark = dovecot->Log().size();
  MR_ASSERT_OK(StartMailring({ImapsDestination("alice", "secret", "localhost",
                                               dovecot->imaps_port())},
                             {CaFlag()}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  EXPECT_FALSE(absl::StrContains(session.greeting.text, "STARTTLS")) << session.greeting.text;
  ExpectInboxReadable(*session.client);
  const std::string login = WaitForDovecotLine(*dovecot, mark, "Login: user=<alice>");
  EXPECT_TRUE(absl::StrContains(login, ", TLS,")) << "not a TLS login: " << login;
  EXPECT_TRUE(absl::StrContains(MailringLog(), "TLS established with upstream")) << MailringLog();
  EXPECT_FALSE(absl::StrContains(MailringLog(), "WITHOUT certificate verification"));
}

TEST_F(TlsTest, ImapsToAnAddressLiteralMatchesTheCertificatesIpAddress) {
  // The server certificate names DNS:localhost and IP:127.0.0.1.
  MR_DOVECOT(dovecot, "server");
  MR_ASSERT_OK(StartMailring({ImapsDestination("alice", "secret", "127.0.0.1",
                                               dovecot->imaps_port())},
                             {CaFlag()}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  EXPECT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
}

TEST_F(TlsTest, ImapsWithPasswordNeedingLiteralsLogsInAndKeepsItOutOfTheLog) {
  MR_DOVECOT(dovecot, "server");
  const size_t mark = dovecot->Log().size();
  MR_ASSERT_OK(StartMailring({ImapsDestination("carol", kCarolPassword, "localhost",
                                               dovecot->imaps_port())},
                             {CaFlag()}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  MR_ASSERT_OK_AND_ASSIGN(auto select, session.client->Command("s", "SELECT INBOX"));
  EXPECT_EQ(select.back().Status(), "OK") << Transcript(select);
  const std::string login = WaitForDovecotLine(*dovecot, mark, "Login: user=<carol>");
  EXPECT_TRUE(absl::StrContains(login, ", TLS,")) << login;
}

TEST_F(TlsTest, LogoutOverTlsEndsTheSession) {
  MR_DOVECOT(dovecot, "server");
  MR_ASSERT_OK(StartMailring({ImapsDestination("alice", "secret", "localhost",
                                               dovecot->imaps_port())},
                             {CaFlag()}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  MR_ASSERT_OK_AND_ASSIGN(auto logout, session.client->Command("L", "LOGOUT"));
  EXPECT_TRUE(absl::StrContains(Transcript(logout), "* BYE")) << Transcript(logout);
  EXPECT_EQ(logout.back().Status(), "OK") << Transcript(logout);
  MR_ASSERT_OK(session.client->ExpectClosed());
  // The upstream leg is gone too.
  EXPECT_EQ(WaitForOpenConnectionsTo(dovecot->imaps_port(), 0, absl::Seconds(5)), 0);
  // The close line counts the plaintext relayed over the TLS leg: "L LOGOUT\r\n" is 10 bytes.
  const std::string log = MailringLog();
  // (The readiness probe's own session closes with 0 B both ways.)
  EXPECT_TRUE(absl::StrContains(log, "client→upstream 10 B, upstream→client ")) << log;
  EXPECT_FALSE(absl::StrContains(log, "client→upstream 10 B, upstream→client 0 B")) << log;
}

TEST_F(TlsTest, ClientHangUpClosesTheTlsLeg) {
  MR_DOVECOT(dovecot, "server");
  MR_ASSERT_OK(StartMailring({ImapsDestination("alice", "secret", "localhost",
                                               dovecot->imaps_port())},
                             {CaFlag()}));
  {
    MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
    ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
    // mailring's readiness probe made a session too; it ends once its upstream login is done.
    EXPECT_EQ(WaitForOpenConnectionsTo(dovecot->imaps_port(), 1, absl::Seconds(5)), 1);
  }  // the client closes
  EXPECT_EQ(WaitForOpenConnectionsTo(dovecot->imaps_port(), 0, absl::Seconds(5)), 0);
}

TEST_F(TlsTest, TwentyMebibytesOverImapsAreByteIdentical) {
  MR_DOVECOT(dovecot, "server");
  MR_ASSERT_OK(StartMailring({ImapsDestination("alice", "secret", "localhost",
                                               dovecot->imaps_port())},
                             {CaFlag()}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  MR_ASSERT_OK_AND_ASSIGN(auto select, session.client->Command("s", "SELECT INBOX"));
  ASSERT_EQ(select.back().Status(), "OK") << Transcript(select);
  for (int round = 0; round < 2; ++round) {
    MR_ASSERT_OK_AND_ASSIGN(std::string body,
                            FetchBigMessage(*session.client, absl::StrCat("f", round)));
    ASSERT_EQ(body.size(), dovecot->big_size());
    ASSERT_EQ(Sha256Hex(body), dovecot->big_sha256()) << "round " << round;
  }
  // Pipelined with LOGOUT: everything arrives before the close.
  MR_ASSERT_OK(session.client->Send(
      absl::StrCat("b FETCH ", DovecotServer::kBigMessage, " BODY[]\r\nc LOGOUT\r\n")));
  MR_ASSERT_OK_AND_ASSIGN(auto fetch, session.client->ReadUntilTagged("b"));
  const ImapResponse* body = FindLiteralResponse(fetch, "* 4 FETCH ");
  ASSERT_NE(body, nullptr) << Transcript(fetch);
  EXPECT_EQ(Sha256Hex(body->literals[0]), dovecot->big_sha256());
  MR_ASSERT_OK_AND_ASSIGN(auto logout, session.client->ReadUntilTagged("c"));
  EXPECT_EQ(logout.back().Status(), "OK") << Transcript(logout);
  MR_ASSERT_OK(session.client->ExpectClosed());
}

// Not an assertion: the numbers for the closing note. Fetches the 20 MiB message
// kRounds times over an imap4s route and over a plaintext imap4 route (splice) of the same
// Dovecot, and reads mailring's CPU time around each series.
TEST_F(TlsTest, MeasureTlsLegAgainstPlaintextSplice) {
  constexpr int kRounds = 8;
  MR_DOVECOT(dovecot, "server");
  // MAILRING_MEASURE_SOFTWARE_AES=1: the same with wolfSSL's software AES, for the comparison.
  const char* software = std::getenv("MAILRING_MEASURE_SOFTWARE_AES");
  if (software != nullptr && std::string(software) == "1") mailring_flags_ = "--tls-aes-ni=false";
  std::vector<std::string> flags = {CaFlag()};
  if (!mailring_flags_.empty()) flags.push_back(mailring_flags_);
  MR_ASSERT_OK(StartMailring(
      {ImapsDestination("alice", "secret", "localhost", dovecot->imaps_port()),
       Imap4Destination("alice", "secret", "127.0.0.1", dovecot->port(), "")},
      flags));
  struct Result {
    double seconds = 0;
    double cpu = 0;
    double bytes = 0;
  };
  auto measure = [&](size_t route, Result* result) {
    MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession(route, absl::Seconds(30)));
    ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
    MR_ASSERT_OK_AND_ASSIGN(auto select, session.client->Command("s", "SELECT INBOX"));
    ASSERT_EQ(select.back().Status(), "OK") << Transcript(select);
    MR_ASSERT_OK(FetchBigMessage(*session.client, "warm").status());  // page cache, TLS warm
    const double cpu_before = CpuSeconds(mailring_->pid());
    const absl::Time start = absl::Now();
    for (int round = 0; round < kRounds; ++round) {
      MR_ASSERT_OK_AND_ASSIGN(std::string body,
                              FetchBigMessage(*session.client, absl::StrCat("f", round)));
      ASSERT_EQ(body.size(), dovecot->big_size());
      result->bytes += static_cast<double>(body.size());
    }
    result->seconds = absl::ToDoubleSeconds(absl::Now() - start);
    result->cpu = CpuSeconds(mailring_->pid()) - cpu_before;
  };
  Result tls, plain;
  measure(1, &plain);
  if (HasFatalFailure()) return;
  measure(0, &tls);
  if (HasFatalFailure()) return;
  measure(1, &plain);  // again, now that everything is warm; the second run counts
  if (HasFatalFailure()) return;
  plain = Result{};
  measure(1, &plain);
  if (HasFatalFailure()) return;
  auto report = [](const char* name, const Result& r) {
    std::cout << absl::StrFormat(
        "[ MEASURED ] %-28s %7.1f MB in %6.3f s = %7.1f MB/s; mailring CPU %6.3f s = %6.2f CPU "
        "s/GB\n",
        name, r.bytes / 1e6, r.seconds, r.bytes / 1e6 / r.seconds, r.cpu, r.cpu / (r.bytes / 1e9));
  };
  report(mailring_flags_.empty() ? "imap4s (TLS, AES-NI device)" : "imap4s (TLS, --tls-aes-ni=false)",
         tls);
  report("imap4 plaintext (splice)", plain);
  RecordProperty("tls_mb_per_s", static_cast<int>(tls.bytes / 1e6 / tls.seconds));
  RecordProperty("plain_mb_per_s", static_cast<int>(plain.bytes / 1e6 / plain.seconds));
}

// --- TLS session resumption (core/tls/session_cache.h) ------------------------------------------

// Dovecot (OpenSSL) issues TLS 1.3 tickets after the handshake; mailring's worker keeps them per
// destination, so the next session to the same destination resumes: no certificate exchange.
// StartMailring's readiness probe already opens one session per route (its upstream handshake is
// the route's first, a full one), so the tests count from when that probe session has ended:
// the worker may accept it only after StartMailring returned.
class TlsResumptionTest : public TlsTest {
 protected:
  struct Handshakes {
    int64_t full = -1;
    int64_t resumed = -1;
  };

  // Starts mailring (1 worker, admin endpoint) on `destinations` with `flags` added.
  void Start(const std::vector<Destination>& destinations, std::vector<std::string> flags) {
    sessions_ = destinations.size();  // the readiness probes
    admin_port_ = PickFreeLoopbackPort();
    flags.push_back(CaFlag());
    flags.push_back("--workers=1");
    flags.push_back("--log-level=debug");
    flags.push_back(absl::StrCat("--admin-listen=127.0.0.1:", admin_port_));
    MR_ASSERT_OK(StartMailring(destinations, flags));
    ASSERT_TRUE(WaitFor([&] { return PortAcceptsConnections(admin_port_); }, absl::Seconds(10)));
  }

  // The handshake counters once every session so far (probes included) was accepted and none
  // is open (bounded wait): every handshake of them is counted.
  Handshakes Settled() {
    WaitForSessionsSettled(admin_port_, static_cast<int64_t>(sessions_));
    return {TlsHandshakes(admin_port_, "full"), TlsHandshakes(admin_port_, "resumed")};
  }

  // One client session on `route` that reads the INBOX.
  void Session(size_t route = 0) {
    ++sessions_;
    MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession(route));
    ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
    ExpectInboxReadable(*session.client);
  }

  uint16_t admin_port_ = 0;
  size_t sessions_ = 0;  // client sessions opened so far, readiness probes included
};

TEST_F(TlsResumptionTest, ImapsSessionsAfterTheFirstResume) {
  MR_DOVECOT(dovecot, "server");
  Start({ImapsDestination("alice", "secret", "localhost", dovecot->imaps_port())}, {});
  const Handshakes start = Settled();
  EXPECT_GE(start.full, 1);  // the probe session's, and nothing kept before it
  EXPECT_EQ(start.resumed, 0);
  for (int i = 1; i <= 3; ++i) {
    Session();
    if (HasFatalFailure()) return;
    const Handshakes now = Settled();
    EXPECT_EQ(now.full, start.full) << "session " << i << "\n" << MailringLog();
    EXPECT_EQ(now.resumed, i) << "session " << i << "\n" << MailringLog();
  }
  EXPECT_TRUE(absl::StrContains(MailringLog(), ", resumed)")) << MailringLog();
}

TEST_F(TlsResumptionTest, StartTlsSessionsResumeToo) {
  MR_DOVECOT(dovecot, "server");
  Start({Imap4Destination("alice", "secret", "localhost", dovecot->port(),
                          "mail.imap4.starttls.required")},
        {});
  const Handshakes start = Settled();
  EXPECT_GE(start.full, 1);
  for (int i = 1; i <= 2; ++i) {
    Session();
    if (HasFatalFailure()) return;
  }
  const Handshakes now = Settled();
  EXPECT_EQ(now.full, start.full) << MailringLog();
  EXPECT_EQ(now.resumed, start.resumed + 2) << MailringLog();
}

TEST_F(TlsResumptionTest, TlsResumptionFalseRunsAFullHandshakeEverySession) {
  MR_DOVECOT(dovecot, "server");
  Start({ImapsDestination("alice", "secret", "localhost", dovecot->imaps_port())},
        {"--tls-resumption=false"});
  const Handshakes start = Settled();
  for (int i = 1; i <= 2; ++i) {
    Session();
    if (HasFatalFailure()) return;
  }
  const Handshakes now = Settled();
  EXPECT_EQ(now.full, start.full + 2);
  EXPECT_EQ(now.resumed, 0);
}

// The record take-over (core/tls/tls13_record_layer.h) against Dovecot's OpenSSL: after the
// greeting every record of the session is mailring's own, and a 20 MiB FETCH stays
// byte-identical. The admin endpoint of TlsResumptionTest gives the counts.
using TlsRecordTakeOverTest = TlsResumptionTest;

TEST_F(TlsRecordTakeOverTest, TwentyMebibyteFetchIsCarriedByTheRecordLayer) {
  MR_DOVECOT(dovecot, "server");
  Start({ImapsDestination("alice", "secret", "localhost", dovecot->imaps_port())}, {});
  Settled();
  const std::string before = AdminGet(admin_port_, "/metrics");
  ++sessions_;
  {
    MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
    ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
    MR_ASSERT_OK_AND_ASSIGN(auto select, session.client->Command("s", "SELECT INBOX"));
    ASSERT_EQ(select.back().Status(), "OK") << Transcript(select);
    MR_ASSERT_OK_AND_ASSIGN(std::string body, FetchBigMessage(*session.client, "f"));
    ASSERT_EQ(body.size(), dovecot->big_size());
    ASSERT_EQ(Sha256Hex(body), dovecot->big_sha256());
    MR_ASSERT_OK_AND_ASSIGN(auto logout, session.client->Command("l", "LOGOUT"));
    EXPECT_EQ(logout.back().Status(), "OK") << Transcript(logout);
  }
  Settled();
  const std::string after = AdminGet(admin_port_, "/metrics");
  const auto delta = [&](absl::string_view series) {
    return MetricValue(after, series) - MetricValue(before, series);
  };
  EXPECT_EQ(delta("mailring_tls_record_takeovers_total"), 1) << after;
  EXPECT_GE(delta("mailring_tls_records_total{engine=\"record_layer\",direction=\"received\"}"),
            static_cast<int64_t>(dovecot->big_size() / 16384))
      << after;
  EXPECT_GE(delta("mailring_tls_records_total{engine=\"record_layer\",direction=\"sent\"}"), 3)
      << "SELECT, FETCH, LOGOUT\n" << after;
  // Only the handshake and the greeting went through wolfSSL (on the AES-NI device).
  EXPECT_LE(delta("mailring_tls_records_total{engine=\"aes_ni_device\",direction=\"received\"}"),
            8)
      << after;
}

// --- STARTTLS ----------------------------------------------------------------------------------

TEST_F(TlsTest, StartTlsRequiredAndOfferedLogsInOverTls) {
  MR_DOVECOT(dovecot, "server");
  const size_t mark = dovecot->Log().size();
  MR_ASSERT_OK(StartMailring({Imap4Destination("alice", "secret", "localhost", dovecot->port(),
                                               "mail.imap4.starttls.required")},
                             {CaFlag()}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  EXPECT_FALSE(absl::StrContains(session.greeting.text, "STARTTLS")) << session.greeting.text;
  ExpectInboxReadable(*session.client);
  const std::string login = WaitForDovecotLine(*dovecot, mark, "Login: user=<alice>");
  EXPECT_TRUE(absl::StrContains(login, ", TLS,")) << "not a TLS login: " << login;
  MR_ASSERT_OK_AND_ASSIGN(auto logout, session.client->Command("L", "LOGOUT"));
  EXPECT_EQ(logout.back().Status(), "OK") << Transcript(logout);
  MR_ASSERT_OK(session.client->ExpectClosed());
}

TEST_F(TlsTest, StartTlsEnabledAndOfferedLogsInOverTls) {
  MR_DOVECOT(dovecot, "server");
  const size_t mark = dovecot->Log().size();
  MR_ASSERT_OK(StartMailring({Imap4Destination("carol", kCarolPassword, "localhost",
                                               dovecot->port(), "mail.imap4.starttls.enable")},
                             {CaFlag()}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  const std::string login = WaitForDovecotLine(*dovecot, mark, "Login: user=<carol>");
  EXPECT_TRUE(absl::StrContains(login, ", TLS,")) << "not a TLS login: " << login;
}

TEST_F(TlsTest, OpportunisticPolicyUsesStartTlsWhenOffered) {
  MR_DOVECOT(dovecot, "server");
  const size_t mark = dovecot->Log().size();
  MR_ASSERT_OK(StartMailring(
      {Imap4Destination("alice", "secret", "localhost", dovecot->port(), "")},
      {CaFlag(), "--upstream-starttls=opportunistic"}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  ExpectInboxReadable(*session.client);
  const std::string login = WaitForDovecotLine(*dovecot, mark, "Login: user=<alice>");
  EXPECT_TRUE(absl::StrContains(login, ", TLS,")) << "not a TLS login: " << login;
}

TEST_F(TlsTest, WithoutStartTlsSettingsTheLoginStaysPlaintext) {
  MR_DOVECOT(dovecot, "server");
  const size_t mark = dovecot->Log().size();
  MR_ASSERT_OK(StartMailring(
      {Imap4Destination("alice", "secret", "localhost", dovecot->port(), "")}, {CaFlag()}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  const std::string login = WaitForDovecotLine(*dovecot, mark, "Login: user=<alice>");
  EXPECT_FALSE(absl::StrContains(login, ", TLS,")) << login;
}

TEST_F(TlsTest, StartTlsEnabledButNotOfferedLogsInPlaintext) {
  MR_DOVECOT(dovecot, "plain");
  const size_t mark = dovecot->Log().size();
  MR_ASSERT_OK(StartMailring({Imap4Destination("alice", "secret", "localhost", dovecot->port(),
                                               "mail.imap4.starttls.enable")},
                             {CaFlag()}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  ExpectInboxReadable(*session.client);
  const std::string login = WaitForDovecotLine(*dovecot, mark, "Login: user=<alice>");
  ASSERT_FALSE(login.empty()) << Since(dovecot->Log(), mark);
  EXPECT_FALSE(absl::StrContains(login, ", TLS,")) << login;
}

TEST_F(TlsTest, StartTlsRequiredButNotOfferedSendsNoCredentials) {
  MR_DOVECOT(dovecot, "plain");
  const size_t mark = dovecot->Log().size();
  MR_ASSERT_OK(StartMailring({Imap4Destination("carol", kCarolPassword, "localhost",
                                               dovecot->port(), "mail.imap4.starttls.required")},
                             {CaFlag()}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  EXPECT_TRUE(IsUnavailableBye(session.greeting)) << session.greeting.text;
  EXPECT_TRUE(absl::StrContains(session.greeting.text, "does not offer it")) << session.greeting.text;
  EXPECT_TRUE(absl::StrContains(session.greeting.text, "no credentials were sent"))
      << session.greeting.text;
  MR_ASSERT_OK(session.client->ExpectClosed());
  // Dovecot saw a connection end without any authentication attempt, and nothing of carol.
  const std::string disconnect = WaitForDovecotLine(*dovecot, mark, "no auth attempts");
  EXPECT_FALSE(disconnect.empty()) << "Dovecot's log since the test began:\n"
                                   << Since(dovecot->Log(), mark);
  const std::string since = Since(dovecot->Log(), mark);
  EXPECT_FALSE(absl::StrContains(since, "user=<carol>")) << since;
  EXPECT_FALSE(absl::StrContains(since, "auth failed")) << since;
  EXPECT_FALSE(absl::StrContains(since, "Login: ")) << since;
}

// --- Certificates ------------------------------------------------------------------------------

TEST_F(TlsTest, UnknownCaIsRefusedWithoutCaFile) {
  MR_DOVECOT(dovecot, "server");
  const size_t mark = dovecot->Log().size();
  MR_ASSERT_OK(StartMailring({ImapsDestination("carol", kCarolPassword, "localhost",
                                               dovecot->imaps_port())}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  EXPECT_TRUE(IsUnavailableBye(session.greeting)) << session.greeting.text;
  EXPECT_TRUE(absl::StrContains(session.greeting.text,
                                absl::StrCat("TLS handshake with the mail server of destination ",
                                             kDestinationName, " failed: ")))
      << session.greeting.text;
  EXPECT_TRUE(absl::StrContains(session.greeting.text, "not signed by a trusted CA"))
      << session.greeting.text;
  MR_ASSERT_OK(session.client->ExpectClosed());
  // Dovecot logs the aborted connection ("imap-login: ... user=<>"); once it has (or after a
  // bounded wait), no login of carol may be in its log.
  WaitForDovecotLine(*dovecot, mark, "imap-login:");
  EXPECT_FALSE(absl::StrContains(Since(dovecot->Log(), mark), "user=<carol>"));
}

TEST_F(TlsTest, UnknownCaOverStartTlsIsRefused) {
  MR_DOVECOT(dovecot, "server");
  MR_ASSERT_OK(StartMailring({Imap4Destination("carol", kCarolPassword, "localhost",
                                               dovecot->port(), "mail.imap4.starttls.required")}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  EXPECT_TRUE(IsUnavailableBye(session.greeting)) << session.greeting.text;
  EXPECT_TRUE(absl::StrContains(session.greeting.text, "not signed by a trusted CA"))
      << session.greeting.text;
  MR_ASSERT_OK(session.client->ExpectClosed());
}

TEST_F(TlsTest, WrongHostNameIsRefusedUnlessTrusted) {
  MR_DOVECOT(dovecot, "wronghost");
  MR_ASSERT_OK(StartMailring(
      {ImapsDestination("alice", "secret", "localhost", dovecot->imaps_port())}, {CaFlag()}));
  {
    MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
    EXPECT_TRUE(IsUnavailableBye(session.greeting)) << session.greeting.text;
    EXPECT_TRUE(absl::StrContains(session.greeting.text, "host name mismatch"))
        << session.greeting.text;
    EXPECT_TRUE(absl::StrContains(session.greeting.text, "localhost")) << session.greeting.text;
    MR_ASSERT_OK(session.client->ExpectClosed());
  }
  EXPECT_FALSE(absl::StrContains(MailringLog(), "WITHOUT certificate verification"));
  mailring_->Signal(SIGTERM);
  MR_ASSERT_OK(mailring_->WaitExit(absl::Seconds(10)).status());
  mailring_.reset();

  // The destination's opt-outs: ssl.trust "*", a list naming the host, checkserveridentity.
  const std::vector<std::pair<std::string, std::string>> opt_outs = {
      {"mail.imap4s.ssl.trust", "*"},
      {"mail.imap4s.ssl.trust", "mail.example.org localhost"},
      {"mail.imap4s.ssl.checkserveridentity", "false"},
  };
  std::vector<Destination> destinations;
  for (const auto& [key, value] : opt_outs) {
    Destination destination =
        ImapsDestination("alice", "secret", "localhost", dovecot->imaps_port());
    destination[key] = value;
    destinations.push_back(destination);
  }
  // A trust list naming another host does not help.
  Destination other = ImapsDestination("alice", "secret", "localhost", dovecot->imaps_port());
  other["mail.imap4s.ssl.trust"] = "mail.example.org";
  destinations.push_back(other);
  MR_ASSERT_OK(StartMailring(destinations, {CaFlag()}));
  for (size_t route = 0; route < opt_outs.size(); ++route) {
    SCOPED_TRACE(absl::StrCat(opt_outs[route].first, "=", opt_outs[route].second));
    MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession(route));
    ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
    ExpectInboxReadable(*session.client);
  }
  MR_ASSERT_OK_AND_ASSIGN(ProxySession refused, OpenSession(opt_outs.size()));
  EXPECT_TRUE(absl::StrContains(refused.greeting.text, "host name mismatch"))
      << refused.greeting.text;
  EXPECT_TRUE(absl::StrContains(MailringLog(), "WITHOUT certificate verification"))
      << "the opt-out is not logged";
}

TEST_F(TlsTest, WrongHostNameOverStartTlsIsRefusedUnlessTrusted) {
  MR_DOVECOT(dovecot, "wronghost");
  Destination trusted = Imap4Destination("alice", "secret", "localhost", dovecot->port(),
                                         "mail.imap4.starttls.required");
  trusted["mail.imap4.ssl.trust"] = "*";
  MR_ASSERT_OK(StartMailring({Imap4Destination("alice", "secret", "localhost", dovecot->port(),
                                               "mail.imap4.starttls.required"),
                              trusted},
                             {CaFlag()}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession refused, OpenSession(0));
  EXPECT_TRUE(IsUnavailableBye(refused.greeting)) << refused.greeting.text;
  EXPECT_TRUE(absl::StrContains(refused.greeting.text, "host name mismatch"))
      << refused.greeting.text;
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession(1));
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  ExpectInboxReadable(*session.client);
}

TEST_F(TlsTest, ExpiredCertificateIsRefused) {
  MR_DOVECOT(dovecot, "expired");
  MR_ASSERT_OK(StartMailring(
      {ImapsDestination("alice", "secret", "localhost", dovecot->imaps_port()),
       Imap4Destination("alice", "secret", "localhost", dovecot->port(),
                        "mail.imap4.starttls.required")},
      {CaFlag()}));
  for (size_t route = 0; route < 2; ++route) {
    SCOPED_TRACE(route == 0 ? "imap4s" : "STARTTLS");
    MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession(route));
    EXPECT_TRUE(IsUnavailableBye(session.greeting)) << session.greeting.text;
    EXPECT_TRUE(absl::StrContains(session.greeting.text, "expired")) << session.greeting.text;
    MR_ASSERT_OK(session.client->ExpectClosed());
  }
  EXPECT_TRUE(absl::StrContains(MailringLog(), "certificate has expired")) << MailringLog();
}

TEST_F(TlsTest, ImapsToAPlaintextServerFailsClearly) {
  // TLS from the first byte to a port that speaks plaintext IMAP: the handshake cannot succeed.
  MR_DOVECOT(dovecot, "plain");
  MR_ASSERT_OK(StartMailring(
      {ImapsDestination("alice", "secret", "localhost", dovecot->port())}, {CaFlag()}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  EXPECT_TRUE(IsUnavailableBye(session.greeting)) << session.greeting.text;
  EXPECT_TRUE(absl::StrContains(session.greeting.text, "TLS handshake")) << session.greeting.text;
  MR_ASSERT_OK(session.client->ExpectClosed());
}

}  // namespace
}  // namespace mailring::integration
