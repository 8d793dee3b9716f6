// Pop3ClientDialog: what mailring says to a POP3 client before the relay (ClientDialog).
//
// The client is greeted "+OK" once mailring is logged in upstream (or, for refresh-token and
// authorization-code destinations, ready to take the client's grant). In the AUTHORIZATION
// state mailring answers itself:
//   CAPA        the server's capabilities minus SASL and STLS (they describe a login the client
//               does not perform), plus USER; "SASL XOAUTH2" when the client must authenticate
//   USER, PASS  +OK whatever the name and password: the destination holds the real credentials
//               (libraries that insist on logging in keep working); likewise any AUTH
//   AUTH XOAUTH2 <base64>  (client-authenticating destinations only) the client's refresh token
//               or code: kAuthenticate, answered +OK or -ERR [AUTH] <reason>
//   QUIT        +OK, then the session ends
// The first other command (STAT, LIST, RETR, UIDL, TOP, DELE, NOOP, RSET, ...) is relayed, and
// with it the session: from then on the server answers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/dialog/client_dialog.h"

namespace mailring::core {

class Pop3ClientDialog final : public ClientDialog {
 public:
  static constexpr int kMaxFailures = 3;

  explicit Pop3ClientDialog(ClientDialogOptions options);

  Step Greet(const std::vector<std::string>& server_capabilities) override;
  Step OnLine(std::string_view line) override;
  Step Authenticated(const std::vector<std::string>& server_capabilities) override;
  Step Rejected(std::string_view reason) override;

 private:
  Step Capabilities() const;
  Step AcceptBearer(std::string_view base64);
  static Step Reply(std::string text);

  ClientDialogOptions options_;
  std::vector<std::string> server_capabilities_;
  bool awaiting_sasl_response_ = false;  // "AUTH <mech>" without a response: next line is it
  int failures_ = 0;
};

}  // namespace mailring::core
