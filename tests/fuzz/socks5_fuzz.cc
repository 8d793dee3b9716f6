// Socks5Client::OnBytes on arbitrary proxy bytes, cut into arbitrary chunks.
//
// Input: byte 0 picks the configuration (location id or none, host), byte 1 seeds the chunk
// sizes, the rest is what the proxy sends. The bytes are fed as a transport would: each chunk
// appended to what the client has not consumed yet.
//
// Properties: consumed never exceeds the input; kNeedMore consumes nothing; kSend happens at most
// twice and carries exactly the documented messages; after kConnected the unconsumed bytes are
// the tunnel's and later calls consume none; a failure is final, printable, short, and never
// contains the JWT.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proto/socks5.h"

namespace {

using mailring::proto::Socks5Client;
using Outcome = Socks5Client::Outcome;

constexpr std::string_view kJwt = "eyJhbGciOiJSUzI1NiJ9.fuzz-jwt-secret-7Qx.c2lnbmF0dXJl";

void Check(bool condition) {
  if (!condition) std::abort();
}

void CheckFailure(const Socks5Client::Step& step) {
  Check(!step.failure.empty());
  Check(step.failure.size() <= 200);
  Check(step.failure.find(kJwt) == std::string::npos);
  Check(step.failure.find("jwt-secret") == std::string::npos);
  for (char c : step.failure) Check(c >= 0x20 && c < 0x7f);
  Check(step.send.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t config = data[0];
  uint32_t chunk_seed = data[1] | 1u;
  const std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);

  const std::string_view location = (config & 1) ? "Dallas1" : "";
  const std::string_view host = (config & 2) ? "virtual-imap.corp" : "h";
  Socks5Client client(kJwt, location, host, 143);
  Check(client.Start() == std::string_view("\x05\x01\x80", 3));

  std::string pending;
  int sends = 0;
  bool connected = false;
  bool failed = false;
  size_t offset = 0;
  // Every iteration appends at least one byte, so this ends after at most stream.size() chunks.
  while (offset < stream.size() && !connected && !failed) {
    chunk_seed = chunk_seed * 1103515245u + 12345u;
    const size_t chunk = 1 + (chunk_seed >> 16) % 16;
    const std::string_view piece = stream.substr(offset, chunk);
    offset += piece.size();
    pending.append(piece);
    // At most one step per message the client can take from one buffer (method, auth, CONNECT).
    for (int i = 0; i < 4 && !connected && !failed; ++i) {
      const Socks5Client::Step step = client.OnBytes(pending);
      Check(step.consumed <= pending.size());
      Check(!client.action().empty());
      switch (step.outcome) {
        case Outcome::kNeedMore:
          Check(step.consumed == 0);
          Check(step.send.empty() && step.failure.empty());
          i = 4;  // wait for the next chunk
          break;
        case Outcome::kSend:
          Check(step.consumed == 2);
          Check(step.failure.empty());
          ++sends;
          if (sends == 1) {
            Check(step.send.size() == 1 + 4 + kJwt.size() + 1 + (location.empty() ? 0 : 12));
            Check(step.send[0] == 0x01);
            Check(std::string_view(step.send).substr(5, kJwt.size()) == kJwt);
          } else {
            Check(sends == 2);
            Check(step.send.size() == 5 + host.size() + 2);
            Check(std::string_view(step.send).substr(0, 4) ==
                  std::string_view("\x05\x01\x00\x03", 4));
          }
          break;
        case Outcome::kConnected:
          Check(sends == 2);
          Check(step.send.empty() && step.failure.empty());
          Check(step.consumed >= 8 && step.consumed <= 262);  // 1-byte name … 255-byte name
          connected = true;
          break;
        case Outcome::kFailed:
          CheckFailure(step);
          failed = true;
          break;
      }
      pending.erase(0, step.consumed);
    }
  }

  // The outcome is final: later bytes are consumed by nobody.
  const Socks5Client::Step after = client.OnBytes(pending);
  Check(after.consumed == 0);
  Check(after.send.empty());
  if (connected) Check(after.outcome == Outcome::kConnected);
  if (failed) {
    Check(after.outcome == Outcome::kFailed);
    CheckFailure(after);
  }
  if (!connected && !failed) Check(after.outcome == Outcome::kNeedMore);
  return 0;
}
