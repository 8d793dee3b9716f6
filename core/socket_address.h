// SocketAddress: an IPv4 or IPv6 address and port, as given to bind(2) and connect(2).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace mailring::core {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  int family() const { return storage.ss_family; }
  uint16_t port() const;
  bool IsLoopback() const;
  std::string ToString() const;  // "127.0.0.1:1143", "[::1]:143"

  // "127.0.0.1:1143", "[::1]:1143", "0.0.0.0:143": numeric only, no name lookup. Port 0 (let
  // the kernel choose) only with allow_any_port.
  static absl::StatusOr<SocketAddress> ParseNumeric(std::string_view host_port,
                                                    bool allow_any_port = false);
  // Numeric address or host name (getaddrinfo, blocking: never call it on a worker thread).
  // The first address returned wins.
  static absl::StatusOr<SocketAddress> Resolve(std::string_view host, uint16_t port);
};

}  // namespace mailring::core
