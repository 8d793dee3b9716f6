#include "control/destination_cr.h"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>

#include <cstdio>

#include "absl/strings/escaping.h"
#include "proto/json_quote.h"
#include "proto/str_cat.h"
#include "simdjson.h"

namespace mailring::control {
namespace {

using proto::JsonQuote;


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

std::string ManagedServiceJson(const ManagedServiceSpec& spec) {
  return mailring::StrCat(
      R"({"apiVersion":"v1","kind":"Service","metadata":{"name":)", JsonQuote(spec.name),
      R"(,"namespace":)", JsonQuote(spec.mailring_namespace), R"(,"labels":{)",
      JsonQuote(kManagedByLabel), ":", JsonQuote(kManagedByValue), R"(},"annotations":{)",
      JsonQuote(Annotation("cr-namespace")), ":", JsonQuote(spec.cr_namespace), ",",
      JsonQuote(Annotation("cr-name")), ":", JsonQuote(spec.cr_name), ",",
      JsonQuote(Annotation("cr-uid")), ":", JsonQuote(spec.cr_uid), ",",
      JsonQuote(Annotation("tenant")), ":", JsonQuote(spec.tenant), ",",
      JsonQuote(Annotation("destination")), ":", JsonQuote(spec.destination_name), ",",
      JsonQuote(Annotation("instance")), ":", JsonQuote(spec.instance),
      R"(}},"spec":{"selector":{"app.kubernetes.io/name":"mailring"},)",
      R"("internalTrafficPolicy":"Local","ports":[{"name":)", JsonQuote(spec.port_name),
      R"(,"protocol":"TCP","port":)", spec.port, R"(,"targetPort":)", spec.target_port, "}]}}");
}

std::string ClientServiceJson(const ManagedServiceSpec& spec, std::string_view client_name,
                              std::string_view cluster_domain) {
  return mailring::StrCat(
      R"({"apiVersion":"v1","kind":"Service","metadata":{"name":)", JsonQuote(client_name),
      R"(,"namespace":)", JsonQuote(spec.cr_namespace), R"(,"labels":{)",
      JsonQuote(kManagedByLabel), ":", JsonQuote(kManagedByValue), R"(},"annotations":{)",
      JsonQuote(Annotation("cr-name")), ":", JsonQuote(spec.cr_name), ",",
      JsonQuote(Annotation("cr-uid")), ":", JsonQuote(spec.cr_uid), ",",
      JsonQuote(Annotation("tenant")), ":", JsonQuote(spec.tenant),
      R"(}},"spec":{"type":"ExternalName","externalName":)",
      JsonQuote(mailring::StrCat(spec.name, ".", spec.mailring_namespace, ".svc.", cluster_domain)),
      R"(,"ports":[{"name":)", JsonQuote(spec.port_name), R"(,"protocol":"TCP","port":)",
      spec.port, "}]}}");
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
  std::string tenant_list;
  for (const TenantStatus& tenant : tenants) {
    if (!tenant_list.empty()) tenant_list += ",";
    // tenantSubdomain is what SAP's CRD types each entry as (tooling reads it); the rest is ours.
    mailring::StrAppend(&tenant_list, R"({"tenantSubdomain":)", JsonQuote(tenant.name),
                        R"(,"name":)", JsonQuote(tenant.name), R"(,"serviceName":)",
                        JsonQuote(tenant.service_name), R"(,"status":)", JsonQuote(tenant.status),
                        R"(,"message":)", JsonQuote(tenant.message), "}");
  }
  return mailring::StrCat(
      R"({"apiVersion":"destination.connectivity.api.sap/v1","kind":"Destination",)",
      R"("metadata":{"name":)", JsonQuote(cr.name), R"(,"namespace":)",
      JsonQuote(cr.namespace_name), R"(,"resourceVersion":)", JsonQuote(cr.resource_version),
      R"(},"status":{"observedGeneration":)", cr.generation,
      R"(,"conditions":[{"type":"Available","status":)",
      JsonQuote(available ? "True" : "False"), R"(,"reason":)", JsonQuote(reason),
      R"(,"message":)", JsonQuote(message), R"(,"lastUpdateTime":)", JsonQuote(now_rfc3339),
      R"(,"lastTransitionTime":)", JsonQuote(now_rfc3339), R"(}],"tenants":[)", tenant_list,
      "]}}");
}

}  // namespace mailring::control
