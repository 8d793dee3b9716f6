#include "core/dialog/mail_protocol.h"

#include "core/dialog/imap_protocol.h"
#include "core/dialog/pop3_protocol.h"
#include "core/dialog/smtp_protocol.h"

namespace mailring::core {

const MailProtocol& ForProtocol(proto::MailProtocol protocol) {
  switch (proto::FamilyOf(protocol)) {
    case proto::MailFamily::kImap:
      return ImapProtocol();
    case proto::MailFamily::kPop3:
      return Pop3Protocol();
    case proto::MailFamily::kSmtp:
      return SmtpProtocol();
  }
  return ImapProtocol();  // not reached: every family is handled above
}

}  // namespace mailring::core
