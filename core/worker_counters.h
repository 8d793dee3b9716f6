// WorkerCounters: what a worker and its sessions count, for /metrics (control/metrics.cc).
//
// Written by the worker thread only (its sessions count in their constructors, destructors and
// login steps); read by other threads only as relaxed snapshots.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/ktls_fallback.h"

namespace mailring::core {

struct WorkerCounters {
  std::atomic<uint64_t> sessions_accepted{0};
  std::atomic<uint64_t> sessions_open{0};
  std::atomic<uint64_t> logins_ok{0};
  std::atomic<uint64_t> logins_failed{0};
  std::atomic<uint64_t> bytes_client_to_upstream{0};
  std::atomic<uint64_t> bytes_upstream_to_client{0};
  // Reads that found the provided-buffer ring empty (-ENOBUFS) and fell back to poll + recv
  // (before the relay) or splice (during it): nothing is lost, but a steady rate says the ring
  // (--recv-buffers) is too small for the worker's load.
  std::atomic<uint64_t> recv_ring_empty{0};
  // Upstream TLS handshakes completed: full (certificate exchange) or resuming a kept session.
  std::atomic<uint64_t> tls_handshakes_full{0};
  std::atomic<uint64_t> tls_handshakes_resumed{0};
  // Relays of upstream TLS sessions by path (core/tls/ktls_handover.h): the kernel's records
  // (kTLS, plain relay legs) or mailring's (TlsRelay); the latter by KtlsFallback reason.
  std::atomic<uint64_t> tls_relays_ktls{0};
  std::atomic<uint64_t> tls_relays_userspace{0};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(KtlsFallback::kCount)> ktls_fallbacks{};
  // Bytes relay legs with a kTLS socket at one end moved by splice(2), counted when a session
  // closes: shows that bursts on the TLS leg take the zero-copy path.
  std::atomic<uint64_t> ktls_spliced_bytes{0};
  // Records other than data read from kTLS sockets (session tickets, close_notify).
  std::atomic<uint64_t> ktls_control_records{0};
};

}  // namespace mailring::core
