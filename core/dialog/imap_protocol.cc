#include "core/dialog/imap_protocol.h"

#include <memory>
#include <utility>

#include "core/dialog/imap_client_dialog.h"
#include "core/dialog/imap_line_reader.h"
#include "core/dialog/imap_upstream_login.h"
#include "proto/printable_text.h"
#include "proto/str_cat.h"

namespace mailring::core {
namespace {

class Imap final : public MailProtocol {
 public:
  std::string_view name() const override { return "IMAP"; }
  std::unique_ptr<UpstreamLogin> NewUpstreamLogin(UpstreamCredentials credentials) const override {
    return std::make_unique<ImapUpstreamLogin>(std::move(credentials));
  }
  std::unique_ptr<ClientDialog> NewClientDialog(ClientDialogOptions options) const override {
    return std::make_unique<ImapClientDialog>(std::move(options));
  }
  std::unique_ptr<LineReader> NewLineReader(size_t max_line_bytes) const override {
    return std::make_unique<ImapLineReader>(max_line_bytes);
  }
  std::string FailureLine(std::string_view reason) const override {
    // Reasons may quote a peer (server, token or Destination service): never a line break.
    return mailring::StrCat("* BYE [UNAVAILABLE] ", proto::PrintableText(reason), "\r\n");
  }
};

}  // namespace

const MailProtocol& ImapProtocol() {
  static const Imap* const kImap = new Imap();
  return *kImap;
}

}  // namespace mailring::core
