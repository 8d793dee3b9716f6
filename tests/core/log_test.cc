// Both log formats from FormatLogLine: the text line as before, and the JSON object a log
// pipeline parses (context words moved into fields, everything quoted).
#include "core/log.h"

#include <time.h>

#include <string>

#include "gtest/gtest.h"

namespace mailring::core {
namespace {

// 2026-11-26T22:00:00.123Z
constexpr timespec kTime = {1795730400, 123456789};

TEST(LogTest, TextLineIsTimeLevelThreadMessage) {
  EXPECT_EQ(FormatLogLine(LogFormat::kText, LogLevel::kInfo, kTime, "w0", "session=w0:1 hello"),
            "2026-11-26T22:00:00.123Z INFO  w0 session=w0:1 hello\n");
  EXPECT_EQ(FormatLogLine(LogFormat::kText, LogLevel::kError, kTime, "main", "x"),
            "2026-11-26T22:00:00.123Z ERROR main x\n");
}

TEST(LogTest, JsonLineMovesSessionContextIntoFields) {
  EXPECT_EQ(FormatLogLine(LogFormat::kJson, LogLevel::kWarning, kTime, "w1",
                          "session=w1:42 route=127.0.0.1:1143 dest=example-dest-imap tenant=t1 "
                          "cr=mail/inbox failed: upstream said NO"),
            "{\"time\":\"2026-11-26T22:00:00.123Z\",\"level\":\"warning\",\"worker\":\"w1\","
            "\"session\":\"w1:42\",\"route\":\"127.0.0.1:1143\","
            "\"destination\":\"example-dest-imap\",\"tenant\":\"t1\",\"cr\":\"mail/inbox\","
            "\"message\":\"failed: upstream said NO\"}\n");
}

TEST(LogTest, JsonLineWithoutContextHasOnlyTheMessage) {
  EXPECT_EQ(FormatLogLine(LogFormat::kJson, LogLevel::kInfo, kTime, "main",
                          "listening on 127.0.0.1:1143 route=not-a-prefix"),
            "{\"time\":\"2026-11-26T22:00:00.123Z\",\"level\":\"info\",\"worker\":\"main\","
            "\"message\":\"listening on 127.0.0.1:1143 route=not-a-prefix\"}\n");
}

TEST(LogTest, JsonLineEscapesQuotesBackslashesAndControlCharacters) {
  const std::string line = FormatLogLine(LogFormat::kJson, LogLevel::kDebug, kTime, "w0",
                                         "dest=a\"b say \"hi\"\\\n\tend");
  EXPECT_EQ(line,
            "{\"time\":\"2026-11-26T22:00:00.123Z\",\"level\":\"debug\",\"worker\":\"w0\","
            "\"destination\":\"a\\\"b\",\"message\":\"say \\\"hi\\\"\\\\\\n\\tend\"}\n");
  // One object, one line.
  EXPECT_EQ(line.find('\n'), line.size() - 1);
}

TEST(LogTest, ParsesFormatsAndRejectsOthers) {
  EXPECT_EQ(*ParseLogFormat("json"), LogFormat::kJson);
  EXPECT_EQ(*ParseLogFormat("TEXT"), LogFormat::kText);
  const absl::StatusOr<LogFormat> bad = ParseLogFormat("yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("text, json"), absl::string_view::npos);
}

}  // namespace
}  // namespace mailring::core
