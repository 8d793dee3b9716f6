#include "core/dialog/mail_protocol.h"

#include "core/dialog/imap_protocol.h"

namespace mailring::core {

const MailProtocol& ForProtocol(proto::MailProtocol protocol) {
  switch (proto::FamilyOf(protocol)) {
    case proto::MailFamily::kImap:
      return ImapProtocol();
    default:
      // Routes of other families are refused before a session starts (CheckServable).
      return ImapProtocol();
  }
}

}  // namespace mailring::core
