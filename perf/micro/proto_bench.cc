// Costs of the IMAP work mailring does before a session reaches the relay.
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "proto/imap_line_assembler.h"
#include "proto/imap_login.h"
#include "proto/imap_response.h"

namespace mailring::proto {
namespace {

// A pre-login conversation seen from the client side, repeated: short commands of the kind a
// mail client sends, cut into reads of `chunk` bytes as they might come off a socket.
std::string ShortLineStream() {
  std::string stream;
  for (int i = 0; i < 200; ++i) {
    stream += "a" + std::to_string(i) + " CAPABILITY\r\n";
    stream += "a" + std::to_string(i) + " NOOP\r\n";
    stream += "a" + std::to_string(i) + " LIST \"\" \"*\"\r\n";
    stream += "* " + std::to_string(i) + " FETCH (UID 42 FLAGS (\\Seen \\Answered))\r\n";
  }
  return stream;
}

// LOGIN commands carrying literals, and an APPEND with a message body.
std::string LiteralStream() {
  const std::string body(4000, 'm');
  std::string stream;
  for (int i = 0; i < 50; ++i) {
    stream += "a1 LOGIN {16}\r\nuser@example.com {12}\r\np\"ss{w}rd\r\n\r\n";
    stream += "a2 APPEND INBOX (\\Seen) {" + std::to_string(body.size()) + "+}\r\n" + body + "\r\n";
  }
  return stream;
}

void FeedInChunks(benchmark::State& state, const std::string& stream) {
  const size_t chunk = static_cast<size_t>(state.range(0));
  size_t lines = 0;
  for (auto _ : state) {
    ImapLineAssembler assembler;
    for (size_t pos = 0; pos < stream.size(); pos += chunk) {
      if (!assembler.Append(std::string_view(stream).substr(pos, chunk)).ok()) {
        state.SkipWithError("assembler failed");
        return;
      }
      while (std::optional<std::string_view> line = assembler.NextLine()) {
        benchmark::DoNotOptimize(line->data());
        ++lines;
      }
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * stream.size()));
  state.counters["lines"] =
      benchmark::Counter(static_cast<double>(lines), benchmark::Counter::kIsRate);
}

void BM_LineAssemblerShortLines(benchmark::State& state) {
  static const std::string stream = ShortLineStream();
  FeedInChunks(state, stream);
}
BENCHMARK(BM_LineAssemblerShortLines)->Arg(16)->Arg(512)->Arg(16384);

void BM_LineAssemblerLiterals(benchmark::State& state) {
  static const std::string stream = LiteralStream();
  FeedInChunks(state, stream);
}
BENCHMARK(BM_LineAssemblerLiterals)->Arg(16)->Arg(512)->Arg(16384);

void BM_EncodeLoginAtoms(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(EncodeLogin("A1", "user@example.com", "correct-horse", true));
  }
}
BENCHMARK(BM_EncodeLoginAtoms);

void BM_EncodeLoginQuotedAndLiteral(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(EncodeLogin("A1", "first last", "p\xc3\xa4ss\"word", false));
  }
}
BENCHMARK(BM_EncodeLoginQuotedAndLiteral);

void BM_EncodeAuthenticatePlain(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        EncodeAuthenticatePlain("A1", "user@example.com", "correct-horse-battery-staple"));
  }
}
BENCHMARK(BM_EncodeAuthenticatePlain);

void BM_ParseDovecotGreeting(benchmark::State& state) {
  constexpr std::string_view kGreeting =
      "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS "
      "AUTH=PLAIN AUTH=LOGIN] Dovecot (Debian) ready.";
  for (auto _ : state) {
    std::optional<ImapResponse> response = ParseImapResponse(kGreeting);
    benchmark::DoNotOptimize(response);
    benchmark::DoNotOptimize(response->Capabilities());
  }
}
BENCHMARK(BM_ParseDovecotGreeting);

}  // namespace
}  // namespace mailring::proto
