// TlsLayer: TLS to the mail server as a layer of the upstream transport
// (core/transport/upstream_transport.h): core/tls_client.h's TlsClient, which runs wolfSSL on
// memory buffers, wrapped into TransportSteps, which say what the session must do.
//
// Contract: Feed() takes the server's ciphertext; Next() first runs the handshake (kSend of each
// flight, layer kTlsHandshake, then kNeedMore until the server answers, then kTlsEstablished
// once), then opens records (kPlaintext with everything whole records held, kNeedMore when a
// record is incomplete). Seal() encrypts the dialog's writes. Every failure is final and worded
// for the log and the client; none carries key material. After a failure the layer is not used
// again. TakeClient() hands the TlsClient (with records fed and not yet opened) to the relay.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/tls_client.h"
#include "core/transport/transport_step.h"

namespace mailring::core {

class TlsLayer {
 public:
  // `host`: the server as named in log reasons; `destination_name`: in client-facing reasons.
  TlsLayer(std::unique_ptr<TlsClient> client, std::string_view host,
           std::string_view destination_name);

  void Feed(std::string_view ciphertext);
  // `action`: what the session is doing, for the reason of a TLS end before the relay.
  TransportStep Next(std::string_view action);
  // kSend (layer kStream) with the records, or kFailed.
  TransportStep Seal(std::string_view plaintext);

  bool handshaking() const { return handshaking_; }
  const TlsClient& client() const { return *client_; }
  std::unique_ptr<TlsClient> TakeClient() { return std::move(client_); }

 private:
  TransportStep Handshake();
  TransportStep Open(std::string_view action);

  std::unique_ptr<TlsClient> client_;
  std::string host_;
  std::string destination_name_;
  bool handshaking_ = true;
  // A handshake call's result whose output was handed out as a kSend first: the next Next()
  // acts on it (the flight, or the alert, leaves before the outcome is reported).
  bool handshake_result_pending_ = false;
  TlsClient::Result handshake_result_ = TlsClient::Result::kWantInput;
};

}  // namespace mailring::core
