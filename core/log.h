// Log: one line per event on stderr, written with a single write(2) so lines from different
// threads never interleave.
//
// Format: `2026-11-26T22:00:00.123Z INFO  w0 <message>`. Messages about a session carry
// `session=`, `route=`, `dest=` and the action under way (see core/session.h). Callers build
// the message with absl::StrCat; proto::Secret does not convert to text, so a secret cannot be
// passed by accident.
#pragma once

#include <string_view>

#include "absl/status/statusor.h"
#include "proto/str_cat.h"

namespace mailring::core {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

absl::StatusOr<LogLevel> ParseLogLevel(std::string_view name);
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
// Names the calling thread in log lines ("main", "w0", ...).
void SetLogThreadName(std::string_view name);
void WriteLogLine(LogLevel level, std::string_view message);

}  // namespace mailring::core

// Evaluates its arguments only when the level is enabled.
#define MAILRING_LOG(level, ...)                                                  \
  do {                                                                            \
    if (::mailring::core::LogEnabled(::mailring::core::LogLevel::level)) {        \
      ::mailring::core::WriteLogLine(::mailring::core::LogLevel::level,           \
                                     ::mailring::StrCat(__VA_ARGS__));                \
    }                                                                             \
  } while (false)
