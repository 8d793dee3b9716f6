// ResourceType: one served resource of the Kubernetes API fake (group, version, plural, kind,
// scope, status subresource, printer columns), the built-in ones and those a
// CustomResourceDefinition registers.
#pragma once

#include <string>
#include <vector>

#include "tests/fakes/kube/json.h"

namespace mailring::fakes::kube {

struct PrinterColumn {
  std::string name;
  std::string type;  // string, integer, number, boolean, date
  std::string format;
  std::string json_path;
  std::string description;
  int priority = 0;
};

struct ResourceType {
  std::string group;  // "" for the core group
  std::string version;
  std::string plural;
  std::string singular;
  std::string kind;
  std::string list_kind;
  bool namespaced = true;
  std::vector<std::string> short_names;
  std::vector<std::string> categories;
  bool has_status = false;
  bool has_generation = true;
  std::string crd_name;                // set when a CustomResourceDefinition registered it
  std::vector<PrinterColumn> columns;  // the CRD's additionalPrinterColumns

  std::string ApiVersion() const { return group.empty() ? version : StrCat(group, "/", version); }
  // The store key and the "qualified resource" of messages: services, leases.coordination.k8s.io.
  std::string Key() const { return group.empty() ? plural : StrCat(plural, ".", group); }
  std::string GroupVersionPath() const {
    return group.empty() ? StrCat("/api/", version) : StrCat("/apis/", group, "/", version);
  }
};

// core v1 namespaces, services, configmaps, secrets, events; coordination.k8s.io/v1 leases;
// apiextensions.k8s.io/v1 customresourcedefinitions.
std::vector<ResourceType> BuiltinTypes();

// The resource types a CustomResourceDefinition serves (one per served version), appended to
// *out; false with a reason when its spec is unusable.
bool TypesFromCrd(const Json& crd, std::vector<ResourceType>* out, std::string* error);

// The OpenAPI schema name of a kind: io.k8s.api.core.v1.Service,
// sap.api...destination.v1.Destination.
std::string SchemaName(const ResourceType& t);

}  // namespace mailring::fakes::kube
