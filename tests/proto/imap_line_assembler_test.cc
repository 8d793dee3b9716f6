#include "proto/imap_line_assembler.h"

#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace mailring::proto {
namespace {

using namespace std::string_literals;  // NOLINT: binary literals below contain NUL bytes
using Lines = std::vector<std::string>;

Lines Drain(ImapLineAssembler& assembler) {
  Lines lines;
  while (std::optional<std::string_view> line = assembler.NextLine()) lines.emplace_back(*line);
  return lines;
}

// Feeds `stream` in one Append and returns every line.
Lines AllAtOnce(std::string_view stream) {
  ImapLineAssembler assembler;
  EXPECT_TRUE(assembler.Append(stream).ok());
  return Drain(assembler);
}

// Feeds `stream` split at `cut`, draining lines after each Append.
Lines SplitAt(std::string_view stream, size_t cut) {
  ImapLineAssembler assembler;
  EXPECT_TRUE(assembler.Append(stream.substr(0, cut)).ok()) << "cut at " << cut;
  Lines lines = Drain(assembler);
  EXPECT_TRUE(assembler.Append(stream.substr(cut)).ok()) << "cut at " << cut;
  for (std::string& line : Drain(assembler)) lines.push_back(std::move(line));
  return lines;
}

// Feeds `stream` one byte at a time.
Lines ByteByByte(std::string_view stream) {
  ImapLineAssembler assembler;
  Lines lines;
  for (char c : stream) {
    EXPECT_TRUE(assembler.Append(std::string_view(&c, 1)).ok());
    for (std::string& line : Drain(assembler)) lines.push_back(std::move(line));
  }
  return lines;
}

void ExpectSameAtEverySplit(std::string_view stream, const Lines& expected) {
  EXPECT_EQ(AllAtOnce(stream), expected);
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    EXPECT_EQ(SplitAt(stream, cut), expected) << "cut at " << cut;
  }
  EXPECT_EQ(ByteByByte(stream), expected);
}

TEST(ImapLineAssemblerTest, SplitsTaggedAndUntaggedLines) {
  EXPECT_EQ(AllAtOnce("* OK [CAPABILITY IMAP4rev1] ready\r\nA1 OK done\r\n* 3 EXISTS\r\n"),
            (Lines{"* OK [CAPABILITY IMAP4rev1] ready", "A1 OK done", "* 3 EXISTS"}));
}

TEST(ImapLineAssemblerTest, IncompleteLineIsNotReturned) {
  ImapLineAssembler assembler;
  ASSERT_TRUE(assembler.Append("A1 NOOP").ok());
  EXPECT_EQ(assembler.NextLine(), std::nullopt);
  ASSERT_TRUE(assembler.Append("\r").ok());
  EXPECT_EQ(assembler.NextLine(), std::nullopt);
  ASSERT_TRUE(assembler.Append("\n").ok());
  EXPECT_EQ(assembler.NextLine(), "A1 NOOP");
  EXPECT_EQ(assembler.NextLine(), std::nullopt);
}

TEST(ImapLineAssemblerTest, BareLfEndsLine) {
  EXPECT_EQ(AllAtOnce("2 LIST \"\" \"*\"\n3 SELECT INBOX\n"),
            (Lines{"2 LIST \"\" \"*\"", "3 SELECT INBOX"}));
}

TEST(ImapLineAssemblerTest, EmptyLineIsReturnedEmpty) {
  EXPECT_EQ(AllAtOnce("\r\nA1 NOOP\r\n"), (Lines{"", "A1 NOOP"}));
}

TEST(ImapLineAssemblerTest, SynchronizingLiteralContinuesLine) {
  EXPECT_EQ(AllAtOnce("A1 LOGIN {4}\r\nuser {6}\r\np\r\nw\"d\r\n"),
            (Lines{"A1 LOGIN {4}\r\nuser {6}\r\np\r\nw\"d"}));
}

TEST(ImapLineAssemblerTest, LiteralOctetsMayContainCrlfAndBraces) {
  EXPECT_EQ(AllAtOnce("* 1 FETCH (BODY[] {9}\r\n{3}\r\nab\r\n)\r\nA1 OK\r\n"),
            (Lines{"* 1 FETCH (BODY[] {9}\r\n{3}\r\nab\r\n)", "A1 OK"}));
}

TEST(ImapLineAssemblerTest, NonSynchronizingAndBinaryLiterals) {
  EXPECT_EQ(AllAtOnce("A1 LOGIN {4+}\r\nuser ~{3}\r\n\0\n\r\r\n"s),
            (Lines{"A1 LOGIN {4+}\r\nuser ~{3}\r\n\0\n\r"s}));
}

TEST(ImapLineAssemblerTest, ZeroLengthLiteral) {
  EXPECT_EQ(AllAtOnce("A1 LOGIN {0}\r\n {0+}\r\n\r\nA2 NOOP\r\n"),
            (Lines{"A1 LOGIN {0}\r\n {0+}\r\n", "A2 NOOP"}));
}

TEST(ImapLineAssemblerTest, LiteralSplitAtEveryByteGivesSameLine) {
  const std::string stream = "A1 LOGIN {5}\r\nu\r\n{x {7}\r\np}\"\r\n\\w\r\nA2 SELECT INBOX\r\n";
  ExpectSameAtEverySplit(stream,
                         Lines{"A1 LOGIN {5}\r\nu\r\n{x {7}\r\np}\"\r\n\\w", "A2 SELECT INBOX"});
}

TEST(ImapLineAssemblerTest, NonSynchronizingLiteralSplitAtEveryByteGivesSameLine) {
  const std::string stream = "A1 APPEND INBOX {11+}\r\nSubject: x\n\r\n* 2 EXISTS\n";
  ExpectSameAtEverySplit(stream, Lines{"A1 APPEND INBOX {11+}\r\nSubject: x\n", "* 2 EXISTS"});
}

TEST(ImapLineAssemblerTest, BinaryLiteralSplitAtEveryByteGivesSameLine) {
  const std::string stream = "* 1 FETCH (BINARY[1] ~{4}\r\n\0\r\n\xff)\r\n"s;
  ExpectSameAtEverySplit(stream, Lines{"* 1 FETCH (BINARY[1] ~{4}\r\n\0\r\n\xff)"s});
}

TEST(ImapLineAssemblerTest, QuotedStringsWithBracesAreText) {
  // Braces not at the end of a line part are text, and so is a quoted "{3}".
  const std::string stream = "A1 LOGIN \"us{er\" \"p}w{3}\"\r\nA2 SELECT \"{3}\"\r\n";
  ExpectSameAtEverySplit(stream, Lines{"A1 LOGIN \"us{er\" \"p}w{3}\"", "A2 SELECT \"{3}\""});
}

TEST(ImapLineAssemblerTest, ProseEndingInBracesIsText) {
  EXPECT_EQ(AllAtOnce("* OK hello {world}\r\n* OK {}\r\n"),
            (Lines{"* OK hello {world}", "* OK {}"}));
}

TEST(ImapLineAssemblerTest, MalformedLiteralIsInvalidArgument) {
  for (std::string_view line :
       {"A1 LOGIN {12a}\r\n", "A1 LOGIN {1+2}\r\n", "A1 LOGIN {+}\r\n", "A1 LOGIN {3++}\n"}) {
    ImapLineAssembler assembler;
    EXPECT_EQ(assembler.Append(line).code(), absl::StatusCode::kInvalidArgument) << line;
  }
}

TEST(ImapLineAssemblerTest, OversizeLineIsResourceExhausted) {
  ImapLineAssembler assembler(/*max_line_bytes=*/16);
  EXPECT_EQ(assembler.Append(std::string(17, 'x')).code(), absl::StatusCode::kResourceExhausted);
}

TEST(ImapLineAssemblerTest, LineAtLimitIsAcceptedEvenWhenCrlfArrivesLater) {
  ImapLineAssembler assembler(/*max_line_bytes=*/16);
  ASSERT_TRUE(assembler.Append(std::string(16, 'x')).ok());
  ASSERT_TRUE(assembler.Append("\r").ok());
  ASSERT_TRUE(assembler.Append("\n").ok());
  EXPECT_EQ(assembler.NextLine(), std::string(16, 'x'));
}

TEST(ImapLineAssemblerTest, OversizeLineDetectedBeforeItsEnd) {
  ImapLineAssembler assembler(/*max_line_bytes=*/16);
  ASSERT_TRUE(assembler.Append(std::string(16, 'x')).ok());
  EXPECT_EQ(assembler.Append("y").code(), absl::StatusCode::kResourceExhausted);
}

TEST(ImapLineAssemblerTest, LiteralOctetsDoNotCountTowardsLineLimit) {
  ImapLineAssembler assembler(/*max_line_bytes=*/16, /*max_literal_bytes=*/100);
  const std::string line = "A1 X {100}\r\n" + std::string(100, 'z') + "\r\n";
  ASSERT_TRUE(assembler.Append(line).ok());
  EXPECT_EQ(assembler.NextLine(), line.substr(0, line.size() - 2));
}

TEST(ImapLineAssemblerTest, AnnouncementCrlfCountsAsLineText) {
  ImapLineAssembler assembler(/*max_line_bytes=*/12);
  // "A1 X {1}\r\n" is 10 bytes of text, "z" is literal, "abc" makes 13.
  EXPECT_EQ(assembler.Append("A1 X {1}\r\nzabc\r\n").code(), absl::StatusCode::kResourceExhausted);
}

TEST(ImapLineAssemblerTest, OversizeLiteralIsResourceExhausted) {
  ImapLineAssembler assembler(/*max_line_bytes=*/100, /*max_literal_bytes=*/10);
  EXPECT_EQ(assembler.Append("A1 LOGIN {11}\r\n").code(), absl::StatusCode::kResourceExhausted);
}

TEST(ImapLineAssemblerTest, HugeLiteralAnnouncementIsResourceExhausted) {
  ImapLineAssembler assembler;
  EXPECT_EQ(assembler.Append("A1 LOGIN {99999999999999999999999999}\r\n").code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(ImapLineAssemblerTest, LiteralsOfOneLineShareTheLiteralLimit) {
  ImapLineAssembler assembler(/*max_line_bytes=*/100, /*max_literal_bytes=*/10);
  ASSERT_TRUE(assembler.Append("A1 LOGIN {6}\r\nuser01 ").ok());
  EXPECT_EQ(assembler.Append("{5}\r\n").code(), absl::StatusCode::kResourceExhausted);
}

TEST(ImapLineAssemblerTest, LiteralLimitResetsForEachLine) {
  ImapLineAssembler assembler(/*max_line_bytes=*/100, /*max_literal_bytes=*/10);
  ASSERT_TRUE(assembler.Append("A1 X {10}\r\n0123456789\r\nA2 X {10}\r\n0123456789\r\n").ok());
  EXPECT_EQ(Drain(assembler).size(), 2u);
}

TEST(ImapLineAssemblerTest, OversizeMalformedLineFailsTheSameAtEverySplit) {
  // Found by the fuzzer: a too-long line ending in a botched announcement used to fail as
  // InvalidArgument in one piece but ResourceExhausted when its text arrived before its LF.
  const std::string stream = "A1 LOGIN xxxxxxxx {4u}\r\n";
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    ImapLineAssembler assembler(/*max_line_bytes=*/12);
    absl::Status status = assembler.Append(stream.substr(0, cut));
    if (status.ok()) status = assembler.Append(stream.substr(cut));
    EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << "cut at " << cut;
  }
}

TEST(ImapLineAssemblerTest, ErrorIsStickyAndEarlierLinesSurvive) {
  ImapLineAssembler assembler(/*max_line_bytes=*/16);
  const absl::Status status = assembler.Append("A1 NOOP\r\n" + std::string(40, 'x') + "\r\n");
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(assembler.Append("A2 NOOP\r\n"), status);
  EXPECT_EQ(assembler.NextLine(), "A1 NOOP");
  EXPECT_EQ(assembler.NextLine(), std::nullopt);
}

TEST(ImapLineAssemblerTest, AwaitingContinuationAfterSynchronizingAnnouncement) {
  ImapLineAssembler assembler;
  ASSERT_TRUE(assembler.Append("A1 LOGIN {4}\r").ok());
  EXPECT_FALSE(assembler.AwaitingLiteralContinuation());
  ASSERT_TRUE(assembler.Append("\n").ok());
  EXPECT_TRUE(assembler.AwaitingLiteralContinuation());
  EXPECT_EQ(assembler.NextLine(), std::nullopt);
  ASSERT_TRUE(assembler.Append("u").ok());
  EXPECT_FALSE(assembler.AwaitingLiteralContinuation());
  ASSERT_TRUE(assembler.Append("ser {4}\r\n").ok());
  EXPECT_TRUE(assembler.AwaitingLiteralContinuation());
  ASSERT_TRUE(assembler.Append("pass\r\n").ok());
  EXPECT_FALSE(assembler.AwaitingLiteralContinuation());
  EXPECT_EQ(assembler.NextLine(), "A1 LOGIN {4}\r\nuser {4}\r\npass");
}

TEST(ImapLineAssemblerTest, NonSynchronizingAnnouncementDoesNotAwaitContinuation) {
  ImapLineAssembler assembler;
  ASSERT_TRUE(assembler.Append("A1 LOGIN {4+}\r\n").ok());
  EXPECT_FALSE(assembler.AwaitingLiteralContinuation());
}

TEST(ImapLineAssemblerTest, PendingHoldsEverythingNotYetReturned) {
  ImapLineAssembler assembler;
  ASSERT_TRUE(assembler.Append("A1 LOGIN u p\r\nA2 SELECT INBOX\r\nA3 FET").ok());
  EXPECT_EQ(assembler.Pending(), "A1 LOGIN u p\r\nA2 SELECT INBOX\r\nA3 FET");
  EXPECT_EQ(assembler.NextLine(), "A1 LOGIN u p");
  EXPECT_EQ(assembler.Pending(), "A2 SELECT INBOX\r\nA3 FET");
}

TEST(ImapLineAssemblerTest, TakePendingHandsOverTheRestAndResets) {
  ImapLineAssembler assembler;
  ASSERT_TRUE(assembler.Append("A1 LOGIN u p\r\nA2 APPEND INBOX {5}\r\nab").ok());
  EXPECT_EQ(assembler.NextLine(), "A1 LOGIN u p");
  EXPECT_EQ(assembler.TakePending(), "A2 APPEND INBOX {5}\r\nab");
  EXPECT_EQ(assembler.Pending(), "");
  EXPECT_EQ(assembler.NextLine(), std::nullopt);
  ASSERT_TRUE(assembler.Append("A3 NOOP\r\n").ok());
  EXPECT_EQ(assembler.NextLine(), "A3 NOOP");
}

TEST(ImapLineAssemblerTest, LongStreamOfSmallLinesKeepsBufferSmall) {
  ImapLineAssembler assembler;
  const std::string line = "* 1 FETCH (FLAGS (\\Seen))\r\n";
  for (int i = 0; i < 100000; ++i) {
    ASSERT_TRUE(assembler.Append(line).ok());
    ASSERT_EQ(assembler.NextLine(), "* 1 FETCH (FLAGS (\\Seen))");
    // Whatever is pending is at most the tail of the last chunk.
    ASSERT_LE(assembler.Pending().size(), line.size());
  }
}

TEST(ImapLineAssemblerTest, ManyLinesInOneAppendAreAllReturned) {
  std::string stream;
  for (int i = 0; i < 1000; ++i) stream += "* " + std::to_string(i) + " EXISTS\r\n";
  const Lines lines = AllAtOnce(stream);
  ASSERT_EQ(lines.size(), 1000u);
  EXPECT_EQ(lines[999], "* 999 EXISTS");
}

}  // namespace
}  // namespace mailring::proto
