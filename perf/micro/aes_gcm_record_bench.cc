// TLS record crypto: one 16 KiB AES-GCM record (the TLS maximum) sealed and opened through
// wolfCrypt's API, as wolfSSL's record layer calls it, once on the AES-NI device
// (core/tls/aes_gcm_device.h) and once in wolfSSL's software AES. bytes_per_second is plaintext.
//   ./mailring_tls_bench --benchmark_min_time=0.5
// clang-format off
#include <wolfssl/options.h>
// clang-format on
#include <wolfssl/wolfcrypt/aes.h>

#include <optional>
#include <vector>

#include "benchmark/benchmark.h"
#include "core/tls/aes_gcm_device.h"

namespace mailring::core {
namespace {

constexpr size_t kRecord = 16384;

// range(0): 1 = the device, 0 = software; range(1): key bytes (16 or 32).
void RecordCrypto(benchmark::State& state, bool encrypt) {
  int device = INVALID_DEVID;
  if (state.range(0) == 1) {
    const std::optional<int> id = AesGcmDeviceId();
    if (!id.has_value()) {
      state.SkipWithError("no AES-GCM device on this machine");
      return;
    }
    device = *id;
  }
  const std::vector<byte> key(static_cast<size_t>(state.range(1)), 0x42), iv(12, 0x24),
      header{23, 3, 3, 0x40, 0x11};
  std::vector<byte> plaintext(kRecord, 0x5a), ciphertext(kRecord), tag(16);
  Aes aes;
  wc_AesInit(&aes, nullptr, device);
  wc_AesGcmSetKey(&aes, key.data(), static_cast<word32>(key.size()));
  wc_AesGcmEncrypt(&aes, ciphertext.data(), plaintext.data(), kRecord, iv.data(), 12, tag.data(),
                   16, header.data(), 5);
  for (auto _ : state) {
    const int result =
        encrypt ? wc_AesGcmEncrypt(&aes, ciphertext.data(), plaintext.data(), kRecord, iv.data(),
                                   12, tag.data(), 16, header.data(), 5)
                : wc_AesGcmDecrypt(&aes, plaintext.data(), ciphertext.data(), kRecord, iv.data(),
                                   12, tag.data(), 16, header.data(), 5);
    if (result != 0) state.SkipWithError("AES-GCM failed");
    benchmark::DoNotOptimize(plaintext.data());
  }
  wc_AesFree(&aes);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kRecord));
}

void BM_SealRecord(benchmark::State& state) { RecordCrypto(state, true); }
void BM_OpenRecord(benchmark::State& state) { RecordCrypto(state, false); }
BENCHMARK(BM_SealRecord)->ArgNames({"device", "key"})->ArgsProduct({{1, 0}, {16, 32}});
BENCHMARK(BM_OpenRecord)->ArgNames({"device", "key"})->ArgsProduct({{1, 0}, {16, 32}});

}  // namespace
}  // namespace mailring::core
