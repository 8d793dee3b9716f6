// OAuth2 sessions through a Worker against scripted XOAUTH2 upstreams, with the control thread
// replaced by the test: it sees the worker's CredentialRequests and publishes answers into the
// CredentialCache itself, so parking, waking, failures and retries are checked without HTTP.
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/worker.h"
#include "gtest/gtest.h"
#include "proto/sasl.h"
#include "tests/core/worker_test_env.h"

namespace mailring::core {
namespace {

using testing::FreePort;
using testing::LoopbackRoute;
using testing::PollUntil;
using testing::ReadLine;
using testing::ScriptedUpstream;
using testing::SendText;
using testing::WaitForEof;

class RecordingBroker : public CredentialBroker {
 public:
  void Request(CredentialRequest request) override {
    std::lock_guard<std::mutex> lock(mutex_);
    requests_.push_back(std::move(request));
  }
  // Waits (bounded) until at least `count` requests arrived; returns a copy of request `index`.
  bool WaitFor(size_t count, CredentialRequest* out, size_t index) {
    return PollUntil([&] {
      std::lock_guard<std::mutex> lock(mutex_);
      if (requests_.size() < count) return false;
      *out = requests_[index];
      return true;
    });
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_.size();
  }

 private:
  std::mutex mutex_;
  std::vector<CredentialRequest> requests_;
};

std::string Xoauth2(const std::string& user, const std::string& token) {
  return proto::Base64Encode(proto::EncodeXoauth2(user, token));
}

// An XOAUTH2 server that accepts exactly `good_token` for `user`, answers others with the
// error challenge and a tagged NO (and lets the client try again), then echoes "tag OK".
void XoauthServer(int fd, const std::string& user, const std::string& good_token) {
  SendText(fd, "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] xoauth ready\r\n");
  const std::string expected = "M2 AUTHENTICATE XOAUTH2 " + Xoauth2(user, good_token) + "\r\n";
  while (true) {
    const std::string line = ReadLine(fd, 10000);
    if (line.empty()) return;
    if (line == expected) {
      SendText(fd, "M2 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n");
      break;
    }
    SendText(fd, "+ eyJzdGF0dXMiOiI0MDEifQ==\r\n");  // {"status":"401"}
    if (ReadLine(fd, 10000) != "\r\n") return;
    SendText(fd, "M2 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n");
  }
  while (true) {
    const std::string line = ReadLine(fd, 10000);
    if (line.empty()) return;
    SendText(fd, line.substr(0, line.find(' ')) + " OK done\r\n");
  }
}

class WorkerOAuthTest : public testing::WorkerFixture {
 protected:
  void StartWorker(uint16_t upstream_port, proto::AuthenticationType type, std::string user) {
    listen_port_ = FreePort();
    auto route = LoopbackRoute(listen_port_, upstream_port, "oauth-dest");
    route->destination.authentication = type;
    route->destination.user = std::move(user);
    route->destination.password = proto::Secret();
    StartWorkerOn(route, WorkerServices{&cache_, &broker_});
  }
  void PublishToken(const std::string& key, const std::string& token) {
    Credential credential;
    credential.access_token = proto::Secret(token);
    credential.expires_at_ms = MonotonicMs() + 60'000;
    cache_.Publish(key, std::move(credential));
    worker_->NotifyCredentials();
  }

  CredentialCache cache_{1};
  RecordingBroker broker_;
};

TEST_F(WorkerOAuthTest, ColdCacheParksTheSessionUntilTheTokenIsPublished) {
  ScriptedUpstream upstream([](int fd) { XoauthServer(fd, "carol", "tok-1"); });
  StartWorker(upstream.port(), proto::AuthenticationType::kOAuth2ClientCredentials, "carol");
  const int client = Connect();
  CredentialRequest request;
  ASSERT_TRUE(broker_.WaitFor(1, &request, 0));
  EXPECT_EQ(request.kind, CredentialRequest::Kind::kClientCredentials);
  EXPECT_EQ(request.key, CredentialKey("oauth-dest", ""));
  PublishToken(request.key, "tok-1");
  const std::string greeting = ReadLine(client);
  EXPECT_EQ(greeting.rfind("* PREAUTH [CAPABILITY IMAP4rev1 IDLE]", 0), 0u) << greeting;
  ASSERT_TRUE(SendText(client, "a NOOP\r\n"));
  EXPECT_EQ(ReadLine(client), "a OK done\r\n");
  ::close(client);
}

TEST_F(WorkerOAuthTest, CachedTokenCostsNoRequest) {
  ScriptedUpstream upstream([](int fd) { XoauthServer(fd, "carol", "tok-2"); });
  StartWorker(upstream.port(), proto::AuthenticationType::kOAuth2ClientCredentials, "carol");
  PublishToken(CredentialKey("oauth-dest", ""), "tok-2");
  for (int i = 0; i < 3; ++i) {
    const int client = Connect();
    EXPECT_EQ(ReadLine(client).rfind("* PREAUTH ", 0), 0u);
    ::close(client);
  }
  EXPECT_EQ(broker_.count(), 0u);
}

TEST_F(WorkerOAuthTest, PublishedFailureGivesByeWithReason) {
  ScriptedUpstream upstream([](int fd) { XoauthServer(fd, "carol", "never"); });
  StartWorker(upstream.port(), proto::AuthenticationType::kOAuth2ClientCredentials, "carol");
  Credential failed;
  failed.failure = "HTTP 503 from the token service";
  failed.failed_at_ms = MonotonicMs();
  cache_.Publish(CredentialKey("oauth-dest", ""), failed);
  const int client = Connect();
  const std::string line = ReadLine(client);
  EXPECT_EQ(line.rfind("* BYE [UNAVAILABLE] no access token for destination oauth-dest", 0), 0u)
      << line;
  EXPECT_NE(line.find("HTTP 503"), std::string::npos) << line;
  ::close(client);
}

TEST_F(WorkerOAuthTest, RefreshTokenClientAuthenticatesAndGetsItsOwnTag) {
  ScriptedUpstream upstream([](int fd) { XoauthServer(fd, "dave", "access-9"); });
  StartWorker(upstream.port(), proto::AuthenticationType::kOAuth2RefreshToken, "");
  const int client = Connect();
  const std::string greeting = ReadLine(client);
  EXPECT_EQ(greeting.rfind("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 ID] ", 0), 0u)
      << greeting;
  ASSERT_TRUE(SendText(client, "c1 CAPABILITY\r\n"));
  EXPECT_EQ(ReadLine(client), "* CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 ID\r\n");
  EXPECT_EQ(ReadLine(client), "c1 OK CAPABILITY completed\r\n");
  // Two-step, with a pipelined command after the response line.
  ASSERT_TRUE(SendText(client, "t7 AUTHENTICATE XOAUTH2\r\n"));
  EXPECT_EQ(ReadLine(client), "+ \r\n");
  ASSERT_TRUE(SendText(client, Xoauth2("dave", "refresh-abc") + "\r\nn1 NOOP\r\n"));
  CredentialRequest request;
  ASSERT_TRUE(broker_.WaitFor(1, &request, 0));
  EXPECT_EQ(request.kind, CredentialRequest::Kind::kRefreshToken);
  EXPECT_EQ(request.grant_secret.Reveal(), "refresh-abc");
  EXPECT_EQ(request.key.find("refresh-abc"), std::string::npos) << "keys hold a hash only";
  PublishToken(request.key, "access-9");
  const std::string answer = ReadLine(client);
  EXPECT_EQ(answer.rfind("t7 OK [CAPABILITY IMAP4rev1 IDLE] ", 0), 0u) << answer;
  EXPECT_EQ(ReadLine(client), "n1 OK done\r\n") << "the pipelined NOOP reached the server";
  ::close(client);
}

TEST_F(WorkerOAuthTest, RejectedTokenGivesNoInvalidatesAndAllowsRetry) {
  ScriptedUpstream upstream([](int fd) { XoauthServer(fd, "erin", "good"); });
  StartWorker(upstream.port(), proto::AuthenticationType::kOAuth2AuthorizationCode, "erin");
  const int client = Connect();
  ASSERT_EQ(ReadLine(client).rfind("* OK ", 0), 0u);
  ASSERT_TRUE(SendText(client, "a AUTHENTICATE XOAUTH2 " + Xoauth2("erin", "code-1") + "\r\n"));
  CredentialRequest first;
  ASSERT_TRUE(broker_.WaitFor(1, &first, 0));
  EXPECT_EQ(first.kind, CredentialRequest::Kind::kAuthorizationCode);
  PublishToken(first.key, "bad");
  const std::string no = ReadLine(client);
  EXPECT_EQ(no.rfind("a NO [AUTHENTICATIONFAILED] upstream rejected the access token", 0), 0u)
      << no;
  EXPECT_NE(no.find("401"), std::string::npos) << no;
  CredentialRequest invalidate;
  ASSERT_TRUE(broker_.WaitFor(2, &invalidate, 1));
  EXPECT_EQ(invalidate.kind, CredentialRequest::Kind::kInvalidate);
  EXPECT_EQ(invalidate.key, first.key);
  // A second attempt with another code succeeds.
  ASSERT_TRUE(SendText(client, "b AUTHENTICATE XOAUTH2 " + Xoauth2("erin", "code-2") + "\r\n"));
  CredentialRequest second;
  ASSERT_TRUE(broker_.WaitFor(3, &second, 2));
  PublishToken(second.key, "good");
  EXPECT_EQ(ReadLine(client).rfind("b OK ", 0), 0u);
  ::close(client);
}

TEST_F(WorkerOAuthTest, MalformedClientResponsesGetAuthenticationFailedThenBye) {
  ScriptedUpstream upstream([](int fd) { XoauthServer(fd, "x", "y"); });
  StartWorker(upstream.port(), proto::AuthenticationType::kOAuth2RefreshToken, "");
  const int client = Connect();
  ASSERT_EQ(ReadLine(client).rfind("* OK ", 0), 0u);
  ASSERT_TRUE(SendText(client, "1 AUTHENTICATE XOAUTH2 %%%\r\n"));
  EXPECT_EQ(ReadLine(client).rfind("1 NO [AUTHENTICATIONFAILED] ", 0), 0u);
  ASSERT_TRUE(SendText(client, "2 AUTHENTICATE XOAUTH2 " + proto::Base64Encode("junk") + "\r\n"));
  EXPECT_EQ(ReadLine(client).rfind("2 NO [AUTHENTICATIONFAILED] malformed", 0), 0u);
  ASSERT_TRUE(SendText(client, "3 AUTHENTICATE XOAUTH2 =\r\n"));
  EXPECT_EQ(ReadLine(client).rfind("3 NO [AUTHENTICATIONFAILED] ", 0), 0u);
  EXPECT_EQ(ReadLine(client), "* BYE too many failed authentication attempts\r\n");
  EXPECT_TRUE(WaitForEof(client));
  EXPECT_EQ(broker_.count(), 0u);
  ::close(client);
}

TEST_F(WorkerOAuthTest, ClientThatNeverAuthenticatesTimesOut) {
  ScriptedUpstream upstream([](int fd) { XoauthServer(fd, "x", "y"); });
  options_.client_auth_timeout = absl::Seconds(1);
  StartWorker(upstream.port(), proto::AuthenticationType::kOAuth2RefreshToken, "");
  const int client = Connect();
  ASSERT_EQ(ReadLine(client).rfind("* OK ", 0), 0u);
  const std::string bye = ReadLine(client, 5000);
  EXPECT_EQ(bye.rfind("* BYE [UNAVAILABLE] ", 0), 0u) << bye;
  EXPECT_NE(bye.find("timed out"), std::string::npos) << bye;
  ::close(client);
}

}  // namespace
}  // namespace mailring::core
