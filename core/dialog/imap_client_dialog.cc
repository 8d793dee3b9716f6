#include "core/dialog/imap_client_dialog.h"

#include <utility>

#include "absl/strings/str_join.h"
#include "proto/imap_capabilities.h"
#include "proto/str_cat.h"

namespace mailring::core {
namespace {

// What the client may use of the server's capabilities once the login is done for it.
std::string ForLoggedInClient(const std::vector<std::string>& server_capabilities) {
  return proto::CapabilitySet::Parse(absl::StrJoin(server_capabilities, " "))
      .ForPreauthenticatedClient();
}

ClientDialog::Step FromAuth(ClientAuth::Step step) {
  ClientDialog::Step out;
  out.reply = std::move(step.reply);
  switch (step.outcome) {
    case ClientAuth::Outcome::kNeedMore:
      out.outcome = ClientDialog::Outcome::kNeedMore;
      break;
    case ClientAuth::Outcome::kReply:
      out.outcome = ClientDialog::Outcome::kReply;
      break;
    case ClientAuth::Outcome::kReplyAndClose:
      out.outcome = ClientDialog::Outcome::kReplyAndClose;
      break;
    case ClientAuth::Outcome::kAuthenticate:
      out.outcome = ClientDialog::Outcome::kAuthenticate;
      out.bearer = std::move(step.bearer);
      break;
  }
  return out;
}

}  // namespace

ImapClientDialog::ImapClientDialog(ClientDialogOptions options) : options_(std::move(options)) {
  if (options_.client_authenticates) auth_ = std::make_unique<ClientAuth>(options_.credential_name);
}

ClientDialog::Step ImapClientDialog::Greet(const std::vector<std::string>& server_capabilities) {
  if (auth_ != nullptr) {
    return Step{Outcome::kReply, auth_->Greeting(options_.destination_name), {}, {}};
  }
  return Step{Outcome::kRelay,
              mailring::StrCat("* PREAUTH [CAPABILITY ", ForLoggedInClient(server_capabilities),
                               "] mailring: logged in to destination ", options_.destination_name,
                               "\r\n"),
              {},
              {}};
}

ClientDialog::Step ImapClientDialog::OnLine(std::string_view line) {
  if (auth_ == nullptr) return Step{Outcome::kRelay, {}, mailring::StrCat(line, "\r\n"), {}};
  ClientAuth::Step step = auth_->OnLine(line);
  if (step.outcome == ClientAuth::Outcome::kAuthenticate) tag_ = step.tag;
  return FromAuth(std::move(step));
}

ClientDialog::Step ImapClientDialog::Authenticated(
    const std::vector<std::string>& server_capabilities) {
  return Step{Outcome::kRelay,
              mailring::StrCat(tag_, " OK [CAPABILITY ", ForLoggedInClient(server_capabilities),
                               "] logged in to destination ", options_.destination_name, "\r\n"),
              {},
              {}};
}

ClientDialog::Step ImapClientDialog::Rejected(std::string_view reason) {
  if (auth_ == nullptr) return Step{Outcome::kReplyAndClose, {}, {}, {}};
  return FromAuth(auth_->Reject(tag_, reason));
}

}  // namespace mailring::core
