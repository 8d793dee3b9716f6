// Socks5Layer: the Connectivity Proxy handshake as a layer of the upstream transport
// (core/transport/upstream_transport.h): proto/socks5.h's Socks5Client, which knows the bytes,
// wrapped into TransportSteps, which say what the session must do.
//
// Contract: constructed once the session holds the Connectivity JWT; Start() is the greeting
// (kSend), Next() consumes the proxy's replies from the front of `input` and leaves what follows
// the CONNECT reply there: those bytes belong to the tunnel (TLS records or the server's
// greeting). Bytes it asks to send carry the JWT: never log them. Failures name the proxy's
// reason (proto::Socks5ReplyReason), which is safe to show to clients.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/transport/transport_step.h"
#include "proto/socks5.h"

namespace mailring::core {

class Socks5Layer {
 public:
  // `destination_name`: in client-facing reasons; the rest as proto::Socks5Client's.
  Socks5Layer(std::string_view jwt, std::string_view location_id, std::string_view host,
              uint16_t port, std::string_view destination_name);

  // The greeting, to send first.
  TransportStep Start();
  // kSend (layer kProxy), kNeedMore, kProxyConnected or kFailed; consumes what it parsed from
  // the front of `input`.
  TransportStep Next(std::string* input);
  // "waiting for the proxy's method selection", ...
  std::string_view action() const { return client_.action(); }

 private:
  proto::Socks5Client client_;
  std::string destination_name_;
};

}  // namespace mailring::core
