#include "proto/socks5.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "proto/sasl.h"
#include "proto/str_cat.h"

namespace mailring::proto {
namespace {

constexpr char kVersion = 0x05;
constexpr uint8_t kMethodJwt = 0x80;  // SAP's private method: JWT (+ location id)
constexpr uint8_t kMethodNoneAcceptable = 0xFF;
constexpr char kAuthenticationVersion = 0x01;
constexpr char kCommandConnect = 0x01;
constexpr uint8_t kAddressIpv4 = 0x01;
constexpr uint8_t kAddressDomain = 0x03;
constexpr uint8_t kAddressIpv6 = 0x04;
// The location id travels base64-encoded behind a one-byte length.
constexpr size_t kMaxEncodedLocationId = 255;

uint8_t ByteAt(std::string_view bytes, size_t index) { return static_cast<uint8_t>(bytes[index]); }

constexpr char kHexDigits[] = "0123456789abcdef";

// "0x5a": how failures name a byte the proxy sent (never more than one byte of its input).
std::string Hex(uint8_t byte) {
  return std::string{'0', 'x', kHexDigits[byte >> 4], kHexDigits[byte & 0xf]};
}

// "unknown reply code 0xNN" for every byte, built at compile time so that Socks5ReplyReason can
// return a view of static storage for any code.
struct UnknownCodeText {
  static constexpr std::string_view kPrefix = "unknown reply code 0x";
  char text[kPrefix.size() + 2] = {};
};
constexpr std::array<UnknownCodeText, 256> MakeUnknownCodeTexts() {
  std::array<UnknownCodeText, 256> texts{};
  for (size_t code = 0; code < texts.size(); ++code) {
    for (size_t i = 0; i < UnknownCodeText::kPrefix.size(); ++i) {
      texts[code].text[i] = UnknownCodeText::kPrefix[i];
    }
    texts[code].text[UnknownCodeText::kPrefix.size()] = kHexDigits[code >> 4];
    texts[code].text[UnknownCodeText::kPrefix.size() + 1] = kHexDigits[code & 0xf];
  }
  return texts;
}
constexpr std::array<UnknownCodeText, 256> kUnknownCodeTexts = MakeUnknownCodeTexts();

void AppendBigEndian32(std::string* out, uint32_t value) {
  out->push_back(static_cast<char>(value >> 24));
  out->push_back(static_cast<char>(value >> 16));
  out->push_back(static_cast<char>(value >> 8));
  out->push_back(static_cast<char>(value));
}

void AppendBigEndian16(std::string* out, uint16_t value) {
  out->push_back(static_cast<char>(value >> 8));
  out->push_back(static_cast<char>(value));
}

Socks5Client::Step NeedMore() { return Socks5Client::Step{}; }

Socks5Client::Step MakeStep(Socks5Client::Outcome outcome, std::string send, std::string failure,
                            size_t consumed) {
  Socks5Client::Step step;
  step.outcome = outcome;
  step.send = std::move(send);
  step.failure = std::move(failure);
  step.consumed = consumed;
  return step;
}

}  // namespace

std::string_view Socks5ReplyReason(uint8_t reply_code) {
  // Codes as SAP's Connectivity Proxy uses them (its troubleshooting table for the SOCKS5
  // handshake), phrased for the person who has to fix the Cloud Connector or the destination.
  switch (reply_code) {
    case 0x00:
      return "succeeded";
    case 0x01:
      return "general failure in the Connectivity Proxy";
    case 0x02:
      return "no access-control mapping in the Cloud Connector for this virtual host";
    case 0x03:
      return "Cloud Connector not connected, or unknown location id";
    case 0x04:
      return "virtual host unreachable from the Cloud Connector";
    case 0x05:
      return "connection refused or authentication failed at the Connectivity Proxy";
    case 0x06:
      return "TTL expired";
    case 0x07:
      return "command not supported";
    case 0x08:
      return "address type not supported";
    default: {
      const UnknownCodeText& unknown = kUnknownCodeTexts[reply_code];
      return std::string_view(unknown.text, sizeof(unknown.text));
    }
  }
}

Socks5Client::Socks5Client(std::string_view jwt, std::string_view location_id,
                           std::string_view host, uint16_t port)
    : jwt_(jwt), location_id_(location_id), host_(host), port_(port) {
  // Checked here, reported by the first OnBytes(): the caller learns it at the same place as
  // every other handshake failure, and before the JWT is sent anywhere.
  if (host_.empty() || host_.size() > 255) {
    config_error_ =
        StrCat("the virtual host name must be 1 to 255 bytes long (it has ", host_.size(), ")");
  } else if (Base64Encode(location_id_).size() > kMaxEncodedLocationId) {
    config_error_ = StrCat("the Cloud Connector location id is too long (", location_id_.size(),
                           " bytes; at most 189 fit the authentication request base64-encoded)");
  } else if (jwt_.empty() || jwt_.size() > UINT32_MAX) {
    config_error_ = "no JWT for the Connectivity Proxy";
  }
}

std::string Socks5Client::Start() {
  return std::string{kVersion, 0x01, static_cast<char>(kMethodJwt)};
}

Socks5Client::Step Socks5Client::OnBytes(std::string_view bytes) {
  switch (state_) {
    case State::kMethod:
      return OnMethodSelection(bytes);
    case State::kAuthentication:
      return OnAuthenticationReply(bytes);
    case State::kConnect:
      return OnConnectReply(bytes);
    case State::kDone:
      return MakeStep(Outcome::kConnected, "", "", 0);
    case State::kFailed:
      return MakeStep(Outcome::kFailed, "", failure_, 0);
  }
  return Fail("internal error: unknown SOCKS5 state", 0);
}

std::string_view Socks5Client::action() const {
  switch (state_ == State::kFailed ? failed_in_ : state_) {
    case State::kMethod:
      return "waiting for the proxy's method selection";
    case State::kAuthentication:
      return "authenticating to the Connectivity Proxy with the JWT";
    case State::kConnect:
      return "waiting for the Connectivity Proxy's reply to CONNECT";
    case State::kDone:
      return "tunnelling through the Connectivity Proxy";
    case State::kFailed:
      break;
  }
  return "SOCKS5 handshake with the Connectivity Proxy";
}

Socks5Client::Step Socks5Client::OnMethodSelection(std::string_view bytes) {
  // 05 <method>
  if (bytes.empty()) return NeedMore();
  if (bytes[0] != kVersion) {
    return Fail(StrCat("the proxy did not answer as a SOCKS5 server (version byte ",
                       Hex(ByteAt(bytes, 0)), ")"),
                1);
  }
  if (bytes.size() < 2) return NeedMore();
  const uint8_t method = ByteAt(bytes, 1);
  if (method == kMethodNoneAcceptable) {
    return Fail("the proxy accepts no method mailring offers", 2);
  }
  if (method != kMethodJwt) {
    return Fail(StrCat("the proxy selected method ", Hex(method),
                       ", which mailring did not offer (only 0x80)"),
                2);
  }
  if (!config_error_.empty()) return Fail(config_error_, 2);
  state_ = State::kAuthentication;
  return MakeStep(Outcome::kSend, AuthenticationRequest(), "", 2);
}

Socks5Client::Step Socks5Client::OnAuthenticationReply(std::string_view bytes) {
  // 01 <status>; any status but 00 is a rejection.
  if (bytes.empty()) return NeedMore();
  if (bytes[0] != kAuthenticationVersion) {
    return Fail(StrCat("unexpected reply to the JWT authentication (version byte ",
                       Hex(ByteAt(bytes, 0)), ", expected 0x01)"),
                1);
  }
  if (bytes.size() < 2) return NeedMore();
  if (bytes[1] != 0x00) {
    return Fail("Connectivity Proxy rejected the JWT (authentication failed)", 2);
  }
  state_ = State::kConnect;
  return MakeStep(Outcome::kSend, ConnectRequest(), "", 2);
}

Socks5Client::Step Socks5Client::OnConnectReply(std::string_view bytes) {
  // 05 <rep> 00 <atyp> <bnd.addr> <bnd.port:2>. Parsed again from the front on every call (the
  // caller passes back what was not consumed); the whole reply is at most 262 bytes. A failure
  // code is reported as soon as its byte arrives: a proxy may close right after it.
  if (bytes.empty()) return NeedMore();
  if (bytes[0] != kVersion) {
    return Fail(
        StrCat("malformed CONNECT reply: version byte ", Hex(ByteAt(bytes, 0)), ", expected 0x05"),
        1);
  }
  if (bytes.size() < 2) return NeedMore();
  const uint8_t reply_code = ByteAt(bytes, 1);
  if (reply_code != 0x00) return Fail(std::string(Socks5ReplyReason(reply_code)), 2);
  if (bytes.size() < 3) return NeedMore();
  if (bytes[2] != 0x00) {
    return Fail(
        StrCat("malformed CONNECT reply: reserved byte ", Hex(ByteAt(bytes, 2)), ", expected 0x00"),
        3);
  }
  if (bytes.size() < 4) return NeedMore();
  size_t address_size = 0;
  switch (const uint8_t address_type = ByteAt(bytes, 3)) {
    case kAddressIpv4:
      address_size = 4;
      break;
    case kAddressIpv6:
      address_size = 16;
      break;
    case kAddressDomain:
      if (bytes.size() < 5) return NeedMore();
      if (bytes[4] == 0) return Fail("malformed CONNECT reply: empty domain name", 5);
      address_size = 1 + ByteAt(bytes, 4);
      break;
    default:
      return Fail(StrCat("malformed CONNECT reply: unknown address type ", Hex(address_type)), 4);
  }
  const size_t reply_size = 4 + address_size + 2;
  if (bytes.size() < reply_size) return NeedMore();
  state_ = State::kDone;
  return MakeStep(Outcome::kConnected, "", "", reply_size);
}

Socks5Client::Step Socks5Client::Fail(std::string failure, size_t consumed) {
  failed_in_ = state_;
  state_ = State::kFailed;
  failure_ = std::move(failure);
  return MakeStep(Outcome::kFailed, "", failure_, consumed);
}

std::string Socks5Client::AuthenticationRequest() const {
  // 01 <len:4> <JWT> <len:1> <base64(location id)>. Without a location id SAP's documentation
  // asks for the length byte 00 and nothing after it ("the Cloud Connector without a location
  // id" of the subaccount).
  const std::string location = location_id_.empty() ? "" : Base64Encode(location_id_);
  std::string request;
  request.reserve(1 + 4 + jwt_.size() + 1 + location.size());
  request.push_back(kAuthenticationVersion);
  AppendBigEndian32(&request, static_cast<uint32_t>(jwt_.size()));
  request.append(jwt_);
  request.push_back(static_cast<char>(location.size()));
  request.append(location);
  return request;
}

std::string Socks5Client::ConnectRequest() const {
  // 05 01 00 03 <len:1> <host> <port:2>: by name, the Cloud Connector resolves nothing, it maps.
  std::string request{kVersion, kCommandConnect, 0x00, static_cast<char>(kAddressDomain),
                      static_cast<char>(host_.size())};
  request.append(host_);
  AppendBigEndian16(&request, port_);
  return request;
}

}  // namespace mailring::proto
