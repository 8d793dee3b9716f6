#include "core/byte_buffer.h"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace mailring::core {
namespace {

// The smallest block worth allocating. Small on purpose: a TLS handshake feeds a few KiB at a
// time, and thousands of sessions logging in at once must not each hold a record-sized block
// (the relay asks for its 64 KiB reads explicitly and releases them when it waits).
constexpr size_t kMinimumCapacity = 1024;

}  // namespace

std::span<char> ByteBuffer::Room(size_t bytes) {
  if (capacity_ - end_ < bytes) {
    const size_t readable = size();
    if (readable + bytes <= capacity_) {
      // Enough space in the block, split between its head and its tail: move the readable bytes
      // (usually less than one record) to the front.
      std::memmove(data_.get(), data_.get() + begin_, readable);
    } else {
      const size_t capacity = std::max({readable + bytes, 2 * capacity_, kMinimumCapacity});
      std::unique_ptr<char[]> grown = std::make_unique_for_overwrite<char[]>(capacity);
      if (readable > 0) std::memcpy(grown.get(), data_.get() + begin_, readable);
      data_ = std::move(grown);
      capacity_ = capacity;
    }
    begin_ = 0;
    end_ = readable;
  }
  return {data_.get() + end_, capacity_ - end_};
}

void ByteBuffer::Commit(size_t bytes) {
  assert(bytes <= capacity_ - end_);
  end_ += bytes;
}

void ByteBuffer::Append(std::string_view bytes) {
  if (bytes.empty()) return;
  std::memcpy(Room(bytes.size()).data(), bytes.data(), bytes.size());
  Commit(bytes.size());
}

void ByteBuffer::Consume(size_t bytes) {
  assert(bytes <= size());
  begin_ += bytes;
  if (begin_ == end_) begin_ = end_ = 0;  // the next Room() starts at the front again
}

void ByteBuffer::Release() {
  if (!empty()) return;
  data_.reset();
  capacity_ = begin_ = end_ = 0;
}

}  // namespace mailring::core
