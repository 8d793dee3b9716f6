// Tls13RecordLayer::Open on arbitrary server bytes, the first parser a TLS leg's bytes reach after
// the take-over from wolfSSL.
//
// Input: byte 0 picks the mode, the rest is the payload.
//   even: the payload is the wire as it arrives, cut into chunks at the sizes byte 1 seeds (almost
//         every record fails its tag: this explores the outer-record checks).
//   odd:  the payload is a sequence of inner plaintexts (a 2-byte length, then the bytes, whose
//         last non-zero byte is the content type and whose trailing zeros are padding), each sealed
//         here with the server's key as a real server would: this explores what follows a valid
//         tag (content types, alerts, post-handshake messages, padding).
//
// Properties: consumed never exceeds the input and kNeedMore consumes nothing; an error is final
// for the caller, printable, at most 160 characters and never contains key material; plaintext
// appears in `out` only for kApplicationData, and for the odd mode it is exactly what was sealed.
// OpenInPlace, on a second layer with the same keys and a copy of the same bytes, agrees with
// Open on every record: the same result or error, the same size consumed, the same plaintext.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#include "core/tls/aes_gcm_cipher.h"
#include "core/tls/tls13_record_layer.h"

namespace {

using mailring::core::AesGcmSeal;
using mailring::core::Tls13RecordLayer;
using mailring::core::TrafficKey;
using Opened = Tls13RecordLayer::Opened;

const std::string kClientKey(16, '\x11');
const std::string kServerKey(16, '\x22');

void Check(bool condition) {
  if (!condition) std::abort();
}

TrafficKey Key(const std::string& key) {
  TrafficKey traffic;
  traffic.key = key;
  traffic.iv.fill(0x5a);
  return traffic;
}

void CheckError(const absl::Status& status) {
  const std::string_view message(status.message().data(), status.message().size());
  Check(!message.empty() && message.size() <= 160);
  for (char c : message) Check(c >= 0x20 && c < 0x7f);
  Check(message.find(kServerKey) == std::string_view::npos);
}

// Seals `inner` (content and type byte and padding, as given) into a record.
std::string SealInner(std::string_view inner, uint64_t sequence) {
  std::array<uint8_t, 12> nonce{};
  nonce.fill(0x5a);
  for (int i = 0; i < 8; ++i) nonce[11 - i] ^= static_cast<uint8_t>(sequence >> (8 * i));
  const size_t length = inner.size() + 16;
  std::string record = {0x17, 0x03, 0x03, static_cast<char>(length >> 8),
                        static_cast<char>(length & 0xff)};
  record.append(inner);
  record.resize(5 + length);
  auto* body = reinterpret_cast<uint8_t*>(record.data() + 5);
  Check(AesGcmSeal(kServerKey, nonce.data(), std::string_view(record.data(), 5), body,
                   inner.size(), body, body + inner.size(), 16));
  return record;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  auto layer = Tls13RecordLayer::Create(Key(kClientKey), Key(kServerKey));
  Check(layer.ok());
  auto in_place = Tls13RecordLayer::Create(Key(kClientKey), Key(kServerKey));
  Check(in_place.ok());
  const bool sealed_mode = (data[0] & 1) != 0;
  std::string_view payload(reinterpret_cast<const char*>(data) + 2, size - 2);

  std::string wire;
  std::string expected;  // sealed mode: the application data the records carry, in order
  if (sealed_mode) {
    uint64_t sequence = 0;
    while (payload.size() >= 2 && sequence < 64) {
      const size_t length = ((static_cast<uint8_t>(payload[0]) << 8) |
                             static_cast<uint8_t>(payload[1])) % (16384 + 256 - 16);
      payload.remove_prefix(2);
      const std::string_view inner = payload.substr(0, length);
      payload.remove_prefix(inner.size());
      wire += SealInner(inner, sequence++);
      size_t end = inner.size();
      while (end > 0 && inner[end - 1] == 0) --end;
      if (end > 0 && static_cast<uint8_t>(inner[end - 1]) == 0x17) expected += inner.substr(0, end - 1);
    }
  } else {
    wire.assign(payload);
  }

  // Feed in chunks, as recv would, and open everything that is whole.
  uint32_t state = data[1] * 2654435761u + 1;
  std::string buffered, out, scratch;
  size_t fed = 0;
  bool failed = false, closed = false;
  while (fed < wire.size() && !failed && !closed) {
    state = state * 1664525u + 1013904223u;
    const size_t chunk = 1 + (state >> 8) % 20000;
    buffered.append(wire, fed, chunk);
    fed += std::min(chunk, wire.size() - fed);
    for (int records = 0; records < 256 && !failed && !closed; ++records) {
      size_t consumed = 0;
      const size_t before = out.size();
      const absl::StatusOr<Opened> opened = layer->Open(buffered, &consumed, &out);
      scratch = buffered;
      size_t consumed_in_place = 0;
      std::string_view plaintext_in_place;
      const absl::StatusOr<Opened> opened_in_place =
          in_place->OpenInPlace(std::span<char>(scratch), &consumed_in_place, &plaintext_in_place);
      Check(opened.ok() == opened_in_place.ok());
      if (opened.ok()) {
        Check(*opened == *opened_in_place && consumed == consumed_in_place);
        Check(plaintext_in_place == std::string_view(out).substr(before));
      } else {
        Check(opened.status() == opened_in_place.status());
      }
      if (!opened.ok()) {
        CheckError(opened.status());
        Check(out.size() == before);
        failed = true;
        break;
      }
      Check(consumed <= buffered.size());
      if (*opened == Opened::kNeedMore) {
        Check(consumed == 0 && out.size() == before);
        break;
      }
      Check(consumed > 0);
      if (*opened != Opened::kApplicationData) Check(out.size() == before);
      if (*opened == Opened::kCloseNotify) closed = true;
      buffered.erase(0, consumed);
    }
  }
  if (sealed_mode) {
    // What was delivered is a prefix of what was sealed as application data (all of it when
    // nothing stopped the stream).
    Check(expected.compare(0, out.size(), out) == 0);
    if (!failed && !closed && buffered.empty()) Check(out == expected);
  }
  return 0;
}
