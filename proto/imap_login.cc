// LOGIN and AUTHENTICATE PLAIN encoders (RFC 9051 section 9 grammar, RFC 4616).
#include "proto/imap_login.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "proto/absl_string_view.h"

namespace mailring::proto {
namespace {

// ATOM-CHAR: any CHAR except atom-specials. We also exclude ']' (resp-specials): RFC 9051's
// ASTRING-CHAR allows it, but quoting it costs two bytes and avoids servers whose parsers stop
// at ']'.
bool IsAtomChar(unsigned char c) {
  if (c <= 0x1f || c >= 0x7f) return false;  // CTL and 8-bit
  switch (c) {
    case '(':
    case ')':
    case '{':
    case ' ':
    case '%':
    case '*':
    case '"':
    case '\\':
    case ']':
      return false;
    default:
      return true;
  }
}

// QUOTED-CHAR: any TEXT-CHAR (CHAR minus CR and LF); '"' and '\' are escaped by the caller.
// 8-bit bytes would need UTF8=ACCEPT, so they go into a literal instead.
bool IsQuotable(unsigned char c) { return c != 0 && c != '\r' && c != '\n' && c < 0x80; }

void AppendQuoted(std::string_view value, std::string* out) {
  out->push_back('"');
  for (char c : value) {
    if (c == '"' || c == '\\') out->push_back('\\');
    out->push_back(c);
  }
  out->push_back('"');
}

}  // namespace

std::string EncodeAuthenticatePlain(std::string_view tag, std::string_view user,
                                    std::string_view password) {
  // RFC 4616 message: [authzid] NUL authcid NUL passwd, with an empty authzid.
  std::string message;
  message.reserve(user.size() + password.size() + 2);
  message.push_back('\0');
  message.append(user);
  message.push_back('\0');
  message.append(password);
  return absl::StrCat(AsAbsl(tag), " AUTHENTICATE PLAIN ", absl::Base64Escape(message), "\r\n");
}

AstringForm ChooseAstringForm(std::string_view value) {
  if (value.empty()) return AstringForm::kQuoted;
  bool atom = true;
  for (char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if (!IsQuotable(byte)) return AstringForm::kLiteral;
    if (!IsAtomChar(byte)) atom = false;
  }
  return atom ? AstringForm::kAtom : AstringForm::kQuoted;
}

std::vector<std::string> EncodeLogin(std::string_view tag, std::string_view user,
                                     std::string_view password, bool non_synchronizing_literals) {
  std::vector<std::string> segments;
  std::string current = absl::StrCat(AsAbsl(tag), " LOGIN");
  for (std::string_view value : {user, password}) {
    current.push_back(' ');
    switch (ChooseAstringForm(value)) {
      case AstringForm::kAtom:
        current.append(value);
        break;
      case AstringForm::kQuoted:
        AppendQuoted(value, &current);
        break;
      case AstringForm::kLiteral:
        if (non_synchronizing_literals) {
          absl::StrAppend(&current, "{", value.size(), "+}\r\n", AsAbsl(value));
        } else {
          // The server must answer "+" before the octets may be sent: end the segment here.
          absl::StrAppend(&current, "{", value.size(), "}\r\n");
          segments.push_back(std::move(current));
          current.assign(value.data(), value.size());
        }
        break;
    }
  }
  current.append("\r\n");
  segments.push_back(std::move(current));
  return segments;
}

}  // namespace mailring::proto
