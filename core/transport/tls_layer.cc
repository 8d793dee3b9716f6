#include "core/transport/tls_layer.h"

#include <utility>

#include "proto/str_cat.h"

namespace mailring::core {
namespace {

// One Read() appends at most this much; the loop in Open() continues until the records held
// are all opened.
constexpr size_t kReadChunkBytes = 64 * 1024;

}  // namespace

TlsLayer::TlsLayer(std::unique_ptr<TlsClient> client, std::string_view host,
                   std::string_view destination_name)
    : client_(std::move(client)), host_(host), destination_name_(destination_name) {}

void TlsLayer::Feed(std::string_view ciphertext) {
  if (!ciphertext.empty()) client_->Feed(ciphertext);
}

TransportStep TlsLayer::Next(std::string_view action) {
  return handshaking_ ? Handshake() : Open(action);
}

TransportStep TlsLayer::Handshake() {
  if (!handshake_result_pending_) {
    handshake_result_ = client_->Handshake();
    if (client_->has_output()) {
      handshake_result_pending_ = true;
      return TransportStep::Send(client_->TakeOutput(), TransportLayer::kTlsHandshake);
    }
  }
  handshake_result_pending_ = false;
  switch (handshake_result_) {
    case TlsClient::Result::kWantInput:
      return TransportStep::Of(TransportStep::Outcome::kNeedMore);
    case TlsClient::Result::kDone:
      handshaking_ = false;
      return TransportStep::Of(TransportStep::Outcome::kTlsEstablished);
    case TlsClient::Result::kError:
    case TlsClient::Result::kClosed:
      break;
  }
  const std::string why = client_->error().empty() ? "connection closed" : client_->error();
  return TransportStep::Failed(
      mailring::StrCat("TLS handshake with upstream ", host_, " failed: ", why),
      mailring::StrCat("TLS handshake with the mail server of destination ", destination_name_,
                       " failed: ", why));
}

TransportStep TlsLayer::Open(std::string_view action) {
  std::string plaintext;
  while (true) {
    const TlsClient::Result result = client_->Read(&plaintext, kReadChunkBytes);
    if (result == TlsClient::Result::kDone) continue;
    if (result == TlsClient::Result::kWantInput) break;
    // Plaintext opened before the end is dropped: the session closes on this failure.
    const std::string why =
        result == TlsClient::Result::kClosed ? "the server closed TLS" : client_->error();
    return TransportStep::Failed(
        mailring::StrCat("upstream TLS ended while ", action, ": ", why),
        mailring::StrCat("the mail server of destination ", destination_name_,
                         " ended TLS while mailring was ", action, ": ", why));
  }
  if (plaintext.empty()) return TransportStep::Of(TransportStep::Outcome::kNeedMore);
  return TransportStep::Plaintext(std::move(plaintext));
}

TransportStep TlsLayer::Seal(std::string_view plaintext) {
  if (client_->Write(plaintext) != TlsClient::Result::kDone) {
    return TransportStep::Failed(
        mailring::StrCat("TLS write to upstream failed: ", client_->error()),
        mailring::StrCat("TLS failure with the mail server of destination ", destination_name_));
  }
  return TransportStep::Send(client_->TakeOutput(), TransportLayer::kStream);
}

}  // namespace mailring::core
