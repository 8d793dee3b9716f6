// UpstreamTransport: what lies between a session's upstream socket and its protocol dialog,
// as one small stack the session drives through one interface:
//
//     [ Connectivity Proxy handshake ]  OnPremise routes: SOCKS5 + SAP's method 0x80
//     [ TLS ]                           imap4s/pop3s/smtps at once, or pushed by STARTTLS
//     plain                             the server's bytes are the dialog's
//
// Each layer is a step machine of its own (core/transport/socks5_layer.h,
// core/transport/tls_layer.h); the stack runs the one whose turn it is and says, one step at a
// time (core/transport/transport_step.h), what the session must do: send bytes, wait for input,
// fetch the proxy's JWT, log an event, hand plaintext to the dialog, or close with a reason.
//
// Why the session keeps the socket: its reads are io_uring recvs into the worker's provided
// buffers and its writes direct non-blocking sends (Session's SendNow), both tied to the
// session's request accounting and phases; the stack is pure (bytes in, steps out), so
// tests/core/transport/ drives it with scripted bytes and an in-memory TLS server, and the relay
// can take over what the stack built (TakeTls) without the session knowing which TLS it is.
//
// Order of steps: kNeedProxyToken (OnPremise, until ProvideProxyToken), the proxy's kSend /
// kNeedMore, kProxyConnected; with implicit TLS kTlsStarted, the handshake's kSend / kNeedMore,
// kTlsEstablished; then kEstablished once; then kPlaintext / kNeedMore. StartTls() (STARTTLS)
// pushes TLS mid-dialog: kTlsStarted ... kTlsEstablished, kEstablished again. kFailed is final.
//
// Contract: single-threaded; Feed() any time (bytes wait in the layer whose turn it is); Next()
// after Feed(), ProvideProxyToken() or StartTls(); Seal() only once established. Bytes after
// the proxy's CONNECT reply, or after the server's STARTTLS answer (StartTls's `early`), belong
// to the next layer and reach it in order.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/route.h"
#include "core/tls_client.h"
#include "core/transport/socks5_layer.h"
#include "core/transport/tls_layer.h"
#include "core/transport/transport_step.h"
#include "proto/secret.h"

namespace mailring::core {

class UpstreamTransport {
 public:
  struct Options {
    std::string destination_name;  // in client-facing reasons
    std::string host;              // the server: proxy's virtual host, SNI, verification, logs
    uint16_t port = 0;
    bool via_connectivity_proxy = false;
    std::string location_id;    // CloudConnectorLocationId, may be empty
    bool implicit_tls = false;  // TLS right after connecting (after the proxy)
    bool verify = true;
    const TlsContext* tls_context = nullptr;  // null: starting TLS fails with a reason
    TlsResumption resumption;
  };
  // The options a route asks for; `tls_context`: the worker's (null when it has none).
  static Options OptionsFor(const Route& route, const TlsContext* tls_context);
  // True when the route's upstream is the bare socket: no proxy, no TLS now or later.
  static bool IsBareSocket(const Route& route);

  explicit UpstreamTransport(Options options);

  // The server's bytes, as received.
  void Feed(std::string_view raw);
  // The next thing the session must do. `action`: what the session is doing, for failure
  // reasons (nginx's log->action).
  TransportStep Next(std::string_view action);

  // After kNeedProxyToken: the Connectivity service JWT. Next() then sends the greeting.
  void ProvideProxyToken(const proto::Secret& jwt);
  // The dialog's STARTTLS was accepted: TLS starts now; `early` is what the server sent after
  // its answer (already TLS). Only after kEstablished, on the plain layer.
  void StartTls(std::string_view early);

  // The dialog's bytes as they go on the socket: kSend (layer kStream), or kFailed.
  TransportStep Seal(std::string_view plaintext);
  // The reasons for a failed write of a kSend step's bytes (`why`: the socket error's text).
  TransportFailure SendFailed(TransportLayer layer, std::string_view why,
                              std::string_view action) const;

  // While the proxy layer runs (or waits for its token): what it waits for.
  std::string_view proxy_action() const;
  // The TLS connection once started (for kTlsEstablished's log line and counters), else null.
  const TlsClient* tls() const { return tls_ != nullptr ? &tls_->client() : nullptr; }

  // --- Handing over to the relay (after kEstablished) ---
  // Plain layer: the server's bytes not yet handed out as kPlaintext (they go to the client
  // first). TLS keeps its unopened records in the TlsClient.
  std::string TakeBufferedPlaintext();
  // The TLS connection the relay must use, or null for a plain leg. The transport is not used
  // afterwards.
  std::unique_ptr<TlsClient> TakeTls();

 private:
  enum class State : uint8_t {
    kAwaitingProxyToken,
    kProxy,
    kTlsStart,
    kTls,           // handshake, then records
    kEstablishing,  // kEstablished is the next step
    kPlain,
    kFailed,
  };

  TransportStep StartTlsLayer();
  TransportStep Fail(TransportStep failed);

  Options options_;
  State state_;
  std::string input_;  // bytes for the layer whose turn it is, when it is not TLS
  std::unique_ptr<Socks5Layer> proxy_;
  std::string proxy_greeting_;  // to send before parsing replies (carries no secret)
  std::unique_ptr<TlsLayer> tls_;
  TransportFailure failure_;  // kFailed: repeated by later Next() calls
};

}  // namespace mailring::core
