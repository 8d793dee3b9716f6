// Test fixtures for integration tests: MailringTest starts the daemon per test with routes the
// test chooses; DovecotBackedTest adds one real Dovecot per test suite.
//
// Every test gets a fresh mailring (fresh ports, its own log file) and kills it in TearDown; when
// a test fails, the daemon's log is printed so the failure can be read without rerunning.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "tests/integration/imap_test_client.h"
#include "tests/integration/integration_env.h"

#define MR_CONCAT_INNER(a, b) a##b
#define MR_CONCAT(a, b) MR_CONCAT_INNER(a, b)

// ASSERT that an absl::Status is OK, printing it otherwise.
#define MR_ASSERT_OK(expr)                    \
  do {                                        \
    const absl::Status mr_status = (expr);    \
    ASSERT_TRUE(mr_status.ok()) << mr_status; \
  } while (0)

// `lhs = value of the StatusOr`, or fail the test with its status.
#define MR_ASSERT_OK_AND_ASSIGN(lhs, expr) \
  MR_ASSERT_OK_AND_ASSIGN_IMPL(MR_CONCAT(mr_status_or_, __LINE__), lhs, expr)
#define MR_ASSERT_OK_AND_ASSIGN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  ASSERT_TRUE(tmp.ok()) << tmp.status();             \
  lhs = std::move(tmp).value()

namespace mailring::integration {

// A client connection through mailring with the greeting already read.
struct ProxySession {
  std::unique_ptr<ImapTestClient> client;
  ImapResponse greeting;
};

class MailringTest : public testing::Test {
 protected:
  void TearDown() override;

  // Starts mailring with one route per destination, each on a fresh loopback port
  // (listen_ports_[i] for destinations[i]), and waits until all of them accept.
  absl::Status StartMailring(const std::vector<Destination>& destinations,
                             const std::vector<std::string>& flags = {});

  // Connects to route `route` and reads the first line the proxy sends.
  absl::StatusOr<ProxySession> OpenSession(
      size_t route = 0, absl::Duration timeout = ImapTestClient::kDefaultTimeout);

  std::string MailringLog() const { return mailring_ ? mailring_->Log() : ""; }

  TempDir work_dir_;
  std::unique_ptr<MailringProcess> mailring_;
  std::vector<uint16_t> listen_ports_;
};

class DovecotBackedTest : public MailringTest {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  void SetUp() override;

  static DovecotServer& dovecot() { return *dovecot_; }
  static Destination Alice() { return BasicDestination("alice", "secret", dovecot_->port()); }

  // Connects straight to Dovecot (bypassing mailring) and logs in as alice.
  static absl::StatusOr<std::unique_ptr<ImapTestClient>> DirectAliceSession();

 private:
  static std::unique_ptr<DovecotServer> dovecot_;
  static std::string skip_reason_;
  static std::string setup_error_;
};

// True when `greeting` is "* BYE [UNAVAILABLE] <non-empty reason>".
bool IsUnavailableBye(const ImapResponse& greeting);

// Number of TCP connections in this network namespace from a local socket to 127.0.0.1:port that
// are still open on the local side (ESTABLISHED or CLOSE_WAIT): mailring's upstream legs when
// `port` is the upstream's.
int OpenConnectionsTo(uint16_t port);

// Polls OpenConnectionsTo(port) until it equals `want` or `timeout` passes; returns the last count.
int WaitForOpenConnectionsTo(uint16_t port, int want, absl::Duration timeout);

}  // namespace mailring::integration
