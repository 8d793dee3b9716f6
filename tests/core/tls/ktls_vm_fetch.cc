// ktls_vm_fetch: the IMAP client of scripts/ktls_vm.sh (built there as a static binary, run in
// the VM). Connects to mailring's plain listener; after the PREAUTH greeting of a route that
// logs in for it, or after logging in itself as alice (the server's own "* OK" greeting through
// a relay-only route), SELECTs INBOX, FETCHes message N's BODY[] and writes the literal's bytes to
// OUT, then LOGOUT. Exit 0 when all of it worked; the caller compares OUT's sha256.
//
//   ktls_vm_fetch HOST PORT N OUT
//
// Bounded: every read waits at most 120 s (TCG is slow, not that slow).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

int fd = -1;
std::string buffered;

bool Fill() {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 120000) != 1) {
    std::fprintf(stderr, "ktls_vm_fetch: no bytes for 120 s\n");
    return false;
  }
  char chunk[1 << 16];
  const ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
  if (n <= 0) {
    std::fprintf(stderr, "ktls_vm_fetch: connection ended\n");
    return false;
  }
  buffered.append(chunk, static_cast<size_t>(n));
  return true;
}

bool ReadLine(std::string* line) {
  while (true) {
    const size_t end = buffered.find("\r\n");
    if (end != std::string::npos) {
      *line = buffered.substr(0, end);
      buffered.erase(0, end + 2);
      return true;
    }
    if (!Fill()) return false;
  }
}

bool Send(const std::string& text) {
  return ::send(fd, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
}

// Reads lines until the tagged one; false unless it is OK.
bool AwaitTagged(const std::string& tag) {
  std::string line;
  while (ReadLine(&line)) {
    if (line.rfind(tag + " ", 0) == 0) {
      if (line.rfind(tag + " OK", 0) == 0) return true;
      std::fprintf(stderr, "ktls_vm_fetch: %s\n", line.c_str());
      return false;
    }
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: ktls_vm_fetch HOST PORT N OUT\n");
    return 2;
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[2])));
  if (::inet_pton(AF_INET, argv[1], &address.sin_addr) != 1) return 2;
  fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    std::perror("ktls_vm_fetch: connect");
    return 1;
  }
  std::string line;
  if (!ReadLine(&line)) return 1;
  std::printf("ktls_vm_fetch: greeting: %s\n", line.c_str());
  if (line.rfind("* OK", 0) == 0) {
    if (!Send("a LOGIN alice secret\r\n") || !AwaitTagged("a")) return 1;
  } else if (line.rfind("* PREAUTH", 0) != 0) {
    return 1;
  }
  if (!Send("s SELECT INBOX\r\n") || !AwaitTagged("s")) return 1;
  if (!Send(std::string("f FETCH ") + argv[3] + " BODY[]\r\n")) return 1;
  // "* N FETCH (BODY[] {SIZE}"
  if (!ReadLine(&line)) return 1;
  const size_t open = line.rfind('{');
  if (line.rfind("* ", 0) != 0 || open == std::string::npos || line.back() != '}') {
    std::fprintf(stderr, "ktls_vm_fetch: unexpected: %s\n", line.c_str());
    return 1;
  }
  const size_t size = std::strtoull(line.c_str() + open + 1, nullptr, 10);
  while (buffered.size() < size) {
    if (!Fill()) return 1;
  }
  FILE* out = std::fopen(argv[4], "wb");
  if (out == nullptr || std::fwrite(buffered.data(), 1, size, out) != size ||
      std::fclose(out) != 0) {
    std::perror("ktls_vm_fetch: writing OUT");
    return 1;
  }
  buffered.erase(0, size);
  if (!AwaitTagged("f")) return 1;
  if (!Send("l LOGOUT\r\n") || !AwaitTagged("l")) return 1;
  std::printf("ktls_vm_fetch: fetched %zu bytes\n", size);
  return 0;
}
