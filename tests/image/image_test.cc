// The OCI image under podman, as an operator runs it: the project's seccomp profile
// (k8s/mailring-seccomp.json), read-only root, host network, the routes file mounted read-only,
// in front of the fixture Dovecot. A PREAUTH session and a byte-identical 20 MiB FETCH must work;
// under podman's default seccomp profile the start-up error must name io_uring, seccomp and the
// fix; and the image itself must be small, non-root, shell-less and labelled.
//
// Needs the image built first (scripts/image.sh; scripts/test.sh does that) and podman, runc and
// Dovecot installed. Environment (set by tests/image/CMakeLists.txt through ctest):
//   MAILRING_IMAGE     the image (localhost/mailring:latest)
//   MAILRING_SECCOMP   k8s/mailring-seccomp.json
//   DOVECOT_FIXTURE    tests/integration/dovecot_fixture.sh
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <vector>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/imap_test_client.h"
#include "tests/integration/integration_env.h"
#include "tests/integration/sha256.h"

namespace mailring::integration {
namespace {

std::string Env(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs `command` with /bin/sh, capturing stdout and stderr together.
CommandResult RunShell(const std::string& command) {
  CommandResult result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> chunk;
  size_t n;
  while ((n = std::fread(chunk.data(), 1, chunk.size(), pipe)) > 0) result.output.append(chunk.data(), n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// podman as this machine needs it: runc (crun refuses hybrid cgroups), cgroupfs, and ulimits at
// or below the host's hard limits.
std::string Podman() { return "podman --runtime runc --cgroup-manager cgroupfs"; }
std::string RunFlags() { return " --ulimit nofile=4096:4096 --ulimit nproc=512:512"; }

class ImageTest : public testing::Test {
 protected:
  void SetUp() override {
    image_ = Env("MAILRING_IMAGE", "localhost/mailring:latest");
    seccomp_ = Env("MAILRING_SECCOMP", "k8s/mailring-seccomp.json");
    const CommandResult inspect = RunShell(Podman() + " image exists " + image_);
    ASSERT_EQ(inspect.exit_code, 0)
        << image_ << " is not in the local containers storage: run scripts/image.sh first. "
        << inspect.output;
  }

  void TearDown() override {
    if (!container_.empty()) RunShell(Podman() + " rm -f -t 0 " + container_);
  }

  // `podman run -d` of the image with `security` flags, the routes file mounted read-only at
  // /etc/mailring/destinations.json; the container's name is remembered for TearDown.
  CommandResult StartContainer(const std::string& security, const std::string& routes_file,
                               const std::string& extra_args) {
    container_ = absl::StrCat("mailring-image-test-", ::getpid());
    RunShell(Podman() + " rm -f -t 0 " + container_);
    return RunShell(absl::StrCat(Podman(), " run -d --name ", container_, RunFlags(), " ", security,
                            " --read-only --network host -v ", routes_file,
                            ":/etc/mailring/destinations.json:ro ", image_,
                            " --destinations /etc/mailring/destinations.json ", extra_args));
  }

  std::string Logs() { return RunShell(Podman() + " logs " + container_).output; }

  std::string image_;
  std::string seccomp_;
  std::string container_;
  TempDir dir_;
};

TEST_F(ImageTest, IsSmallNonRootShellLessAndLabelled) {
  const CommandResult inspect =
      RunShell(Podman() + " image inspect --format '{{.Size}} {{.Config.User}} " +
          "{{index .Labels \"org.opencontainers.image.version\"}} " +
          "{{index .Labels \"org.opencontainers.image.revision\"}}' " + image_);
  ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
  std::vector<std::string> fields = absl::StrSplit(absl::StripTrailingAsciiWhitespace(inspect.output), ' ');
  ASSERT_EQ(fields.size(), 4u) << inspect.output;
  int64_t size = 0;
  ASSERT_TRUE(absl::SimpleAtoi(fields[0], &size)) << inspect.output;
  std::cout << "[ MEASURED ] image size " << size << " bytes\n";
  EXPECT_LE(size, 64 * 1000 * 1000);
  EXPECT_EQ(fields[1], "65532:65532");
  const CommandResult version = RunShell(Podman() + " run --rm" + RunFlags() + " " + image_ + " --version");
  ASSERT_EQ(version.exit_code, 0) << version.output;
  EXPECT_TRUE(absl::StartsWith(version.output, absl::StrCat("mailring ", fields[2], " (revision ",
                                                            fields[3], ") liburing ")))
      << version.output << " vs labels " << inspect.output;
  EXPECT_TRUE(absl::StrContains(version.output, " wolfSSL ")) << version.output;
  // Distroless: no shell to exec into.
  const CommandResult shell =
      RunShell(Podman() + " run --rm" + RunFlags() + " --entrypoint /bin/sh " + image_ + " -c true");
  EXPECT_NE(shell.exit_code, 0) << shell.output;
}

TEST_F(ImageTest, ServesPreauthSessionAndTwentyMebibyteFetchUnderTheProjectProfile) {
  absl::StatusOr<std::unique_ptr<DovecotServer>> dovecot = DovecotServer::Start();
  ASSERT_TRUE(dovecot.ok()) << dovecot.status();
  const uint16_t port = PickFreeLoopbackPort();
  const std::string routes = dir_.path() + "/destinations.json";
  ASSERT_TRUE(WriteFile(routes, DestinationsFileJson({{absl::StrCat("127.0.0.1:", port),
                                                       BasicDestination("alice", "secret",
                                                                        (*dovecot)->port())}}))
                  .ok());
  const CommandResult started = StartContainer("--security-opt seccomp=" + seccomp_, routes,
                                               "--workers 2 --log-format json --log-level debug");
  ASSERT_EQ(started.exit_code, 0) << started.output;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!PortAcceptsConnections(port) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(100));
  ASSERT_TRUE(PortAcceptsConnections(port)) << Logs();

  absl::StatusOr<std::unique_ptr<ImapTestClient>> client = ImapTestClient::Connect(port);
  ASSERT_TRUE(client.ok()) << client.status();
  absl::StatusOr<ImapResponse> greeting = (*client)->ReadResponse();
  ASSERT_TRUE(greeting.ok()) << greeting.status() << Logs();
  ASSERT_TRUE(absl::StartsWith(greeting->text, "* PREAUTH ")) << greeting->text;
  auto select = (*client)->Command("1", "SELECT INBOX");
  ASSERT_TRUE(select.ok()) << select.status();
  ASSERT_EQ(select->back().Status(), "OK");
  auto fetch = (*client)->Command("2", absl::StrCat("FETCH ", DovecotServer::kBigMessage, " BODY[]"));
  ASSERT_TRUE(fetch.ok()) << fetch.status() << Logs();
  ASSERT_EQ(fetch->back().Status(), "OK");
  const ImapResponse* body = nullptr;
  for (const ImapResponse& response : *fetch) {
    if (!response.literals.empty()) body = &response;
  }
  ASSERT_NE(body, nullptr);
  EXPECT_EQ(body->literals[0].size(), (*dovecot)->big_size());
  EXPECT_EQ(Sha256Hex(body->literals[0]), (*dovecot)->big_sha256());
  auto logout = (*client)->Command("3", "LOGOUT");
  ASSERT_TRUE(logout.ok()) << logout.status();

  // JSON log lines: the start-up line carries the version, and the session's lines its fields.
  const absl::Time log_deadline = absl::Now() + absl::Seconds(10);
  std::string logs = Logs();
  while (!absl::StrContains(logs, "\"session\":") && absl::Now() < log_deadline) {
    absl::SleepFor(absl::Milliseconds(100));
    logs = Logs();
  }
  EXPECT_TRUE(absl::StrContains(logs, "{\"time\":\"")) << logs;
  EXPECT_TRUE(absl::StrContains(logs, "liburing")) << logs;
  EXPECT_TRUE(absl::StrContains(logs, "\"destination\":\"")) << logs;
  EXPECT_TRUE(absl::StrContains(logs, "\"session\":\"w")) << logs;
  EXPECT_FALSE(absl::StrContains(logs, "secret")) << logs;
}

TEST_F(ImageTest, DefaultSeccompProfileGivesTheClearStartUpError) {
  const std::string routes = dir_.path() + "/destinations.json";
  ASSERT_TRUE(WriteFile(routes, DestinationsFileJson({{absl::StrCat("127.0.0.1:", PickFreeLoopbackPort()),
                                                       BasicDestination("alice", "secret", 1)}}))
                  .ok());
  const CommandResult started = StartContainer("", routes, "");
  ASSERT_EQ(started.exit_code, 0) << started.output;
  const CommandResult waited = RunShell(Podman() + " wait " + container_);
  ASSERT_EQ(waited.exit_code, 0) << waited.output;
  EXPECT_EQ(absl::StripAsciiWhitespace(waited.output), "3") << Logs();
  const std::string logs = Logs();
  EXPECT_TRUE(absl::StrContains(logs, "io_uring is blocked: io_uring_setup failed with Function "
                                      "not implemented (ENOSYS)"))
      << logs;
  EXPECT_TRUE(absl::StrContains(logs, "seccomp")) << logs;
  EXPECT_TRUE(absl::StrContains(logs, "k8s/mailring-seccomp.json")) << logs;
}

}  // namespace
}  // namespace mailring::integration
