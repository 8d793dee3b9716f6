#include "core/dialog/smtp_protocol.h"

#include <memory>
#include <utility>

#include "core/dialog/smtp_client_dialog.h"
#include "core/dialog/smtp_upstream_login.h"
#include "core/dialog/text_line_reader.h"
#include "proto/printable_text.h"
#include "proto/str_cat.h"

namespace mailring::core {
namespace {

class Smtp final : public MailProtocol {
 public:
  std::string_view name() const override { return "SMTP"; }
  std::unique_ptr<UpstreamLogin> NewUpstreamLogin(UpstreamCredentials credentials) const override {
    return std::make_unique<SmtpUpstreamLogin>(std::move(credentials));
  }
  std::unique_ptr<ClientDialog> NewClientDialog(ClientDialogOptions options) const override {
    return std::make_unique<SmtpClientDialog>(std::move(options));
  }
  std::unique_ptr<LineReader> NewLineReader(size_t max_line_bytes) const override {
    return std::make_unique<TextLineReader>(max_line_bytes);
  }
  std::string FailureLine(std::string_view reason) const override {
    return mailring::StrCat("421 4.3.0 ", proto::PrintableText(reason), "\r\n");
  }
};

}  // namespace

const MailProtocol& SmtpProtocol() {
  static const Smtp* const kSmtp = new Smtp();
  return *kSmtp;
}

}  // namespace mailring::core
