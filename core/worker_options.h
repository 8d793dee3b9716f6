// WorkerOptions: the data plane's tunables, with their defaults in one place. Filled from
// flags by control/main.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/time/time.h"
#include "core/clock.h"

namespace mailring::core {

struct WorkerOptions {
  // Upstream TCP connect, one attempt.
  absl::Duration connect_timeout = absl::Seconds(10);
  // From accept until the client is greeted (connect + greeting + login).
  absl::Duration login_timeout = absl::Seconds(30);
  // A client authenticating itself (OAuth2RefreshToken / AuthorizationCode) may take this long
  // between two lines: people type into telnet.
  absl::Duration client_auth_timeout = absl::Minutes(2);
  // Relay phase with no byte either way. IMAP IDLE clients re-issue IDLE every <= 29 minutes
  // (RFC 9051 5.4), so the default must exceed that.
  absl::Duration idle_timeout = absl::Minutes(30);
  // After one direction ended (half-close), how long the other may stay open.
  absl::Duration half_close_timeout = absl::Seconds(60);
  // Pre-relay line limit (a response line without its literals).
  size_t max_line_bytes = 8 * 1024;
  // splice pipes lent by a worker at once (--pipes-per-worker), and their size. A stalled leg
  // keeps its pipe full, so max_pipes x pipe_bytes bounds what stuck clients pin per worker;
  // a session that finds none relays through the copy path (core/relay_leg.h).
  size_t max_pipes = 512;
  size_t pipe_bytes = 1 << 20;
  // Bytes one relay direction moves before yielding to other sessions.
  size_t relay_budget_bytes = 4 << 20;
  // Provided buffers: pre-relay reads and the relay's copy path (a recv that fills one means
  // a burst: the leg switches to splice).
  uint32_t recv_buffer_count = 64;
  uint32_t recv_buffer_bytes = 16 * 1024;
  uint32_t ring_entries = 1024;
  // Extra PEM CA bundle for upstream TLS, trusted next to the system store.
  std::string ca_file;
  // AES-GCM TLS records on AES-NI through libcrypto (core/tls/aes_gcm_device.h) where the CPU
  // has it; false: wolfSSL's software AES (for comparison, or to rule the device out).
  bool tls_aes_ni = true;
  // Upstream TLS sessions resumed from the worker's cache (core/tls/session_cache.h).
  bool tls_resumption = true;
  // TLS 1.3 AES-GCM records protected by mailring after the first data, wolfSSL's connection
  // state freed (core/tls/tls13_record_layer.h).
  bool tls_record_takeover = true;
  // Hand TLS 1.3 AES-GCM records to the kernel (kTLS) at the start of the relay, so the TLS
  // leg is relayed like a plain one (splice included); falls back to mailring's record path when
  // the kernel has no TLS or the session does not qualify (core/tls/ktls_handover.h).
  bool ktls = true;
  // TCP keepalive on both legs: idle seconds before probing, interval, probes.
  int keepalive_idle_s = 60;
  int keepalive_interval_s = 15;
  int keepalive_count = 4;
  // The clock of the worker's timers and deadlines (login, idle, half-close, drain, retries),
  // read once per batch of completions. Production: CLOCK_MONOTONIC, the clock the control
  // thread stamps token expiries with. Tests advance their own to fire a timeout at once; a
  // test clock must only move forward. The connect timeout is the kernel's (a linked
  // io_uring timeout) and does not follow this clock.
  std::function<int64_t()> now_ms = MonotonicMs;
};

}  // namespace mailring::core
