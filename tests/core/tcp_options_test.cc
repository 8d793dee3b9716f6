#include "core/tcp_options.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace mailring::core {
namespace {

int IntOption(int fd, int level, int name) {
  int value = -1;
  socklen_t length = sizeof(value);
  ::getsockopt(fd, level, name, &value, &length);
  return value;
}

// The worker relies on this to skip five setsockopt calls per accepted session.
TEST(TcpOptionsTest, AcceptedSocketsInheritTheListenersOptions) {
  WorkerOptions options;
  options.keepalive_idle_s = 77;
  options.keepalive_interval_s = 11;
  options.keepalive_count = 3;
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  SetTcpOptions(listener, options);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  socklen_t length = sizeof(address);
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
  const int client = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  const int accepted = ::accept(listener, nullptr, nullptr);
  ASSERT_GE(accepted, 0);
  EXPECT_EQ(IntOption(accepted, IPPROTO_TCP, TCP_NODELAY), 1);
  EXPECT_EQ(IntOption(accepted, SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(IntOption(accepted, IPPROTO_TCP, TCP_KEEPIDLE), 77);
  EXPECT_EQ(IntOption(accepted, IPPROTO_TCP, TCP_KEEPINTVL), 11);
  EXPECT_EQ(IntOption(accepted, IPPROTO_TCP, TCP_KEEPCNT), 3);
  ::close(accepted);
  ::close(client);
  ::close(listener);
}

}  // namespace
}  // namespace mailring::core
