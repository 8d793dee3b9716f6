#include "control/metrics.h"

#include "control/build_info.h"
#include "core/tls/aes_gcm_device.h"
#include "core/ktls_fallback.h"
#include "core/tls/tls13_record_layer.h"
#include "proto/str_cat.h"

namespace mailring::control {
namespace {

void Counter(std::string* out, std::string_view name, std::string_view help,
             std::string_view type, uint64_t value) {
  mailring::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n", name,
                      " ", value, "\n");
}

// A Prometheus label value: backslash, double quote and newline escaped.
std::string LabelValue(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

std::string RenderMetrics(const MetricsSources& sources) {
  uint64_t accepted = 0, open = 0, logins_ok = 0, logins_failed = 0, to_upstream = 0,
           to_client = 0, listening = 0, listen_failures = 0, ring_empty = 0, pipes_in_use = 0,
           pipes_limit = 0, pipe_pool_exhausted = 0, pipe_create_failures = 0,
           copy_fallbacks = 0, tls_full = 0, tls_resumed = 0, tls_relays_ktls = 0,
           tls_relays_userspace = 0, ktls_spliced = 0, ktls_control_records = 0;
  uint64_t ktls_fallbacks[static_cast<size_t>(core::KtlsFallback::kCount)] = {};
  for (const core::Worker* worker : sources.workers) {
    const core::WorkerCounters& c = worker->counters();
    accepted += c.sessions_accepted.load(std::memory_order_relaxed);
    open += c.sessions_open.load(std::memory_order_relaxed);
    logins_ok += c.logins_ok.load(std::memory_order_relaxed);
    logins_failed += c.logins_failed.load(std::memory_order_relaxed);
    to_upstream += c.bytes_client_to_upstream.load(std::memory_order_relaxed);
    to_client += c.bytes_upstream_to_client.load(std::memory_order_relaxed);
    ring_empty += c.recv_ring_empty.load(std::memory_order_relaxed);
    tls_full += c.tls_handshakes_full.load(std::memory_order_relaxed);
    tls_resumed += c.tls_handshakes_resumed.load(std::memory_order_relaxed);
    tls_relays_ktls += c.tls_relays_ktls.load(std::memory_order_relaxed);
    tls_relays_userspace += c.tls_relays_userspace.load(std::memory_order_relaxed);
    ktls_spliced += c.ktls_spliced_bytes.load(std::memory_order_relaxed);
    ktls_control_records += c.ktls_control_records.load(std::memory_order_relaxed);
    for (size_t i = 0; i < c.ktls_fallbacks.size(); ++i) {
      ktls_fallbacks[i] += c.ktls_fallbacks[i].load(std::memory_order_relaxed);
    }
    const core::PipeCounters& pipes = worker->pipe_counters();
    pipes_in_use += pipes.in_use.load(std::memory_order_relaxed);
    pipes_limit += worker->options().max_pipes;
    pipe_pool_exhausted += pipes.exhausted.load(std::memory_order_relaxed);
    pipe_create_failures += pipes.create_failures.load(std::memory_order_relaxed);
    copy_fallbacks += pipes.copy_fallbacks.load(std::memory_order_relaxed);
    listening += worker->listening();
    listen_failures += worker->listen_failures();
  }
  std::string out;
  // The usual *_build_info shape: constant 1, the facts in labels, so a dashboard can join on
  // them and see which version each pod runs.
  const BuildInfo& build = GetBuildInfo();
  mailring::StrAppend(&out,
                      "# HELP mailring_build_info The running mailring's version, git revision "
                      "and library versions (always 1).\n# TYPE mailring_build_info gauge\n"
                      "mailring_build_info{version=\"", LabelValue(build.version),
                      "\",revision=\"", LabelValue(build.git_revision), "\",liburing=\"",
                      LabelValue(build.liburing), "\",wolfssl=\"", LabelValue(build.wolfssl),
                      "\"} 1\n");
  Counter(&out, "mailring_sessions_open", "IMAP sessions open now.", "gauge", open);
  Counter(&out, "mailring_sessions_total", "IMAP sessions accepted since start.", "counter",
          accepted);
  mailring::StrAppend(&out,
                      "# HELP mailring_relayed_bytes_total Bytes relayed, counted when a session "
                      "ends.\n# TYPE mailring_relayed_bytes_total counter\n",
                      "mailring_relayed_bytes_total{direction=\"client_to_upstream\"} ", to_upstream,
                      "\nmailring_relayed_bytes_total{direction=\"upstream_to_client\"} ",
                      to_client, "\n");
  mailring::StrAppend(&out,
                      "# HELP mailring_logins_total Upstream logins on a client's behalf.\n"
                      "# TYPE mailring_logins_total counter\n"
                      "mailring_logins_total{result=\"ok\"} ",
                      logins_ok, "\nmailring_logins_total{result=\"failed\"} ", logins_failed,
                      "\n");
  mailring::StrAppend(&out,
                      "# HELP mailring_tls_handshakes_total TLS handshakes with mail servers: "
                      "full, or resuming a session kept from an earlier connection.\n"
                      "# TYPE mailring_tls_handshakes_total counter\n"
                      "mailring_tls_handshakes_total{kind=\"full\"} ",
                      tls_full, "\nmailring_tls_handshakes_total{kind=\"resumed\"} ",
                      tls_resumed, "\n");
  // Process-wide: the record crypto of every worker (core/tls).
  const core::AesGcmDeviceCounts device = core::AesGcmDeviceRecordCounts();
  const core::Tls13RecordLayerCounts taken_over = core::Tls13RecordLayerRecordCounts();
  mailring::StrAppend(
      &out,
      "# HELP mailring_tls_records_total TLS records to and from mail servers by who protected "
      "them: wolfSSL with AES-GCM on the AES-NI device, or mailring's TLS 1.3 record layer after "
      "the take-over from wolfSSL.\n# TYPE mailring_tls_records_total counter\n",
      "mailring_tls_records_total{engine=\"aes_ni_device\",direction=\"sent\"} ", device.encrypted,
      "\nmailring_tls_records_total{engine=\"aes_ni_device\",direction=\"received\"} ",
      device.decrypted,
      "\nmailring_tls_records_total{engine=\"record_layer\",direction=\"sent\"} ",
      taken_over.sealed,
      "\nmailring_tls_records_total{engine=\"record_layer\",direction=\"received\"} ",
      taken_over.opened, "\n");
  Counter(&out, "mailring_tls_record_takeovers_total",
          "TLS 1.3 connections whose records moved from wolfSSL to mailring's record layer "
          "(wolfSSL's per-connection state freed).",
          "counter", taken_over.handovers);
  mailring::StrAppend(&out,
                      "# HELP mailring_tls_relay_sessions_total Relays of upstream TLS sessions by "
                      "path: the kernel's records (kTLS; the TLS leg is relayed like a plain one, "
                      "splice included) or mailring's own record path.\n"
                      "# TYPE mailring_tls_relay_sessions_total counter\n"
                      "mailring_tls_relay_sessions_total{path=\"ktls\"} ",
                      tls_relays_ktls, "\nmailring_tls_relay_sessions_total{path=\"userspace\"} ",
                      tls_relays_userspace, "\n");
  mailring::StrAppend(&out,
                      "# HELP mailring_ktls_fallbacks_total TLS relays that stayed in user space, "
                      "by reason (the first of each reason per worker is logged).\n"
                      "# TYPE mailring_ktls_fallbacks_total counter\n");
  for (size_t i = 0; i < static_cast<size_t>(core::KtlsFallback::kCount); ++i) {
    mailring::StrAppend(&out, "mailring_ktls_fallbacks_total{reason=\"",
                        core::KtlsFallbackLabel(static_cast<core::KtlsFallback>(i)), "\"} ",
                        ktls_fallbacks[i], "\n");
  }
  Counter(&out, "mailring_ktls_spliced_bytes_total",
          "Bytes moved by splice(2) on relay directions with a kTLS socket at one end, counted "
          "when a session ends.",
          "counter", ktls_spliced);
  Counter(&out, "mailring_ktls_control_records_total",
          "Records other than application data read from kTLS sockets (session tickets, "
          "close_notify), counted when a session ends.",
          "counter", ktls_control_records);
  Counter(&out, "mailring_recv_buffer_ring_empty_total",
          "Reads that found a worker's provided-buffer ring empty and fell back to poll or "
          "splice (raise --recv-buffers if this grows steadily).",
          "counter", ring_empty);
  Counter(&out, "mailring_pipes_in_use",
          "splice pipes lent to relay directions now, over all workers; near "
          "mailring_pipes_limit with little traffic means clients that stopped reading hold them.",
          "gauge", pipes_in_use);
  Counter(&out, "mailring_pipes_limit", "Sum of --pipes-per-worker over the workers.", "gauge",
          pipes_limit);
  Counter(&out, "mailring_pipe_pool_exhausted_total",
          "Pipe requests refused because the worker's pool had every pipe lent.", "counter",
          pipe_pool_exhausted);
  Counter(&out, "mailring_pipe_create_failures_total",
          "pipe(2) failures (out of file descriptors) when a pool grew.", "counter",
          pipe_create_failures);
  Counter(&out, "mailring_relay_copy_fallbacks_total",
          "Bursts relayed through the copy path because no pipe could be had; nothing waits, "
          "but copying costs more CPU than splicing.",
          "counter", copy_fallbacks);
  Counter(&out, "mailring_listeners", "Listening sockets over all workers.", "gauge", listening);
  Counter(&out, "mailring_listen_failures_total", "Route listeners that could not be opened.",
          "counter", listen_failures);
  if (sources.credentials != nullptr) {
    Counter(&out, "mailring_token_requests_ok_total", "Access tokens obtained.", "counter",
            sources.credentials->tokens_obtained.load(std::memory_order_relaxed));
    Counter(&out, "mailring_token_requests_failed_total", "Failed token requests.", "counter",
            sources.credentials->token_failures.load(std::memory_order_relaxed));
    Counter(&out, "mailring_token_exchanges_total",
            "Refresh-token and authorization-code exchanges started.", "counter",
            sources.credentials->exchanges.load(std::memory_order_relaxed));
  }
  if (sources.reconcile_errors != nullptr) {
    Counter(&out, "mailring_reconcile_errors_total", "Destination reconcile failures.", "counter",
            sources.reconcile_errors->load(std::memory_order_relaxed));
  }
  return out;
}

}  // namespace mailring::control
