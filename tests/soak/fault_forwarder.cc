#include "tests/soak/fault_forwarder.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace mailring::soak {
namespace {

constexpr int kPollMs = 50;

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  return addr;
}

// Writes all of `data` (blocking socket); false on error.
bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

FaultForwarder::~FaultForwarder() { GoDown(); }

absl::Status FaultForwarder::Start() {
  absl::MutexLock lock(&mutex_);
  if (acceptor_.joinable()) return absl::OkStatus();
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr = Loopback(port_.load());
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 64) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int error = errno;
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("forwarder bind/listen on 127.0.0.1:", port_.load(),
                                               ": ", std::strerror(error)));
  }
  port_.store(ntohs(addr.sin_port));
  acceptor_ = std::thread(&FaultForwarder::AcceptLoop, this, fd, generation_.load());
  return absl::OkStatus();
}

void FaultForwarder::SetDelay(absl::Duration delay) {
  delay_ms_.store(absl::ToInt64Milliseconds(delay));
}

void FaultForwarder::GoDown() {
  std::thread acceptor;
  {
    absl::MutexLock lock(&mutex_);
    generation_.fetch_add(1);
    acceptor = std::move(acceptor_);
  }
  // Joined without the mutex: the acceptor takes it to register connections.
  if (acceptor.joinable()) acceptor.join();
  std::list<std::unique_ptr<Connection>> connections;
  {
    absl::MutexLock lock(&mutex_);
    connections.swap(connections_);
  }
  for (auto& connection : connections) connection->thread.join();
}

void FaultForwarder::ReapLocked() {
  for (auto it = connections_.begin(); it != connections_.end();) {
    if ((*it)->done.load()) {
      (*it)->thread.join();
      it = connections_.erase(it);
    } else {
      ++it;
    }
  }
}

void FaultForwarder::AcceptLoop(int listen_fd, uint64_t generation) {
  while (generation_.load() == generation) {
    pollfd p{listen_fd, POLLIN, 0};
    if (::poll(&p, 1, kPollMs) <= 0) continue;
    const int client = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    absl::MutexLock lock(&mutex_);
    ReapLocked();
    auto connection = std::make_unique<Connection>();
    Connection* raw = connection.get();
    connection->thread = std::thread(&FaultForwarder::Forward, this, client, generation, raw);
    connections_.push_back(std::move(connection));
  }
  ::close(listen_fd);
}

void FaultForwarder::Forward(int client_fd, uint64_t generation, Connection* self) {
  const int target_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in target = Loopback(target_port_);
  if (target_fd >= 0 &&
      ::connect(target_fd, reinterpret_cast<sockaddr*>(&target), sizeof target) == 0) {
    std::vector<char> buffer(64 * 1024);
    bool open = true;
    while (open && generation_.load() == generation) {
      pollfd p[2] = {{client_fd, POLLIN, 0}, {target_fd, POLLIN, 0}};
      if (::poll(p, 2, kPollMs) <= 0) continue;
      for (int i = 0; i < 2 && open; ++i) {
        if (p[i].revents == 0) continue;
        const ssize_t n = ::recv(p[i].fd, buffer.data(), buffer.size(), 0);
        if (n <= 0) {
          open = false;
          break;
        }
        if (i == 0) {
          // The slow service: the request waits, in steps that notice GoDown().
          const absl::Time release = absl::Now() + absl::Milliseconds(delay_ms_.load());
          while (absl::Now() < release && generation_.load() == generation) {
            absl::SleepFor(absl::Milliseconds(kPollMs));
          }
          if (generation_.load() != generation) break;
        }
        open = WriteAll(i == 0 ? target_fd : client_fd, buffer.data(), static_cast<size_t>(n));
      }
    }
  }
  if (target_fd >= 0) ::close(target_fd);
  ::close(client_fd);
  self->done.store(true);
}

}  // namespace mailring::soak
