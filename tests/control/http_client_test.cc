#include "control/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "proto/absl_string_view.h"
#include "proto/str_cat.h"

namespace mailring::control {
namespace {

using proto::AsAbsl;

// A tiny HTTP/1.1 server on 127.0.0.1 port 0: one thread accepting, one per connection reading
// one request (headers and a Content-Length body) and answering it, then closing. A hanging
// server reads the request and never answers.
class TestServer {
 public:
  struct Options {
    int status = 200;
    std::string body = "hello";
    bool echo_target = false;  // body = the request target instead
    bool hang = false;
  };

  explicit TestServer(Options options) : options_(std::move(options)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    EXPECT_EQ(::listen(listener_, 128), 0);
    socklen_t length = sizeof(address);
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }

  ~TestServer() {
    stopping_ = true;
    ::shutdown(listener_, SHUT_RDWR);  // ends the blocked accept()
    acceptor_.join();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);  // ends blocked recv()s
    }
    for (std::thread& thread : connections_) thread.join();
    ::close(listener_);
  }

  std::string Url(std::string_view target) const {
    return StrCat("http://127.0.0.1:", port_, target);
  }

  std::vector<std::string> requests() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }

 private:
  void AcceptLoop() {
    while (true) {
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (stopping_) return;
        continue;
      }
      std::lock_guard<std::mutex> lock(mutex_);
      open_fds_.push_back(fd);
      connections_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  // Reads one request; returns it (headers and body) or nullopt when the peer went away first.
  static std::optional<std::string> ReadRequest(int fd) {
    std::string request;
    char buffer[4096];
    size_t wanted = std::string::npos;
    while (wanted == std::string::npos || request.size() < wanted) {
      const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
      if (n <= 0) return std::nullopt;
      request.append(buffer, static_cast<size_t>(n));
      const size_t header_end = request.find("\r\n\r\n");
      if (wanted == std::string::npos && header_end != std::string::npos) {
        size_t content_length = 0;
        const std::string lower = absl::AsciiStrToLower(request.substr(0, header_end));
        const size_t at = lower.find("\r\ncontent-length:");
        if (at != std::string::npos) {
          const size_t value = at + std::string_view("\r\ncontent-length:").size();
          const size_t end = lower.find("\r\n", value);
          EXPECT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(lower.substr(value, end - value)),
                                       &content_length));
        }
        wanted = header_end + 4 + content_length;
      }
    }
    return request;
  }

  void Serve(int fd) {
    std::optional<std::string> request = ReadRequest(fd);
    if (request.has_value()) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        requests_.push_back(*request);
      }
      if (options_.hang) {
        char byte;
        while (::recv(fd, &byte, 1, 0) > 0) {
        }
      } else {
        std::string body = options_.body;
        if (options_.echo_target) {
          const size_t begin = request->find(' ') + 1;
          body = request->substr(begin, request->find(' ', begin) - begin);
        }
        const std::string response =
            StrCat("HTTP/1.1 ", options_.status, " Whatever\r\nContent-Length: ", body.size(),
                   "\r\nConnection: close\r\n\r\n", body);
        size_t sent = 0;
        while (sent < response.size()) {
          const ssize_t n =
              ::send(fd, response.data() + sent, response.size() - sent, MSG_NOSIGNAL);
          if (n <= 0) break;
          sent += static_cast<size_t>(n);
        }
      }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    std::erase(open_fds_, fd);
    ::close(fd);
  }

  const Options options_;
  int listener_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  mutable std::mutex mutex_;
  std::vector<std::thread> connections_;
  std::vector<int> open_fds_;
  std::vector<std::string> requests_;
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
