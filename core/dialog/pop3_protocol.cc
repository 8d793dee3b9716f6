#include "core/dialog/pop3_protocol.h"

#include <memory>
#include <utility>

#include "core/dialog/pop3_client_dialog.h"
#include "core/dialog/pop3_upstream_login.h"
#include "core/dialog/text_line_reader.h"
#include "proto/printable_text.h"
#include "proto/str_cat.h"

namespace mailring::core {
namespace {

class Pop3 final : public MailProtocol {
 public:
  std::string_view name() const override { return "POP3"; }
  std::unique_ptr<UpstreamLogin> NewUpstreamLogin(UpstreamCredentials credentials) const override {
    return std::make_unique<Pop3UpstreamLogin>(std::move(credentials));
  }
  std::unique_ptr<ClientDialog> NewClientDialog(ClientDialogOptions options) const override {
    return std::make_unique<Pop3ClientDialog>(std::move(options));
  }
  std::unique_ptr<LineReader> NewLineReader(size_t max_line_bytes) const override {
    return std::make_unique<TextLineReader>(max_line_bytes);
  }
  std::string FailureLine(std::string_view reason) const override {
    return mailring::StrCat("-ERR ", proto::PrintableText(reason), "\r\n");
  }
};

}  // namespace

const MailProtocol& Pop3Protocol() {
  static const Pop3* const kPop3 = new Pop3();
  return *kPop3;
}

}  // namespace mailring::core
