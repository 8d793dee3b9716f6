// ClientAuth: mailring's side of the conversation with a client that must authenticate itself,
// for OAuth2RefreshToken and OAuth2AuthorizationCode destinations, as a pure state machine.
//
// The client is greeted "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 ID] …" and must send
// AUTHENTICATE XOAUTH2 whose response carries "auth=Bearer <refresh token | authorization code>",
// in one line (SASL-IR) or after mailring's "+ " ("*" cancels). Before that mailring answers
// CAPABILITY, ID, NOOP and LOGOUT itself; LOGIN and other mechanisms get NO [CANNOT], any
// other command BAD. Malformed base64 or XOAUTH2 payloads get NO [AUTHENTICATIONFAILED].
// After kMaxFailures failed attempts the client is disconnected.
//
// Contract: lines in (complete logical lines without CRLF, see proto::ImapLineAssembler),
// replies out. A kAuthenticate step carries the client's bearer secret: hand it to the token
// exchange, never to a log. Replies never quote the secret.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "proto/sasl.h"

namespace mailring::core {

class ClientAuth {
 public:
  static constexpr int kMaxFailures = 3;
  static constexpr std::string_view kCapabilities = "IMAP4rev1 SASL-IR AUTH=XOAUTH2 ID";

  enum class Outcome : uint8_t { kNeedMore, kReply, kReplyAndClose, kAuthenticate };
  struct Step {
    Outcome outcome = Outcome::kNeedMore;
    std::string reply;               // kReply / kReplyAndClose: bytes for the client
    std::string tag;                 // kAuthenticate: the client's tag for the final answer
    proto::BearerResponse bearer;    // kAuthenticate: user and refresh token or code
  };

  // `credential_name`: what the bearer value is, for messages ("refresh token").
  explicit ClientAuth(std::string_view credential_name);

  // The greeting line (with CRLF).
  std::string Greeting(std::string_view destination_name) const;

  Step OnLine(std::string_view line);

  // The exchange or the upstream login failed for the AUTHENTICATE tagged `tag`: the tagged NO
  // for the client, and kReplyAndClose once the client has failed kMaxFailures times.
  Step Reject(std::string_view tag, std::string_view reason);

 private:
  Step Fail(std::string_view tag, std::string_view reason);
  Step Decode(std::string_view tag, std::string_view base64);

  std::string credential_name_;
  std::string pending_tag_;  // AUTHENTICATE waiting for its response line after "+ "
  int failures_ = 0;
};

}  // namespace mailring::core
