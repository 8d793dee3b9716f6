#include "core/relay_leg.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/core/loopback.h"

namespace mailring::core {
namespace {

using mailring::testing::SetNonBlocking;
using mailring::testing::TcpPair;

// A relay under test: writer → [src] leg [dst] → reader.
struct Rig {
  Rig() {
    auto [w, s] = TcpPair();
    auto [d, r] = TcpPair();
    writer = w;
    src = s;
    dst = d;
    reader = r;
    SetNonBlocking(src);
    SetNonBlocking(dst);
  }
  ~Rig() {
    for (int fd : {writer, src, dst, reader}) ::close(fd);
  }
  int writer, src, dst, reader;
};

uint8_t PatternByte(size_t i) { return static_cast<uint8_t>((i * 2654435761u) >> 13); }

// Drives `leg` the way a worker does, with poll(2) standing in for io_uring, until it
// finishes or fails or the deadline passes.
RelayLeg::Wait DriveUntilDone(RelayLeg& leg, PipePool& pool, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    const RelayLeg::Wait wait = leg.Pump(pool, 256 * 1024);
    if (wait == RelayLeg::Wait::kFinished || wait == RelayLeg::Wait::kFailed) return wait;
    pollfd p{};
    if (wait == RelayLeg::Wait::kWritable) {
      p = {leg.to_fd(), POLLOUT, 0};
    } else {
      p = {leg.from_fd(), POLLIN, 0};
    }
    ::poll(&p, 1, 100);
  }
  return RelayLeg::Wait::kFailed;
}

TEST(RelayLegTest, SplicesTwentyMebibytesByteIdenticalAndForwardsEof) {
  Rig rig;
  PipePool pool(4, 4);
  RelayLeg leg(rig.src, rig.dst);
  constexpr size_t kBytes = 20 << 20;
  std::thread writer([&] {
    std::vector<uint8_t> data(kBytes);
    for (size_t i = 0; i < kBytes; ++i) data[i] = PatternByte(i);
    size_t off = 0;
    while (off < kBytes) {
      const ssize_t n = ::send(rig.writer, data.data() + off, kBytes - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    ::shutdown(rig.writer, SHUT_WR);
  });
  size_t received = 0;
  bool identical = true;
  bool eof = false;
  std::thread reader([&] {
    std::vector<uint8_t> buffer(1 << 16);
    while (true) {
      const ssize_t n = ::recv(rig.reader, buffer.data(), buffer.size(), 0);
      if (n <= 0) {
        eof = n == 0;
        break;
      }
      for (ssize_t i = 0; i < n; ++i) {
        if (buffer[i] != PatternByte(received + i)) identical = false;
      }
      received += static_cast<size_t>(n);
    }
  });
  EXPECT_EQ(DriveUntilDone(leg, pool, std::chrono::seconds(30)), RelayLeg::Wait::kFinished);
  writer.join();
  reader.join();
  EXPECT_EQ(received, kBytes);
  EXPECT_TRUE(identical);
  EXPECT_TRUE(eof) << "the destination must see the source's EOF (half-close forwarded)";
  EXPECT_EQ(leg.bytes_relayed(), kBytes);
  EXPECT_EQ(pool.lent(), 0u) << "a finished leg holds no pipe";
}

TEST(RelayLegTest, IdleLegHoldsNoPipe) {
  Rig rig;
  PipePool pool(4, 4);
  RelayLeg leg(rig.src, rig.dst);
  ASSERT_EQ(::send(rig.writer, "a1 NOOP\r\n", 9, 0), 9);
  // Wait until the bytes arrived, then pump: they go through and the pipe comes back.
  pollfd p{rig.src, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 2000), 1);
  EXPECT_EQ(leg.Pump(pool, 1 << 20), RelayLeg::Wait::kReadable);
  EXPECT_EQ(pool.lent(), 0u);
  EXPECT_EQ(pool.idle(), 1u);
  char buffer[16];
  EXPECT_EQ(::recv(rig.reader, buffer, sizeof(buffer), 0), 9);
}

TEST(RelayLegTest, SlowReaderStopsTheSourceBeingRead) {
  Rig rig;
  PipePool pool(4, 4, 64 * 1024);
  RelayLeg leg(rig.src, rig.dst);
  // Fill more than the destination's socket buffers can take while nobody reads.
  const std::string chunk(1 << 20, 'x');
  std::thread writer([&] {
    for (int i = 0; i < 16; ++i) {
      if (::send(rig.writer, chunk.data(), chunk.size(), MSG_NOSIGNAL) <= 0) break;
    }
    ::shutdown(rig.writer, SHUT_WR);
  });
  RelayLeg::Wait wait = RelayLeg::Wait::kReadable;
  for (int i = 0; i < 200 && wait != RelayLeg::Wait::kWritable; ++i) {
    pollfd p{rig.src, POLLIN, 0};
    ::poll(&p, 1, 50);
    wait = leg.Pump(pool, 64 << 20);
  }
  ASSERT_EQ(wait, RelayLeg::Wait::kWritable);
  EXPECT_EQ(pool.lent(), 1u) << "bytes in flight keep their pipe";
  const uint64_t relayed = leg.bytes_relayed();
  EXPECT_LT(relayed, 16u << 20);
  // Still blocked: pumping again moves nothing and does not read the source.
  EXPECT_EQ(leg.Pump(pool, 64 << 20), RelayLeg::Wait::kWritable);
  EXPECT_EQ(leg.bytes_relayed(), relayed);
  // Now read everything; the leg catches up.
  size_t received = 0;
  std::thread reader([&] {
    std::vector<char> buffer(1 << 16);
    ssize_t n;
    while ((n = ::recv(rig.reader, buffer.data(), buffer.size(), 0)) > 0) received += n;
  });
  EXPECT_EQ(DriveUntilDone(leg, pool, std::chrono::seconds(30)), RelayLeg::Wait::kFinished);
  writer.join();
  reader.join();
  EXPECT_EQ(received, 16u << 20);
}

TEST(RelayLegTest, ExhaustedPoolMakesTheLegWait) {
  Rig first;
  Rig second;
  PipePool pool(/*max_pipes=*/1, 1, 64 * 1024);
  RelayLeg blocked(first.src, first.dst);
  RelayLeg waiting(second.src, second.dst);
  // The first leg's reader never reads: its pipe stays lent.
  const std::string chunk(4 << 20, 'y');
  std::thread writer([&] { ::send(first.writer, chunk.data(), chunk.size(), MSG_NOSIGNAL); });
  RelayLeg::Wait wait = RelayLeg::Wait::kReadable;
  for (int i = 0; i < 200 && wait != RelayLeg::Wait::kWritable; ++i) {
    pollfd p{first.src, POLLIN, 0};
    ::poll(&p, 1, 50);
    wait = blocked.Pump(pool, 64 << 20);
  }
  ASSERT_EQ(wait, RelayLeg::Wait::kWritable);
  ASSERT_EQ(::send(second.writer, "x", 1, 0), 1);
  pollfd p{second.src, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 2000), 1);
  EXPECT_EQ(waiting.Pump(pool, 1 << 20), RelayLeg::Wait::kPipe);
  // Abandoning the blocked leg (its session closes) frees the pipe, closing it since it still
  // holds bytes; the waiting leg then proceeds.
  blocked.Abandon(pool);
  EXPECT_EQ(pool.lent(), 0u);
  EXPECT_EQ(pool.idle(), 0u) << "a pipe with stale bytes is never reused";
  EXPECT_EQ(waiting.Pump(pool, 1 << 20), RelayLeg::Wait::kReadable);
  char c;
  EXPECT_EQ(::recv(second.reader, &c, 1, 0), 1);
  ::shutdown(first.reader, SHUT_RDWR);
  writer.join();
}

TEST(RelayLegTest, ResetSourceFails) {
  Rig rig;
  PipePool pool(2, 2);
  RelayLeg leg(rig.src, rig.dst);
  linger hard{1, 0};
  ::setsockopt(rig.writer, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
  ::close(rig.writer);  // RST
  rig.writer = ::socket(AF_INET, SOCK_STREAM, 0);
  pollfd p{rig.src, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 2000), 1);
  EXPECT_EQ(leg.Pump(pool, 1 << 20), RelayLeg::Wait::kFailed);
  EXPECT_EQ(leg.error(), ECONNRESET);
  leg.Abandon(pool);
  EXPECT_EQ(pool.lent(), 0u);
}

}  // namespace
}  // namespace mailring::core
