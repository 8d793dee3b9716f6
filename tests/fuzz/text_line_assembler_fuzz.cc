// proto::TextLineAssembler (SMTP and POP3 framing): the same stream fed whole and in
// pseudo-random chunks must give the same lines and the same verdict; every line respects the
// limit and holds no line end. Input layout (FuzzedDataProvider takes integers from the end):
// stream | split seed (4) | max_line.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "proto/text_line_assembler.h"

namespace {

using mailring::proto::TextLineAssembler;

void Check(bool condition) {
  if (!condition) std::abort();
}

void Drain(TextLineAssembler& assembler, std::vector<std::string>& lines) {
  while (std::optional<std::string_view> line = assembler.NextLine()) lines.emplace_back(*line);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider provider(data, size);
  const size_t max_line = provider.ConsumeIntegralInRange<size_t>(1, 64);
  uint32_t split_state = provider.ConsumeIntegral<uint32_t>();
  const std::string stream = provider.ConsumeRemainingBytesAsString();

  std::vector<std::string> whole_lines;
  TextLineAssembler whole(max_line);
  const absl::Status whole_status = whole.Append(stream);
  Drain(whole, whole_lines);

  std::vector<std::string> chunked_lines;
  TextLineAssembler chunked(max_line);
  absl::Status chunked_status;
  for (size_t pos = 0; pos < stream.size() && chunked_status.ok();) {
    split_state = split_state * 1103515245u + 12345u;
    const size_t chunk = 1 + (split_state >> 16) % 9;
    chunked_status = chunked.Append(std::string_view(stream).substr(pos, chunk));
    pos += chunk;
    if (split_state & 0x100) Drain(chunked, chunked_lines);
  }
  Drain(chunked, chunked_lines);
  if (!chunked_status.ok()) Check(chunked.Append("x\r\n").code() == chunked_status.code());

  Check(whole_status.code() == chunked_status.code());
  Check(whole_lines == chunked_lines);
  if (whole_status.ok()) Check(whole.TakePending() == chunked.TakePending());
  for (const std::string& line : whole_lines) {
    Check(line.size() <= max_line);
    Check(line.find('\n') == std::string::npos);
  }
  if (!whole_status.ok()) Check(whole_status.message().size() <= 120);
  return 0;
}
