// Pieces the synthetic upstream and the load generator share: flag parsing, clocks, socket
// set-up, the fd limit, and reading a process's RSS, threads, fds and CPU time from /proc.
//
// The harness is a benchmark tool, not part of the daemon: it depends on nothing in core/ or
// proto/, uses only the C++ standard library and Linux, and reports with printf.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailring::perf {

// "--name=value" and "--name value" flags, names with dashes or underscores. Contract: each
// Get* consumes its flag; Finish() reports any flag nobody asked for (a typo) and returns false.
class Flags {
 public:
  Flags(int argc, char** argv);
  std::string GetString(std::string_view name, std::string fallback);
  int64_t GetInt(std::string_view name, int64_t fallback);
  double GetDouble(std::string_view name, double fallback);
  bool GetBool(std::string_view name, bool fallback);
  bool Has(std::string_view name) const;
  // False when a flag was malformed or unknown; the message names it.
  bool Finish(std::string* error);

 private:
  std::optional<std::string> Take(std::string_view name);

  struct Entry {
    std::string name;
    std::string value;
    bool has_value = false;
    bool used = false;
  };
  std::vector<Entry> entries_;
  std::string error_;
};

// Nanoseconds on CLOCK_MONOTONIC.
uint64_t NowNs();

// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit.
uint64_t RaiseFileLimit();

bool SetNonBlocking(int fd);

// A listening TCP socket on host:port (port 0: the kernel picks one), non-blocking, with
// SO_REUSEADDR. Returns -1 and fills *error on failure.
int Listen(const std::string& host, int port, int backlog, std::string* error);

// The port a bound socket ended up on.
int LocalPort(int fd);

// What /proc says about a set of processes (a proxy can be a master and its workers): sums.
struct ProcessSample {
  bool ok = false;         // every pid was readable
  uint64_t rss_kib = 0;    // VmRSS
  uint64_t threads = 0;    // Threads
  uint64_t fds = 0;        // entries in /proc/PID/fd
  uint64_t cpu_ticks = 0;  // utime + stime, in clock ticks
};
ProcessSample SampleProcesses(const std::vector<int>& pids);
// Clock ticks per second (sysconf(_SC_CLK_TCK)).
double TicksPerSecond();

// "123,456" -> {123, 456}; empty on a malformed list.
std::vector<int> ParsePidList(std::string_view text);

}  // namespace mailring::perf
