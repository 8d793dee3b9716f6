#include "core/send_some.h"

#include <sys/socket.h>

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

}  // namespace mailring::core
