#include "core/transport/upstream_transport.h"

#include <utility>

#include "core/tls/resumption_key.h"
#include "proto/str_cat.h"

namespace mailring::core {

UpstreamTransport::Options UpstreamTransport::OptionsFor(const Route& route,
                                                         const TlsContext* tls_context) {
  Options options;
  options.destination_name = route.destination.name;
  options.host = route.destination.host;
  options.port = route.destination.port;
  options.via_connectivity_proxy = route.via_connectivity_proxy;
  options.location_id = route.destination.cloud_connector_location_id;
  options.implicit_tls = route.tls == Route::Tls::kImplicit;
  options.verify = route.tls_verify;
  options.tls_context = tls_context;
  if (tls_context != nullptr && route.tls != Route::Tls::kNone) {
    options.resumption = TlsResumption{tls_context->session_cache(), TlsResumptionKey(route)};
  }
  return options;
}

bool UpstreamTransport::IsBareSocket(const Route& route) {
  return !route.via_connectivity_proxy && route.tls == Route::Tls::kNone;
}

UpstreamTransport::UpstreamTransport(Options options)
    : options_(std::move(options)),
      state_(options_.via_connectivity_proxy ? State::kAwaitingProxyToken
             : options_.implicit_tls         ? State::kTlsStart
                                             : State::kEstablishing) {}

void UpstreamTransport::Feed(std::string_view raw) {
  if (state_ == State::kFailed) return;
  if (tls_ != nullptr) {
    tls_->Feed(raw);
  } else {
    input_.append(raw);
  }
}

void UpstreamTransport::ProvideProxyToken(const proto::Secret& jwt) {
  if (state_ != State::kAwaitingProxyToken) return;
  proxy_ = std::make_unique<Socks5Layer>(jwt.Reveal(), options_.location_id, options_.host,
                                         options_.port, options_.destination_name);
  proxy_greeting_ = proxy_->Start().bytes;
  state_ = State::kProxy;
}

void UpstreamTransport::StartTls(std::string_view early) {
  if (state_ != State::kPlain) return;
  input_.append(early);
  state_ = State::kTlsStart;
}

TransportStep UpstreamTransport::Next(std::string_view action) {
  switch (state_) {
    case State::kAwaitingProxyToken:
      return TransportStep::Of(TransportStep::Outcome::kNeedProxyToken);
    case State::kProxy: {
      if (!proxy_greeting_.empty()) {
        return TransportStep::Send(std::exchange(proxy_greeting_, std::string()),
                                   TransportLayer::kProxy);
      }
      TransportStep step = proxy_->Next(&input_);
      if (step.outcome == TransportStep::Outcome::kFailed) return Fail(std::move(step));
      if (step.outcome == TransportStep::Outcome::kProxyConnected) {
        proxy_.reset();  // what is left in input_ belongs to the tunnel
        state_ = options_.implicit_tls ? State::kTlsStart : State::kEstablishing;
      }
      return step;
    }
    case State::kTlsStart:
      return StartTlsLayer();
    case State::kTls: {
      const bool was_handshaking = tls_->handshaking();
      TransportStep step = tls_->Next(action);
      if (step.outcome == TransportStep::Outcome::kFailed) return Fail(std::move(step));
      if (was_handshaking && step.outcome == TransportStep::Outcome::kTlsEstablished) {
        state_ = State::kEstablishing;
      }
      return step;
    }
    case State::kEstablishing:
      state_ = tls_ != nullptr ? State::kTls : State::kPlain;
      return TransportStep::Of(TransportStep::Outcome::kEstablished);
    case State::kPlain:
      if (input_.empty()) return TransportStep::Of(TransportStep::Outcome::kNeedMore);
      return TransportStep::Plaintext(std::exchange(input_, std::string()));
    case State::kFailed:
      break;
  }
  TransportStep failed = TransportStep::Of(TransportStep::Outcome::kFailed);
  failed.failure = failure_;
  return failed;
}

TransportStep UpstreamTransport::StartTlsLayer() {
  if (options_.tls_context == nullptr) {
    return Fail(TransportStep::Failed("no TLS context on this worker",
                                      "mailring cannot speak TLS to this server"));
  }
  tls_ =
      std::make_unique<TlsLayer>(std::make_unique<TlsClient>(*options_.tls_context, options_.host,
                                                             options_.verify, options_.resumption),
                                 options_.host, options_.destination_name);
  // Bytes after the CONNECT reply or the STARTTLS answer are the server's first records.
  tls_->Feed(std::exchange(input_, std::string()));
  state_ = State::kTls;
  return TransportStep::Of(TransportStep::Outcome::kTlsStarted);
}

TransportStep UpstreamTransport::Fail(TransportStep failed) {
  state_ = State::kFailed;
  failure_ = failed.failure;
  return failed;
}

TransportStep UpstreamTransport::Seal(std::string_view plaintext) {
  if (tls_ != nullptr) return tls_->Seal(plaintext);
  return TransportStep::Send(std::string(plaintext), TransportLayer::kStream);
}

TransportFailure UpstreamTransport::SendFailed(TransportLayer layer, std::string_view why,
                                               std::string_view action) const {
  switch (layer) {
    case TransportLayer::kProxy:
      return {mailring::StrCat("writing to the Connectivity Proxy failed: ", why),
              "the Connectivity Proxy stopped answering"};
    case TransportLayer::kTlsHandshake:
      return {mailring::StrCat("TLS handshake with upstream failed: ", why),
              mailring::StrCat("TLS handshake with the mail server of destination ",
                               options_.destination_name, " failed: ", why)};
    case TransportLayer::kStream:
      break;
  }
  return {mailring::StrCat("writing to upstream failed while ", action, ": ", why),
          mailring::StrCat("the mail server of destination ", options_.destination_name,
                           " stopped answering")};
}

std::string_view UpstreamTransport::proxy_action() const {
  if (proxy_ != nullptr) return proxy_->action();
  return "waiting for a Connectivity Proxy token";
}

std::string UpstreamTransport::TakeBufferedPlaintext() {
  if (tls_ != nullptr) return {};
  return std::exchange(input_, std::string());
}

std::unique_ptr<TlsClient> UpstreamTransport::TakeTls() {
  if (tls_ == nullptr) return nullptr;
  std::unique_ptr<TlsClient> client = tls_->TakeClient();
  tls_.reset();
  return client;
}

}  // namespace mailring::core
