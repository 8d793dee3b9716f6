// TransportStep: what one layer of the upstream transport (core/transport/upstream_transport.h)
// asks of the session that drives it, one thing at a time.
//
// Why one step at a time rather than "everything this input produced": the session sends each
// kSend on the socket before asking for the next step, so bytes leave in the order the layers
// made them and a failed write is reported in the words of the layer that made the bytes (the
// Connectivity Proxy, the TLS handshake, the dialog), exactly as when each layer was a branch of
// Session::OnUpstreamBytes.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

namespace mailring::core {

// The layer that produced bytes to send: a write that fails is reported in its words
// (UpstreamTransport::SendFailed).
enum class TransportLayer : uint8_t {
  kProxy,         // SOCKS5 messages to the Connectivity Proxy
  kTlsHandshake,  // TLS handshake flights (and a fatal alert)
  kStream,        // the dialog's own bytes (plain or sealed into TLS records)
};

// Why the transport failed: one line for the log, one for the client's failure line. Neither
// ever holds a credential or key material; server text in them comes from TlsClient's or
// Socks5Client's own reasons.
struct TransportFailure {
  std::string log_reason;
  std::string client_reason;
};

struct TransportStep {
  enum class Outcome : uint8_t {
    kNeedMore,        // nothing to do until more bytes arrive from the server: arm a recv
    kNeedProxyToken,  // the Connectivity Proxy layer waits for its JWT (ProvideProxyToken)
    kSend,            // send `bytes` on the socket now, then ask again
    kProxyConnected,  // event: the Connectivity Proxy's tunnel to the virtual host is up
    kTlsStarted,      // event: a TLS handshake begins (implicit TLS, or after STARTTLS)
    kTlsEstablished,  // event: the handshake finished (tls(): version, suite, resumed)
    kEstablished,     // the stack under the dialog is up: at first, and again after STARTTLS
    kPlaintext,       // `bytes`: the server's plaintext, for the dialog
    kFailed,          // `failure`; the transport is unusable, the session closes
  };

  Outcome outcome = Outcome::kNeedMore;
  std::string bytes;  // kSend: to the socket (may carry the JWT: never log); kPlaintext
  TransportLayer layer = TransportLayer::kStream;  // kSend: who made the bytes
  TransportFailure failure;                        // kFailed

  static TransportStep Of(Outcome outcome) {
    TransportStep step;
    step.outcome = outcome;
    return step;
  }
  static TransportStep Send(std::string bytes, TransportLayer layer) {
    TransportStep step = Of(Outcome::kSend);
    step.bytes = std::move(bytes);
    step.layer = layer;
    return step;
  }
  static TransportStep Plaintext(std::string bytes) {
    TransportStep step = Of(Outcome::kPlaintext);
    step.bytes = std::move(bytes);
    return step;
  }
  static TransportStep Failed(std::string log_reason, std::string client_reason) {
    TransportStep step = Of(Outcome::kFailed);
    step.failure = {std::move(log_reason), std::move(client_reason)};
    return step;
  }
};

}  // namespace mailring::core
