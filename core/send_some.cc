#include "core/send_some.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cerrno>

namespace mailring::core {

ssize_t SendSome(int fd, std::string_view bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n =
        ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    return n < 0 ? -errno : -EPIPE;
  }
  return static_cast<ssize_t>(off);
}

ssize_t SendSome(int fd, std::span<const std::string_view> pieces) {
  // Up to this many pieces per sendmsg: a relay batch holds about four 16 KiB records.
  constexpr size_t kMaxPiecesPerCall = 64;
  size_t total = 0;
  size_t piece = 0;
  size_t piece_offset = 0;  // bytes of pieces[piece] already sent
  while (piece < pieces.size()) {
    std::array<iovec, kMaxPiecesPerCall> vectors;
    size_t count = 0;
    size_t asked = 0;
    for (size_t i = piece; i < pieces.size() && count < vectors.size(); ++i) {
      const size_t skip = i == piece ? piece_offset : 0;
      if (pieces[i].size() == skip) continue;
      vectors[count].iov_base = const_cast<char*>(pieces[i].data() + skip);
      vectors[count].iov_len = pieces[i].size() - skip;
      asked += vectors[count].iov_len;
      ++count;
    }
    if (count == 0) break;
    msghdr message{};
    message.msg_iov = vectors.data();
    message.msg_iovlen = count;
    const ssize_t n = ::sendmsg(fd, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      return n < 0 ? -errno : -EPIPE;
    }
    total += static_cast<size_t>(n);
    size_t left = static_cast<size_t>(n);
    while (left > 0) {
      const size_t in_piece = std::min(left, pieces[piece].size() - piece_offset);
      left -= in_piece;
      piece_offset += in_piece;
      if (piece_offset == pieces[piece].size()) {
        ++piece;
        piece_offset = 0;
      }
    }
    if (static_cast<size_t>(n) < asked) break;  // the socket is full
  }
  return static_cast<ssize_t>(total);
}

}  // namespace mailring::core
