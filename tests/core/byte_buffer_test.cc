#include "core/byte_buffer.h"

#include <cstring>
#include <string>
#include <string_view>

#include "gtest/gtest.h"

namespace mailring::core {
namespace {

// Writes `bytes` into the room the way recv(2) would.
void Receive(ByteBuffer& buffer, std::string_view bytes) {
  const std::span<char> room = buffer.Room(bytes.size());
  ASSERT_GE(room.size(), bytes.size());
  std::memcpy(room.data(), bytes.data(), bytes.size());
  buffer.Commit(bytes.size());
}

TEST(ByteBufferTest, StartsEmptyWithoutABlock) {
  ByteBuffer buffer;
  EXPECT_TRUE(buffer.empty());
  EXPECT_EQ(buffer.capacity(), 0u);
  EXPECT_EQ(buffer.readable(), "");
}

TEST(ByteBufferTest, CommittedRoomBecomesReadableInOrder) {
  ByteBuffer buffer;
  Receive(buffer, "hello ");
  buffer.Append("world");
  EXPECT_EQ(buffer.readable(), "hello world");
  EXPECT_EQ(buffer.size(), 11u);
}

TEST(ByteBufferTest, RoomIsOnlyWhatIsCommitted) {
  ByteBuffer buffer;
  const std::span<char> room = buffer.Room(100);
  EXPECT_GE(room.size(), 100u);
  std::memcpy(room.data(), "abc", 3);
  buffer.Commit(3);
  EXPECT_EQ(buffer.readable(), "abc");
}

TEST(ByteBufferTest, ConsumeDropsFromTheFrontAndAnEmptyBufferStartsOver) {
  ByteBuffer buffer;
  buffer.Append("0123456789");
  buffer.Consume(4);
  EXPECT_EQ(buffer.readable(), "456789");
  buffer.Consume(6);
  EXPECT_TRUE(buffer.empty());
  const size_t capacity = buffer.capacity();
  // Back at the front: the whole block is room again, without growing.
  EXPECT_EQ(buffer.Room(capacity).size(), capacity);
  EXPECT_EQ(buffer.capacity(), capacity);
}

TEST(ByteBufferTest, ShortTailMovesTheRestToTheFrontWithoutGrowing) {
  ByteBuffer buffer;
  const size_t capacity = buffer.Room(1).size();
  std::string bytes(capacity, 'x');
  bytes.replace(capacity - 3, 3, "end");
  buffer.Append(bytes);
  buffer.Consume(capacity - 3);  // "end" is left at the block's end
  const std::span<char> room = buffer.Room(capacity - 3);
  EXPECT_EQ(buffer.capacity(), capacity);
  EXPECT_EQ(room.size(), capacity - 3);
  EXPECT_EQ(buffer.readable(), "end");
}

TEST(ByteBufferTest, GrowsToFitAndKeepsTheReadableBytes) {
  ByteBuffer buffer;
  buffer.Append("keep");
  const size_t capacity = buffer.capacity();
  const std::span<char> room = buffer.Room(capacity * 3);
  EXPECT_GE(room.size(), capacity * 3);
  EXPECT_EQ(buffer.readable(), "keep");
  const std::string big(capacity * 3, 'y');
  std::memcpy(room.data(), big.data(), big.size());
  buffer.Commit(big.size());
  EXPECT_EQ(buffer.readable(), "keep" + big);
}

TEST(ByteBufferTest, MutableReadableChangesTheBytesInPlace) {
  ByteBuffer buffer;
  buffer.Append("abc");
  buffer.mutable_readable()[1] = 'X';
  EXPECT_EQ(buffer.readable(), "aXc");
}

TEST(ByteBufferTest, ReleaseFreesOnlyAnEmptyBuffer) {
  ByteBuffer buffer;
  buffer.Append("still needed");
  buffer.Release();
  EXPECT_EQ(buffer.readable(), "still needed");
  EXPECT_GT(buffer.capacity(), 0u);
  buffer.Consume(buffer.size());
  buffer.Release();
  EXPECT_EQ(buffer.capacity(), 0u);
  buffer.Append("again");
  EXPECT_EQ(buffer.readable(), "again");
}

}  // namespace
}  // namespace mailring::core
