// SendSome: one non-blocking send loop for every place the data plane writes to a socket from
// user memory (pre-relay lines, the relay's copy path, the TLS relay's records and plaintext).
//
// Contract: `fd` is a stream socket; sends with MSG_DONTWAIT | MSG_NOSIGNAL, retries EINTR, and
// stops at the first EAGAIN. Returns the bytes sent (possibly fewer than asked: the socket is
// full), or -errno on any other failure (-EPIPE if send returns 0).
#pragma once

#include <sys/types.h>

#include <span>
#include <string_view>

namespace mailring::core {

ssize_t SendSome(int fd, std::string_view bytes);
// The same for bytes in several places (sendmsg(2) with one iovec per piece; the TLS relay's
// plaintext, opened in place inside its records): bytes sent across the pieces, in order.
ssize_t SendSome(int fd, std::span<const std::string_view> pieces);

}  // namespace mailring::core
