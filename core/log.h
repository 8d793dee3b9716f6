// Log: one line per event on stderr, written with a single write(2) so lines from different
// threads never interleave.
//
// Text format (the default): `2026-11-26T22:00:00.123Z INFO  w0 <message>`. Messages about a
// session start with `session=`, `route=`, `dest=` (and `tenant=`, `cr=` where there is one),
// then the action under way (see core/session.h). Callers build the message with absl::StrCat;
// proto::Secret does not convert to text, so a secret cannot be passed by accident.
//
// JSON format (--log-format json), one object per line for a log pipeline:
//   {"time":"2026-11-26T22:00:00.123Z","level":"info","worker":"w0","session":"w0:7",
//    "route":"127.0.0.1:1143","destination":"example","tenant":"t1","cr":"ns/name",
//    "message":"closed: client logged out"}
// `worker` is the thread's name ("w0".., or "main", "control", "admin"). The session, route,
// destination, tenant and cr fields are the leading `key=value` words of the message, moved out
// of it; each is present only when the message has it. Callers write the same messages for both
// formats.
#pragma once

#include <time.h>

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "proto/str_cat.h"

namespace mailring::core {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

enum class LogFormat { kText, kJson };

absl::StatusOr<LogLevel> ParseLogLevel(std::string_view name);
// "text" or "json".
absl::StatusOr<LogFormat> ParseLogFormat(std::string_view name);
// Set once at start-up, before other threads log.
void SetLogFormat(LogFormat format);
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
// Names the calling thread in log lines ("main", "w0", ...).
void SetLogThreadName(std::string_view name);
void WriteLogLine(LogLevel level, std::string_view message);

// The line WriteLogLine writes (with its newline), for a given time and thread name; exposed so
// that both formats can be tested without capturing stderr.
std::string FormatLogLine(LogFormat format, LogLevel level, const struct timespec& time,
                          std::string_view thread_name, std::string_view message);

}  // namespace mailring::core

// Evaluates its arguments only when the level is enabled.
#define MAILRING_LOG(level, ...)                                                  \
  do {                                                                            \
    if (::mailring::core::LogEnabled(::mailring::core::LogLevel::level)) {        \
      ::mailring::core::WriteLogLine(::mailring::core::LogLevel::level,           \
                                     ::mailring::StrCat(__VA_ARGS__));                \
    }                                                                             \
  } while (false)
