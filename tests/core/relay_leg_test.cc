#include "core/relay_leg.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
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

// The far end of a relay: reads `fd` and checks every byte against PatternByte(offset).
struct PatternReader {
  explicit PatternReader(int fd) : fd(fd) {}
  // Reads until `limit` bytes arrived, EOF (eof = true) or an error.
  void ReadUntil(size_t limit) {
    std::vector<uint8_t> buffer(1 << 16);
    while (received < limit) {
      const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
      if (n <= 0) {
        eof = n == 0;
        return;
      }
      for (ssize_t i = 0; i < n; ++i) {
        if (buffer[i] != PatternByte(received + i)) identical = false;
      }
      received += static_cast<size_t>(n);
    }
  }
  int fd;
  size_t received = 0;
  bool identical = true;
  bool eof = false;
};

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
  PatternReader check(rig.reader);
  std::thread reader([&] { check.ReadUntil(SIZE_MAX); });
  EXPECT_EQ(DriveUntilDone(leg, pool, std::chrono::seconds(30)), RelayLeg::Wait::kFinished);
  writer.join();
  reader.join();
  EXPECT_EQ(check.received, kBytes);
  EXPECT_TRUE(check.identical);
  EXPECT_TRUE(check.eof) << "the destination must see the source's EOF (half-close forwarded)";
  EXPECT_EQ(leg.bytes_relayed(), kBytes);
  EXPECT_EQ(leg.bytes_spliced(), kBytes) << "a splice-only leg splices every byte";
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

// --- The copy path (multishot recv + send) -----------------------------------------------------

// Stands in for the worker's multishot recv with provided buffers of `buffer_bytes`: while the
// leg wants it armed, each readable moment becomes one completion (recv(2) into a buffer);
// a cancel the leg asks for ends it with -ECANCELED on the next turn, as io_uring does.
struct FakeMultishotRecv {
  explicit FakeMultishotRecv(size_t buffer_bytes) : buffer(buffer_bytes) {}

  // One turn of the worker loop for `leg` after Pump() returned `wait`. Returns false once the
  // leg finished or failed.
  bool Turn(RelayLeg& leg, RelayLeg::Wait wait) {
    if (wait == RelayLeg::Wait::kFinished || wait == RelayLeg::Wait::kFailed) return false;
    if (leg.recv_cancel_needed()) leg.set_cancel_sent();
    if (wait == RelayLeg::Wait::kReceiving && !leg.recv_armed()) leg.set_recv_armed();
    if (leg.recv_armed()) {
      if (leg.recv_cancel_sent()) {
        leg.OnRecv(-ECANCELED, {}, false, /*more=*/false);
        ++cancels;
        return true;
      }
      pollfd p{leg.from_fd(), POLLIN, 0};
      if (::poll(&p, 1, 100) != 1) return true;
      const ssize_t n = ::recv(leg.from_fd(), buffer.data(), buffer.size(), MSG_DONTWAIT);
      if (n < 0 && errno == EAGAIN) return true;
      ++completions;
      const int result = n < 0 ? -errno : static_cast<int>(n);
      leg.OnRecv(result, std::string_view(buffer.data(), n > 0 ? static_cast<size_t>(n) : 0),
                 static_cast<size_t>(n) == buffer.size(), /*more=*/n > 0);
      return true;
    }
    pollfd p{};
    p = wait == RelayLeg::Wait::kWritable ? pollfd{leg.to_fd(), POLLOUT, 0}
                                          : pollfd{leg.from_fd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    return true;
  }

  std::vector<char> buffer;
  int completions = 0;
  int cancels = 0;
};

TEST(RelayLegTest, CopyPathSendsEachReceivedMessageAndKeepsTheRecv) {
  Rig rig;
  PipePool pool(2, 2);
  RelayLeg leg(rig.src, rig.dst, /*copy_below_bytes=*/16 * 1024);
  EXPECT_EQ(leg.Pump(pool, 1 << 20), RelayLeg::Wait::kReceiving);
  leg.set_recv_armed();
  leg.OnRecv(9, "a1 NOOP\r\n", /*filled_buffer=*/false, /*more=*/true);
  EXPECT_EQ(leg.Pump(pool, 1 << 20), RelayLeg::Wait::kReceiving);
  EXPECT_FALSE(leg.recv_cancel_needed()) << "small traffic keeps the multishot recv armed";
  EXPECT_EQ(pool.lent(), 0u) << "the copy path uses no pipe";
  char buffer[16];
  EXPECT_EQ(::recv(rig.reader, buffer, sizeof(buffer), 0), 9);
  EXPECT_EQ(std::string_view(buffer, 9), "a1 NOOP\r\n");
  EXPECT_EQ(leg.bytes_relayed(), 9u);
}

TEST(RelayLegTest, SourceEofOnTheCopyPathIsForwarded) {
  Rig rig;
  PipePool pool(2, 2);
  RelayLeg leg(rig.src, rig.dst, 16 * 1024);
  leg.set_recv_armed();
  leg.OnRecv(4, "bye\n", false, true);
  leg.OnRecv(0, {}, false, /*more=*/false);
  EXPECT_EQ(leg.Pump(pool, 1 << 20), RelayLeg::Wait::kFinished);
  char buffer[8];
  EXPECT_EQ(::recv(rig.reader, buffer, sizeof(buffer), 0), 4);
  EXPECT_EQ(::recv(rig.reader, buffer, sizeof(buffer), 0), 0) << "half-close forwarded";
}

TEST(RelayLegTest, RecvErrorOnTheCopyPathFails) {
  Rig rig;
  PipePool pool(2, 2);
  RelayLeg leg(rig.src, rig.dst, 16 * 1024);
  leg.set_recv_armed();
  leg.OnRecv(-ECONNRESET, {}, false, false);
  EXPECT_EQ(leg.Pump(pool, 1 << 20), RelayLeg::Wait::kFailed);
  EXPECT_EQ(leg.error(), ECONNRESET);
  EXPECT_TRUE(leg.source_failed());
}

// Issue 15: a source that fails after sending (the server's BYE, then a reset) must not lose
// what was queued for a full destination, nor what the kernel still holds from the source.
TEST(RelayLegTest, FailedSourceDeliversQueuedAndKernelHeldBytesFirst) {
  Rig rig;
  PipePool pool(2, 2);
  RelayLeg leg(rig.src, rig.dst, 16 * 1024);
  leg.set_recv_armed();
  std::string queued(8 << 20, 'q');  // more than the destination takes: part of it queues
  leg.OnRecv(static_cast<int>(queued.size()), queued, false, true);
  ASSERT_TRUE(leg.recv_cancel_needed()) << "the destination must be full for this test";
  const std::string last_words = "* BYE Too many invalid IMAP commands.\r\n";
  ASSERT_TRUE(::send(rig.writer, last_words.data(), last_words.size(), 0) ==
              static_cast<ssize_t>(last_words.size()));
  pollfd p{rig.src, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 2000), 1);
  // io_uring may report the reset while those bytes are still in the socket.
  leg.OnRecv(-ECONNRESET, {}, false, false);
  std::string received;
  std::thread reader([&] {
    char buffer[1 << 16];
    while (true) {
      const ssize_t n = ::recv(rig.reader, buffer, sizeof(buffer), 0);
      if (n <= 0) return;
      received.append(buffer, static_cast<size_t>(n));
    }
  });
  RelayLeg::Wait wait = RelayLeg::Wait::kWritable;
  for (int i = 0; i < 1000 && wait == RelayLeg::Wait::kWritable; ++i) {
    pollfd out{rig.dst, POLLOUT, 0};
    ::poll(&out, 1, 100);
    wait = leg.Pump(pool, 1 << 20);
  }
  EXPECT_EQ(wait, RelayLeg::Wait::kFailed);
  EXPECT_EQ(leg.error(), ECONNRESET);
  ::shutdown(rig.dst, SHUT_WR);
  reader.join();
  EXPECT_EQ(received, queued + last_words);
}

TEST(RelayLegTest, EmptyBufferRingFallsBackToSpliceAndComesBack) {
  Rig rig;
  PipePool pool(2, 2);
  RelayLeg leg(rig.src, rig.dst, 16 * 1024);
  leg.set_recv_armed();
  leg.OnRecv(-ENOBUFS, {}, false, false);  // io_uring ends a multishot recv this way
  ASSERT_EQ(::send(rig.writer, "a2 LIST \"\" *\r\n", 14, 0), 14);
  pollfd p{rig.src, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 2000), 1);
  // Splice reads what is there; a short read puts the leg back on the copy path.
  EXPECT_EQ(leg.Pump(pool, 1 << 20), RelayLeg::Wait::kReceiving);
  EXPECT_EQ(pool.lent(), 0u);
  char buffer[32];
  EXPECT_EQ(::recv(rig.reader, buffer, sizeof(buffer), 0), 14);
}

TEST(RelayLegTest, FullDestinationQueuesInOrderStopsTheRecvAndCatchesUp) {
  Rig rig;
  PipePool pool(2, 2);
  RelayLeg leg(rig.src, rig.dst, 16 * 1024);
  leg.set_recv_armed();
  // Nobody reads: feed 16 KiB completions until a send comes up short.
  std::string chunk(16 * 1024, '\0');
  size_t fed = 0;
  for (int i = 0; i < 4096 && !leg.recv_cancel_needed(); ++i) {
    for (size_t j = 0; j < chunk.size(); ++j) chunk[j] = static_cast<char>(PatternByte(fed + j));
    leg.OnRecv(static_cast<int>(chunk.size()), chunk, /*filled_buffer=*/false, true);
    fed += chunk.size();
  }
  ASSERT_TRUE(leg.recv_cancel_needed()) << "a short send must stop the recv (backpressure)";
  leg.set_cancel_sent();
  // The reader makes room; completions the recv delivers before its cancel lands must still
  // queue behind the backlog, not jump it into that room.
  PatternReader check(rig.reader);
  check.ReadUntil(256 * 1024);
  for (int i = 0; i < 3; ++i) {
    for (size_t j = 0; j < chunk.size(); ++j) chunk[j] = static_cast<char>(PatternByte(fed + j));
    leg.OnRecv(static_cast<int>(chunk.size()), chunk, false, true);
    fed += chunk.size();
  }
  // Until the recv's last completion, the source is not read by anything else.
  const RelayLeg::Wait before_last = leg.Pump(pool, 1 << 20);
  EXPECT_TRUE(before_last == RelayLeg::Wait::kWritable ||
              before_last == RelayLeg::Wait::kRecvEnding);
  leg.OnRecv(-ECANCELED, {}, false, false);
  EXPECT_FALSE(leg.recv_armed());
  std::thread reader([&] { check.ReadUntil(fed); });
  for (int i = 0; i < 1000 && leg.bytes_relayed() < fed; ++i) {
    pollfd p{rig.dst, POLLOUT, 0};
    ::poll(&p, 1, 100);
    EXPECT_NE(leg.Pump(pool, 1 << 20), RelayLeg::Wait::kFailed);
  }
  reader.join();
  EXPECT_EQ(check.received, fed);
  EXPECT_TRUE(check.identical) << "queued bytes must keep their order";
  EXPECT_EQ(leg.bytes_relayed(), fed);
}

TEST(RelayLegTest, MixedTrafficSwitchesBetweenCopyAndSpliceByteIdentically) {
  Rig rig;
  PipePool pool(4, 4, 256 * 1024);
  constexpr size_t kRecvBuffer = 16 * 1024;
  RelayLeg leg(rig.src, rig.dst, kRecvBuffer);
  // Commands and responses of a few bytes, then literals of several MiB, alternating: every
  // switch (copy → splice on a full buffer, splice → copy on a short read) is crossed.
  std::vector<size_t> messages;
  for (int round = 0; round < 6; ++round) {
    for (int i = 0; i < 20; ++i) messages.push_back(20 + i * 7);
    messages.push_back((3 << 20) + round * 4099);
  }
  size_t total = 0;
  for (size_t m : messages) total += m;
  std::thread writer([&] {
    std::vector<uint8_t> data(total);
    for (size_t i = 0; i < total; ++i) data[i] = PatternByte(i);
    size_t off = 0;
    for (size_t m : messages) {
      size_t sent = 0;
      while (sent < m) {
        const ssize_t n = ::send(rig.writer, data.data() + off + sent, m - sent, MSG_NOSIGNAL);
        if (n <= 0) return;
        sent += static_cast<size_t>(n);
      }
      off += m;
      if (m < kRecvBuffer) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    ::shutdown(rig.writer, SHUT_WR);
  });
  PatternReader check(rig.reader);
  std::thread reader([&] { check.ReadUntil(SIZE_MAX); });
  FakeMultishotRecv recv(kRecvBuffer);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  RelayLeg::Wait wait = leg.Pump(pool, 1 << 20);
  int splice_turns = 0;
  while (recv.Turn(leg, wait) && std::chrono::steady_clock::now() < deadline) {
    if (wait == RelayLeg::Wait::kReadable || wait == RelayLeg::Wait::kYield) ++splice_turns;
    wait = leg.Pump(pool, 1 << 20);
  }
  writer.join();
  reader.join();
  EXPECT_EQ(wait, RelayLeg::Wait::kFinished);
  EXPECT_EQ(check.received, total);
  EXPECT_TRUE(check.identical);
  EXPECT_TRUE(check.eof);
  EXPECT_EQ(leg.bytes_relayed(), total);
  // At least one recv per round: after each burst the leg is back on the copy path for the next
  // round's small messages. (Not one per message: on a loaded machine the writer's pauses do not
  // keep them apart, and 20 of them may arrive in a single recv; seen once in 20 ASan rounds.)
  EXPECT_GE(recv.completions, 6) << "small messages went through the copy path";
  EXPECT_GE(recv.cancels, 1) << "a burst stopped the recv to splice";
  EXPECT_GT(splice_turns, 0) << "bursts were spliced";
  EXPECT_EQ(pool.lent(), 0u);
}

TEST(RelayLegTest, ExhaustedPoolFallsBackToTheCopyPath) {
  Rig first;
  Rig second;
  PipePool pool(/*max_pipes=*/1, 1, 64 * 1024);
  RelayLeg blocked(first.src, first.dst);
  RelayLeg starved(second.src, second.dst, /*copy_below_bytes=*/16 * 1024);
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
  EXPECT_EQ(pool.counters().in_use.load(), 1u);
  // A 4 MiB burst on the second leg finds no pipe: it goes through the copy path, whole and in
  // order, instead of waiting for the stuck leg.
  constexpr size_t kBurst = 4 << 20;
  std::thread burst_writer([&] {
    std::vector<uint8_t> data(kBurst);
    for (size_t i = 0; i < kBurst; ++i) data[i] = PatternByte(i);
    ::send(second.writer, data.data(), data.size(), MSG_NOSIGNAL);
    ::shutdown(second.writer, SHUT_WR);
  });
  PatternReader check(second.reader);
  std::thread reader([&] { check.ReadUntil(SIZE_MAX); });
  FakeMultishotRecv recv(16 * 1024);
  starved.set_recv_armed();
  starved.OnRecv(-ENOBUFS, {}, false, false);  // ends the copy path: the next Pump() splices
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline &&
         recv.Turn(starved, starved.Pump(pool, 1 << 20))) {
  }
  burst_writer.join();
  reader.join();
  EXPECT_TRUE(starved.finished());
  EXPECT_EQ(check.received, kBurst);
  EXPECT_TRUE(check.identical);
  EXPECT_GE(pool.counters().copy_fallbacks.load(), 1u);
  EXPECT_GE(pool.counters().exhausted.load(), 1u);
  // Short reads (the writer's pace) end a burst and let the next one ask the pool again, but a
  // burst must not ask at every full buffer (that would cancel the recv ~256 times here).
  EXPECT_LT(recv.cancels * 4, recv.completions)
      << recv.cancels << " cancels in " << recv.completions << " completions";
  // Abandoning the blocked leg (its session closes) frees the pipe, closing it since it still
  // holds bytes.
  blocked.Abandon(pool);
  EXPECT_EQ(pool.lent(), 0u);
  EXPECT_EQ(pool.counters().in_use.load(), 0u);
  EXPECT_EQ(pool.idle(), 0u) << "a pipe with stale bytes is never reused";
  ::shutdown(first.reader, SHUT_RDWR);
  writer.join();
}

}  // namespace
}  // namespace mailring::core
