#include "control/btp/service_key.h"

#include <fstream>
#include <sstream>

#include "proto/str_cat.h"
#include "simdjson.h"

namespace mailring::control {
namespace {

// The string field `name`, or "" when absent; an error when present but not a string.
absl::StatusOr<std::string> StringField(simdjson::dom::object& object, std::string_view name) {
  simdjson::dom::element element;
  if (object[name].get(element) != simdjson::SUCCESS) return std::string();
  std::string_view value;
  if (element.get_string().get(value) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError(mailring::StrCat("field \"", name, "\" must be a string"));
  }
  return std::string(value);
}

}  // namespace

absl::StatusOr<ServiceKey> ParseServiceKey(std::string_view json) {
  simdjson::dom::parser parser;
  const simdjson::padded_string padded(json);
  simdjson::dom::element document;
  if (parser.parse(padded).get(document) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError("not valid JSON");
  }
  simdjson::dom::object object;
  if (document.get_object().get(object) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError("expected a JSON object");
  }
  // Some keys nest the credentials under "credentials" (as `cf service-key` prints them).
  simdjson::dom::object nested;
  if (object["credentials"].get_object().get(nested) == simdjson::SUCCESS) object = nested;
  ServiceKey key;
  absl::StatusOr<std::string> client_id = StringField(object, "clientid");
  if (!client_id.ok()) return client_id.status();
  absl::StatusOr<std::string> client_secret = StringField(object, "clientsecret");
  if (!client_secret.ok()) return client_secret.status();
  absl::StatusOr<std::string> url = StringField(object, "url");
  if (!url.ok()) return url.status();
  absl::StatusOr<std::string> token_service_url = StringField(object, "token_service_url");
  if (!token_service_url.ok()) return token_service_url.status();
  absl::StatusOr<std::string> uri = StringField(object, "uri");
  if (!uri.ok()) return uri.status();
  if (client_id->empty()) return absl::InvalidArgumentError("field \"clientid\" is required");
  if (client_secret->empty()) {
    return absl::InvalidArgumentError("field \"clientsecret\" is required");
  }
  std::string base = !token_service_url->empty() ? *token_service_url : *url;
  if (base.empty()) {
    return absl::InvalidArgumentError("field \"url\" (or \"token_service_url\") is required");
  }
  while (!base.empty() && base.back() == '/') base.pop_back();
  const std::string_view suffix = "/oauth/token";
  key.token_url = base.size() >= suffix.size() &&
                          base.compare(base.size() - suffix.size(), suffix.size(), suffix) == 0
                      ? base
                      : mailring::StrCat(base, suffix);
  key.client_id = *std::move(client_id);
  key.client_secret = proto::Secret(*std::move(client_secret));
  key.uri = *std::move(uri);
  return key;
}

absl::StatusOr<ServiceKey> LoadServiceKey(std::string_view path) {
  std::ifstream file{std::string(path)};
  if (!file) return absl::NotFoundError(mailring::StrCat("cannot read service key ", path));
  std::stringstream contents;
  contents << file.rdbuf();
  absl::StatusOr<ServiceKey> key = ParseServiceKey(contents.str());
  if (!key.ok()) {
    return absl::InvalidArgumentError(
        mailring::StrCat("service key ", path, ": ", key.status().message()));
  }
  return key;
}

}  // namespace mailring::control
