#include "core/send_some.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"
#include "tests/core/loopback.h"

namespace mailring::core {
namespace {

using mailring::testing::SetNonBlocking;
using mailring::testing::TcpPair;

// Reads exactly `size` bytes from blocking `fd`.
std::string ReadExactly(int fd, size_t size) {
  std::string out;
  char buffer[65536];
  while (out.size() < size) {
    const ssize_t n = ::recv(fd, buffer, std::min(sizeof(buffer), size - out.size()), 0);
    if (n <= 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  return out;
}

class SendSomeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::tie(sender_, receiver_) = TcpPair();
    SetNonBlocking(sender_);
  }
  void TearDown() override {
    if (sender_ >= 0) ::close(sender_);
    ::close(receiver_);
  }
  int sender_ = -1;
  int receiver_ = -1;
};

TEST_F(SendSomeTest, PiecesArriveInOrderSkippingEmptyOnes) {
  const std::vector<std::string_view> pieces = {"", "one ", "", "two ", "three", ""};
  EXPECT_EQ(SendSome(sender_, pieces), 13);
  EXPECT_EQ(ReadExactly(receiver_, 13), "one two three");
}

TEST_F(SendSomeTest, MorePiecesThanOneCallTakesAllGo) {
  std::vector<std::string> storage;
  std::string expected;
  for (int i = 0; i < 300; ++i) {
    storage.push_back(std::to_string(i) + ",");
    expected += storage.back();
  }
  const std::vector<std::string_view> pieces(storage.begin(), storage.end());
  EXPECT_EQ(SendSome(sender_, pieces), static_cast<ssize_t>(expected.size()));
  EXPECT_EQ(ReadExactly(receiver_, expected.size()), expected);
}

TEST_F(SendSomeTest, AFullSocketStopsMidPieceAndTheRestFollowsLater) {
  // Pieces far larger than the socket buffers: the first call must stop short.
  const std::string first(4 << 20, 'a');
  const std::string second(4 << 20, 'b');
  std::vector<std::string_view> pieces = {first, second};
  const ssize_t sent = SendSome(sender_, pieces);
  ASSERT_GT(sent, 0);
  ASSERT_LT(static_cast<size_t>(sent), first.size() + second.size());
  // The caller trims what went and sends the rest once the reader drained some.
  std::string received = ReadExactly(receiver_, static_cast<size_t>(sent));
  size_t total = static_cast<size_t>(sent);
  for (int round = 0; round < 10000 && total < first.size() + second.size(); ++round) {
    size_t skip = total;
    std::vector<std::string_view> rest;
    for (std::string_view piece : pieces) {
      const size_t drop = std::min(skip, piece.size());
      skip -= drop;
      piece.remove_prefix(drop);
      if (!piece.empty()) rest.push_back(piece);
    }
    const ssize_t more = SendSome(sender_, rest);
    ASSERT_GE(more, 0);
    total += static_cast<size_t>(more);
    received += ReadExactly(receiver_, static_cast<size_t>(more));
  }
  EXPECT_EQ(total, first.size() + second.size());
  EXPECT_TRUE(received == first + second) << "the bytes differ or are out of order";
}

TEST_F(SendSomeTest, APeerThatClosedIsAnError) {
  ::close(receiver_);
  receiver_ = ::dup(sender_);  // keeps TearDown simple; never read
  ::shutdown(sender_, SHUT_WR);
  const std::vector<std::string_view> pieces = {"after", "shutdown"};
  EXPECT_EQ(SendSome(sender_, pieces), -EPIPE);
}

}  // namespace
}  // namespace mailring::core
