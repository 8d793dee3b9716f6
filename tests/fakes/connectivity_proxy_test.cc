#include "tests/fakes/connectivity_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <thread>

#include "gtest/gtest.h"
#include "proto/socks5.h"

namespace mailring::fakes {
namespace {

using namespace std::string_literals;  // NOLINT: SOCKS5 messages contain NUL bytes
using proto::Socks5Client;
using proto::Socks5ReplyReason;
using Outcome = Socks5Client::Outcome;

constexpr std::string_view kGoodJwt = "eyJhbGciOiJSUzI1NiJ9.good.sig";

void SetTimeouts(int fd) {
  timeval timeout{.tv_sec = 10, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
}

int ConnectTo(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  SetTimeouts(fd);
  return fd;
}

bool SendAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(n);
  }
  return true;
}

// Reads until EOF (or the 10 s receive timeout, or `limit` bytes).
std::string ReadToEnd(int fd, size_t limit = 64 << 20) {
  std::string out;
  char buffer[65536];
  while (out.size() < limit) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    out.append(buffer, n);
  }
  return out;
}

std::string ReadExactly(int fd, size_t size) {
  std::string out;
  char buffer[4096];
  while (out.size() < size) {
    const ssize_t n = recv(fd, buffer, std::min(sizeof(buffer), size - out.size()), 0);
    if (n <= 0) break;
    out.append(buffer, n);
  }
  return out;
}

// Echoes every connection until its EOF, then closes it. Threads bounded by Stop().
class EchoServer {
 public:
  EchoServer() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    EXPECT_EQ(listen(listen_fd_, 16), 0);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    acceptor_ = std::thread([this] { Accept(); });
  }
  ~EchoServer() {
    stop_.store(true);
    acceptor_.join();
    for (std::thread& thread : connections_) thread.join();
    close(listen_fd_);
  }
  uint16_t port() const { return port_; }

 private:
  void Accept() {
    while (!stop_.load()) {
      pollfd fds{listen_fd_, POLLIN, 0};
      if (poll(&fds, 1, 100) <= 0) continue;
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      connections_.emplace_back([this, fd] { Echo(fd); });
    }
  }
  void Echo(int fd) {
    SetTimeouts(fd);
    char buffer[65536];
    while (!stop_.load()) {
      pollfd fds{fd, POLLIN, 0};
      if (poll(&fds, 1, 100) <= 0) continue;
      const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      if (!SendAll(fd, std::string_view(buffer, n))) break;
    }
    close(fd);
  }

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::list<std::thread> connections_;  // only the acceptor adds, until stop_
};

struct Handshake {
  Outcome outcome = Outcome::kNeedMore;
  std::string failure;
  std::string leftover;  // bytes after the CONNECT reply
  int fd = -1;           // the caller closes it
};

// Runs proto::Socks5Client over a real socket to the proxy, as mailring's session will.
Handshake RunHandshake(uint16_t proxy_port, std::string_view jwt, std::string_view location_id,
                       std::string_view host, uint16_t port) {
  Handshake result;
  result.fd = ConnectTo(proxy_port);
  Socks5Client client(jwt, location_id, host, port);
  EXPECT_TRUE(SendAll(result.fd, client.Start()));
  std::string pending;
  for (int i = 0; i < 1000; ++i) {
    const Socks5Client::Step step = client.OnBytes(pending);
    pending.erase(0, step.consumed);
    switch (step.outcome) {
      case Outcome::kSend:
        EXPECT_TRUE(SendAll(result.fd, step.send));
        continue;
      case Outcome::kConnected:
      case Outcome::kFailed:
        result.outcome = step.outcome;
        result.failure = step.failure;
        result.leftover = pending;
        return result;
      case Outcome::kNeedMore: {
        char buffer[512];
        const ssize_t n = recv(result.fd, buffer, sizeof(buffer), 0);
        if (n <= 0) {
          result.failure = "connection closed during the handshake";
          return result;
        }
        pending.append(buffer, n);
      }
    }
  }
  result.failure = "handshake did not end";
  return result;
}

class FakeConnectivityProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(proxy_.Start().ok());
    proxy_.SetJwtValidator([](std::string_view jwt) { return jwt == kGoodJwt; });
    proxy_.AddMapping("virtual-imap", 143, echo_.port());
  }

  Handshake Connect(std::string_view jwt = kGoodJwt, std::string_view location_id = "",
                    std::string_view host = "virtual-imap", uint16_t port = 143) {
    return RunHandshake(proxy_.port(), jwt, location_id, host, port);
  }

  void ExpectFailure(Handshake handshake, std::string_view failure) {
    EXPECT_EQ(handshake.outcome, Outcome::kFailed);
    EXPECT_EQ(handshake.failure, failure);
    // The proxy closes after a failure.
    EXPECT_EQ(ReadToEnd(handshake.fd), "");
    close(handshake.fd);
  }

  EchoServer echo_;
  FakeConnectivityProxy proxy_;
};

TEST_F(FakeConnectivityProxyTest, MappedVirtualHostIsTunnelled) {
  Handshake handshake = Connect();
  ASSERT_EQ(handshake.outcome, Outcome::kConnected) << handshake.failure;
  EXPECT_EQ(handshake.leftover, "");
  ASSERT_TRUE(SendAll(handshake.fd, "a1 NOOP\r\n"));
  EXPECT_EQ(ReadExactly(handshake.fd, 9), "a1 NOOP\r\n");
  close(handshake.fd);
  EXPECT_EQ(proxy_.connections(), 1);
  EXPECT_EQ(proxy_.tunnels(), 1);
  EXPECT_EQ(proxy_.replies(0x00), 1);
  EXPECT_EQ(proxy_.auth_failures(), 0);
  EXPECT_EQ(proxy_.last_jwt(), kGoodJwt);
  EXPECT_EQ(proxy_.last_location_id(), "");
  EXPECT_EQ(proxy_.last_target(), "virtual-imap:143");
}

TEST_F(FakeConnectivityProxyTest, EveryBoundAddressTypeReachesTheClientParser) {
  for (uint8_t type : {0x01, 0x03, 0x04}) {
    SCOPED_TRACE(type);
    proxy_.SetBoundAddressType(type);
    Handshake handshake = Connect();
    ASSERT_EQ(handshake.outcome, Outcome::kConnected) << handshake.failure;
    ASSERT_TRUE(SendAll(handshake.fd, "ping"));
    EXPECT_EQ(handshake.leftover + ReadExactly(handshake.fd, 4 - handshake.leftover.size()),
              "ping");
    close(handshake.fd);
  }
}

TEST_F(FakeConnectivityProxyTest, EightMebibytesBothWaysWithHalfClose) {
  Handshake handshake = Connect();
  ASSERT_EQ(handshake.outcome, Outcome::kConnected) << handshake.failure;
  std::string payload(8 << 20, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>((i * 131) >> 7);
  std::thread writer([&] {
    EXPECT_TRUE(SendAll(handshake.fd, payload));
    shutdown(handshake.fd, SHUT_WR);  // the echo server sees EOF, closes, the proxy passes it on
  });
  const std::string echoed = ReadToEnd(handshake.fd);
  writer.join();
  EXPECT_EQ(echoed.size(), payload.size());
  EXPECT_TRUE(echoed == payload);
  close(handshake.fd);
}

TEST_F(FakeConnectivityProxyTest, LocationIdIsDecodedAndMustBeConnected) {
  proxy_.SetLocations({"", "Dallas1"});
  Handshake known = Connect(kGoodJwt, "Dallas1");
  EXPECT_EQ(known.outcome, Outcome::kConnected) << known.failure;
  EXPECT_EQ(proxy_.last_location_id(), "Dallas1");
  close(known.fd);

  ExpectFailure(Connect(kGoodJwt, "Berlin"), Socks5ReplyReason(0x03));
  EXPECT_EQ(proxy_.last_location_id(), "Berlin");
  EXPECT_EQ(proxy_.replies(0x03), 1);

  // No Cloud Connector without a location id any more.
  proxy_.SetLocations({"Dallas1"});
  ExpectFailure(Connect(kGoodJwt, ""), Socks5ReplyReason(0x03));
}

TEST_F(FakeConnectivityProxyTest, BadJwtFailsAuthentication) {
  ExpectFailure(Connect("eyJ.bad.sig"),
                "Connectivity Proxy rejected the JWT (authentication failed)");
  EXPECT_EQ(proxy_.auth_failures(), 1);
  EXPECT_EQ(proxy_.last_jwt(), "eyJ.bad.sig");
  EXPECT_EQ(proxy_.connect_requests(), 0);
}

TEST_F(FakeConnectivityProxyTest, BadJwtCanBeRejectedAtConnectInstead) {
  proxy_.SetRejectJwtAtConnect(true);
  ExpectFailure(Connect("eyJ.bad.sig"), Socks5ReplyReason(0x05));
  EXPECT_EQ(proxy_.auth_failures(), 1);
  EXPECT_EQ(proxy_.replies(0x05), 1);
}

TEST_F(FakeConnectivityProxyTest, UnmappedVirtualHostIsNotAllowed) {
  ExpectFailure(Connect(kGoodJwt, "", "virtual-imap", 993), Socks5ReplyReason(0x02));
  ExpectFailure(Connect(kGoodJwt, "", "other-host", 143), Socks5ReplyReason(0x02));
  EXPECT_EQ(proxy_.last_target(), "other-host:143");
  EXPECT_EQ(proxy_.replies(0x02), 2);
  EXPECT_EQ(proxy_.tunnels(), 0);
}

TEST_F(FakeConnectivityProxyTest, MappedPortThatRefusesIsHostUnreachable) {
  uint16_t closed_port = 0;
  {
    EchoServer gone;
    closed_port = gone.port();
  }
  proxy_.AddMapping("virtual-down", 143, closed_port);
  ExpectFailure(Connect(kGoodJwt, "", "virtual-down", 143), Socks5ReplyReason(0x04));
}

TEST_F(FakeConnectivityProxyTest, ForcedReplyCodes) {
  for (int code : {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x2a}) {
    SCOPED_TRACE(code);
    proxy_.ForceConnectReply(static_cast<uint8_t>(code));
    ExpectFailure(Connect(), Socks5ReplyReason(static_cast<uint8_t>(code)));
    EXPECT_EQ(proxy_.replies(static_cast<uint8_t>(code)), 1);
  }
  proxy_.ForceConnectReply(0);
  Handshake handshake = Connect();
  EXPECT_EQ(handshake.outcome, Outcome::kConnected) << handshake.failure;
  close(handshake.fd);
}

TEST_F(FakeConnectivityProxyTest, ClientWithoutMethod0x80GetsNoAcceptableMethod) {
  const int fd = ConnectTo(proxy_.port());
  ASSERT_TRUE(SendAll(fd, "\x05\x02\x00\x02"s));  // "none" and username/password
  EXPECT_EQ(ReadToEnd(fd), "\x05\xff"s);
  close(fd);
  EXPECT_EQ(proxy_.method_rejections(), 1);
}

TEST_F(FakeConnectivityProxyTest, Ipv6ConnectIsAddressTypeNotSupported) {
  const int fd = ConnectTo(proxy_.port());
  ASSERT_TRUE(SendAll(fd, "\x05\x01\x80"s));
  ASSERT_EQ(ReadExactly(fd, 2), "\x05\x80"s);
  ASSERT_TRUE(SendAll(fd, "\x01\x00\x00\x00"s + static_cast<char>(kGoodJwt.size()) +
                              std::string(kGoodJwt) + "\x00"s));
  ASSERT_EQ(ReadExactly(fd, 2), "\x01\x00"s);
  ASSERT_TRUE(SendAll(fd, "\x05\x01\x00\x04"s + std::string(15, '\0') + "\x01\x00\x8f"s));
  EXPECT_EQ(ReadToEnd(fd).substr(0, 2), "\x05\x08"s);
  close(fd);
}

TEST_F(FakeConnectivityProxyTest, IdleConnectionIsClosed) {
  FakeConnectivityProxy proxy;
  ASSERT_TRUE(proxy.Start().ok());
  proxy.SetIdleTimeout(std::chrono::milliseconds(200));
  const int fd = ConnectTo(proxy.port());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(ReadToEnd(fd), "");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  close(fd);
}

TEST_F(FakeConnectivityProxyTest, StopEndsOpenTunnels) {
  Handshake handshake = Connect();
  ASSERT_EQ(handshake.outcome, Outcome::kConnected) << handshake.failure;
  const auto start = std::chrono::steady_clock::now();
  proxy_.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(ReadToEnd(handshake.fd), "");
  close(handshake.fd);
}

}  // namespace
}  // namespace mailring::fakes
