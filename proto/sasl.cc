// Strict base64 and the XOAUTH2 / OAUTHBEARER client responses.
//
// Both SASL messages share one shape after their prefix: key=value fields, each ended by \x01,
// and one more \x01 closing the message. ParseFields reads that shape once for both decoders.
// Error texts are fixed strings: they say what is wrong and never quote the input, which carries
// a bearer token, a refresh token or an authorization code.
#include "proto/sasl.h"

#include <array>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "proto/absl_string_view.h"
#include "proto/str_cat.h"

namespace mailring::proto {
namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr int kInvalid = -1;

constexpr std::array<int, 256> MakeDecodeTable() {
  std::array<int, 256> table{};
  for (int& entry : table) entry = kInvalid;
  for (size_t i = 0; i < kAlphabet.size(); ++i) {
    table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int>(i);
  }
  return table;
}

constexpr std::array<int, 256> kDecodeTable = MakeDecodeTable();

absl::Status Base64Error(std::string_view what) {
  return absl::InvalidArgumentError(StrCat("invalid base64: ", what));
}

// One field of a SASL message, pointing into the caller's buffer.
struct Field {
  std::string_view key;
  std::string_view value;
};

// Reads `text` = *(field \x01) \x01: fields, each ended by \x01, then one more \x01. Keys must be
// non-empty ASCII letters (RFC 7628 "key") and appear once. Values are returned as they are;
// the decoders check the ones they use.
absl::StatusOr<std::vector<Field>> ParseFields(std::string_view text, std::string_view mechanism) {
  if (!text.ends_with('\x01') || (text.size() > 1 && !text.ends_with("\x01\x01"))) {
    return absl::InvalidArgumentError(StrCat(mechanism, ": missing final \\x01\\x01"));
  }
  std::vector<Field> fields;
  std::string_view rest = text.substr(0, text.size() - 1);  // every field now ends with \x01
  while (!rest.empty()) {
    const size_t end = rest.find('\x01');
    const std::string_view field = rest.substr(0, end);
    rest.remove_prefix(end + 1);
    if (field.empty()) {
      return absl::InvalidArgumentError(StrCat(mechanism, ": \\x01\\x01 before the end"));
    }
    const size_t equals = field.find('=');
    if (equals == std::string_view::npos) {
      return absl::InvalidArgumentError(StrCat(mechanism, ": field without '='"));
    }
    const std::string_view key = field.substr(0, equals);
    if (key.empty()) return absl::InvalidArgumentError(StrCat(mechanism, ": field without a key"));
    for (char c : key) {
      if (!absl::ascii_isalpha(static_cast<unsigned char>(c))) {
        return absl::InvalidArgumentError(StrCat(mechanism, ": field key is not letters only"));
      }
    }
    for (const Field& seen : fields) {
      if (seen.key == key) {
        // The key is the client's: naming it would echo up to a whole line of input.
        return absl::InvalidArgumentError(StrCat(mechanism, ": a field key appears twice"));
      }
    }
    fields.push_back({key, field.substr(equals + 1)});
  }
  return fields;
}

const Field* FindField(const std::vector<Field>& fields, std::string_view key) {
  for (const Field& field : fields) {
    if (field.key == key) return &field;
  }
  return nullptr;
}

// RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=". Tokens from
// real services all fit it; anything else (spaces, control bytes, non-ASCII) is refused rather
// than forwarded to a token endpoint or an upstream server.
bool IsB64Token(std::string_view token) {
  size_t i = 0;
  for (; i < token.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(token[i]);
    if (!absl::ascii_isalnum(c) && c != '-' && c != '.' && c != '_' && c != '~' && c != '+' &&
        c != '/') {
      break;
    }
  }
  if (i == 0) return false;
  for (; i < token.size(); ++i) {
    if (token[i] != '=') return false;
  }
  return true;
}

// auth-value = "Bearer" 1*SP b64token; the scheme word is case-insensitive as in HTTP.
absl::StatusOr<std::string_view> BearerToken(const std::vector<Field>& fields,
                                             std::string_view mechanism) {
  const Field* auth = FindField(fields, "auth");
  if (auth == nullptr) {
    return absl::InvalidArgumentError(StrCat(mechanism, ": no auth=Bearer field"));
  }
  constexpr std::string_view kScheme = "Bearer";
  std::string_view value = auth->value;
  if (value.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(AsAbsl(value.substr(0, kScheme.size())), AsAbsl(kScheme)) ||
      value[kScheme.size()] != ' ') {
    return absl::InvalidArgumentError(StrCat(mechanism, ": auth field is not \"Bearer <token>\""));
  }
  value.remove_prefix(kScheme.size());
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (value.empty()) return absl::InvalidArgumentError(StrCat(mechanism, ": empty bearer token"));
  if (!IsB64Token(value)) {
    return absl::InvalidArgumentError(
        StrCat(mechanism, ": bearer token has characters outside RFC 6750 b64token"));
  }
  return value;
}

// A user name may be any UTF-8 the server accepts, but no control bytes: they would end up in
// the upstream's logs and ours.
bool HasControlBytes(std::string_view text) {
  for (char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

// RFC 5801 saslname: "," and "=" travel as "=2C" and "=3D"; any other "=" is an error.
std::optional<std::string> DecodeSaslName(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  for (size_t i = 0; i < name.size(); ++i) {
    if (name[i] == ',') return std::nullopt;
    if (name[i] != '=') {
      out.push_back(name[i]);
      continue;
    }
    const std::string_view escape = name.substr(i + 1, 2);
    if (escape == "2C") {
      out.push_back(',');
    } else if (escape == "3D") {
      out.push_back('=');
    } else {
      return std::nullopt;
    }
    i += 2;
  }
  return out;
}

std::string EncodeSaslName(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  for (char c : name) {
    if (c == ',') {
      out += "=2C";
    } else if (c == '=') {
      out += "=3D";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

std::string Base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t group = static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])) << 16 |
                           static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8 |
                           static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 2]));
    out.push_back(kAlphabet[(group >> 18) & 0x3f]);
    out.push_back(kAlphabet[(group >> 12) & 0x3f]);
    out.push_back(kAlphabet[(group >> 6) & 0x3f]);
    out.push_back(kAlphabet[group & 0x3f]);
  }
  const size_t left = bytes.size() - i;
  if (left > 0) {
    uint32_t group = static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    if (left == 2) group |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    out.push_back(kAlphabet[(group >> 18) & 0x3f]);
    out.push_back(kAlphabet[(group >> 12) & 0x3f]);
    out.push_back(left == 2 ? kAlphabet[(group >> 6) & 0x3f] : '=');
    out.push_back('=');
  }
  return out;
}

absl::StatusOr<std::string> Base64DecodeStrict(std::string_view text) {
  size_t padding = 0;
  while (padding < text.size() && text[text.size() - 1 - padding] == '=') ++padding;
  const std::string_view data = text.substr(0, text.size() - padding);
  if (padding > 0) {
    if (text.size() % 4 != 0) return Base64Error("padded length is not a multiple of 4");
    if (padding > 2) return Base64Error("too much padding");
  }
  const size_t tail = data.size() % 4;
  if (tail == 1) return Base64Error("length leaves a lone character");
  if (padding > 0 && padding != 4 - tail) return Base64Error("wrong amount of padding");

  std::string out;
  out.reserve(data.size() / 4 * 3 + 2);
  uint32_t group = 0;
  int bits = 0;
  for (char c : data) {
    const int value = kDecodeTable[static_cast<unsigned char>(c)];
    if (value == kInvalid) {
      return Base64Error(c == '=' ? "padding before the end" : "character outside the alphabet");
    }
    group = (group << 6) | static_cast<uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((group >> bits) & 0xff));
    }
  }
  // tail 2 leaves 4 bits, tail 3 leaves 2: they must be zero, or two texts would decode alike.
  if ((group & ((1u << bits) - 1)) != 0) return Base64Error("non-zero trailing bits");
  return out;
}

std::string EncodeXoauth2(std::string_view user, std::string_view access_token) {
  return StrCat("user=", user, "\x01", "auth=Bearer ", access_token, "\x01\x01");
}

std::string EncodeOauthBearer(std::string_view user, std::string_view access_token,
                              std::string_view host, uint16_t port) {
  // No user: no authzid at all ("n,,"); "a=" with an empty saslname is not valid.
  const std::string gs2_header = user.empty() ? "n,," : StrCat("n,a=", EncodeSaslName(user), ",");
  return StrCat(gs2_header, "\x01", "host=", host, "\x01", "port=", port, "\x01", "auth=Bearer ",
                access_token, "\x01\x01");
}

absl::StatusOr<BearerResponse> DecodeXoauth2(std::string_view raw) {
  constexpr std::string_view kMechanism = "XOAUTH2";
  absl::StatusOr<std::vector<Field>> fields = ParseFields(raw, kMechanism);
  if (!fields.ok()) return fields.status();
  const Field* user = FindField(*fields, "user");
  if (user == nullptr) return absl::InvalidArgumentError("XOAUTH2: no user= field");
  if (user->value.empty()) return absl::InvalidArgumentError("XOAUTH2: empty user");
  if (HasControlBytes(user->value)) {
    return absl::InvalidArgumentError("XOAUTH2: user has control characters");
  }
  absl::StatusOr<std::string_view> token = BearerToken(*fields, kMechanism);
  if (!token.ok()) return token.status();
  return BearerResponse{std::string(user->value), Secret(std::string(*token))};
}

absl::StatusOr<BearerResponse> DecodeOauthBearer(std::string_view raw) {
  constexpr std::string_view kMechanism = "OAUTHBEARER";
  // gs2-header = gs2-cbind-flag "," [ "a=" saslname ] ","; RFC 7628 has no channel binding, so
  // "p=" is refused and "y" (client could have, server did not offer) is accepted like "n".
  const size_t first_comma = raw.find(',');
  if (first_comma == std::string_view::npos) {
    return absl::InvalidArgumentError("OAUTHBEARER: no GS2 header");
  }
  const std::string_view cbind = raw.substr(0, first_comma);
  if (cbind.starts_with("p=")) {
    return absl::InvalidArgumentError("OAUTHBEARER: channel binding is not supported");
  }
  if (cbind != "n" && cbind != "y") {
    return absl::InvalidArgumentError("OAUTHBEARER: GS2 header does not start with n, or y,");
  }
  std::string_view rest = raw.substr(first_comma + 1);
  const size_t second_comma = rest.find(',');
  if (second_comma == std::string_view::npos) {
    return absl::InvalidArgumentError("OAUTHBEARER: GS2 header does not end with ','");
  }
  const std::string_view authzid = rest.substr(0, second_comma);
  rest.remove_prefix(second_comma + 1);
  std::string user;
  if (!authzid.empty()) {
    if (!authzid.starts_with("a=") || authzid.size() == 2) {
      return absl::InvalidArgumentError("OAUTHBEARER: GS2 authzid is not a=<name>");
    }
    std::optional<std::string> name = DecodeSaslName(authzid.substr(2));
    if (!name.has_value()) {
      return absl::InvalidArgumentError("OAUTHBEARER: GS2 authzid has a bad '=' escape");
    }
    if (HasControlBytes(*name)) {
      return absl::InvalidArgumentError("OAUTHBEARER: user has control characters");
    }
    user = std::move(*name);
  }
  if (!rest.starts_with('\x01')) {
    return absl::InvalidArgumentError("OAUTHBEARER: no \\x01 after the GS2 header");
  }
  rest.remove_prefix(1);
  absl::StatusOr<std::vector<Field>> fields = ParseFields(rest, kMechanism);
  if (!fields.ok()) return fields.status();
  absl::StatusOr<std::string_view> token = BearerToken(*fields, kMechanism);
  if (!token.ok()) return token.status();
  return BearerResponse{std::move(user), Secret(std::string(*token))};
}

}  // namespace mailring::proto
