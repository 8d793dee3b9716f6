#include "control/cluster/destination_cr.h"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>

#include <cstdio>

#include "absl/strings/escaping.h"
#include "proto/json_writer.h"
#include "proto/str_cat.h"
#include "simdjson.h"

namespace mailring::control {
namespace {



std::string_view StringOr(simdjson::dom::element element, std::string_view path,
                          std::string_view fallback = {}) {
  std::string_view value;
  if (element.at_pointer(path).get_string().get(value) == simdjson::SUCCESS) return value;
  return fallback;
}

std::string Annotation(std::string_view key) { return mailring::StrCat(kAnnotationPrefix, key); }

}  // namespace

bool IsDns1035Label(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  if (name.front() < 'a' || name.front() > 'z') return false;
  if (name.back() == '-') return false;
  for (const char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

absl::StatusOr<DestinationCr> ParseDestinationCr(std::string_view json) {
  simdjson::dom::parser parser;
  const simdjson::padded_string padded(json);
  simdjson::dom::element root;
  if (parser.parse(padded).get(root) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError("Destination is not valid JSON");
  }
  DestinationCr cr;
  cr.namespace_name = std::string(StringOr(root, "/metadata/namespace"));
  cr.name = std::string(StringOr(root, "/metadata/name"));
  cr.uid = std::string(StringOr(root, "/metadata/uid"));
  cr.resource_version = std::string(StringOr(root, "/metadata/resourceVersion"));
  int64_t generation = 0;
  if (root.at_pointer("/metadata/generation").get_int64().get(generation) == simdjson::SUCCESS) {
    cr.generation = generation;
  }
  cr.deleting = !StringOr(root, "/metadata/deletionTimestamp").empty();
  simdjson::dom::array finalizers;
  if (root.at_pointer("/metadata/finalizers").get_array().get(finalizers) == simdjson::SUCCESS) {
    for (simdjson::dom::element f : finalizers) {
      std::string_view value;
      if (f.get_string().get(value) == simdjson::SUCCESS) cr.finalizers.emplace_back(value);
    }
  }
  if (cr.name.empty() || cr.namespace_name.empty()) {
    return absl::InvalidArgumentError("Destination without metadata.name or metadata.namespace");
  }
  cr.destination_name = std::string(StringOr(root, "/spec/destinationRef/name"));
  cr.instance = std::string(StringOr(root, "/spec/destinationServiceInstanceName"));
  int64_t port = 0;
  if (root.at_pointer("/spec/service/port").get_int64().get(port) == simdjson::SUCCESS) {
    cr.port = static_cast<int>(port);
  }
  // JSON pointer escapes "/" as "~1".
  std::string pointer = "/metadata/annotations/";
  for (const char c : kTenantAnnotation) pointer += c == '/' ? std::string("~1") : std::string(1, c);
  std::string_view annotation;
  if (root.at_pointer(pointer).get_string().get(annotation) != simdjson::SUCCESS) {
    cr.tenants.push_back("");
    return cr;
  }
  simdjson::dom::parser tenant_parser;
  const simdjson::padded_string tenant_text(annotation);
  simdjson::dom::element tenants;
  simdjson::dom::array list;
  if (tenant_parser.parse(tenant_text).get(tenants) != simdjson::SUCCESS ||
      tenants.get_array().get(list) != simdjson::SUCCESS) {
    cr.tenants_error = mailring::StrCat(kTenantAnnotation, " must be a JSON array of tenant subdomains");
    return cr;
  }
  for (simdjson::dom::element tenant : list) {
    std::string_view value;
    if (tenant.get_string().get(value) != simdjson::SUCCESS || !IsDns1035Label(value)) {
      cr.tenants_error = mailring::StrCat(
          kTenantAnnotation, ": every tenant must be a subdomain (a DNS label: lower-case letters, "
                             "digits and '-', starting with a letter)");
      cr.tenants.clear();
      return cr;
    }
    cr.tenants.emplace_back(value);
  }
  if (cr.tenants.empty()) {
    cr.tenants_error = mailring::StrCat(kTenantAnnotation, " lists no tenant");
  }
  return cr;
}

absl::StatusOr<std::string> ClientServiceName(const DestinationCr& cr, std::string_view tenant) {
  std::string name = tenant.empty() ? cr.name : mailring::StrCat(cr.name, "-", tenant);
  if (!IsDns1035Label(name)) {
    return absl::InvalidArgumentError(mailring::StrCat(
        "Service name \"", name,
        "\" is not a valid DNS-1035 label (at most 63 lower-case letters, digits and '-', "
        "starting with a letter)"));
  }
  return name;
}

std::string ManagedServiceName(std::string_view cr_namespace, std::string_view cr_name,
                               std::string_view tenant) {
  const std::string identity = mailring::StrCat(cr_namespace, "/", cr_name, "/", tenant);
  unsigned char digest[32];
  wc_Sha256Hash(reinterpret_cast<const unsigned char*>(identity.data()),
                static_cast<unsigned>(identity.size()), digest);
  const std::string hash = absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), 5));
  std::string readable;
  for (const char c : mailring::StrCat(cr_namespace, "-", cr_name, tenant.empty() ? "" : "-", tenant)) {
    readable += (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c : '-';
  }
  readable = readable.substr(0, 63 - 3 - 1 - hash.size());
  while (!readable.empty() && readable.back() == '-') readable.pop_back();
  return mailring::StrCat("mr-", readable, "-", hash);
}

namespace {

// metadata of a Service mailring manages: name, namespace, the managed-by label and the
// annotations that tie it to its CR. The object stays open after "annotations".
void ServiceMetadata(proto::JsonWriter& json, std::string_view name, std::string_view ns) {
  json.StringField("apiVersion", "v1").StringField("kind", "Service");
  json.Key("metadata").BeginObject().StringField("name", name).StringField("namespace", ns);
  json.Key("labels").BeginObject().StringField(kManagedByLabel, kManagedByValue).EndObject();
}

void ServicePort(proto::JsonWriter& json, const ManagedServiceSpec& spec, bool target_port) {
  json.Key("ports").BeginArray().BeginObject();
  json.StringField("name", spec.port_name).StringField("protocol", "TCP");
  json.IntField("port", spec.port);
  if (target_port) json.IntField("targetPort", spec.target_port);
  json.EndObject().EndArray();
}

}  // namespace

std::string ManagedServiceJson(const ManagedServiceSpec& spec) {
  proto::JsonWriter json;
  json.BeginObject();
  ServiceMetadata(json, spec.name, spec.mailring_namespace);
  json.Key("annotations").BeginObject();
  json.StringField(Annotation("cr-namespace"), spec.cr_namespace);
  json.StringField(Annotation("cr-name"), spec.cr_name);
  json.StringField(Annotation("cr-uid"), spec.cr_uid);
  json.StringField(Annotation("tenant"), spec.tenant);
  json.StringField(Annotation("destination"), spec.destination_name);
  json.StringField(Annotation("instance"), spec.instance);
  json.EndObject().EndObject();  // annotations, metadata
  json.Key("spec").BeginObject();
  json.Key("selector").BeginObject().StringField("app.kubernetes.io/name", "mailring").EndObject();
  json.StringField("internalTrafficPolicy", "Local");
  ServicePort(json, spec, /*target_port=*/true);
  json.EndObject().EndObject();  // spec, the Service
  return std::move(json).Take();
}

std::string ClientServiceJson(const ManagedServiceSpec& spec, std::string_view client_name,
                              std::string_view cluster_domain) {
  proto::JsonWriter json;
  json.BeginObject();
  ServiceMetadata(json, client_name, spec.cr_namespace);
  json.Key("annotations").BeginObject();
  json.StringField(Annotation("cr-name"), spec.cr_name);
  json.StringField(Annotation("cr-uid"), spec.cr_uid);
  json.StringField(Annotation("tenant"), spec.tenant);
  json.EndObject().EndObject();  // annotations, metadata
  json.Key("spec").BeginObject().StringField("type", "ExternalName");
  json.StringField("externalName", mailring::StrCat(spec.name, ".", spec.mailring_namespace,
                                                    ".svc.", cluster_domain));
  ServicePort(json, spec, /*target_port=*/false);
  json.EndObject().EndObject();  // spec, the Service
  return std::move(json).Take();
}

std::string ServicePortsPatchJson(const ManagedServiceSpec& spec, bool target_port) {
  proto::JsonWriter json;
  json.BeginObject().Key("spec").BeginObject();
  ServicePort(json, spec, target_port);
  json.EndObject().EndObject();
  return std::move(json).Take();
}

absl::StatusOr<ManagedService> ParseManagedService(std::string_view json) {
  simdjson::dom::parser parser;
  const simdjson::padded_string padded(json);
  simdjson::dom::element root;
  if (parser.parse(padded).get(root) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError("Service is not valid JSON");
  }
  const std::string label_pointer = "/metadata/labels/app.kubernetes.io~1managed-by";
  if (StringOr(root, label_pointer) != kManagedByValue) {
    return absl::NotFoundError("not managed by mailring");
  }
  auto annotation = [&root](std::string_view key) {
    return std::string(StringOr(root, mailring::StrCat("/metadata/annotations/mailring.io~1", key)));
  };
  ManagedService service;
  service.name = std::string(StringOr(root, "/metadata/name"));
  service.resource_version = std::string(StringOr(root, "/metadata/resourceVersion"));
  service.cr_namespace = annotation("cr-namespace");
  service.cr_name = annotation("cr-name");
  service.cr_uid = annotation("cr-uid");
  service.tenant = annotation("tenant");
  service.destination_name = annotation("destination");
  service.instance = annotation("instance");
  int64_t port = 0;
  int64_t target_port = 0;
  if (root.at_pointer("/spec/ports/0/port").get_int64().get(port) == simdjson::SUCCESS) {
    service.port = static_cast<int>(port);
  }
  if (root.at_pointer("/spec/ports/0/targetPort").get_int64().get(target_port) ==
      simdjson::SUCCESS) {
    service.target_port = static_cast<int>(target_port);
  }
  return service;
}

std::string StatusJson(const DestinationCr& cr, bool available, std::string_view reason,
                       std::string_view message, const std::vector<TenantStatus>& tenants,
                       std::string_view now_rfc3339) {
  proto::JsonWriter json;
  json.BeginObject();
  json.StringField("apiVersion", "destination.connectivity.api.sap/v1");
  json.StringField("kind", "Destination");
  json.Key("metadata").BeginObject().StringField("name", cr.name);
  json.StringField("namespace", cr.namespace_name);
  json.StringField("resourceVersion", cr.resource_version).EndObject();
  json.Key("status").BeginObject().IntField("observedGeneration", cr.generation);
  json.Key("conditions").BeginArray().BeginObject();
  json.StringField("type", "Available").StringField("status", available ? "True" : "False");
  json.StringField("reason", reason).StringField("message", message);
  json.StringField("lastUpdateTime", now_rfc3339).StringField("lastTransitionTime", now_rfc3339);
  json.EndObject().EndArray();
  json.Key("tenants").BeginArray();
  for (const TenantStatus& tenant : tenants) {
    // tenantSubdomain is what SAP's CRD types each entry as (tooling reads it); the rest is ours.
    json.BeginObject().StringField("tenantSubdomain", tenant.name);
    json.StringField("name", tenant.name).StringField("serviceName", tenant.service_name);
    json.StringField("status", tenant.status).StringField("message", tenant.message);
    json.EndObject();
  }
  json.EndArray().EndObject().EndObject();  // tenants, status, the CR
  return std::move(json).Take();
}

std::string FinalizersPatchJson(std::string_view resource_version,
                                const std::vector<std::string>& finalizers) {
  proto::JsonWriter json;
  json.BeginObject().Key("metadata").BeginObject();
  if (!resource_version.empty()) json.StringField("resourceVersion", resource_version);
  json.StringArrayField("finalizers", finalizers);
  json.EndObject().EndObject();
  return std::move(json).Take();
}

}  // namespace mailring::control
