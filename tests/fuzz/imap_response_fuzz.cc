// Parses arbitrary lines as responses: views must stay inside the line, and the capability
// filter must never let a login capability through.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "proto/imap_capabilities.h"
#include "proto/imap_response.h"

namespace {

void Check(bool condition) {
  if (!condition) std::abort();
}

bool Inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  std::optional<mailring::proto::ImapResponse> response = mailring::proto::ParseImapResponse(line);
  if (!response.has_value()) return 0;
  Check(Inside(response->tag, line));
  Check(Inside(response->keyword, line));
  Check(Inside(response->code, line));
  Check(Inside(response->text, line));
  std::optional<std::string_view> capabilities = response->Capabilities();
  if (!capabilities.has_value()) return 0;
  Check(Inside(*capabilities, line));
  const auto set = mailring::proto::CapabilitySet::Parse(*capabilities);
  const auto filtered = mailring::proto::CapabilitySet::Parse(set.ForPreauthenticatedClient());
  Check(!filtered.Has("SASL-IR") && !filtered.Has("LOGINDISABLED") && !filtered.Has("STARTTLS"));
  for (const std::string& atom : filtered.atoms()) {
    Check(!(atom.size() >= 5 && (atom[0] | 0x20) == 'a' && (atom[1] | 0x20) == 'u' &&
            (atom[2] | 0x20) == 't' && (atom[3] | 0x20) == 'h' && atom[4] == '='));
  }
  return 0;
}
