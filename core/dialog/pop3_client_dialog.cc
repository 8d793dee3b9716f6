#include "core/dialog/pop3_client_dialog.h"

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

// The first word of `line`, and the rest after one space.
std::pair<std::string, std::string_view> SplitCommand(std::string_view line) {
  const size_t space = line.find(' ');
  std::string verb(line.substr(0, space));
  absl::AsciiStrToUpper(&verb);
  return {std::move(verb),
          space == std::string_view::npos ? std::string_view() : line.substr(space + 1)};
}

bool DescribesALogin(std::string_view capability) {
  const std::string_view keyword = capability.substr(0, capability.find(' '));
  for (std::string_view login : {"SASL", "STLS", "USER", "APOP"}) {
    if (absl::EqualsIgnoreCase(proto::AsAbsl(keyword), proto::AsAbsl(login))) return true;
  }
  return false;
}

}  // namespace

Pop3ClientDialog::Pop3ClientDialog(ClientDialogOptions options) : options_(std::move(options)) {}

ClientDialog::Step Pop3ClientDialog::Reply(std::string text) {
  return Step{Outcome::kReply, std::move(text), {}, {}};
}

ClientDialog::Step Pop3ClientDialog::Greet(const std::vector<std::string>& server_capabilities) {
  server_capabilities_ = server_capabilities;
  return Reply(mailring::StrCat(
      "+OK mailring ready for destination ", options_.destination_name,
      options_.client_authenticates
          ? mailring::StrCat(": AUTH XOAUTH2 with your ", options_.credential_name)
          : std::string(),
      "\r\n"));
}

ClientDialog::Step Pop3ClientDialog::Capabilities() const {
  std::string reply = "+OK capability list follows\r\n";
  for (const std::string& capability : server_capabilities_) {
    if (!DescribesALogin(capability)) mailring::StrAppend(&reply, capability, "\r\n");
  }
  mailring::StrAppend(&reply, options_.client_authenticates ? "SASL XOAUTH2" : "USER", "\r\n.\r\n");
  return Reply(std::move(reply));
}

ClientDialog::Step Pop3ClientDialog::AcceptBearer(std::string_view base64) {
  absl::StatusOr<proto::BearerResponse> bearer = DecodeClientXoauth2(base64);
  if (!bearer.ok()) return Rejected(proto::AsStd(bearer.status().message()));
  Step step{Outcome::kAuthenticate, {}, {}, {}};
  step.bearer = *std::move(bearer);
  return step;
}

ClientDialog::Step Pop3ClientDialog::OnLine(std::string_view line) {
  if (awaiting_sasl_response_) {
    awaiting_sasl_response_ = false;
    if (line == "*") return Reply("-ERR authentication cancelled\r\n");
    if (options_.client_authenticates) return AcceptBearer(line);
    return Reply(mailring::StrCat("+OK logged in to destination ", options_.destination_name,
                                  "\r\n"));
  }
  auto [verb, argument] = SplitCommand(line);
  if (verb.empty()) return Reply("-ERR empty command\r\n");
  if (verb == "CAPA") return Capabilities();
  if (verb == "QUIT") {
    return Step{Outcome::kReplyAndClose, "+OK mailring signing off\r\n", {}, {}};
  }
  if (options_.client_authenticates) {
    if (verb == "AUTH") {
      auto [mechanism, response] = SplitCommand(argument);
      if (mechanism != "XOAUTH2") {
        return Reply(mailring::StrCat("-ERR [AUTH] use AUTH XOAUTH2 with your ",
                                      options_.credential_name, "\r\n"));
      }
      if (response.empty()) {
        awaiting_sasl_response_ = true;
        return Reply("+ \r\n");
      }
      return AcceptBearer(response);
    }
    return Reply(mailring::StrCat("-ERR [AUTH] authenticate first: AUTH XOAUTH2 with your ",
                                  options_.credential_name, "\r\n"));
  }
  if (verb == "USER") return Reply("+OK\r\n");
  if (verb == "PASS" || verb == "APOP") {
    return Reply(mailring::StrCat("+OK logged in to destination ", options_.destination_name,
                                  "\r\n"));
  }
  if (verb == "AUTH") {
    if (argument.empty()) return Reply("+OK\r\nXOAUTH2\r\nPLAIN\r\n.\r\n");  // RFC 5034 listing
    auto [mechanism, response] = SplitCommand(argument);
    if (response.empty()) {
      awaiting_sasl_response_ = true;
      return Reply("+ \r\n");
    }
    return Reply(mailring::StrCat("+OK logged in to destination ", options_.destination_name,
                                  "\r\n"));
  }
  if (verb == "STLS") {
    return Reply("-ERR mailring speaks plain POP3 to clients; TLS is on the upstream leg\r\n");
  }
  return Step{Outcome::kRelay, {}, mailring::StrCat(line, "\r\n"), {}};
}

ClientDialog::Step Pop3ClientDialog::Authenticated(
    const std::vector<std::string>& server_capabilities) {
  server_capabilities_ = server_capabilities;
  return Step{Outcome::kRelay,
              mailring::StrCat("+OK logged in to destination ", options_.destination_name, "\r\n"),
              {},
              {}};
}

ClientDialog::Step Pop3ClientDialog::Rejected(std::string_view reason) {
  ++failures_;
  std::string reply =
      mailring::StrCat("-ERR [AUTH] ", proto::PrintableText(reason, 200), "\r\n");
  if (failures_ >= kMaxFailures) return Step{Outcome::kReplyAndClose, std::move(reply), {}, {}};
  return Reply(std::move(reply));
}

}  // namespace mailring::core
