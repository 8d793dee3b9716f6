// UpstreamLogin: the conversation mailring holds with the mail server before relaying, as a
// pure state machine (lines in, bytes to send out), one implementation per protocol
// (imap_upstream_login.h, smtp_upstream_login.h, pop3_upstream_login.h). Tested without sockets.
//
// Every protocol walks the same outline:
//
//   greeting ─► [capabilities] ─► [STARTTLS ─► kStartTls ─► OnTlsEstablished() ─► capabilities]
//            ─► login (password, or a bearer token: kNeedToken ─► ProvideToken()) ─► kLoggedIn
//
// - password: the protocol's strongest plain mechanism the server offers (AUTH PLAIN with an
//   initial response where possible, else LOGIN / AUTH LOGIN / USER+PASS).
// - bearer token (OAuth2 destinations): XOAUTH2, or OAUTHBEARER when only that is offered. The
//   token arrives through ProvideToken(), possibly long after the greeting (the control thread
//   fetches it, or the client brings the grant): OnLine() returns kNeedToken when the dialog
//   waits for it. A failed bearer login answers the server's error challenge with an empty
//   line (RFC 7628 3.2.3) and reports kFailed with can_retry() when the connection is still
//   usable; PrepareRetry() then waits for another token.
// - STARTTLS (UpstreamCredentials::starttls): kIfOffered upgrades when the server offers it;
//   kRequired fails before any credential is sent when it does not.
//
// Contract: Step::send carries credentials: write it to the socket, never to a log.
// Step::failure is safe to show to the client and to log: it quotes the server (printable
// ASCII, bounded), never the credentials.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proto/secret.h"

namespace mailring::core {

struct UpstreamCredentials {
  enum class Kind : uint8_t { kPassword, kBearerToken };
  // STARTTLS before the login: never, when the server offers it, or required (no credentials
  // are ever sent in clear then).
  enum class StartTls : uint8_t { kNever, kIfOffered, kRequired };
  Kind kind = Kind::kPassword;
  StartTls starttls = StartTls::kNever;
  std::string user;
  proto::Secret password;  // kPassword
  std::string host;        // the server's name and port, for OAUTHBEARER's host/port fields
  uint16_t port = 0;
  // SMTP: the name mailring gives in EHLO (RFC 5321 4.1.1.1); a default is used when empty.
  std::string client_name;
};

class UpstreamLogin {
 public:
  enum class Outcome : uint8_t { kNeedMore, kSend, kNeedToken, kStartTls, kLoggedIn, kFailed };
  struct Step {
    Outcome outcome = Outcome::kNeedMore;
    std::string send;     // kSend: bytes for the server
    std::string failure;  // kFailed: why, for the client and the log
  };

  virtual ~UpstreamLogin() = default;

  // One complete line from the server (no line end).
  virtual Step OnLine(std::string_view line) = 0;

  // Bearer logins: the access token, and the user to log in as when the destination names
  // none. Returns the next step (kSend, or kFailed when the server offers no bearer mechanism).
  // Valid once OnLine() returned kNeedToken.
  virtual Step ProvideToken(const proto::Secret& token, std::string_view fallback_user) = 0;

  // After kStartTls: the session completed the TLS handshake. Capabilities are asked again
  // (what the server said before TLS must be forgotten); returns that step.
  virtual Step OnTlsEstablished() = 0;

  // True after a kFailed in which the server refused the credentials but the connection is
  // still usable: PrepareRetry() then waits for another token (kNeedToken is implied).
  virtual bool can_retry() const = 0;
  virtual void PrepareRetry() = 0;

  // What the dialog is doing, for log lines and failure reasons ("reading the upstream
  // greeting", "authenticating upstream with AUTH XOAUTH2", ...).
  virtual std::string_view action() const = 0;

  // The server's capabilities as last announced, in the protocol's own form: IMAP capability
  // atoms ("IMAP4rev1", "IDLE"), SMTP EHLO keyword lines without the reply code ("SIZE 35882577",
  // "8BITMIME"), POP3 CAPA lines ("UIDL", "SASL PLAIN"). The client dialog filters them.
  virtual const std::vector<std::string>& capabilities() const = 0;
};

}  // namespace mailring::core
