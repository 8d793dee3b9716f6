#include "core/log.h"

#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>

#include "absl/strings/ascii.h"

namespace mailring::core {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
thread_local char t_thread_name[16] = "main";

constexpr const char* kLevelNames[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};

}  // namespace

absl::StatusOr<LogLevel> ParseLogLevel(std::string_view name) {
  const std::string lower = absl::AsciiStrToLower(absl::string_view(name.data(), name.size()));
  if (lower == "debug") return LogLevel::kDebug;
  if (lower == "info") return LogLevel::kInfo;
  if (lower == "warning" || lower == "warn") return LogLevel::kWarning;
  if (lower == "error") return LogLevel::kError;
  return absl::InvalidArgumentError(
      mailring::StrCat("unknown log level \"", name, "\" (debug, info, warning, error)"));
}

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }

bool LogEnabled(LogLevel level) {
  return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

void SetLogThreadName(std::string_view name) {
  const size_t n = std::min(name.size(), sizeof(t_thread_name) - 1);
  name.copy(t_thread_name, n);
  t_thread_name[n] = '\0';
}

void WriteLogLine(LogLevel level, std::string_view message) {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  tm utc;
  gmtime_r(&now.tv_sec, &utc);
  char prefix[64];
  const int prefix_len = std::snprintf(
      prefix, sizeof(prefix), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s ", utc.tm_year + 1900,
      utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, now.tv_nsec / 1000000,
      kLevelNames[static_cast<int>(level)], t_thread_name);
  std::string line;
  line.reserve(prefix_len + message.size() + 1);
  line.append(prefix, prefix_len);
  line.append(message);
  line.push_back('\n');
  // One write per line: atomic for pipes up to PIPE_BUF and in practice for files and ttys.
  size_t off = 0;
  while (off < line.size()) {
    const ssize_t n = ::write(STDERR_FILENO, line.data() + off, line.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
}

}  // namespace mailring::core
