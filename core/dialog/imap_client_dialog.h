// ImapClientDialog: what mailring says to an IMAP client before the relay (ClientDialog).
//
// Destinations whose credentials mailring holds (password, client credentials): the client is
// greeted "* PREAUTH [CAPABILITY …]" with the server's capabilities minus those that describe a
// login, and the session relays at once: the client is never parsed.
//
// Refresh-token and authorization-code destinations: the client authenticates to mailring with
// AUTHENTICATE XOAUTH2 (core/dialog/imap_client_auth.h holds that conversation); the success is
// answered under the client's own tag with the server's capabilities, then the relay starts.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/dialog/client_dialog.h"
#include "core/dialog/imap_client_auth.h"

namespace mailring::core {

class ImapClientDialog final : public ClientDialog {
 public:
  explicit ImapClientDialog(ClientDialogOptions options);

  Step Greet(const std::vector<std::string>& server_capabilities) override;
  Step OnLine(std::string_view line) override;
  Step Authenticated(const std::vector<std::string>& server_capabilities) override;
  Step Rejected(std::string_view reason) override;
  std::string_view LiteralContinuation() const override { return "+ go ahead\r\n"; }

 private:
  ClientDialogOptions options_;
  std::unique_ptr<ClientAuth> auth_;  // only when the client authenticates
  std::string tag_;                   // the AUTHENTICATE being served
};

}  // namespace mailring::core
