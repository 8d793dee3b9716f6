// TlsRelay: the relay of a session whose upstream leg is TLS (imap4s, STARTTLS), as a copy
// path: client bytes are read, encrypted by the session's TlsClient and sent upstream; upstream
// records are read, decrypted and sent to the client. splice(2) cannot move bytes that must be
// transformed, so this is recv → decrypt/encrypt → send with bounded buffers (one read's worth per
// direction, 64 KiB of plaintext plus its records), allocated while bytes are in flight and freed
// when a direction is drained and waits for input.
//
// Copies, server to client, once the record layer has taken the connection over (TLS 1.3
// AES-GCM, core/tls/tls13_record_layer.h): recv writes into the TLS client's input, the records
// are decrypted where they lie, and sendmsg sends the plaintext from there, one piece per record:
// the kernel's two copies and the decryption, no copy in between. Before the take-over (and on
// TLS 1.2) wolfSSL copies the plaintext out into plain_out_.
//
// Same readiness contract as RelayLeg: Pump*() use direct non-blocking syscalls and say what to
// wait for (RelayLeg::Wait). Backpressure: a direction reads only after what it produced was
// written. End of stream: the client's EOF becomes a TLS close_notify and a half-close of the
// upstream socket; the server's close_notify (or TCP EOF) becomes a half-close of the client.
//
// Contract: both fds are non-blocking sockets owned by the session; `tls` outlives the relay.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/relay_leg.h"
#include "core/tls_client.h"

namespace mailring::core {

class TlsRelay {
 public:
  TlsRelay(int client_fd, int upstream_fd, TlsClient* tls)
      : client_fd_(client_fd), upstream_fd_(upstream_fd), tls_(tls) {}

  RelayLeg::Wait PumpToUpstream(size_t budget_bytes);
  RelayLeg::Wait PumpToClient(size_t budget_bytes);

  uint64_t bytes_to_upstream() const { return bytes_to_upstream_; }  // plaintext
  uint64_t bytes_to_client() const { return bytes_to_client_; }
  int error() const { return error_; }
  const std::string& tls_error() const { return tls_error_; }

 private:
  // Sends pending ciphertext; false when the upstream socket is full (or failed: error_).
  bool FlushCipher();
  // Sends the pending plaintext (plain_out_, then the views of opened records, releasing the
  // records once all of them went); false when the client's socket is full (or failed: error_).
  bool SendPlaintext();
  RelayLeg::Wait Failed(int error);
  RelayLeg::Wait TlsFailed();
  // Called when a direction waits for input: frees the buffers that are drained, so a session
  // that went idle after a burst holds no buffer capacity (they are allocated again on demand).
  RelayLeg::Wait WaitReadable();

  int client_fd_;
  int upstream_fd_;
  TlsClient* tls_;
  std::string cipher_out_;  // records for the upstream, from cipher_out_offset_ on
  size_t cipher_out_offset_ = 0;
  std::string plain_out_;   // plaintext for the client, from plain_out_offset_ on
  size_t plain_out_offset_ = 0;
  // Plaintext for the client inside the TLS client's input (TlsClient::OpenInPlace), from
  // opened_next_ on (a partly sent view is trimmed at its front).
  std::vector<std::string_view> opened_;
  size_t opened_next_ = 0;
  bool client_eof_ = false;
  bool upstream_eof_ = false;
  bool to_upstream_finished_ = false;
  bool to_client_finished_ = false;
  int error_ = 0;
  std::string tls_error_;
  uint64_t bytes_to_upstream_ = 0;
  uint64_t bytes_to_client_ = 0;
};

}  // namespace mailring::core
