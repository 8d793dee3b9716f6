// ByteBuffer: a first-in first-out run of bytes in one heap block that recv(2) can fill in place.
//
// Why not std::string: making room in a string for a socket read zero-fills the room first (C++20
// has no resize_and_overwrite), and the alternative, reading into a stack buffer and appending,
// copies every byte once more. On the TLS relay, where each byte is already copied in by recv,
// decrypted and copied out by send, either is a fourth pass over the data. Room() hands out
// uninitialized space; Commit() says how much of it was written.
//
// Contract: single-threaded. readable() and mutable_readable() stay valid until the next Room(),
// Append() or Release(); Consume() only moves the start forward. The block grows to fit what is
// asked and is freed only by Release(), so a caller that goes idle releases it explicitly (an
// idle session must not keep a burst's capacity).
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string_view>

namespace mailring::core {

class ByteBuffer {
 public:
  ByteBuffer() = default;
  ByteBuffer(ByteBuffer&&) noexcept = default;
  ByteBuffer& operator=(ByteBuffer&&) noexcept = default;

  std::string_view readable() const { return {data_.get() + begin_, end_ - begin_}; }
  // The same bytes, writable: for transforming them in place (decrypting a record).
  std::span<char> mutable_readable() { return {data_.get() + begin_, end_ - begin_}; }
  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  size_t capacity() const { return capacity_; }

  // At least `bytes` of writable space right after the readable bytes (all of the block's free
  // tail is returned). Moves the readable bytes to the front of the block, or into a larger one,
  // when the tail is shorter.
  std::span<char> Room(size_t bytes);
  // `bytes` (at most the last Room()'s size) were written at the start of the room.
  void Commit(size_t bytes);
  void Append(std::string_view bytes);
  // Drops `bytes` (at most size()) from the front.
  void Consume(size_t bytes);
  // Frees the block if nothing is readable; keeps it otherwise.
  void Release();

 private:
  std::unique_ptr<char[]> data_;
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace mailring::core
