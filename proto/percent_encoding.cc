#include "proto/percent_encoding.h"

namespace mailring::proto {
namespace {

bool IsAlnum(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string PercentEncode(std::string_view value, PercentStyle style) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    const auto u = static_cast<unsigned char>(c);
    // Unreserved (RFC 3986 2.3) for URIs; the HTML form encoder's set (which keeps '*' and
    // escapes '~') for forms.
    const bool keep = IsAlnum(u) || c == '-' || c == '.' || c == '_' ||
                      (style == PercentStyle::kUriComponent ? c == '~' : c == '*');
    if (keep) {
      out.push_back(c);
    } else if (style == PercentStyle::kForm && c == ' ') {
      out.push_back('+');
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xf]);
    }
  }
  return out;
}

std::optional<std::string> PercentDecode(std::string_view value, PercentStyle style) {
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c == '+' && style == PercentStyle::kForm) {
      out.push_back(' ');
    } else if (c == '%') {
      const int high = i + 1 < value.size() ? HexValue(value[i + 1]) : -1;
      const int low = i + 2 < value.size() ? HexValue(value[i + 2]) : -1;
      if (high < 0 || low < 0) return std::nullopt;
      out.push_back(static_cast<char>(high * 16 + low));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace mailring::proto
