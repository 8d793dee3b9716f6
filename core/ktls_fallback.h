// KtlsFallback: why a TLS session's relay did not go to the kernel (kTLS, core/tls/ktls.h) and
// mailring's own record path took it. On its own so that the worker's counters
// (core/worker_counters.h) can keep one counter per reason without depending on the kTLS code.
#pragma once

#include <cstdint>
#include <string_view>

namespace mailring::core {

enum class KtlsFallback : uint8_t {
  kDisabled,         // --ktls=false
  kNoKernelTls,      // TCP_ULP "tls" refused with ENOENT: the kernel has no TLS module
  kKernelRefused,    // another setsockopt failure (e.g. a cipher the kernel lacks)
  kNotTls13,         // TLS 1.2 (its explicit nonces are not handed out cleanly by wolfSSL)
  kNotAesGcm,        // e.g. ChaCha20-Poly1305
  kNotAtRecordBoundary,  // bytes still buffered in user space at relay start (a partial record,
                         // pending plaintext or output), or the connection already ended
  kCount,
};

// The metric label of a fallback reason ("no_kernel_tls", ...).
std::string_view KtlsFallbackLabel(KtlsFallback reason);

}  // namespace mailring::core
