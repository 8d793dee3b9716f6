// ClientDialog: what mailring says to the client before the relay, one implementation per
// protocol (imap_client_dialog.h, smtp_client_dialog.h, pop3_client_dialog.h), as a pure state
// machine: lines in, replies out. Tested without sockets.
//
// The session creates it once the upstream is ready for the client: logged in (password and
// client-credentials destinations), or waiting for a token the client must bring (refresh-token
// and authorization-code destinations: `client_authenticates`). Then:
//
//   Greet() ─► kReply: the greeting; read client lines and call OnLine() for each
//           └► kRelay: the greeting, then relay at once (IMAP's PREAUTH: the client is never read)
//   OnLine() ─► kReply / kNeedMore: answered locally (EHLO, CAPA, USER, PASS, NOOP, ...)
//            ├► kAuthenticate: the client sent its refresh token or code (XOAUTH2); the session
//            │   exchanges it, logs in upstream, then calls Authenticated() or Rejected()
//            ├► kRelay: the first command the server must answer; Step::forward holds it
//            └► kReplyAndClose: goodbye (QUIT / LOGOUT before the relay, too many failures)
//
// Failure lines have the protocol's shape ("* BYE [UNAVAILABLE] …", "421 4.3.0 …", "-ERR …"):
// see MailProtocol::FailureLine().
//
// Contract: a kAuthenticate step carries the client's bearer secret: hand it to the token
// exchange, never to a log. Replies never quote a secret, and quote client input only bounded
// and printable (proto::PrintableText).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proto/sasl.h"

namespace mailring::core {

struct ClientDialogOptions {
  std::string destination_name;  // for the greeting text
  // OAuth2RefreshToken / OAuth2AuthorizationCode: the client must authenticate with XOAUTH2
  // carrying its refresh token or code before anything is relayed.
  bool client_authenticates = false;
  // What the client's bearer value is, for messages: "refresh token", "authorization code".
  std::string credential_name;
};

class ClientDialog {
 public:
  enum class Outcome : uint8_t { kNeedMore, kReply, kReplyAndClose, kAuthenticate, kRelay };
  struct Step {
    Outcome outcome = Outcome::kNeedMore;
    std::string reply;    // bytes for the client (kReply, kReplyAndClose; kRelay: sent first)
    std::string forward;  // kRelay: bytes for the server (the client's first relayed command,
                          // with its CRLF); the session then sends what the reader holds after it
    proto::BearerResponse bearer;  // kAuthenticate: user and refresh token or code
  };

  virtual ~ClientDialog() = default;

  // The greeting. `server_capabilities` as UpstreamLogin::capabilities().
  virtual Step Greet(const std::vector<std::string>& server_capabilities) = 0;

  // One complete client line (no line end).
  virtual Step OnLine(std::string_view line) = 0;

  // The authentication from kAuthenticate succeeded upstream: the success reply, kRelay.
  virtual Step Authenticated(const std::vector<std::string>& server_capabilities) = 0;

  // It failed (`reason`: the server's text or the token service's, safe to show): the failure
  // reply, kReply (the client may try again) or kReplyAndClose after too many failures.
  virtual Step Rejected(std::string_view reason) = 0;

  // The bytes that ask the client to go on with a literal (IMAP "+ go ahead\r\n"), sent when the
  // LineReader is AwaitingLiteralContinuation(); empty for protocols without literals.
  virtual std::string_view LiteralContinuation() const { return {}; }
};

}  // namespace mailring::core
