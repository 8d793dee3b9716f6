#include "core/socket_address.h"

#include "gtest/gtest.h"

namespace mailring::core {
namespace {

TEST(SocketAddressTest, ParsesIpv4AndIpv6) {
  absl::StatusOr<SocketAddress> v4 = SocketAddress::ParseNumeric("127.0.0.1:1143");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->ToString(), "127.0.0.1:1143");
  EXPECT_TRUE(v4->IsLoopback());
  absl::StatusOr<SocketAddress> v6 = SocketAddress::ParseNumeric("[::1]:143");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->ToString(), "[::1]:143");
  EXPECT_EQ(v6->port(), 143);
}

TEST(SocketAddressTest, RejectsBadInputWithReason) {
  for (const char* bad : {"127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:14x",
                          "mail.example.org:143", "[::1]143", ":143"}) {
    absl::StatusOr<SocketAddress> parsed = SocketAddress::ParseNumeric(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
  }
}

TEST(SocketAddressTest, ResolvesLocalhost) {
  absl::StatusOr<SocketAddress> resolved = SocketAddress::Resolve("localhost", 143);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_TRUE(resolved->IsLoopback());
  EXPECT_EQ(resolved->port(), 143);
}

TEST(SocketAddressTest, UnresolvableNameIsUnavailable) {
  absl::StatusOr<SocketAddress> resolved = SocketAddress::Resolve("no-such-host.invalid", 143);
  EXPECT_FALSE(resolved.ok());
}

}  // namespace
}  // namespace mailring::core
