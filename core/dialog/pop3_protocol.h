// The POP3 family (pop3, pop3s) as a MailProtocol: core/dialog/pop3_upstream_login.h,
// pop3_client_dialog.h, plain CRLF lines, and "-ERR <reason>" as the failure line.
#pragma once

#include "core/dialog/mail_protocol.h"

namespace mailring::core {

const MailProtocol& Pop3Protocol();

}  // namespace mailring::core
