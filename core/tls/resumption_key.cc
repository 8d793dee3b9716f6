#include "core/tls/resumption_key.h"

#include <string_view>

#include "proto/str_cat.h"

namespace mailring::core {
namespace {

void AppendField(std::string* key, std::string_view field) {
  StrAppend(key, field.size(), ":", field, ";");
}

}  // namespace

std::string TlsResumptionKey(const Route& route) {
  std::string key;
  AppendField(&key, route.tenant);
  AppendField(&key, route.destination.name);
  AppendField(&key, route.destination.host);
  AppendField(&key, StrCat(route.destination.port));
  AppendField(&key, route.upstream.ToString());
  AppendField(&key, route.via_connectivity_proxy ? "proxy" : "direct");
  AppendField(&key, route.destination.cloud_connector_location_id);
  AppendField(&key, StrCat(static_cast<int>(route.tls)));
  AppendField(&key, route.tls_verify ? "verify" : "no-verify");
  return key;
}

}  // namespace mailring::core
