// The IMAP family (imap4, imap4s) as a MailProtocol: core/dialog/imap_upstream_login.h,
// imap_client_dialog.h, imap_line_reader.h, and "* BYE [UNAVAILABLE] <reason>" as the
// failure line.
#pragma once

#include "core/dialog/mail_protocol.h"

namespace mailring::core {

const MailProtocol& ImapProtocol();

}  // namespace mailring::core
