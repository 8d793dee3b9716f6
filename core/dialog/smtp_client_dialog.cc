#include "core/dialog/smtp_client_dialog.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "core/dialog/sasl_bearer.h"
#include "proto/absl_string_view.h"
#include "proto/printable_text.h"
#include "proto/sasl.h"
#include "proto/str_cat.h"

namespace mailring::core {
namespace {

std::pair<std::string, std::string_view> SplitCommand(std::string_view line) {
  const size_t space = line.find(' ');
  std::string verb(line.substr(0, space));
  absl::AsciiStrToUpper(&verb);
  return {std::move(verb),
          space == std::string_view::npos ? std::string_view() : line.substr(space + 1)};
}

bool DescribesALogin(std::string_view extension) {
  const absl::string_view keyword = proto::AsAbsl(extension.substr(0, extension.find(' ')));
  return absl::EqualsIgnoreCase(keyword, "STARTTLS") ||
         absl::StartsWithIgnoreCase(keyword, "AUTH");  // "AUTH", and old servers' "AUTH=..."
}

ClientDialog::Step Reply(std::string text) {
  return ClientDialog::Step{ClientDialog::Outcome::kReply, std::move(text), {}, {}};
}

}  // namespace

SmtpClientDialog::SmtpClientDialog(ClientDialogOptions options) : options_(std::move(options)) {}

ClientDialog::Step SmtpClientDialog::Greet(const std::vector<std::string>& server_capabilities) {
  server_capabilities_ = server_capabilities;
  return Reply(mailring::StrCat(
      "220 mailring ESMTP ready for destination ", options_.destination_name,
      options_.client_authenticates
          ? mailring::StrCat(": AUTH XOAUTH2 with your ", options_.credential_name)
          : std::string(),
      "\r\n"));
}

ClientDialog::Step SmtpClientDialog::Extensions(std::string_view client_name) const {
  std::vector<std::string> lines = {
      mailring::StrCat("mailring greets ", proto::PrintableText(client_name, 64))};
  for (const std::string& extension : server_capabilities_) {
    if (!DescribesALogin(extension)) lines.push_back(extension);
  }
  if (options_.client_authenticates) lines.emplace_back("AUTH XOAUTH2");
  std::string reply;
  for (size_t i = 0; i < lines.size(); ++i) {
    mailring::StrAppend(&reply, i + 1 < lines.size() ? "250-" : "250 ", lines[i], "\r\n");
  }
  return Reply(std::move(reply));
}

ClientDialog::Step SmtpClientDialog::AcceptBearer(std::string_view base64) {
  absl::StatusOr<proto::BearerResponse> bearer = DecodeClientXoauth2(base64);
  if (!bearer.ok()) return Rejected(proto::AsStd(bearer.status().message()));
  Step step{Outcome::kAuthenticate, {}, {}, {}};
  step.bearer = *std::move(bearer);
  return step;
}

ClientDialog::Step SmtpClientDialog::OnLine(std::string_view line) {
  if (awaiting_sasl_response_) {
    awaiting_sasl_response_ = false;
    if (line == "*") return Reply("501 5.7.0 authentication cancelled\r\n");
    return AcceptBearer(line);
  }
  auto [verb, argument] = SplitCommand(line);
  if (verb == "EHLO") return Extensions(argument);
  if (verb == "HELO") return Reply("250 mailring\r\n");
  if (verb == "NOOP" || verb == "RSET") return Reply("250 2.0.0 OK\r\n");
  if (verb == "QUIT") {
    return Step{Outcome::kReplyAndClose, "221 2.0.0 mailring closing connection\r\n", {}, {}};
  }
  if (verb == "STARTTLS") {
    return Reply("454 4.7.0 mailring speaks plain SMTP to clients; TLS is on its upstream leg\r\n");
  }
  if (verb == "AUTH") {
    if (!options_.client_authenticates) {
      return Reply(mailring::StrCat("235 2.7.0 mailring is logged in to destination ",
                                    options_.destination_name, "\r\n"));
    }
    auto [mechanism, response] = SplitCommand(argument);
    if (mechanism != "XOAUTH2") {
      return Reply(mailring::StrCat("504 5.5.4 use AUTH XOAUTH2 with your ",
                                    options_.credential_name, "\r\n"));
    }
    if (response.empty()) {
      awaiting_sasl_response_ = true;
      return Reply("334 \r\n");
    }
    return AcceptBearer(response);
  }
  if (options_.client_authenticates) {
    return Reply(mailring::StrCat("530 5.7.0 Authentication required: AUTH XOAUTH2 with your ",
                                  options_.credential_name, "\r\n"));
  }
  if (verb.empty()) return Reply("500 5.5.2 empty command\r\n");
  return Step{Outcome::kRelay, {}, mailring::StrCat(line, "\r\n"), {}};
}

ClientDialog::Step SmtpClientDialog::Authenticated(
    const std::vector<std::string>& server_capabilities) {
  server_capabilities_ = server_capabilities;
  return Step{Outcome::kRelay,
              mailring::StrCat("235 2.7.0 Authentication successful: logged in to destination ",
                               options_.destination_name, "\r\n"),
              {},
              {}};
}

ClientDialog::Step SmtpClientDialog::Rejected(std::string_view reason) {
  ++failures_;
  std::string reply = mailring::StrCat("535 5.7.8 ", proto::PrintableText(reason, 200), "\r\n");
  if (failures_ >= kMaxFailures) return Step{Outcome::kReplyAndClose, std::move(reply), {}, {}};
  return Reply(std::move(reply));
}

}  // namespace mailring::core
