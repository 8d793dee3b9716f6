// Socks5Client: the client side of the SOCKS5 handshake with SAP's Connectivity Proxy
// (RFC 1928 with SAP's authentication method 0x80), as a pure state machine.
//
//   → 05 01 80                                   greeting: one method, 0x80
//   ← 05 80                                      method selected
//   → 01 <len:4, big-endian> <JWT> <len:1> <base64(location id)>   (no CloudConnectorLocationId:
//                                                 length byte 00 and no id, as SAP documents)
//   ← 01 00                                      authenticated (anything else: failure)
//   → 05 01 00 03 <len:1> <host> <port:2>         CONNECT to the virtual host, by name
//   ← 05 <rep> 00 <atyp> <bnd.addr> <bnd.port>    rep 00: connected
//
// Reply codes map to reasons a person can act on (Socks5ReplyReason): 01 general failure,
// 02 no access-control mapping in the Cloud Connector for the virtual host, 03 Cloud Connector
// not connected or unknown location id, 04 host unreachable, 05 authentication failed (the
// JWT), 07/08 command or address type not supported.
//
// Contract: Start() and OnBytes() return bytes to send that carry the JWT: never log them.
// Failures are safe to log and show to clients. OnBytes() consumes what it has parsed from the
// front of its argument (Step::consumed); the caller keeps the rest and passes it again with
// more bytes. After kConnected, bytes beyond `consumed` belong to the tunnelled protocol.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mailring::proto {

std::string_view Socks5ReplyReason(uint8_t reply_code);

class Socks5Client {
 public:
  enum class Outcome : uint8_t { kNeedMore, kSend, kConnected, kFailed };
  struct Step {
    Outcome outcome = Outcome::kNeedMore;
    std::string send;      // kSend: the next message for the proxy
    std::string failure;   // kFailed
    size_t consumed = 0;   // bytes of the input this step used
  };

  // `jwt`: the Connectivity service access token; `location_id`: CloudConnectorLocationId or
  // empty; `host`/`port`: the destination's virtual host and port. host must be 1-255 bytes.
  Socks5Client(std::string_view jwt, std::string_view location_id, std::string_view host,
               uint16_t port);

  // The greeting, to send once the TCP connection to the proxy is up.
  std::string Start();

  Step OnBytes(std::string_view bytes);

  // "waiting for the proxy's method selection", ... for log lines and BYE reasons.
  std::string_view action() const;

 private:
  enum class State : uint8_t { kMethod, kAuthentication, kConnect, kDone, kFailed };

  Step OnMethodSelection(std::string_view bytes);
  Step OnAuthenticationReply(std::string_view bytes);
  Step OnConnectReply(std::string_view bytes);
  Step Fail(std::string failure, size_t consumed);
  std::string AuthenticationRequest() const;  // carries the JWT
  std::string ConnectRequest() const;

  State state_ = State::kMethod;
  State failed_in_ = State::kMethod;  // the state whose action() a failure reports
  std::string jwt_;
  std::string location_id_;
  std::string host_;
  uint16_t port_;
  std::string config_error_;  // host or location id unusable; reported by the first OnBytes()
  std::string failure_;       // kFailed: repeated by later OnBytes() calls
};

}  // namespace mailring::proto
