#include "control/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "proto/absl_string_view.h"
#include "proto/str_cat.h"
#include "tests/fakes/http_server.h"

namespace mailring::control {
namespace {

using proto::AsAbsl;

// A scripted server on tests/fakes/http_server: it records every request (head and body, as
// received) and answers each with `status` and `body`; a hanging server reads the request and
// never answers.
class TestServer {
 public:
  struct Options {
    int status = 200;
    std::string body = "hello";
    bool echo_target = false;  // body = the request target instead
    bool hang = false;
  };

  explicit TestServer(Options options)
      : options_(std::move(options)),
        server_([this](const fakes::HttpRequest& request) { return Handle(request); }) {
    EXPECT_TRUE(server_.Start().ok());
  }

  std::string Url(std::string_view target) const { return StrCat(server_.Url(), target); }

  std::vector<std::string> requests() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }

 private:
  fakes::HttpResponse Handle(const fakes::HttpRequest& request) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      requests_.push_back(StrCat(request.head, "\r\n\r\n", request.body));
    }
    fakes::HttpResponse response;
    if (options_.hang) {
      response.stream = [](fakes::HttpStream& stream) {
        stream.WaitPeerClosed(absl::Seconds(60));
        return fakes::HttpResponse::StreamEnd::kAbort;
      };
      return response;
    }
    response.status = options_.status;
    response.body = options_.echo_target ? request.target : options_.body;
    return response;
  }

  const Options options_;
  mutable std::mutex mutex_;
  std::vector<std::string> requests_;
  fakes::HttpServer server_;  // last: stopped before the rest goes
};

// Polls until `done` holds or `limit` passes; returns whether `done` holds.
bool PollUntil(HttpClient& client, const std::function<bool()>& done,
               absl::Duration limit = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + limit;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    client.Poll(absl::Milliseconds(100));
  }
  return true;
}

// Runs one request to completion.
absl::StatusOr<HttpResponse> Fetch(HttpClient& client, HttpRequest request) {
  std::optional<absl::StatusOr<HttpResponse>> result;
  client.Start(std::move(request),
               [&result](absl::StatusOr<HttpResponse> response) { result = std::move(response); });
  EXPECT_TRUE(PollUntil(client, [&result] { return result.has_value(); }));
  if (!result.has_value()) return absl::InternalError("no result");
  return *std::move(result);
}

bool Contains(std::string_view haystack, std::string_view needle) {
  return absl::StrContains(AsAbsl(haystack), AsAbsl(needle));
}

TEST(HttpClientTest, GetReturnsStatusAndBody) {
  TestServer server({.body = "hello"});
  HttpClient client;
  HttpRequest request;
  request.url = server.Url("/path?q=1");
  absl::StatusOr<HttpResponse> response = Fetch(client, request);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "hello");
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_TRUE(server.requests()[0].starts_with("GET /path?q=1 HTTP/1.1\r\n"))
      << server.requests()[0];
  EXPECT_EQ(client.in_flight(), 0u);
}

TEST(HttpClientTest, PostSendsBodyAndHeaders) {
  TestServer server({.body = R"({"access_token":"x"})"});
  HttpClient client;
  HttpRequest request;
  request.method = "POST";
  request.url = server.Url("/oauth/token");
  request.headers = {"Content-Type: application/x-www-form-urlencoded", "Accept: application/json",
                     "Authorization: Basic aWQ6c2VjcmV0"};
  request.body = "grant_type=client_credentials&scope=a+b";
  absl::StatusOr<HttpResponse> response = Fetch(client, request);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body, R"({"access_token":"x"})");
  ASSERT_EQ(server.requests().size(), 1u);
  const std::string received = server.requests()[0];
  EXPECT_TRUE(received.starts_with("POST /oauth/token HTTP/1.1\r\n")) << received;
  EXPECT_TRUE(Contains(received, "\r\nContent-Type: application/x-www-form-urlencoded\r\n"));
  EXPECT_TRUE(Contains(received, "\r\nAccept: application/json\r\n"));
  EXPECT_TRUE(Contains(received, "\r\nAuthorization: Basic aWQ6c2VjcmV0\r\n"));
  EXPECT_TRUE(Contains(received, "\r\nContent-Length: 39\r\n")) << received;
  EXPECT_FALSE(Contains(received, "Expect:")) << received;
  EXPECT_TRUE(received.ends_with("\r\n\r\ngrant_type=client_credentials&scope=a+b")) << received;
}

TEST(HttpClientTest, ErrorStatusIsAResponseNotATransportError) {
  TestServer server({.status = 401, .body = R"({"error":"invalid_client"})"});
  HttpClient client;
  HttpRequest request;
  request.method = "POST";
  request.url = server.Url("/token");
  absl::StatusOr<HttpResponse> response = Fetch(client, request);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 401);
  EXPECT_EQ(response->body, R"({"error":"invalid_client"})");
}

TEST(HttpClientTest, RedirectIsNotFollowed) {
  TestServer server({.status = 302, .body = ""});
  HttpClient client;
  HttpRequest request;
  request.url = server.Url("/token");
  absl::StatusOr<HttpResponse> response = Fetch(client, request);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 302);
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST(HttpClientTest, TimeoutIsDeadlineExceededWithoutTheQueryString) {
  TestServer server({.hang = true});
  HttpClient client;
  HttpRequest request;
  request.url = server.Url("/slow?secret=SECRET");
  request.timeout = absl::Milliseconds(300);
  const absl::Time start = absl::Now();
  absl::StatusOr<HttpResponse> response = Fetch(client, request);
  const absl::Duration elapsed = absl::Now() - start;
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded) << response.status();
  EXPECT_TRUE(Contains(proto::AsStd(response.status().message()), server.Url("/slow")))
      << response.status();
  EXPECT_FALSE(Contains(proto::AsStd(response.status().message()), "SECRET")) << response.status();
  EXPECT_GE(elapsed, absl::Milliseconds(250));
  EXPECT_LT(elapsed, absl::Seconds(5));
}

TEST(HttpClientTest, ConnectionRefusedIsUnavailable) {
  // A bound socket that does not listen: its port answers SYN with RST, and nothing else can
  // take the port while the test runs.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  socklen_t length = sizeof(address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  HttpClient client;
  HttpRequest request;
  request.url = StrCat("http://user:pw@127.0.0.1:", ntohs(address.sin_port), "/token");
  absl::StatusOr<HttpResponse> response = Fetch(client, request);
  ::close(fd);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable) << response.status();
  EXPECT_FALSE(Contains(proto::AsStd(response.status().message()), "pw@")) << response.status();
}

TEST(HttpClientTest, UnsupportedSchemeIsAnErrorDeliveredByPoll) {
  HttpClient client;
  HttpRequest request;
  request.url = "ftp://127.0.0.1/file";
  absl::StatusOr<HttpResponse> response = Fetch(client, request);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument) << response.status();
}

TEST(HttpClientTest, WakeupFromAnotherThreadEndsALongPollPromptly) {
  TestServer server({.hang = true});
  HttpClient client;
  HttpRequest request;
  request.url = server.Url("/slow");
  request.timeout = absl::Seconds(60);
  bool called = false;
  client.Start(request, [&called](absl::StatusOr<HttpResponse>) { called = true; });
  client.Poll(absl::Milliseconds(50));  // the transfer is now waiting on the server
  for (int round = 0; round < 3; ++round) {
    std::thread waker([&client] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      client.Wakeup();
    });
    const absl::Time start = absl::Now();
    client.Poll(absl::Seconds(30));
    const absl::Duration elapsed = absl::Now() - start;
    waker.join();
    EXPECT_LT(elapsed, absl::Seconds(5)) << "round " << round;
  }
  EXPECT_FALSE(called);
  EXPECT_EQ(client.in_flight(), 1u);
}

TEST(HttpClientTest, PendingWakeupMakesAnIdlePollReturnAtOnce) {
  HttpClient client;
  client.Wakeup();
  const absl::Time start = absl::Now();
  client.Poll(absl::Seconds(30));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(HttpClientTest, FiftyConcurrentRequestsAllComplete) {
  TestServer server({.echo_target = true});
  HttpClient client;
  constexpr int kRequests = 50;
  std::vector<std::optional<absl::StatusOr<HttpResponse>>> results(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    HttpRequest request;
    request.method = i % 2 == 0 ? "GET" : "POST";
    request.url = server.Url(StrCat("/r/", i));
    request.body = i % 2 == 0 ? "" : StrCat("n=", i);
    client.Start(std::move(request), [&results, i](absl::StatusOr<HttpResponse> response) {
      results[i] = std::move(response);
    });
  }
  EXPECT_EQ(client.in_flight(), static_cast<size_t>(kRequests));
  ASSERT_TRUE(PollUntil(client, [&client] { return client.in_flight() == 0; }));
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(results[i].has_value()) << i;
    ASSERT_TRUE(results[i]->ok()) << i << ": " << results[i]->status();
    EXPECT_EQ((*results[i])->status, 200);
    EXPECT_EQ((*results[i])->body, StrCat("/r/", i));
  }
  EXPECT_EQ(server.requests().size(), static_cast<size_t>(kRequests));
}

TEST(HttpClientTest, CallbackMayStartTheNextRequest) {
  TestServer server({.echo_target = true});
  HttpClient client;
  std::vector<std::string> bodies;
  std::function<void(absl::StatusOr<HttpResponse>)> next;
  next = [&](absl::StatusOr<HttpResponse> response) {
    ASSERT_TRUE(response.ok()) << response.status();
    bodies.push_back(response->body);
    if (bodies.size() < 3) {
      HttpRequest request;
      request.url = server.Url(StrCat("/", bodies.size()));
      client.Start(std::move(request), next);
    }
  };
  HttpRequest first;
  first.url = server.Url("/0");
  client.Start(std::move(first), next);
  ASSERT_TRUE(PollUntil(client, [&bodies] { return bodies.size() == 3; }));
  EXPECT_EQ(bodies, (std::vector<std::string>{"/0", "/1", "/2"}));
}

TEST(HttpClientTest, DestructorAbortsRequestsInFlightWithoutCallbacks) {
  TestServer server({.hang = true});
  bool called = false;
  {
    HttpClient client;
    HttpRequest request;
    request.url = server.Url("/slow");
    client.Start(request, [&called](absl::StatusOr<HttpResponse>) { called = true; });
    client.Start(request, [&called](absl::StatusOr<HttpResponse>) { called = true; });
    client.Poll(absl::Milliseconds(100));
    EXPECT_EQ(client.in_flight(), 2u);
  }
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace mailring::control
