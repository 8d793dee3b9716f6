#include "core/transport/socks5_layer.h"

#include "proto/str_cat.h"

namespace mailring::core {

Socks5Layer::Socks5Layer(std::string_view jwt, std::string_view location_id, std::string_view host,
                         uint16_t port, std::string_view destination_name)
    : client_(jwt, location_id, host, port), destination_name_(destination_name) {}

TransportStep Socks5Layer::Start() {
  return TransportStep::Send(client_.Start(), TransportLayer::kProxy);
}

TransportStep Socks5Layer::Next(std::string* input) {
  proto::Socks5Client::Step step = client_.OnBytes(*input);
  input->erase(0, step.consumed);
  switch (step.outcome) {
    case proto::Socks5Client::Outcome::kNeedMore:
      return TransportStep::Of(TransportStep::Outcome::kNeedMore);
    case proto::Socks5Client::Outcome::kSend:
      return TransportStep::Send(std::move(step.send), TransportLayer::kProxy);
    case proto::Socks5Client::Outcome::kConnected:
      return TransportStep::Of(TransportStep::Outcome::kProxyConnected);
    case proto::Socks5Client::Outcome::kFailed:
      break;
  }
  return TransportStep::Failed(
      mailring::StrCat("Connectivity Proxy: ", step.failure),
      mailring::StrCat("cannot reach the on-premise mail server of destination ", destination_name_,
                       ": ", step.failure));
}

}  // namespace mailring::core
