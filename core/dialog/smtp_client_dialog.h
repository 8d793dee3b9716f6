// SmtpClientDialog: what mailring says to an SMTP client before the relay (ClientDialog).
//
// The client is greeted "220 … ESMTP" once mailring is logged in upstream (or, for
// refresh-token and authorization-code destinations, ready to take the client's grant). Before
// the relay mailring answers itself:
//   EHLO        the server's extensions minus AUTH and STARTTLS (so no library tries to log in
//               or upgrade); "AUTH XOAUTH2" when the client must authenticate
//   HELO, NOOP, RSET   250;  QUIT  221, then the session ends
//   STARTTLS    454: TLS is on mailring's upstream leg, the client side is plain
//   AUTH        (client-authenticating destinations) XOAUTH2 with the client's refresh token or
//               code: kAuthenticate, answered 235 or 535 <reason>; (other destinations) 235,
//               as the login is already done
// The first other command (MAIL FROM usually, as in SAP's snippet) is relayed, and with it the
// session: DATA and BDAT travel blind through the relay.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/dialog/client_dialog.h"

namespace mailring::core {

class SmtpClientDialog final : public ClientDialog {
 public:
  static constexpr int kMaxFailures = 3;

  explicit SmtpClientDialog(ClientDialogOptions options);

  Step Greet(const std::vector<std::string>& server_capabilities) override;
  Step OnLine(std::string_view line) override;
  Step Authenticated(const std::vector<std::string>& server_capabilities) override;
  Step Rejected(std::string_view reason) override;

 private:
  Step Extensions(std::string_view client_name) const;
  Step AcceptBearer(std::string_view base64);

  ClientDialogOptions options_;
  std::vector<std::string> server_capabilities_;
  bool awaiting_sasl_response_ = false;  // "AUTH XOAUTH2" without a response: next line is it
  int failures_ = 0;
};

}  // namespace mailring::core
