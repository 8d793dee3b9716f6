// Feeds the same stream to two assemblers, one in a single Append and one in pseudo-random
// chunks, and checks that they agree (split invariance) and that limits hold. Input layout
// (FuzzedDataProvider takes integers from the end): stream | split seed (4) | max_literal |
// max_line.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "proto/imap_line_assembler.h"

namespace {

using mailring::proto::ImapLineAssembler;

void Check(bool condition) {
  if (!condition) std::abort();
}

struct Outcome {
  std::vector<std::string> lines;
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string pending;
  bool awaiting = false;
};

void DrainInto(ImapLineAssembler& assembler, Outcome& outcome) {
  while (std::optional<std::string_view> line = assembler.NextLine()) {
    outcome.lines.emplace_back(*line);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider provider(data, size);
  const size_t max_line = provider.ConsumeIntegralInRange<size_t>(1, 128);
  const size_t max_literal = provider.ConsumeIntegralInRange<size_t>(0, 128);
  uint32_t split_state = provider.ConsumeIntegral<uint32_t>();
  const std::string stream = provider.ConsumeRemainingBytesAsString();

  Outcome whole;
  {
    ImapLineAssembler assembler(max_line, max_literal);
    whole.code = assembler.Append(stream).code();
    DrainInto(assembler, whole);
    whole.pending = std::string(assembler.Pending());
    whole.awaiting = assembler.AwaitingLiteralContinuation();
  }

  Outcome chunked;
  {
    ImapLineAssembler assembler(max_line, max_literal);
    size_t pos = 0;
    while (pos < stream.size()) {
      split_state = split_state * 1103515245u + 12345u;
      const size_t chunk = 1 + (split_state >> 16) % 17;
      const absl::Status status = assembler.Append(std::string_view(stream).substr(pos, chunk));
      pos += chunk;
      if (!status.ok()) {
        chunked.code = status.code();
        // Sticky: a later Append reports the same error.
        Check(assembler.Append("x\r\n").code() == status.code());
        break;
      }
      // Drain between chunks so compaction runs and returned views get invalidated.
      if (split_state & 0x100) DrainInto(assembler, chunked);
    }
    DrainInto(assembler, chunked);
    chunked.pending = std::string(assembler.Pending());
    chunked.awaiting = assembler.AwaitingLiteralContinuation();
  }

  Check(whole.lines == chunked.lines);
  Check(whole.code == chunked.code);
  Check(whole.code == absl::StatusCode::kOk || whole.code == absl::StatusCode::kResourceExhausted ||
        whole.code == absl::StatusCode::kInvalidArgument);
  if (whole.code == absl::StatusCode::kOk) {
    Check(whole.pending == chunked.pending);
    Check(whole.awaiting == chunked.awaiting);
  }
  size_t returned = 0;
  for (const std::string& line : whole.lines) {
    // Text is bounded by max_line; literal octets (with their announcements) by max_literal.
    Check(line.size() <= max_line + max_literal);
    returned += line.size() + 1;  // at least the LF that ended it
  }
  Check(returned <= stream.size());
  return 0;
}
