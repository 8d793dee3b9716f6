#include "control/admin_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "gtest/gtest.h"

namespace mailring::control {
namespace {

std::string Get(uint16_t port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval timeout{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return "";
  }
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string response;
  char buffer[4096];
  ssize_t n;
  while ((n = ::recv(fd, buffer, sizeof(buffer), 0)) > 0) response.append(buffer, n);
  ::close(fd);
  return response;
}

TEST(AdminServerTest, ServesHealthReadinessAndMetrics) {
  std::atomic<bool> ready{false};
  AdminServer::Handlers handlers;
  handlers.readiness = [&]() -> std::string { return ready ? "" : "2 of 4 listeners open"; };
  handlers.metrics = [] { return std::string("mailring_sessions_open 3\n"); };
  AdminServer ephemeral(*core::SocketAddress::ParseNumeric("127.0.0.1:0", /*allow_any_port=*/true), handlers);
  ASSERT_TRUE(ephemeral.Start().ok());
  const uint16_t port = ephemeral.port();
  ASSERT_NE(port, 0);

  const std::string health = Get(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(health.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << health;

  std::string readiness = Get(port, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(readiness.rfind("HTTP/1.1 503 ", 0), 0u) << readiness;
  EXPECT_NE(readiness.find("2 of 4 listeners open"), std::string::npos) << readiness;
  ready = true;
  readiness = Get(port, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(readiness.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << readiness;

  const std::string metrics = Get(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(metrics.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(metrics.find("mailring_sessions_open 3\n"), std::string::npos) << metrics;

  EXPECT_EQ(Get(port, "GET /nope HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404 ", 0), 0u);
  EXPECT_EQ(Get(port, "POST /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405 ", 0), 0u);
  EXPECT_EQ(Get(port, "garbage\r\n\r\n").rfind("HTTP/1.1 400 ", 0), 0u);
  ephemeral.Stop();
}

TEST(AdminServerTest, SilentClientDoesNotBlockTheServerForever) {
  AdminServer server(*core::SocketAddress::ParseNumeric("127.0.0.1:0", /*allow_any_port=*/true), {});
  ASSERT_TRUE(server.Start().ok());
  const int silent = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(server.port());
  ASSERT_EQ(::connect(silent, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  // The next client is served once the silent one times out (2 s).
  const std::string health = Get(server.port(), "GET /healthz HTTP/1.1\r\n\r\n");
  EXPECT_EQ(health.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
  ::close(silent);
  server.Stop();
}

TEST(AdminServerTest, HeadAnswersTheHeadWithoutTheBody) {
  AdminServer::Handlers handlers;
  handlers.metrics = [] { return std::string("mailring_up 1\n"); };
  AdminServer server(*core::SocketAddress::ParseNumeric("127.0.0.1:0", /*allow_any_port=*/true),
                     handlers);
  ASSERT_TRUE(server.Start().ok());
  const std::string head = Get(server.port(), "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << head;
  EXPECT_NE(head.find("Content-Length: 14\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n") << "no body after the head: " << head;
  server.Stop();
}

TEST(AdminServerTest, ScraperThatStopsReadingDoesNotStallTheServer) {
  AdminServer::Handlers handlers;
  handlers.metrics = [] { return std::string(32 << 20, 'x'); };  // far more than socket buffers
  AdminServer server(*core::SocketAddress::ParseNumeric("127.0.0.1:0", /*allow_any_port=*/true),
                     handlers);
  ASSERT_TRUE(server.Start().ok());
  const int stuck = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int small = 4096;
  ::setsockopt(stuck, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(server.port());
  ASSERT_EQ(::connect(stuck, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  const std::string request = "GET /metrics HTTP/1.1\r\n\r\n";
  ASSERT_EQ(::send(stuck, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  // The stuck scraper never reads; the next request is served once the write gives up (2 s),
  // where a blocking write would wait forever (Get's own 5 s receive timeout would fail it).
  const std::string health = Get(server.port(), "GET /healthz HTTP/1.1\r\n\r\n");
  EXPECT_EQ(health.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << health.substr(0, 100);
  ::close(stuck);
  server.Stop();
}

}  // namespace
}  // namespace mailring::control
