#include "core/ktls_fallback.h"

namespace mailring::core {

std::string_view KtlsFallbackLabel(KtlsFallback reason) {
  switch (reason) {
    case KtlsFallback::kDisabled: return "disabled";
    case KtlsFallback::kNoKernelTls: return "no_kernel_tls";
    case KtlsFallback::kKernelRefused: return "kernel_refused";
    case KtlsFallback::kNotTls13: return "not_tls13";
    case KtlsFallback::kNotAesGcm: return "not_aes_gcm";
    case KtlsFallback::kNotAtRecordBoundary: return "not_at_record_boundary";
    case KtlsFallback::kCount: break;
  }
  return "unknown";
}

}  // namespace mailring::core
