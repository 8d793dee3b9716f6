// HttpServer: parsing, keep-alive, bodies, limits, streamed answers and stop/restart, driven by
// a raw socket client on loopback.
#include "tests/fakes/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace mailring::fakes {
namespace {

// A blocking client socket with bounded reads.
class RawClient {
 public:
  explicit RawClient(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }
  ~RawClient() { close(fd_); }

  bool connected() const { return connected_; }
  bool Send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // Reads until `received` contains `needle`, the peer closes or 5 s pass; all bytes so far.
  std::string ReadUntil(std::string_view needle) {
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (received_.find(needle) == std::string::npos && !closed_ && absl::Now() < deadline) {
      ReadSome(50);
    }
    return received_;
  }
  // Reads until the peer closes (true) or 5 s pass (false).
  bool ReadUntilClosed() {
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (!closed_ && absl::Now() < deadline) ReadSome(50);
    return closed_;
  }
  const std::string& received() const { return received_; }

 private:
  void ReadSome(int wait_ms) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, wait_ms) <= 0) return;
    char buffer[4096];
    const ssize_t n = recv(fd_, buffer, sizeof buffer, 0);
    if (n <= 0) {
      closed_ = true;
      return;
    }
    received_.append(buffer, static_cast<size_t>(n));
  }

  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
  std::string received_;
};

// Records every request and answers 200 with "<method> <path>".
struct Recorder {
  std::mutex mutex;
  std::vector<HttpRequest> requests;

  HttpHandler Handler() {
    return [this](const HttpRequest& request) {
      std::lock_guard<std::mutex> lock(mutex);
      requests.push_back(request);
      HttpResponse response;
      response.headers = {{"Content-Type", "text/plain"}};
      response.body = absl::StrCat(request.method, " ", request.path);
      return response;
    };
  }
  HttpRequest Last() {
    std::lock_guard<std::mutex> lock(mutex);
    return requests.empty() ? HttpRequest() : requests.back();
  }
  size_t Count() {
    std::lock_guard<std::mutex> lock(mutex);
    return requests.size();
  }
};

TEST(HttpServerTest, PathAndQueryAreDecodedAndHeadersLowerCased) {
  Recorder recorder;
  HttpServer server(recorder.Handler());
  ASSERT_TRUE(server.Start().ok());
  RawClient client(server.port());
  ASSERT_TRUE(client.Send(
      "GET /a%2Fb/c+d?x=1+2&y=%26%3D&bad=%zz&flag HTTP/1.1\r\nHost: h\r\nX-Thing:  v  \r\n\r\n"));
  EXPECT_TRUE(absl::StrContains(client.ReadUntil("GET /a/b/c+d"), "HTTP/1.1 200 OK\r\n"))
      << client.received();
  HttpRequest request = recorder.Last();
  EXPECT_EQ(request.method, "GET");
  EXPECT_EQ(request.target, "/a%2Fb/c+d?x=1+2&y=%26%3D&bad=%zz&flag");
  EXPECT_EQ(request.path, "/a/b/c+d");
  EXPECT_EQ(request.query_string, "x=1+2&y=%26%3D&bad=%zz&flag");
  EXPECT_EQ(request.Query("x"), "1 2");
  EXPECT_EQ(request.Query("y"), "&=");
  EXPECT_FALSE(request.query.contains("bad"));
  EXPECT_TRUE(request.query.contains("flag"));
  EXPECT_EQ(request.Header("x-thing"), "v");
  EXPECT_TRUE(absl::StartsWith(request.head, "GET /a%2Fb/c+d?"));
  EXPECT_TRUE(absl::EndsWith(request.head, "X-Thing:  v  "));
}

TEST(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  Recorder recorder;
  HttpServer server(recorder.Handler());
  ASSERT_TRUE(server.Start().ok());
  RawClient client(server.port());
  ASSERT_TRUE(
      client.Send("GET /one HTTP/1.1\r\n\r\nPOST /two HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"));
  client.ReadUntil("POST /two");
  EXPECT_EQ(recorder.Count(), 2u);
  EXPECT_EQ(recorder.Last().body, "abc");
  ASSERT_TRUE(client.Send("GET /three HTTP/1.1\r\nConnection: close\r\n\r\n"));
  EXPECT_TRUE(client.ReadUntilClosed());
  EXPECT_TRUE(absl::StrContains(client.received(), "Connection: close\r\n"));
  EXPECT_TRUE(absl::EndsWith(client.received(), "GET /three"));
  EXPECT_EQ(recorder.Count(), 3u);
}

TEST(HttpServerTest, Http10ClosesAfterTheAnswer) {
  Recorder recorder;
  HttpServer server(recorder.Handler());
  ASSERT_TRUE(server.Start().ok());
  RawClient client(server.port());
  ASSERT_TRUE(client.Send("GET /x HTTP/1.0\r\n\r\n"));
  EXPECT_TRUE(client.ReadUntilClosed());
  EXPECT_TRUE(absl::EndsWith(client.received(), "GET /x"));
}

TEST(HttpServerTest, ChunkedRequestBodyIsDecoded) {
  Recorder recorder;
  HttpServer server(recorder.Handler());
  ASSERT_TRUE(server.Start().ok());
  RawClient client(server.port());
  ASSERT_TRUE(
      client.Send("PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n"));
  ASSERT_TRUE(client.Send("6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"));
  client.ReadUntil("PUT /c");
  EXPECT_EQ(recorder.Count(), 1u);
  EXPECT_EQ(recorder.Last().body, "hello world");
}

TEST(HttpServerTest, ExpectContinueIsAnsweredBeforeTheBody) {
  Recorder recorder;
  HttpServer server(recorder.Handler());
  ASSERT_TRUE(server.Start().ok());
  RawClient client(server.port());
  ASSERT_TRUE(client.Send("POST /p HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"));
  EXPECT_EQ(client.ReadUntil("\r\n\r\n"), "HTTP/1.1 100 Continue\r\n\r\n");
  EXPECT_EQ(recorder.Count(), 0u);
  ASSERT_TRUE(client.Send("body"));
  client.ReadUntil("POST /p");
  EXPECT_EQ(recorder.Last().body, "body");
}

TEST(HttpServerTest, OversizedBodyIs413AndOversizedHeadIs431) {
  Recorder recorder;
  HttpServer::Options options;
  options.max_request_bytes = 1024;
  HttpServer server(recorder.Handler(), options);
  ASSERT_TRUE(server.Start().ok());
  {
    RawClient client(server.port());
    ASSERT_TRUE(client.Send("POST /p HTTP/1.1\r\nContent-Length: 2000\r\n\r\n"));
    EXPECT_TRUE(client.ReadUntilClosed());
    EXPECT_TRUE(absl::StartsWith(client.received(), "HTTP/1.1 413 ")) << client.received();
  }
  {
    RawClient client(server.port());
    ASSERT_TRUE(client.Send(absl::StrCat("GET /p HTTP/1.1\r\nX: ", std::string(2000, 'a'))));
    EXPECT_TRUE(client.ReadUntilClosed());
    EXPECT_TRUE(absl::StartsWith(client.received(), "HTTP/1.1 431 ")) << client.received();
  }
  {
    RawClient client(server.port());
    ASSERT_TRUE(client.Send("POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n"));
    EXPECT_TRUE(client.ReadUntilClosed());
    EXPECT_TRUE(absl::StartsWith(client.received(), "HTTP/1.1 413 ")) << client.received();
  }
  EXPECT_EQ(recorder.Count(), 0u);
}

TEST(HttpServerTest, MalformedRequestsAre400AndUnknownCodingIs501) {
  Recorder recorder;
  HttpServer::Options options;
  options.error_response = [](int status, std::string_view message) {
    HttpResponse response;
    response.status = status;
    response.body = "{\"message\":\"" + std::string(message) + "\"}";
    return response;
  };
  HttpServer server(recorder.Handler(), options);
  ASSERT_TRUE(server.Start().ok());
  for (std::string_view bad :
       {"NONSENSE\r\n\r\n", "GET / SPDY/3\r\n\r\n", "GET / HTTP/1.1\r\nno colon\r\n\r\n",
        "GET /%zz HTTP/1.1\r\n\r\n", "POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"}) {
    RawClient client(server.port());
    ASSERT_TRUE(client.Send(bad));
    EXPECT_TRUE(client.ReadUntilClosed()) << bad;
    EXPECT_TRUE(absl::StartsWith(client.received(), "HTTP/1.1 400 Bad Request\r\n"))
        << bad << client.received();
    EXPECT_TRUE(absl::StrContains(client.received(), "{\"message\":")) << client.received();
  }
  RawClient client(server.port());
  ASSERT_TRUE(client.Send("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"));
  EXPECT_TRUE(client.ReadUntilClosed());
  EXPECT_TRUE(absl::StartsWith(client.received(), "HTTP/1.1 501 ")) << client.received();
  EXPECT_EQ(recorder.Count(), 0u);
}

TEST(HttpServerTest, StreamedAnswerIsChunkedAndCompletes) {
  HttpServer server([](const HttpRequest&) {
    HttpResponse response;
    response.headers = {{"Content-Type", "application/json"}};
    response.stream = [](HttpStream& stream) {
      stream.Write("one\n");
      stream.Write("two\n");
      return HttpResponse::StreamEnd::kComplete;
    };
    return response;
  });
  ASSERT_TRUE(server.Start().ok());
  RawClient client(server.port());
  ASSERT_TRUE(client.Send("GET /watch HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(client.ReadUntil("0\r\n\r\n"),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
            "\r\n4\r\none\n\r\n4\r\ntwo\n\r\n0\r\n\r\n");
}

TEST(HttpServerTest, AbortedStreamEndsWithoutTheLastChunk) {
  HttpServer server([](const HttpRequest&) {
    HttpResponse response;
    response.stream = [](HttpStream& stream) {
      stream.Write("event\n");
      return HttpResponse::StreamEnd::kAbort;
    };
    return response;
  });
  ASSERT_TRUE(server.Start().ok());
  RawClient client(server.port());
  ASSERT_TRUE(client.Send("GET /watch HTTP/1.1\r\n\r\n"));
  EXPECT_TRUE(client.ReadUntilClosed());
  EXPECT_TRUE(absl::EndsWith(client.received(), "6\r\nevent\n\r\n")) << client.received();
}

TEST(HttpServerTest, StreamSeesThePeerClose) {
  std::atomic<bool> saw_close{false};
  HttpServer server([&saw_close](const HttpRequest&) {
    HttpResponse response;
    response.stream = [&saw_close](HttpStream& stream) {
      stream.Write("event\n");
      saw_close = stream.WaitPeerClosed(absl::Seconds(10));
      return HttpResponse::StreamEnd::kAbort;
    };
    return response;
  });
  ASSERT_TRUE(server.Start().ok());
  {
    RawClient client(server.port());
    ASSERT_TRUE(client.Send("GET /watch HTTP/1.1\r\n\r\n"));
    client.ReadUntil("event\n");
  }
  for (int i = 0; i < 500 && !saw_close; ++i) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_TRUE(saw_close);
}

TEST(HttpServerTest, StopEndsStreamsAndRestartsOnTheSamePort) {
  HttpServer server([](const HttpRequest& request) {
    HttpResponse response;
    if (request.path == "/hang") {
      response.stream = [](HttpStream& stream) {
        stream.WaitPeerClosed(absl::Seconds(60));
        return HttpResponse::StreamEnd::kAbort;
      };
    }
    response.body = "up";
    return response;
  });
  ASSERT_TRUE(server.Start().ok());
  const uint16_t port = server.port();
  RawClient hanging(port);
  ASSERT_TRUE(hanging.Send("GET /hang HTTP/1.1\r\n\r\n"));
  for (int i = 0; i < 200 && server.open_connections() == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  const absl::Time start = absl::Now();
  server.Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_FALSE(server.running());
  EXPECT_TRUE(hanging.ReadUntilClosed());
  EXPECT_FALSE(RawClient(port).connected());
  ASSERT_TRUE(server.Start(port).ok());
  EXPECT_EQ(server.port(), port);
  RawClient client(port);
  ASSERT_TRUE(client.Send("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
  EXPECT_TRUE(client.ReadUntilClosed());
  EXPECT_TRUE(absl::EndsWith(client.received(), "\r\n\r\nup")) << client.received();
  EXPECT_FALSE(server.Start().ok());
}

}  // namespace
}  // namespace mailring::fakes
