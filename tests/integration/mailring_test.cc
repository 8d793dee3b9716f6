#include "tests/integration/mailring_test.h"

#include <signal.h>

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace mailring::integration {
namespace {

// The last `lines` lines of `text`.
std::string Tail(const std::string& text, size_t lines) {
  size_t pos = text.size();
  for (size_t i = 0; i <= lines && pos > 0; ++i) {
    pos = text.rfind('\n', pos - 1);
    if (pos == std::string::npos) return text;
  }
  return text.substr(pos + 1);
}

}  // namespace

std::unique_ptr<DovecotServer> DovecotBackedTest::dovecot_;
std::string DovecotBackedTest::skip_reason_;
std::string DovecotBackedTest::setup_error_;

void MailringTest::TearDown() {
  if (!mailring_) return;
  // A graceful stop, so a crash or sanitizer report at shutdown fails the test that caused it.
  mailring_->Signal(SIGTERM);
  absl::StatusOr<int> exit_code = mailring_->WaitExit(absl::Seconds(10));
  if (exit_code.ok() && *exit_code != 0) {
    ADD_FAILURE() << "mailring exited with " << *exit_code << " after SIGTERM";
  }
  if (HasFailure()) {
    std::cerr << "---- mailring log (" << mailring_->log_path() << "), last 80 lines ----\n"
              << Tail(mailring_->Log(), 80) << "---- end of mailring log ----\n";
  }
  mailring_.reset();
}

absl::Status MailringTest::StartMailring(const std::vector<Destination>& destinations,
                                         const std::vector<std::string>& flags) {
  std::vector<Route> routes;
  listen_ports_.clear();
  for (const Destination& destination : destinations) {
    uint16_t port = PickFreeLoopbackPort();
    listen_ports_.push_back(port);
    routes.push_back({absl::StrCat("127.0.0.1:", port), destination});
  }
  absl::StatusOr<std::unique_ptr<MailringProcess>> process =
      MailringProcess::Start(work_dir_.path(), DestinationsFileJson(routes), listen_ports_, flags);
  if (!process.ok()) return process.status();
  mailring_ = *std::move(process);
  return absl::OkStatus();
}

absl::StatusOr<ProxySession> MailringTest::OpenSession(size_t route, absl::Duration timeout) {
  if (route >= listen_ports_.size()) return absl::InvalidArgumentError("no such route");
  absl::StatusOr<std::unique_ptr<ImapTestClient>> client =
      ImapTestClient::Connect(listen_ports_[route], timeout);
  if (!client.ok()) return client.status();
  absl::StatusOr<ImapResponse> greeting = (*client)->ReadResponse();
  if (!greeting.ok()) {
    return absl::Status(greeting.status().code(),
                        absl::StrCat("reading the greeting: ", greeting.status().message()));
  }
  return ProxySession{*std::move(client), *std::move(greeting)};
}

void DovecotBackedTest::SetUpTestSuite() {
  skip_reason_.clear();
  setup_error_.clear();
  if (FindDovecot().empty()) {
    skip_reason_ = "dovecot is not installed (apt-get install dovecot-imapd; scripts/test.sh does)";
    return;
  }
  absl::StatusOr<std::unique_ptr<DovecotServer>> server = DovecotServer::Start();
  if (!server.ok()) {
    setup_error_ = server.status().ToString();
    return;
  }
  dovecot_ = *std::move(server);
}

void DovecotBackedTest::TearDownTestSuite() { dovecot_.reset(); }

void DovecotBackedTest::SetUp() {
  if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
  ASSERT_TRUE(setup_error_.empty()) << "starting Dovecot: " << setup_error_;
  ASSERT_NE(dovecot_, nullptr);
}

absl::StatusOr<std::unique_ptr<ImapTestClient>> DovecotBackedTest::DirectAliceSession() {
  absl::StatusOr<std::unique_ptr<ImapTestClient>> client =
      ImapTestClient::Connect(dovecot_->port());
  if (!client.ok()) return client.status();
  absl::StatusOr<ImapResponse> greeting = (*client)->ReadResponse();
  if (!greeting.ok()) return greeting.status();
  absl::StatusOr<std::vector<ImapResponse>> login = (*client)->Command("L", "LOGIN alice secret");
  if (!login.ok()) return login.status();
  if (login->back().Status() != "OK") {
    return absl::InternalError(absl::StrCat("direct LOGIN failed: ", Transcript(*login)));
  }
  return client;
}

bool IsUnavailableBye(const ImapResponse& greeting) {
  constexpr absl::string_view kPrefix = "* BYE [UNAVAILABLE] ";
  return absl::StartsWith(greeting.text, kPrefix) && greeting.text.size() > kPrefix.size();
}

int OpenConnectionsTo(uint16_t port) {
  // /proc/net/tcp: "sl local_address rem_address st ...", addresses as HEXIP:HEXPORT.
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // header
  int count = 0;
  while (std::getline(in, line)) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (fields.size() < 4) continue;
    std::vector<absl::string_view> remote = absl::StrSplit(fields[2], ':');
    if (remote.size() != 2 || remote[0] != "0100007F") continue;
    uint32_t remote_port = 0;
    if (!absl::SimpleHexAtoi(remote[1], &remote_port) || remote_port != port) continue;
    if (fields[3] == "01" /* ESTABLISHED */ || fields[3] == "08" /* CLOSE_WAIT */) ++count;
  }
  return count;
}

int WaitForOpenConnectionsTo(uint16_t port, int want, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  int count = OpenConnectionsTo(port);
  while (count != want && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
    count = OpenConnectionsTo(port);
  }
  return count;
}

}  // namespace mailring::integration
