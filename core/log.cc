#include "core/log.h"

#include <time.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <string>

#include "absl/strings/ascii.h"
#include "proto/json_writer.h"

namespace mailring::core {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<int> g_format{static_cast<int>(LogFormat::kText)};
thread_local char t_thread_name[16] = "main";

constexpr const char* kLevelNames[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
constexpr const char* kJsonLevelNames[] = {"debug", "info", "warning", "error"};

// "2026-11-26T22:00:00.123Z"
std::string Rfc3339Millis(const timespec& time) {
  tm utc;
  gmtime_r(&time.tv_sec, &utc);
  char text[32];
  const int n = std::snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
                              utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour,
                              utc.tm_min, utc.tm_sec, time.tv_nsec / 1000000);
  return std::string(text, n > 0 ? static_cast<size_t>(n) : 0);
}

// The `key=value` words a message may start with (core/session.cc's LogPrefix and a route's
// log_label), in the order JSON lines carry them, with their JSON field names.
struct ContextField {
  std::string_view key;   // "dest=" in the text
  std::string_view name;  // "destination" in JSON
};
constexpr std::array<ContextField, 5> kContextFields = {{{"session=", "session"},
                                                         {"route=", "route"},
                                                         {"dest=", "destination"},
                                                         {"tenant=", "tenant"},
                                                         {"cr=", "cr"}}};

std::string JsonLine(LogLevel level, const timespec& time, std::string_view thread_name,
                     std::string_view message) {
  std::array<std::string_view, kContextFields.size()> values{};
  // Move leading context words out of the message; stop at the first word that is none, so a
  // "route=" later in free text stays in the message.
  while (!message.empty()) {
    const size_t word_end = std::min(message.find(' '), message.size());
    const std::string_view word = message.substr(0, word_end);
    bool matched = false;
    for (size_t i = 0; i < kContextFields.size(); ++i) {
      if (values[i].empty() && word.size() > kContextFields[i].key.size() &&
          word.substr(0, kContextFields[i].key.size()) == kContextFields[i].key) {
        values[i] = word.substr(kContextFields[i].key.size());
        matched = true;
        break;
      }
    }
    if (!matched) break;
    message.remove_prefix(std::min(word_end + 1, message.size()));
  }
  proto::JsonWriter json;
  json.BeginObject().StringField("time", Rfc3339Millis(time));
  json.StringField("level", kJsonLevelNames[static_cast<int>(level)]);
  json.StringField("worker", thread_name);
  for (size_t i = 0; i < kContextFields.size(); ++i) {
    if (!values[i].empty()) json.StringField(kContextFields[i].name, values[i]);
  }
  json.StringField("message", message).EndObject();
  std::string line = std::move(json).Take();
  line += '\n';
  return line;
}

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

absl::StatusOr<LogFormat> ParseLogFormat(std::string_view name) {
  const std::string lower = absl::AsciiStrToLower(absl::string_view(name.data(), name.size()));
  if (lower == "text") return LogFormat::kText;
  if (lower == "json") return LogFormat::kJson;
  return absl::InvalidArgumentError(
      mailring::StrCat("unknown log format \"", name, "\" (text, json)"));
}

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }

void SetLogFormat(LogFormat format) { g_format.store(static_cast<int>(format)); }

bool LogEnabled(LogLevel level) {
  return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

void SetLogThreadName(std::string_view name) {
  const size_t n = std::min(name.size(), sizeof(t_thread_name) - 1);
  name.copy(t_thread_name, n);
  t_thread_name[n] = '\0';
}

std::string FormatLogLine(LogFormat format, LogLevel level, const timespec& time,
                          std::string_view thread_name, std::string_view message) {
  if (format == LogFormat::kJson) return JsonLine(level, time, thread_name, message);
  std::string line = Rfc3339Millis(time);
  line.reserve(line.size() + thread_name.size() + message.size() + 9);
  mailring::StrAppend(&line, " ", kLevelNames[static_cast<int>(level)], " ", thread_name, " ",
                      message, "\n");
  return line;
}

void WriteLogLine(LogLevel level, std::string_view message) {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  const std::string line =
      FormatLogLine(static_cast<LogFormat>(g_format.load(std::memory_order_relaxed)), level, now,
                    t_thread_name, message);
  // One write per line: atomic for pipes up to PIPE_BUF and in practice for files and ttys.
  size_t off = 0;
  while (off < line.size()) {
    const ssize_t n = ::write(STDERR_FILENO, line.data() + off, line.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
}

}  // namespace mailring::core
