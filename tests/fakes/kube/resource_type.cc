#include "tests/fakes/kube/resource_type.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "proto/str_cat.h"

namespace mailring::fakes::kube {
using mailring::StrCat;

std::vector<ResourceType> BuiltinTypes() {
  std::vector<ResourceType> types;
  auto add = [&](std::string group, std::string plural, std::string singular, std::string kind,
                 bool namespaced, std::vector<std::string> short_names, bool has_status,
                 std::vector<std::string> categories = {}) {
    ResourceType t;
    t.group = std::move(group);
    t.version = "v1";
    t.plural = std::move(plural);
    t.singular = std::move(singular);
    t.kind = std::move(kind);
    t.list_kind = StrCat(t.kind, "List");
    t.namespaced = namespaced;
    t.short_names = std::move(short_names);
    t.has_status = has_status;
    t.categories = std::move(categories);
    t.has_generation = t.kind != "Namespace" && t.kind != "Event";
    types.push_back(std::move(t));
  };
  add("", "namespaces", "namespace", "Namespace", false, {"ns"}, true);
  add("", "services", "service", "Service", true, {"svc"}, true, {"all"});
  add("", "configmaps", "configmap", "ConfigMap", true, {"cm"}, false);
  add("", "secrets", "secret", "Secret", true, {}, false);
  add("", "events", "event", "Event", true, {"ev"}, false);
  add("coordination.k8s.io", "leases", "lease", "Lease", true, {}, false);
  add("apiextensions.k8s.io", "customresourcedefinitions", "customresourcedefinition",
      "CustomResourceDefinition", false, {"crd", "crds"}, true, {"api-extensions"});
  return types;
}

bool TypesFromCrd(const Json& crd, std::vector<ResourceType>* out, std::string* error) {
  const Json* spec = crd.Get("spec");
  const Json* names = spec != nullptr ? spec->Get("names") : nullptr;
  const Json* versions = spec != nullptr ? spec->Get("versions") : nullptr;
  if (spec == nullptr || names == nullptr || versions == nullptr || !versions->IsArray() ||
      versions->items.empty()) {
    *error = "spec.group, spec.names and spec.versions are required";
    return false;
  }
  std::string group = spec->StringAt("group");
  std::string plural = names->StringAt("plural");
  std::string kind = names->StringAt("kind");
  std::string name = crd.Get("metadata") ? crd.Get("metadata")->StringAt("name") : "";
  if (group.empty() || plural.empty() || kind.empty()) {
    *error = "spec.group, spec.names.plural and spec.names.kind are required";
    return false;
  }
  if (name != StrCat(plural, ".", group)) {
    *error = StrCat("metadata.name: Invalid value: \"", name,
                    "\": must be spec.names.plural+\".\"+spec.group");
    return false;
  }
  std::string scope = spec->StringAt("scope");
  for (const Json& v : versions->items) {
    const Json* served = v.Get("served");
    if (served != nullptr && served->type == Json::Type::kBool && !served->boolean) continue;
    ResourceType t;
    t.group = group;
    t.version = v.StringAt("name");
    t.plural = plural;
    t.singular = names->StringAt("singular");
    if (t.singular.empty()) t.singular = absl::AsciiStrToLower(kind);
    t.kind = kind;
    t.list_kind = names->StringAt("listKind");
    if (t.list_kind.empty()) t.list_kind = StrCat(kind, "List");
    t.namespaced = scope != "Cluster";
    t.short_names = StringList(names->Get("shortNames"));
    t.categories = StringList(names->Get("categories"));
    const Json* subresources = v.Get("subresources");
    t.has_status = subresources != nullptr && subresources->Get("status") != nullptr;
    t.crd_name = name;
    if (const Json* columns = v.Get("additionalPrinterColumns");
        columns != nullptr && columns->IsArray()) {
      for (const Json& c : columns->items) {
        PrinterColumn column;
        column.name = c.StringAt("name");
        column.type = c.StringAt("type");
        column.format = c.StringAt("format");
        column.json_path = c.StringAt("jsonPath");
        column.description = c.StringAt("description");
        if (const Json* p = c.Get("priority"); p != nullptr)
          absl::SimpleAtoi(p->text, &column.priority);
        t.columns.push_back(std::move(column));
      }
    } else {
      t.columns.push_back({"Age", "date", "", ".metadata.creationTimestamp", "", 0});
    }
    if (t.version.empty()) {
      *error = "spec.versions[].name is required";
      return false;
    }
    out->push_back(std::move(t));
  }
  if (out->empty()) {
    *error = "spec.versions: at least one version must be served";
    return false;
  }
  return true;
}

std::string SchemaName(const ResourceType& t) {
  if (t.group.empty()) return StrCat("io.k8s.api.core.", t.version, ".", t.kind);
  if (t.group == "coordination.k8s.io")
    return StrCat("io.k8s.api.coordination.", t.version, ".", t.kind);
  if (t.group == "apiextensions.k8s.io") {
    return StrCat("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.", t.version, ".", t.kind);
  }
  std::vector<std::string> parts = absl::StrSplit(t.group, '.');
  std::reverse(parts.begin(), parts.end());
  return StrCat(absl::StrJoin(parts, "."), ".", t.version, ".", t.kind);
}

}  // namespace mailring::fakes::kube
