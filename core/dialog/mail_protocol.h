// MailProtocol: what differs between IMAP, SMTP and POP3 for a session, in one place. The
// session state machine, transports, relay and credential path are shared; each protocol gives
// its dialogs, its line framing and the shape of its failure line.
//
// Contract: the instances are stateless and live for the process (ForProtocol()).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/dialog/client_dialog.h"
#include "core/dialog/line_reader.h"
#include "core/dialog/upstream_login.h"
#include "proto/destination.h"

namespace mailring::core {

class MailProtocol {
 public:
  virtual ~MailProtocol() = default;

  virtual std::string_view name() const = 0;  // "IMAP", "SMTP", "POP3"
  virtual std::unique_ptr<UpstreamLogin> NewUpstreamLogin(UpstreamCredentials credentials) const = 0;
  virtual std::unique_ptr<ClientDialog> NewClientDialog(ClientDialogOptions options) const = 0;
  // Framing of the server's lines and of the client's, before the relay.
  virtual std::unique_ptr<LineReader> NewLineReader(size_t max_line_bytes) const = 0;
  // The line that tells the client the session ends because of `reason` (printable, bounded):
  // "* BYE [UNAVAILABLE] <reason>\r\n", "421 4.3.0 <reason>\r\n", "-ERR <reason>\r\n".
  virtual std::string FailureLine(std::string_view reason) const = 0;
};

// The protocol family of a destination's mail.transport.protocol (imap4/imap4s → IMAP, ...).
const MailProtocol& ForProtocol(proto::MailProtocol protocol);

}  // namespace mailring::core
