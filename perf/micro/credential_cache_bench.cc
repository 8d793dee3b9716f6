// The credential cache's read path: one atomic load and a hash lookup, measured idle and while
// a writer thread publishes continuously (target: <= 20 ns, flat under writes).
#include <atomic>
#include <string>
#include <thread>

#include "benchmark/benchmark.h"
#include "core/credential_cache.h"

namespace mailring::core {
namespace {

Credential MakeCredential(int64_t n) {
  Credential credential;
  credential.access_token = proto::Secret("token-" + std::to_string(n));
  credential.expires_at_ms = n;
  return credential;
}

void BM_CredentialCacheFind(benchmark::State& state) {
  const bool with_writer = state.range(0) != 0;
  CredentialCache cache(1);
  cache.SetOnline(0, true);
  for (int i = 0; i < 64; ++i) {
    cache.Publish(CredentialKey("dest-" + std::to_string(i), ""), MakeCredential(i));
  }
  const std::string key = CredentialKey("dest-7", "");
  std::atomic<bool> stop{false};
  std::atomic<int64_t> publishes{0};
  std::thread writer;
  if (with_writer) {
    writer = std::thread([&] {
      int64_t n = 1;
      while (!stop.load(std::memory_order_relaxed)) {
        cache.Publish(CredentialKey("dest-" + std::to_string(n % 64), ""), MakeCredential(n));
        ++n;
      }
      publishes = n;
    });
  }
  int64_t i = 0;
  for (auto _ : state) {
    const Credential* credential = cache.Find(0, key);
    benchmark::DoNotOptimize(credential);
    // A worker passes a quiescent point once per event-loop iteration, not per read.
    if ((++i & 1023) == 0) cache.Quiescent(0);
  }
  if (with_writer) {
    stop = true;
    writer.join();
    state.counters["publishes"] = static_cast<double>(publishes.load());
  }
  cache.SetOnline(0, false);
}

}  // namespace
}  // namespace mailring::core

BENCHMARK(mailring::core::BM_CredentialCacheFind)->Arg(0)->Arg(1)->ArgName("writer");
