#include "core/dialog/imap_client_auth.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "proto/printable_text.h"
#include "proto/str_cat.h"

namespace mailring::core {
namespace {

bool IsTagChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u < 0x7f && c != '(' && c != ')' && c != '{' && c != '%' && c != '*' &&
         c != '"' && c != '\\' && c != '+';
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return absl::EqualsIgnoreCase(absl::string_view(a.data(), a.size()),
                                absl::string_view(b.data(), b.size()));
}

// Splits the next space-separated word off `rest`.
std::string_view NextWord(std::string_view& rest) {
  const size_t space = rest.find(' ');
  std::string_view word = rest.substr(0, space);
  rest = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
  return word;
}

}  // namespace

ClientAuth::ClientAuth(std::string_view credential_name) : credential_name_(credential_name) {}

std::string ClientAuth::Greeting(std::string_view destination_name) const {
  return mailring::StrCat("* OK [CAPABILITY ", kCapabilities, "] mailring ready for destination ",
                          destination_name, ": AUTHENTICATE XOAUTH2 with your ", credential_name_,
                          "\r\n");
}

ClientAuth::Step ClientAuth::Fail(std::string_view tag, std::string_view reason) {
  return Reject(tag, reason);
}

ClientAuth::Step ClientAuth::Reject(std::string_view tag, std::string_view reason) {
  ++failures_;
  // The reason may quote a token service: printable ASCII only, so it cannot end the line.
  std::string reply = mailring::StrCat(tag, " NO [AUTHENTICATIONFAILED] ",
                                       proto::PrintableText(reason), "\r\n");
  if (failures_ >= kMaxFailures) {
    mailring::StrAppend(&reply, "* BYE too many failed authentication attempts\r\n");
    return Step{Outcome::kReplyAndClose, std::move(reply), {}, {}};
  }
  return Step{Outcome::kReply, std::move(reply), {}, {}};
}

ClientAuth::Step ClientAuth::Decode(std::string_view tag, std::string_view base64) {
  absl::StatusOr<std::string> raw = proto::Base64DecodeStrict(base64);
  if (!raw.ok()) return Fail(tag, "the XOAUTH2 response is not valid base64");
  absl::StatusOr<proto::BearerResponse> bearer = proto::DecodeXoauth2(*raw);
  if (!bearer.ok()) {
    return Fail(tag, mailring::StrCat("malformed XOAUTH2 response: ", bearer.status().message()));
  }
  return Step{Outcome::kAuthenticate, {}, std::string(tag), *std::move(bearer)};
}

ClientAuth::Step ClientAuth::OnLine(std::string_view line) {
  if (!pending_tag_.empty()) {
    // The response to our "+ " continuation.
    const std::string tag = std::move(pending_tag_);
    pending_tag_.clear();
    if (line == "*") {
      return Step{Outcome::kReply, mailring::StrCat(tag, " BAD AUTHENTICATE cancelled\r\n"), {},
                  {}};
    }
    return Decode(tag, line);
  }
  std::string_view rest = line;
  const std::string_view tag = NextWord(rest);
  if (tag.empty()) {
    return Step{Outcome::kReply, "* BAD empty command line\r\n", {}, {}};
  }
  for (char c : tag) {
    if (!IsTagChar(c)) return Step{Outcome::kReply, "* BAD invalid tag\r\n", {}, {}};
  }
  const std::string_view command = NextWord(rest);
  if (EqualsIgnoreCase(command, "CAPABILITY")) {
    return Step{Outcome::kReply,
                mailring::StrCat("* CAPABILITY ", kCapabilities, "\r\n", tag,
                                 " OK CAPABILITY completed\r\n"),
                {}, {}};
  }
  if (EqualsIgnoreCase(command, "NOOP")) {
    return Step{Outcome::kReply, mailring::StrCat(tag, " OK NOOP completed\r\n"), {}, {}};
  }
  if (EqualsIgnoreCase(command, "ID")) {
    return Step{Outcome::kReply,
                mailring::StrCat("* ID (\"name\" \"mailring\")\r\n", tag, " OK ID completed\r\n"),
                {}, {}};
  }
  if (EqualsIgnoreCase(command, "LOGOUT")) {
    return Step{Outcome::kReplyAndClose,
                mailring::StrCat("* BYE logging out\r\n", tag, " OK LOGOUT completed\r\n"), {},
                {}};
  }
  if (EqualsIgnoreCase(command, "LOGIN")) {
    return Step{Outcome::kReply,
                mailring::StrCat(tag,
                                 " NO [CANNOT] LOGIN is not available here: AUTHENTICATE XOAUTH2 "
                                 "with your ",
                                 credential_name_, "\r\n"),
                {}, {}};
  }
  if (EqualsIgnoreCase(command, "AUTHENTICATE")) {
    const std::string_view mechanism = NextWord(rest);
    if (!EqualsIgnoreCase(mechanism, "XOAUTH2")) {
      return Step{Outcome::kReply,
                  mailring::StrCat(tag, " NO [CANNOT] unsupported mechanism: only XOAUTH2\r\n"),
                  {}, {}};
    }
    if (rest.empty()) {
      pending_tag_ = std::string(tag);
      return Step{Outcome::kReply, "+ \r\n", {}, {}};
    }
    // "=" is SASL-IR's empty initial response, which carries no token.
    if (rest == "=") return Fail(tag, "the XOAUTH2 response is empty");
    return Decode(tag, rest);
  }
  if (command.empty()) {
    return Step{Outcome::kReply, mailring::StrCat(tag, " BAD missing command\r\n"), {}, {}};
  }
  return Step{Outcome::kReply,
              mailring::StrCat(tag, " BAD not available before authentication: AUTHENTICATE "
                                    "XOAUTH2 first\r\n"),
              {}, {}};
}

}  // namespace mailring::core
