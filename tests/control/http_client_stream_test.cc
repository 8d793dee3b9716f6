// HttpClient streams, Cancel() and timers, against scripted HTTP/1.1 servers on loopback.
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "control/http_client.h"
#include "gtest/gtest.h"
#include "proto/str_cat.h"
#include "tests/fakes/http_server.h"

namespace mailring::control {
namespace {

// One request's connection, as the server's script sees it: the script writes the whole
// answer itself, well-formed or not.
class Connection {
 public:
  Connection(const fakes::HttpRequest& request, fakes::HttpStream& stream)
      : request_(request.head), stream_(stream) {}

  const std::string& request() const { return request_; }  // the request head

  bool Send(std::string_view bytes) { return stream_.WriteRaw(bytes); }
  bool StartChunked(int status = 200) {
    return Send(StrCat("HTTP/1.1 ", status, " OK\r\nTransfer-Encoding: chunked\r\n",
                       "Content-Type: application/json\r\n\r\n"));
  }
  bool Chunk(std::string_view data) { return stream_.Write(data); }
  bool EndChunked() { return Send("0\r\n\r\n"); }

  // Waits until the client closes the connection; false if it has not within `limit`.
  bool WaitClosed(std::chrono::milliseconds limit) {
    return stream_.WaitPeerClosed(absl::FromChrono(limit));
  }

 private:
  std::string request_;
  fakes::HttpStream& stream_;
};

// Runs `script` for each request (tests/fakes/http_server, 127.0.0.1 port 0) on its
// connection's thread, then shuts the connection down.
class ScriptServer {
 public:
  using Script = std::function<void(Connection&)>;

  explicit ScriptServer(Script script)
      : script_(std::move(script)), server_([this](const fakes::HttpRequest& request) {
          fakes::HttpResponse response;
          response.raw_stream = true;
          response.stream = [this, request](fakes::HttpStream& stream) {
            Connection connection(request, stream);
            script_(connection);
            return fakes::HttpResponse::StreamEnd::kAbort;
          };
          return response;
        }) {
    EXPECT_TRUE(server_.Start().ok());
  }

  std::string Url(std::string_view target) const { return StrCat(server_.Url(), target); }

 private:
  Script script_;
  fakes::HttpServer server_;  // last: stopped before the script goes
};

bool PollUntil(HttpClient& client, const std::function<bool()>& done,
               absl::Duration limit = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + limit;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    client.Poll(absl::Milliseconds(50));
  }
  return true;
}

// The stream's data as received, guarded: the test reads it while the server thread waits.
struct Received {
  std::mutex mutex;
  std::string data;
  int pieces = 0;
  std::string Get() {
    std::lock_guard<std::mutex> lock(mutex);
    return data;
  }
};

TEST(HttpClientStreamTest, ChunksAreDeliveredAsTheyArriveThenDoneGetsTheStatus) {
  std::atomic<bool> release{false};
  ScriptServer server([&release](Connection& connection) {
    connection.StartChunked();
    connection.Chunk("first\n");
    // The second chunk waits until the client has seen the first: proof of delivery on arrival.
    for (int i = 0; i < 500 && !release; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    connection.Chunk("second\n");
    connection.EndChunked();
  });
  HttpClient client;
  Received received;
  std::optional<absl::StatusOr<HttpResponse>> result;
  HttpRequest request;
  request.url = server.Url("/watch");
  request.timeout = absl::InfiniteDuration();
  client.StartStream(
      request,
      [&received](std::string_view chunk) {
        std::lock_guard<std::mutex> lock(received.mutex);
        received.data.append(chunk);
      },
      [&result](absl::StatusOr<HttpResponse> response) { result = std::move(response); });
  EXPECT_EQ(client.in_flight(), 1u);
  ASSERT_TRUE(PollUntil(client, [&] { return received.Get() == "first\n"; }));
  EXPECT_FALSE(result.has_value());
  release = true;
  ASSERT_TRUE(PollUntil(client, [&] { return result.has_value(); }));
  ASSERT_TRUE(result->ok()) << result->status();
  EXPECT_EQ((*result)->status, 200);
  EXPECT_EQ((*result)->body, "");
  EXPECT_EQ(received.Get(), "first\nsecond\n");
  EXPECT_EQ(client.in_flight(), 0u);
}

TEST(HttpClientStreamTest, ErrorStatusBodyGoesToDoneNotToTheDataCallback) {
  ScriptServer server([](Connection& connection) {
    const std::string body = R"({"kind":"Status","code":410})";
    connection.Send(StrCat("HTTP/1.1 410 Gone\r\nContent-Length: ", body.size(),
                           "\r\nConnection: close\r\n\r\n", body));
  });
  HttpClient client;
  int pieces = 0;
  std::optional<absl::StatusOr<HttpResponse>> result;
  HttpRequest request;
  request.url = server.Url("/watch");
  client.StartStream(
      request, [&pieces](std::string_view) { ++pieces; },
      [&result](absl::StatusOr<HttpResponse> response) { result = std::move(response); });
  ASSERT_TRUE(PollUntil(client, [&] { return result.has_value(); }));
  ASSERT_TRUE(result->ok()) << result->status();
  EXPECT_EQ((*result)->status, 410);
  EXPECT_EQ((*result)->body, R"({"kind":"Status","code":410})");
  EXPECT_EQ(pieces, 0);
}

TEST(HttpClientStreamTest, StreamCutMidChunkIsATransportError) {
  ScriptServer server([](Connection& connection) {
    connection.StartChunked();
    connection.Chunk("whole\n");
    connection.Send("20\r\npart");  // announces 32 bytes, sends 4, then the connection closes
  });
  HttpClient client;
  Received received;
  std::optional<absl::StatusOr<HttpResponse>> result;
  HttpRequest request;
  request.url = server.Url("/watch?token=SECRET");
  client.StartStream(
      request, [&received](std::string_view chunk) { received.data.append(chunk); },
      [&result](absl::StatusOr<HttpResponse> response) { result = std::move(response); });
  ASSERT_TRUE(PollUntil(client, [&] { return result.has_value(); }));
  ASSERT_FALSE(result->ok());
  EXPECT_EQ(result->status().code(), absl::StatusCode::kUnavailable) << result->status();
  EXPECT_EQ(result->status().message().find("SECRET"), std::string::npos);
  EXPECT_TRUE(received.data.starts_with("whole\n")) << received.data;
}

TEST(HttpClientStreamTest, CancelMidStreamClosesTheConnectionAndRunsNoCallback) {
  std::atomic<bool> closed{false};
  ScriptServer server([&closed](Connection& connection) {
    connection.StartChunked();
    connection.Chunk("event\n");
    closed = connection.WaitClosed(std::chrono::seconds(10));
  });
  HttpClient client;
  Received received;
  bool done_called = false;
  HttpRequest request;
  request.url = server.Url("/watch");
  request.timeout = absl::InfiniteDuration();
  const HttpClient::RequestId id = client.StartStream(
      request, [&received](std::string_view chunk) { received.data.append(chunk); },
      [&done_called](absl::StatusOr<HttpResponse>) { done_called = true; });
  EXPECT_NE(id, 0u);
  ASSERT_TRUE(PollUntil(client, [&] { return received.data == "event\n"; }));
  EXPECT_TRUE(client.Cancel(id));
  EXPECT_FALSE(client.Cancel(id));
  EXPECT_EQ(client.in_flight(), 0u);
  const absl::Time start = absl::Now();
  EXPECT_TRUE(PollUntil(
      client, [&] { return closed.load(); }, absl::Seconds(5)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  client.Poll(absl::Milliseconds(50));
  EXPECT_FALSE(done_called);
}

TEST(HttpClientStreamTest, CancelFromInsideTheDataCallbackStopsTheStream) {
  std::atomic<bool> closed{false};
  ScriptServer server([&closed](Connection& connection) {
    connection.StartChunked();
    // Keeps sending until the client goes away, bounded in time.
    for (int i = 0; i < 500; ++i) {
      if (!connection.Chunk("tick\n")) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    closed = true;
  });
  HttpClient client;
  int pieces = 0;
  bool done_called = false;
  HttpRequest request;
  request.url = server.Url("/watch");
  HttpClient::RequestId id = 0;
  id = client.StartStream(
      request,
      [&](std::string_view) {
        ++pieces;
        EXPECT_TRUE(client.Cancel(id));
      },
      [&done_called](absl::StatusOr<HttpResponse>) { done_called = true; });
  ASSERT_TRUE(PollUntil(client, [&] { return pieces > 0; }));
  EXPECT_EQ(client.in_flight(), 0u);
  EXPECT_TRUE(PollUntil(
      client, [&] { return closed.load(); }, absl::Seconds(5)));
  EXPECT_EQ(pieces, 1);
  EXPECT_FALSE(done_called);
}

TEST(HttpClientStreamTest, RequestStartedFromTheDataCallbackCompletes) {
  ScriptServer server([](Connection& connection) {
    if (connection.request().starts_with("GET /watch ")) {
      connection.StartChunked();
      connection.Chunk("event\n");
      connection.WaitClosed(std::chrono::seconds(10));
      return;
    }
    connection.Send("HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody");
  });
  HttpClient client;
  std::optional<absl::StatusOr<HttpResponse>> inner;
  HttpRequest watch;
  watch.url = server.Url("/watch");
  const HttpClient::RequestId id = client.StartStream(
      watch,
      [&](std::string_view) {
        HttpRequest get;
        get.url = server.Url("/object");
        client.Start(
            get, [&inner](absl::StatusOr<HttpResponse> response) { inner = std::move(response); });
      },
      [](absl::StatusOr<HttpResponse>) {});
  ASSERT_TRUE(PollUntil(client, [&] { return inner.has_value(); }));
  ASSERT_TRUE(inner->ok()) << inner->status();
  EXPECT_EQ((*inner)->body, "body");
  EXPECT_TRUE(client.Cancel(id));
}

TEST(HttpClientStreamTest, TimerRunsOnTheInjectedClock) {
  int64_t now_ms = 5'000;
  HttpClient client(HttpClientOptions{.now_ms = [&now_ms] { return now_ms; }});
  int fired = 0;
  client.StartTimer(absl::Milliseconds(200), [&fired] { ++fired; });
  client.StartTimer(absl::Microseconds(100'500), [&fired] { fired += 10; });  // due at 101 ms
  client.Poll(absl::Milliseconds(10));
  EXPECT_EQ(fired, 0);
  now_ms += 100;
  client.Poll(absl::Milliseconds(10));
  EXPECT_EQ(fired, 0) << "a fraction of a millisecond is rounded up, never down";
  now_ms += 1;
  client.Poll(absl::Milliseconds(10));
  EXPECT_EQ(fired, 10);
  now_ms += 98;
  client.Poll(absl::Milliseconds(10));
  EXPECT_EQ(fired, 10);
  now_ms += 1;
  client.Poll(absl::Milliseconds(10));
  EXPECT_EQ(fired, 11);
}

// On real time on purpose: what it proves is that Poll() wakes up for a timer instead of sleeping
// its whole max_wait. The upper bound is loose for a loaded sanitizer build.
TEST(HttpClientStreamTest, TimerFiresAfterItsDelayAndShortensTheWait) {
  HttpClient client;
  const absl::Time start = absl::Now();
  std::optional<absl::Time> fired;
  bool cancelled_fired = false;
  client.StartTimer(absl::Milliseconds(200), [&fired] { fired = absl::Now(); });
  const HttpClient::RequestId cancelled =
      client.StartTimer(absl::Milliseconds(100), [&cancelled_fired] { cancelled_fired = true; });
  EXPECT_TRUE(client.Cancel(cancelled));
  for (int i = 0; i < 100 && !fired.has_value(); ++i) client.Poll(absl::Seconds(10));
  ASSERT_TRUE(fired.has_value());
  EXPECT_GE(*fired - start, absl::Milliseconds(190));
  EXPECT_LT(*fired - start, absl::Seconds(5));
  EXPECT_FALSE(cancelled_fired);
  EXPECT_EQ(client.in_flight(), 0u);
}

TEST(HttpClientStreamTest, CancelledRequestThatFailedEarlyRunsNoCallback) {
  HttpClient client;
  bool called = false;
  HttpRequest request;
  request.url = "ftp://127.0.0.1/file";
  const HttpClient::RequestId id =
      client.Start(request, [&called](absl::StatusOr<HttpResponse>) { called = true; });
  EXPECT_EQ(client.in_flight(), 1u);
  EXPECT_TRUE(client.Cancel(id));
  EXPECT_EQ(client.in_flight(), 0u);
  client.Poll(absl::Milliseconds(10));
  EXPECT_FALSE(called);
  EXPECT_FALSE(client.Cancel(id));
  EXPECT_FALSE(client.Cancel(12345));
}

TEST(HttpClientStreamTest, DestructorAbortsStreamsAndTimersWithoutCallbacks) {
  std::atomic<bool> closed{false};
  ScriptServer server([&closed](Connection& connection) {
    connection.StartChunked();
    connection.Chunk("event\n");
    closed = connection.WaitClosed(std::chrono::seconds(10));
  });
  bool called = false;
  {
    HttpClient client;
    HttpRequest request;
    request.url = server.Url("/watch");
    int pieces = 0;
    client.StartStream(
        request, [&pieces](std::string_view) { ++pieces; },
        [&called](absl::StatusOr<HttpResponse>) { called = true; });
    client.StartTimer(absl::Milliseconds(1), [&called] { called = true; });
    ASSERT_TRUE(PollUntil(client, [&] { return pieces > 0; }));
    called = false;  // the timer may have fired by now; only later callbacks count
  }
  for (int i = 0; i < 200 && !closed; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(closed);
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace mailring::control
