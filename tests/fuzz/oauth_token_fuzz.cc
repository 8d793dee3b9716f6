// ParseTokenResponse (and ResolveTokenServiceUrl) on arbitrary bytes.
//
// The first input byte picks the HTTP status, the rest is the body. Properties: success only for
// 2xx with a non-empty access_token; status codes follow the documented mapping; error texts are
// bounded, printable, and never contain an access_token or refresh_token the body carries.
// Inputs starting with "URL\n" exercise ResolveTokenServiceUrl instead ("URL\n<url>\n<type>\n
// <tenant>").
#include <array>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/match.h"
#include "proto/oauth_token.h"
#include "simdjson.h"

namespace {

void Check(bool condition) {
  if (!condition) std::abort();
}

std::string_view Message(const absl::Status& status) {
  return std::string_view(status.message().data(), status.message().size());
}

constexpr std::array<int, 16> kStatuses = {200, 201, 204, 0,   301, 302, 400, 401,
                                           403, 404, 408, 429, 500, 502, 503, 299};

std::optional<std::string> TopLevelString(simdjson::dom::parser& parser, std::string_view body,
                                          std::string_view key) {
  simdjson::dom::element document;
  if (parser.parse(body.data(), body.size()).get(document) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  std::string_view value;
  if (document[key].get_string().get(value) != simdjson::SUCCESS) return std::nullopt;
  return std::string(value);
}

void FuzzTokenResponse(int status, std::string_view body) {
  absl::StatusOr<mailring::proto::TokenResponse> response =
      mailring::proto::ParseTokenResponse(status, body);
  const bool success_status = status >= 200 && status <= 299;
  if (response.ok()) {
    Check(success_status);
    Check(!response->access_token.empty());
    Check(response->expires_in_seconds >= 0);
    return;
  }
  const absl::StatusCode code = response.status().code();
  if (success_status) {
    Check(code == absl::StatusCode::kInvalidArgument);
  } else if (status == 400 || status == 401) {
    Check(code == absl::StatusCode::kUnauthenticated);
  } else if (status == 429 || status >= 500 || status == 0) {
    Check(code == absl::StatusCode::kUnavailable);
  }
  const std::string_view message = Message(response.status());
  Check(message.size() <= 320);
  for (char c : message) Check(c >= 0x20 && c < 0x7f);
  // Only tokens with a character no fixed text has: "HTTP 400" or "access_token" occurring in
  // both a token and a message prove nothing.
  if (body.empty()) return;
  simdjson::dom::parser parser;
  for (std::string_view key : {"access_token", "refresh_token"}) {
    std::optional<std::string> token = TopLevelString(parser, body, key);
    if (token.has_value() && token->find_first_of("#$%@!~/+=&") != std::string::npos) {
      Check(message.find(*token) == std::string_view::npos);
    }
  }
}

void FuzzTokenUrl(std::string_view input) {
  const size_t first = input.find('\n');
  const size_t second = first == std::string_view::npos ? first : input.find('\n', first + 1);
  if (second == std::string_view::npos) return;
  const std::string_view url = input.substr(0, first);
  const std::string_view type = input.substr(first + 1, second - first - 1);
  const std::string_view tenant = input.substr(second + 1);
  absl::StatusOr<std::string> resolved = mailring::proto::ResolveTokenServiceUrl(url, type, tenant);
  if (!resolved.ok()) {
    Check(resolved.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  const size_t scheme_end = url.find("://");
  Check(scheme_end != std::string_view::npos);
  if (url.find("{tenant}") != std::string_view::npos && !tenant.empty() &&
      absl::EqualsIgnoreCase(absl::string_view(type.data(), type.size()), "Common")) {
    // The placeholder is replaced wherever it stands (a path may carry it too: Microsoft Entra's
    // token URL has the tenant in its path), and nothing else changes.
    std::string expected(url);
    for (size_t at = expected.find("{tenant}"); at != std::string::npos;
         at = expected.find("{tenant}", at + tenant.size())) {
      expected.replace(at, 8, tenant);
    }
    Check(*resolved == expected);
    return;
  }
  // Without the placeholder the path and query never change: only the host gains a label.
  const size_t path = url.find_first_of("/?#", scheme_end + 3);
  if (path != std::string_view::npos) Check(resolved->ends_with(url.substr(path)));
  if (*resolved != url) Check(resolved->find(tenant) != std::string::npos);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (input.starts_with("URL\n")) {
    FuzzTokenUrl(input.substr(4));
    return 0;
  }
  FuzzTokenResponse(kStatuses[data[0] % kStatuses.size()], input.substr(1));
  return 0;
}
