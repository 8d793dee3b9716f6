#include "core/tls/ktls_handover.h"

#include <atomic>
#include <string>

#include "core/log.h"
#include "proto/absl_string_view.h"

namespace mailring::core {
namespace {

std::string_view FallbackText(KtlsFallback reason) {
  switch (reason) {
    case KtlsFallback::kDisabled: return "--ktls=false";
    case KtlsFallback::kNoKernelTls: return "the kernel has no TLS module (TCP_ULP: ENOENT)";
    case KtlsFallback::kKernelRefused: return "the kernel refused the keys";
    case KtlsFallback::kNotTls13: return "not TLS 1.3";
    case KtlsFallback::kNotAesGcm: return "the cipher is not AES-GCM";
    case KtlsFallback::kNotAtRecordBoundary:
      return "bytes of a record were still buffered in user space when the relay started";
    case KtlsFallback::kCount: break;
  }
  return "unknown";
}

KtlsHandoverResult FallBack(KtlsFallback reason, std::string_view detail,
                            WorkerCounters& counters, std::string_view log_prefix) {
  counters.tls_relays_userspace.fetch_add(1, std::memory_order_relaxed);
  const uint64_t before = counters.ktls_fallbacks[static_cast<size_t>(reason)].fetch_add(
      1, std::memory_order_relaxed);
  if (before == 0) {
    MAILRING_LOG(kInfo, log_prefix, " upstream TLS relayed by mailring's record path, not kTLS (",
                 KtlsFallbackLabel(reason), "): ", detail.empty() ? FallbackText(reason) : detail,
                 "; logged once per worker and reason, counted in "
                 "mailring_ktls_fallbacks_total");
  }
  return {};
}

}  // namespace

KtlsHandoverResult HandOverToKtls(int upstream_fd,
                                  const std::variant<KtlsKeys, KtlsFallback>& handover,
                                  bool enabled, WorkerCounters& counters,
                                  std::string_view log_prefix) {
  if (!enabled) return FallBack(KtlsFallback::kDisabled, {}, counters, log_prefix);
  if (const auto* reason = std::get_if<KtlsFallback>(&handover)) {
    return FallBack(*reason, {}, counters, log_prefix);
  }
  // A kernel without TLS is asked once per worker: as root, every refused TCP_ULP "tls" makes
  // the kernel run modprobe (request_module), milliseconds per session. A module loaded later is
  // used after a restart.
  if (counters.ktls_fallbacks[static_cast<size_t>(KtlsFallback::kNoKernelTls)].load(
          std::memory_order_relaxed) > 0) {
    return FallBack(KtlsFallback::kNoKernelTls, {}, counters, log_prefix);
  }
  const absl::Status installed = InstallKtls(upstream_fd, std::get<KtlsKeys>(handover));
  if (installed.ok()) {
    counters.tls_relays_ktls.fetch_add(1, std::memory_order_relaxed);
    return {.installed = true, .fatal = absl::OkStatus()};
  }
  if (!KtlsErrorAllowsFallback(installed)) return {.installed = false, .fatal = installed};
  return FallBack(absl::IsNotFound(installed) ? KtlsFallback::kNoKernelTls
                                              : KtlsFallback::kKernelRefused,
                  proto::AsStd(installed.message()), counters, log_prefix);
}

}  // namespace mailring::core
