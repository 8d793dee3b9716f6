// KtlsHandover: the choice, at the start of a TLS session's relay, between the kernel's records
// (kTLS, core/tls/ktls.h: the relay then runs the plain RelayLegs on the upstream socket) and
// mailring's own record path (TlsRelay), with its counting and logging.
//
// Fallbacks (KtlsFallback) are counted per worker and reason in WorkerCounters; the first of each
// reason on a worker is logged (info), later ones are not: a kernel without TLS would otherwise
// log a line per session. Once a worker found that the kernel has no TLS (TCP_ULP: ENOENT) it
// stops asking (each refusal costs a modprobe run when mailring has CAP_NET_ADMIN).
//
// Contract: called by the worker thread that owns `counters`; `handover` is what
// TlsClient::KtlsHandover() said. Once this returns installed, the kernel owns the records and
// the TlsClient must not be used for them again.
#pragma once

#include <string_view>
#include <variant>

#include "absl/status/status.h"
#include "core/tls/ktls.h"
#include "core/worker_counters.h"

namespace mailring::core {

struct KtlsHandoverResult {
  bool installed = false;  // the kernel protects the records now
  // Not OK: the kernel took one direction and refused the other; the connection is unusable
  // and the session must close (installed is false).
  absl::Status fatal;
};

KtlsHandoverResult HandOverToKtls(int upstream_fd,
                                  const std::variant<KtlsKeys, KtlsFallback>& handover,
                                  bool enabled, WorkerCounters& counters,
                                  std::string_view log_prefix);

}  // namespace mailring::core
