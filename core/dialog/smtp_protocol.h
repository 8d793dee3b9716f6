// The SMTP family (smtp, smtps) as a MailProtocol: core/dialog/smtp_upstream_login.h,
// smtp_client_dialog.h, plain CRLF lines, and "421 4.3.0 <reason>" as the failure line.
#pragma once

#include "core/dialog/mail_protocol.h"

namespace mailring::core {

const MailProtocol& SmtpProtocol();

}  // namespace mailring::core
