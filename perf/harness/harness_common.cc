#include "perf/harness/harness_common.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace mailring::perf {

Flags::Flags(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) {
      error_ = "unexpected argument '" + arg + "' (flags are --name=value)";
      continue;
    }
    Entry entry;
    const size_t eq = arg.find('=');
    entry.name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    for (char& c : entry.name) {
      if (c == '_') c = '-';
    }
    if (eq != std::string::npos) {
      entry.value = arg.substr(eq + 1);
      entry.has_value = true;
    } else if (i + 1 < argc && std::strncmp(argv[i + 1], "--", 2) != 0) {
      entry.value = argv[++i];
      entry.has_value = true;
    }
    entries_.push_back(std::move(entry));
  }
}

std::optional<std::string> Flags::Take(std::string_view name) {
  std::optional<std::string> found;
  for (Entry& entry : entries_) {
    if (entry.name != name) continue;
    entry.used = true;
    found = entry.has_value ? entry.value : std::string();
  }
  return found;
}

bool Flags::Has(std::string_view name) const {
  for (const Entry& entry : entries_) {
    if (entry.name == name) return true;
  }
  return false;
}

std::string Flags::GetString(std::string_view name, std::string fallback) {
  std::optional<std::string> value = Take(name);
  return value ? *value : fallback;
}

int64_t Flags::GetInt(std::string_view name, int64_t fallback) {
  std::optional<std::string> value = Take(name);
  if (!value) return fallback;
  int64_t parsed = 0;
  const char* end = value->data() + value->size();
  auto [ptr, ec] = std::from_chars(value->data(), end, parsed);
  // Accept a binary suffix: 64M, 1G, 256K.
  if (ec == std::errc() && ptr + 1 == end) {
    switch (*ptr) {
      case 'K':
      case 'k':
        parsed <<= 10;
        ++ptr;
        break;
      case 'M':
      case 'm':
        parsed <<= 20;
        ++ptr;
        break;
      case 'G':
      case 'g':
        parsed <<= 30;
        ++ptr;
        break;
      default:
        break;
    }
  }
  if (ec != std::errc() || ptr != end) {
    error_ = "--" + std::string(name) + ": not an integer: '" + *value + "'";
    return fallback;
  }
  return parsed;
}

double Flags::GetDouble(std::string_view name, double fallback) {
  std::optional<std::string> value = Take(name);
  if (!value) return fallback;
  char* end = nullptr;
  const double parsed = std::strtod(value->c_str(), &end);
  if (value->empty() || *end != '\0') {
    error_ = "--" + std::string(name) + ": not a number: '" + *value + "'";
    return fallback;
  }
  return parsed;
}

bool Flags::GetBool(std::string_view name, bool fallback) {
  std::optional<std::string> value = Take(name);
  if (!value) return fallback;
  if (value->empty() || *value == "true" || *value == "1") return true;
  if (*value == "false" || *value == "0") return false;
  error_ = "--" + std::string(name) + ": not a boolean: '" + *value + "'";
  return fallback;
}

bool Flags::Finish(std::string* error) {
  if (!error_.empty()) {
    *error = error_;
    return false;
  }
  for (const Entry& entry : entries_) {
    if (!entry.used) {
      *error = "unknown flag --" + entry.name;
      return false;
    }
  }
  return true;
}

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t RaiseFileLimit() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    getrlimit(RLIMIT_NOFILE, &limit);
  }
  return limit.rlim_cur;
}

bool SetNonBlocking(int fd) {
  const int flags = fcntl(fd, F_GETFL, 0);
  return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

int Listen(const std::string& host, int port, int backlog, std::string* error) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    *error = "not an IPv4 address: " + host;
    return -1;
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, backlog) != 0) {
    *error = "bind/listen " + host + ":" + std::to_string(port) + ": " + std::strerror(errno);
    close(fd);
    return -1;
  }
  return fd;
}

int LocalPort(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return -1;
  return ntohs(addr.sin_port);
}

namespace {

// The value after "Key:" in /proc/PID/status, as a number (VmRSS is in kB).
bool StatusField(const std::string& status, std::string_view key, uint64_t* out) {
  size_t pos = 0;
  while (pos < status.size()) {
    const size_t eol = status.find('\n', pos);
    std::string_view line(status.data() + pos,
                          (eol == std::string::npos ? status.size() : eol) - pos);
    if (line.size() > key.size() && line.compare(0, key.size(), key) == 0 &&
        line[key.size()] == ':') {
      std::string_view rest = line.substr(key.size() + 1);
      while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
      return std::from_chars(rest.data(), rest.data() + rest.size(), *out).ec == std::errc();
    }
    if (eol == std::string::npos) break;
    pos = eol + 1;
  }
  return false;
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path);
  if (!in) return false;
  std::ostringstream text;
  text << in.rdbuf();
  *out = text.str();
  return true;
}

}  // namespace

ProcessSample SampleProcesses(const std::vector<int>& pids) {
  ProcessSample sample;
  sample.ok = !pids.empty();
  for (int pid : pids) {
    const std::string base = "/proc/" + std::to_string(pid);
    std::string status, stat;
    uint64_t rss = 0, threads = 0;
    if (!ReadFile(base + "/status", &status) || !StatusField(status, "VmRSS", &rss) ||
        !StatusField(status, "Threads", &threads) || !ReadFile(base + "/stat", &stat)) {
      sample.ok = false;
      continue;
    }
    sample.rss_kib += rss;
    sample.threads += threads;
    // Fields after the command name, which sits in parentheses and may contain spaces:
    // state(3) ... utime(14) stime(15).
    const size_t close_paren = stat.rfind(')');
    if (close_paren == std::string::npos) {
      sample.ok = false;
      continue;
    }
    std::istringstream fields(stat.substr(close_paren + 2));
    std::string field;
    uint64_t utime = 0, stime = 0;
    for (int index = 3; index <= 15 && (fields >> field); ++index) {
      if (index == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
      if (index == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
    }
    sample.cpu_ticks += utime + stime;
    if (DIR* dir = opendir((base + "/fd").c_str())) {
      while (dirent* entry = readdir(dir)) {
        if (entry->d_name[0] != '.') ++sample.fds;
      }
      closedir(dir);
    } else {
      sample.ok = false;
    }
  }
  return sample;
}

double TicksPerSecond() { return static_cast<double>(sysconf(_SC_CLK_TCK)); }

std::vector<int> ParsePidList(std::string_view text) {
  std::vector<int> pids;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    int pid = 0;
    auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), pid);
    if (ec != std::errc() || ptr != item.data() + item.size() || pid <= 0) return {};
    pids.push_back(pid);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return pids;
}

}  // namespace mailring::perf
