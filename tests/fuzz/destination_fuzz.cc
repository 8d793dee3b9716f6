// Parses arbitrary bytes as a destination. A success must carry what the contract promises; an
// error must never echo the password or client secret.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proto/destination.h"

namespace {

void Check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<mailring::proto::Destination> destination =
      mailring::proto::ParseDestination(json);
  if (destination.ok()) {
    Check(!destination->name.empty());
    Check(!destination->type.empty());
    Check(!destination->host.empty());
    Check(destination->port != 0);
    Check(destination->password.Reveal() == destination->Property("mail.password"));
    Check(destination->client_secret.Reveal() == destination->Property("clientSecret"));
    return 0;
  }
  Check(destination.status().code() == absl::StatusCode::kInvalidArgument);
  // The seeds carry secrets spelled SECRETMARKER. When the marker occurs exactly once and sits
  // as the value of a secret key, no error may contain it (otherwise the fuzzer may have copied
  // it into a field whose value errors legitimately echo).
  constexpr std::string_view kMarker = "SECRETMARKER";
  const size_t at = json.find(kMarker);
  if (at == std::string_view::npos || json.find(kMarker, at + 1) != std::string_view::npos) {
    return 0;
  }
  const std::string_view before = json.substr(0, at);
  if (before.ends_with("\"mail.password\": \"") || before.ends_with("\"clientSecret\": \"")) {
    const std::string_view message(destination.status().message().data(),
                                   destination.status().message().size());
    Check(message.find(kMarker) == std::string_view::npos);
  }
  return 0;
}
