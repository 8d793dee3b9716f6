#include "tests/fakes/connectivity_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/status/statusor.h"
#include "proto/sasl.h"
#include "proto/str_cat.h"

namespace mailring::fakes {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxConnections = 128;
constexpr uint32_t kMaxJwtBytes = 64 * 1024;  // longer: rejected without reading it
constexpr size_t kRelayBufferBytes = 64 * 1024;
constexpr auto kBackendConnectTimeout = std::chrono::seconds(5);

constexpr uint8_t kVersion = 0x05;
constexpr uint8_t kMethodJwt = 0x80;
constexpr uint8_t kMethodNoneAcceptable = 0xFF;
constexpr uint8_t kAuthenticationVersion = 0x01;
constexpr uint8_t kCommandConnect = 0x01;
constexpr uint8_t kAddressIpv4 = 0x01;
constexpr uint8_t kAddressDomain = 0x03;
constexpr uint8_t kAddressIpv6 = 0x04;

constexpr uint8_t kReplySucceeded = 0x00;
constexpr uint8_t kReplyNotAllowed = 0x02;          // no access-control mapping
constexpr uint8_t kReplyNetworkUnreachable = 0x03;  // no Cloud Connector for the location
constexpr uint8_t kReplyHostUnreachable = 0x04;
constexpr uint8_t kReplyConnectionRefused = 0x05;  // SAP: authentication failure
constexpr uint8_t kReplyCommandNotSupported = 0x07;
constexpr uint8_t kReplyAddressNotSupported = 0x08;

int PollTimeoutMs(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left.count(), 1000));
}

void SetNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

// A connected non-blocking socket to 127.0.0.1:port, or -1 (refused, or no answer in time).
int ConnectLoopback(uint16_t port, int wake_fd) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) return fd;
  if (errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  const Clock::time_point deadline = Clock::now() + kBackendConnectTimeout;
  while (Clock::now() < deadline) {
    pollfd fds[2] = {{fd, POLLOUT, 0}, {wake_fd, POLLIN, 0}};
    if (poll(fds, 2, PollTimeoutMs(deadline)) < 0 && errno != EINTR) break;
    if (fds[1].revents != 0) break;
    if (fds[0].revents != 0) {
      int error = 0;
      socklen_t length = sizeof(error);
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
      if (error == 0) return fd;
      break;
    }
  }
  close(fd);
  return -1;
}

}  // namespace

// One accepted connection, on its own thread: handshake, then relay. Owns client_fd_ and
// backend_fd_ (closed by the destructor).
class FakeConnectivityProxy::Session {
 public:
  Session(FakeConnectivityProxy* proxy, int client_fd)
      : proxy_(proxy), client_fd_(client_fd), settings_(proxy->CurrentSettings()) {}
  ~Session() {
    if (backend_fd_ >= 0) close(backend_fd_);
    close(client_fd_);
  }

  void Run() {
    std::optional<bool> jwt_accepted = Authenticate();
    if (!jwt_accepted) return;
    uint8_t reply = kReplySucceeded;
    std::string target;
    if (!ReadConnect(*jwt_accepted, &reply, &target)) return;
    if (!Reply(reply)) return;
    if (reply == kReplySucceeded) Relay();
  }

 private:
  // Method negotiation and the 0x80 sub-negotiation. nullopt: the connection is over; otherwise
  // whether the JWT was accepted (false only when rejection is deferred to CONNECT).
  std::optional<bool> Authenticate() {
    std::string bytes;
    if (!ReadExact(2, &bytes) || static_cast<uint8_t>(bytes[0]) != kVersion) return std::nullopt;
    std::string methods;
    if (!ReadExact(static_cast<uint8_t>(bytes[1]), &methods)) return std::nullopt;
    if (methods.find(static_cast<char>(kMethodJwt)) == std::string::npos) {
      Increment(&proxy_->method_rejections_);
      WriteAll(std::string{static_cast<char>(kVersion), static_cast<char>(kMethodNoneAcceptable)});
      return std::nullopt;
    }
    if (!WriteAll(std::string{static_cast<char>(kVersion), static_cast<char>(kMethodJwt)})) {
      return std::nullopt;
    }

    if (!ReadExact(5, &bytes) || static_cast<uint8_t>(bytes[0]) != kAuthenticationVersion) {
      return std::nullopt;
    }
    const uint32_t jwt_size = (uint32_t{static_cast<uint8_t>(bytes[1])} << 24) |
                              (uint32_t{static_cast<uint8_t>(bytes[2])} << 16) |
                              (uint32_t{static_cast<uint8_t>(bytes[3])} << 8) |
                              uint32_t{static_cast<uint8_t>(bytes[4])};
    if (jwt_size > kMaxJwtBytes) {
      Increment(&proxy_->auth_failures_);
      WriteAll(std::string{static_cast<char>(kAuthenticationVersion), 0x01});
      return std::nullopt;
    }
    std::string jwt;
    std::string location_size;
    std::string encoded_location;
    if (!ReadExact(jwt_size, &jwt) || !ReadExact(1, &location_size) ||
        !ReadExact(static_cast<uint8_t>(location_size[0]), &encoded_location)) {
      return std::nullopt;
    }
    absl::StatusOr<std::string> location = proto::Base64DecodeStrict(encoded_location);
    {
      absl::MutexLock lock(&proxy_->mutex_);
      proxy_->last_jwt_ = jwt;
      proxy_->last_location_id_ = location.ok() ? *location : "";
    }
    location_id_ = location.ok() ? *location : "";
    const bool accepted =
        location.ok() && !jwt.empty() && (!settings_.validator || settings_.validator(jwt));
    if (!accepted) Increment(&proxy_->auth_failures_);
    if (!accepted && !settings_.reject_jwt_at_connect) {
      WriteAll(std::string{static_cast<char>(kAuthenticationVersion), 0x01});
      return std::nullopt;
    }
    if (!WriteAll(std::string{static_cast<char>(kAuthenticationVersion), 0x00})) {
      return std::nullopt;
    }
    return accepted;
  }

  // Reads the request and decides the reply; connects the backend when it is 00.
  bool ReadConnect(bool jwt_accepted, uint8_t* reply, std::string* target) {
    std::string header;
    if (!ReadExact(4, &header) || static_cast<uint8_t>(header[0]) != kVersion) return false;
    const uint8_t command = static_cast<uint8_t>(header[1]);
    const uint8_t address_type = static_cast<uint8_t>(header[3]);
    std::string host;
    std::string address;
    switch (address_type) {
      case kAddressIpv4: {
        if (!ReadExact(4, &address)) return false;
        char text[INET_ADDRSTRLEN] = {};
        inet_ntop(AF_INET, address.data(), text, sizeof(text));
        host = text;
        break;
      }
      case kAddressDomain: {
        std::string size;
        if (!ReadExact(1, &size) || !ReadExact(static_cast<uint8_t>(size[0]), &host)) return false;
        break;
      }
      case kAddressIpv6:
        if (!ReadExact(16, &address)) return false;
        host = "[ipv6]";
        break;
      default:
        // The request's length is unknown: answer and close.
        Increment(&proxy_->connect_requests_);
        Reply(kReplyAddressNotSupported);
        return false;
    }
    std::string port_bytes;
    if (!ReadExact(2, &port_bytes)) return false;
    const uint16_t port = static_cast<uint16_t>((static_cast<uint8_t>(port_bytes[0]) << 8) |
                                                static_cast<uint8_t>(port_bytes[1]));
    *target = StrCat(host, ":", port);

    std::optional<uint16_t> real_port;
    bool location_known = false;
    {
      absl::MutexLock lock(&proxy_->mutex_);
      ++proxy_->connect_requests_;
      proxy_->last_target_ = *target;
      location_known = proxy_->locations_.contains(location_id_);
      auto mapping = proxy_->mappings_.find({host, port});
      if (mapping != proxy_->mappings_.end()) real_port = mapping->second;
    }
    if (settings_.forced_reply != kReplySucceeded) {
      *reply = settings_.forced_reply;
    } else if (command != kCommandConnect) {
      *reply = kReplyCommandNotSupported;
    } else if (address_type == kAddressIpv6) {
      *reply = kReplyAddressNotSupported;
    } else if (!jwt_accepted) {
      *reply = kReplyConnectionRefused;
    } else if (!location_known) {
      *reply = kReplyNetworkUnreachable;
    } else if (!real_port) {
      *reply = kReplyNotAllowed;
    } else {
      backend_fd_ = ConnectLoopback(*real_port, proxy_->wake_fds_[0]);
      *reply = backend_fd_ >= 0 ? kReplySucceeded : kReplyHostUnreachable;
    }
    return true;
  }

  bool Reply(uint8_t reply) {
    std::string message{static_cast<char>(kVersion), static_cast<char>(reply), 0x00};
    uint16_t bound_port = 0;
    in_addr bound_ipv4{};
    if (backend_fd_ >= 0) {
      sockaddr_in local{};
      socklen_t length = sizeof(local);
      if (getsockname(backend_fd_, reinterpret_cast<sockaddr*>(&local), &length) == 0) {
        bound_port = ntohs(local.sin_port);
        bound_ipv4 = local.sin_addr;
      }
    }
    switch (reply == kReplySucceeded ? settings_.bound_address_type : kAddressIpv4) {
      case kAddressDomain: {
        constexpr std::string_view kName = "connectivity-proxy.fake";
        message.push_back(static_cast<char>(kAddressDomain));
        message.push_back(static_cast<char>(kName.size()));
        message.append(kName);
        break;
      }
      case kAddressIpv6: {
        message.push_back(static_cast<char>(kAddressIpv6));
        message.append(15, '\0');
        message.push_back(0x01);  // ::1
        break;
      }
      default:
        message.push_back(static_cast<char>(kAddressIpv4));
        message.append(reinterpret_cast<const char*>(&bound_ipv4), 4);
        break;
    }
    message.push_back(static_cast<char>(bound_port >> 8));
    message.push_back(static_cast<char>(bound_port));
    {
      absl::MutexLock lock(&proxy_->mutex_);
      ++proxy_->replies_[reply];
      if (reply == kReplySucceeded) ++proxy_->tunnels_;
    }
    return WriteAll(message) && reply == kReplySucceeded;
  }

  // Bytes both ways through one 64 KiB buffer per direction; a buffer is refilled only when
  // empty, so a slow reader slows the writer down (TCP pushes back).
  void Relay() {
    SetNonBlocking(backend_fd_);
    struct Direction {
      int from;
      int to;
      std::string buffer;
      size_t sent = 0;
      bool eof = false;   // `from` sent FIN
      bool done = false;  // ... and it was passed on to `to`
    };
    Direction directions[2] = {{client_fd_, backend_fd_, {}}, {backend_fd_, client_fd_, {}}};
    // A socket whose peer hung up (both directions shut) makes poll(2) report POLLHUP at once
    // for as long as it is polled. It may still hold bytes to read, which recv() returns
    // without waiting, so once hung up it is polled only when we must write to it.
    bool hung_up[2] = {false, false};
    Clock::time_point deadline = Clock::now() + settings_.idle_timeout;
    char chunk[kRelayBufferBytes];
    while (!(directions[0].done && directions[1].done)) {
      if (proxy_->stopping_.load() || Clock::now() >= deadline) return;
      bool progress = false;
      for (Direction& d : directions) {
        if (d.sent == d.buffer.size() && !d.eof) {
          d.buffer.clear();
          d.sent = 0;
          const ssize_t n = recv(d.from, chunk, sizeof(chunk), 0);
          if (n > 0) {
            d.buffer.assign(chunk, n);
            progress = true;
          } else if (n == 0) {
            d.eof = true;
            progress = true;
          } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            return;
          }
        }
        while (d.sent < d.buffer.size()) {
          const ssize_t n =
              send(d.to, d.buffer.data() + d.sent, d.buffer.size() - d.sent, MSG_NOSIGNAL);
          if (n > 0) {
            d.sent += n;
            progress = true;
          } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            break;
          } else {
            return;
          }
        }
        if (d.eof && d.sent == d.buffer.size() && !d.done) {
          shutdown(d.to, SHUT_WR);
          d.done = true;
        }
      }
      if (progress) {
        deadline = Clock::now() + settings_.idle_timeout;
        continue;
      }
      // Nothing moved: wait until something can.
      pollfd fds[3] = {{client_fd_, 0, 0}, {backend_fd_, 0, 0}, {proxy_->wake_fds_[0], POLLIN, 0}};
      for (int i = 0; i < 2; ++i) {
        const Direction& d = directions[i];
        pollfd& from = fds[i];
        pollfd& to = fds[1 - i];
        if (!d.eof && d.sent == d.buffer.size()) from.events |= POLLIN;
        if (d.sent < d.buffer.size()) to.events |= POLLOUT;
      }
      for (int i = 0; i < 2; ++i) {
        if (hung_up[i] && !(fds[i].events & POLLOUT)) fds[i].fd = -1;  // poll(2) skips it
      }
      if (poll(fds, 3, PollTimeoutMs(deadline)) < 0 && errno != EINTR) return;
      // A hang-up is not the end: bytes the peer sent before it may still wait to be read and
      // relayed (ending here lost them: the client got a short stream). A socket error is.
      for (int i = 0; i < 2; ++i) {
        if (fds[i].revents & POLLERR) return;
        if (fds[i].revents & POLLHUP) hung_up[i] = true;
      }
    }
  }

  // Reads exactly `size` bytes (never more: what follows belongs to the next step or the
  // tunnel). False on EOF, error, Stop() or idle timeout.
  bool ReadExact(size_t size, std::string* out) {
    out->assign(size, '\0');
    size_t have = 0;
    Clock::time_point deadline = Clock::now() + settings_.idle_timeout;
    while (have < size) {
      if (proxy_->stopping_.load() || Clock::now() >= deadline) return false;
      pollfd fds[2] = {{client_fd_, POLLIN, 0}, {proxy_->wake_fds_[0], POLLIN, 0}};
      if (poll(fds, 2, PollTimeoutMs(deadline)) < 0 && errno != EINTR) return false;
      if (fds[0].revents == 0) continue;
      const ssize_t n = recv(client_fd_, out->data() + have, size - have, MSG_DONTWAIT);
      if (n == 0) return false;
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
        return false;
      }
      have += n;
      deadline = Clock::now() + settings_.idle_timeout;
    }
    return true;
  }

  bool WriteAll(std::string_view bytes) {
    const Clock::time_point deadline = Clock::now() + settings_.idle_timeout;
    while (!bytes.empty()) {
      if (proxy_->stopping_.load() || Clock::now() >= deadline) return false;
      const ssize_t n = send(client_fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        bytes.remove_prefix(n);
        continue;
      }
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
      pollfd fds[2] = {{client_fd_, POLLOUT, 0}, {proxy_->wake_fds_[0], POLLIN, 0}};
      if (poll(fds, 2, PollTimeoutMs(deadline)) < 0 && errno != EINTR) return false;
    }
    return true;
  }

  void Increment(int* counter) {
    absl::MutexLock lock(&proxy_->mutex_);
    ++*counter;
  }

  FakeConnectivityProxy* const proxy_;
  const int client_fd_;
  int backend_fd_ = -1;
  const Settings settings_;
  std::string location_id_;  // decoded, from the authentication request
};

FakeConnectivityProxy::FakeConnectivityProxy() = default;

FakeConnectivityProxy::~FakeConnectivityProxy() { Stop(); }

absl::Status FakeConnectivityProxy::Start() {
  if (acceptor_.joinable() || listen_fd_ >= 0) {
    return absl::FailedPreconditionError("FakeConnectivityProxy: Start() once per object");
  }
  if (pipe2(wake_fds_, O_CLOEXEC | O_NONBLOCK) != 0) {
    return absl::InternalError(StrCat("pipe2: ", strerror(errno)));
  }
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return absl::InternalError(StrCat("socket: ", strerror(errno)));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = 0;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      listen(listen_fd_, 128) != 0 ||
      getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return absl::InternalError(StrCat("listening on 127.0.0.1: ", strerror(errno)));
  }
  port_.store(ntohs(address.sin_port));
  acceptor_ = std::thread([this] { Accept(); });
  return absl::OkStatus();
}

void FakeConnectivityProxy::Stop() {
  if (stopping_.exchange(true)) return;
  if (wake_fds_[1] >= 0) {
    const char byte = 0;
    (void)!write(wake_fds_[1], &byte, 1);
  }
  if (acceptor_.joinable()) acceptor_.join();
  // The acceptor has ended: nobody adds connections any more.
  std::list<Connection> connections;
  {
    absl::MutexLock lock(&connections_mutex_);
    connections.swap(connections_);
  }
  for (Connection& connection : connections) {
    if (connection.thread.joinable()) connection.thread.join();
  }
  if (listen_fd_ >= 0) close(listen_fd_);
  listen_fd_ = -1;
  for (int& fd : wake_fds_) {
    if (fd >= 0) close(fd);
    fd = -1;
  }
}

void FakeConnectivityProxy::Accept() {
  while (!stopping_.load()) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fds_[0], POLLIN, 0}};
    if (poll(fds, 2, 1000) < 0 && errno != EINTR) return;
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    {
      absl::MutexLock lock(&mutex_);
      ++connections_count_;
    }
    absl::MutexLock lock(&connections_mutex_);
    ReapFinishedLocked();
    if (live_connections_ >= kMaxConnections) {
      close(fd);
      continue;
    }
    ++live_connections_;
    Connection& connection = connections_.emplace_back();
    connection.thread = std::thread([this, fd, &connection] {
      {
        Session session(this, fd);
        session.Run();
      }
      connection.finished.store(true);
    });
  }
}

void FakeConnectivityProxy::ReapFinishedLocked() {
  for (auto it = connections_.begin(); it != connections_.end();) {
    if (it->finished.load()) {
      it->thread.join();
      it = connections_.erase(it);
      --live_connections_;
    } else {
      ++it;
    }
  }
}

FakeConnectivityProxy::Settings FakeConnectivityProxy::CurrentSettings() const {
  absl::MutexLock lock(&mutex_);
  return settings_;
}

void FakeConnectivityProxy::SetJwtValidator(JwtValidator validator) {
  absl::MutexLock lock(&mutex_);
  settings_.validator = std::move(validator);
}

void FakeConnectivityProxy::SetLocations(std::set<std::string> location_ids) {
  absl::MutexLock lock(&mutex_);
  locations_ = std::move(location_ids);
}

void FakeConnectivityProxy::AddMapping(const std::string& virtual_host, uint16_t virtual_port,
                                       uint16_t real_port) {
  absl::MutexLock lock(&mutex_);
  mappings_[{virtual_host, virtual_port}] = real_port;
}

void FakeConnectivityProxy::RemoveMapping(const std::string& virtual_host, uint16_t virtual_port) {
  absl::MutexLock lock(&mutex_);
  mappings_.erase({virtual_host, virtual_port});
}

void FakeConnectivityProxy::ForceConnectReply(uint8_t reply_code) {
  absl::MutexLock lock(&mutex_);
  settings_.forced_reply = reply_code;
}

void FakeConnectivityProxy::SetRejectJwtAtConnect(bool reject_at_connect) {
  absl::MutexLock lock(&mutex_);
  settings_.reject_jwt_at_connect = reject_at_connect;
}

void FakeConnectivityProxy::SetBoundAddressType(uint8_t address_type) {
  absl::MutexLock lock(&mutex_);
  settings_.bound_address_type = address_type;
}

void FakeConnectivityProxy::SetIdleTimeout(std::chrono::milliseconds timeout) {
  absl::MutexLock lock(&mutex_);
  settings_.idle_timeout = timeout;
}

int FakeConnectivityProxy::connections() const {
  absl::MutexLock lock(&mutex_);
  return connections_count_;
}

int FakeConnectivityProxy::method_rejections() const {
  absl::MutexLock lock(&mutex_);
  return method_rejections_;
}

int FakeConnectivityProxy::auth_failures() const {
  absl::MutexLock lock(&mutex_);
  return auth_failures_;
}

int FakeConnectivityProxy::connect_requests() const {
  absl::MutexLock lock(&mutex_);
  return connect_requests_;
}

int FakeConnectivityProxy::tunnels() const {
  absl::MutexLock lock(&mutex_);
  return tunnels_;
}

int FakeConnectivityProxy::replies(uint8_t reply_code) const {
  absl::MutexLock lock(&mutex_);
  auto it = replies_.find(reply_code);
  return it == replies_.end() ? 0 : it->second;
}

std::string FakeConnectivityProxy::last_location_id() const {
  absl::MutexLock lock(&mutex_);
  return last_location_id_;
}

std::string FakeConnectivityProxy::last_jwt() const {
  absl::MutexLock lock(&mutex_);
  return last_jwt_;
}

std::string FakeConnectivityProxy::last_target() const {
  absl::MutexLock lock(&mutex_);
  return last_target_;
}

}  // namespace mailring::fakes
