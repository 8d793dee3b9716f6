#include "tests/fakes/kube/discovery.h"

#include <algorithm>
#include <cstdio>
#include <functional>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "proto/str_cat.h"
#include "tests/fakes/kube/status.h"

namespace mailring::fakes::kube {
namespace {

using mailring::StrCat;
using Response = FakeKubeApiServer::Response;

Response Ok(std::string body) { return Response{200, "application/json", std::move(body)}; }

Response NotFoundPath() {
  return Response{
      404, "application/json",
      StatusObject(404, "NotFound", "the server could not find the requested resource").Dump()};
}

}  // namespace

// Group names in discovery order (core excluded), each with its versions.
std::vector<std::pair<std::string, std::vector<std::string>>> Discovery::Groups() const {
  std::vector<std::pair<std::string, std::vector<std::string>>> groups;
  for (const ResourceType& t : types_) {
    if (t.group.empty()) continue;
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const auto& g) { return g.first == t.group; });
    if (it == groups.end()) {
      groups.push_back({t.group, {t.version}});
    } else if (std::find(it->second.begin(), it->second.end(), t.version) == it->second.end()) {
      it->second.push_back(t.version);
    }
  }
  return groups;
}

Json Discovery::Verbs() {
  Json verbs = Json::Array();
  for (const char* v :
       {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}) {
    verbs.items.push_back(Json::Str(v));
  }
  return verbs;
}
Json Discovery::Strings(const std::vector<std::string>& values) {
  Json out = Json::Array();
  for (const std::string& v : values) out.items.push_back(Json::Str(v));
  return out;
}

Json Discovery::AggregatedVersion(const std::string& group, const std::string& version) const {
  Json v = Json::Object();
  v.Set("version", Json::Str(version));
  Json& resources = v.Set("resources", Json::Array());
  for (const ResourceType& t : types_) {
    if (t.group != group || t.version != version) continue;
    Json r = Json::Object();
    r.Set("resource", Json::Str(t.plural));
    Json kind = Json::Object();
    kind.Set("group", Json::Str(t.group));
    kind.Set("version", Json::Str(t.version));
    kind.Set("kind", Json::Str(t.kind));
    r.Set("responseKind", kind);
    r.Set("scope", Json::Str(t.namespaced ? "Namespaced" : "Cluster"));
    r.Set("singularResource", Json::Str(t.singular));
    r.Set("verbs", Verbs());
    if (!t.short_names.empty()) r.Set("shortNames", Strings(t.short_names));
    if (!t.categories.empty()) r.Set("categories", Strings(t.categories));
    if (t.has_status) {
      Json sub = Json::Object();
      sub.Set("subresource", Json::Str("status"));
      sub.Set("responseKind", kind);
      sub.Set("verbs", Strings({"get", "patch", "update"}));
      r.Set("subresources", Json::Array()).items.push_back(std::move(sub));
    }
    resources.items.push_back(std::move(r));
  }
  v.Set("freshness", Json::Str("Current"));
  return v;
}

Response Discovery::Api(const HttpRequest& request,
                        const std::vector<std::string>& segments) const {
  bool core = segments[0] == "api";
  std::string accept = request.Header("accept");
  bool aggregated = absl::StrContains(accept, "as=APIGroupDiscoveryList") &&
                    absl::StrContains(accept, "v=v2") && segments.size() == 1;
  if (aggregated) {
    Json list = Json::Object();
    list.Set("kind", Json::Str("APIGroupDiscoveryList"));
    list.Set("apiVersion", Json::Str("apidiscovery.k8s.io/v2"));
    list.Set("metadata", Json::Object());
    Json& items = list.Set("items", Json::Array());
    if (core) {
      Json item = Json::Object();
      item.Set("metadata", Json::Object()).Set("creationTimestamp", Json());
      item.Set("versions", Json::Array()).items.push_back(AggregatedVersion("", "v1"));
      items.items.push_back(std::move(item));
    } else {
      for (const auto& [group, versions] : Groups()) {
        Json item = Json::Object();
        Json& metadata = item.Set("metadata", Json::Object());
        metadata.Set("name", Json::Str(group));
        metadata.Set("creationTimestamp", Json());
        Json& vs = item.Set("versions", Json::Array());
        for (const std::string& version : versions) {
          vs.items.push_back(AggregatedVersion(group, version));
        }
        items.items.push_back(std::move(item));
      }
    }
    return Response{200, "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
                    list.Dump()};
  }
  if (core) {
    if (segments.size() != 1) return NotFoundPath();
    return Ok(
        StrCat("{\"kind\":\"APIVersions\",\"versions\":[\"v1\"],"
               "\"serverAddressByClientCIDRs\":[{\"clientCIDR\":\"0.0.0.0/0\","
               "\"serverAddress\":\"127.0.0.1:",
               port_, "\"}]}"));
  }
  auto group_json = [](const std::string& group, const std::vector<std::string>& versions) {
    Json g = Json::Object();
    g.Set("name", Json::Str(group));
    Json& vs = g.Set("versions", Json::Array());
    for (const std::string& v : versions) {
      Json entry = Json::Object();
      entry.Set("groupVersion", Json::Str(StrCat(group, "/", v)));
      entry.Set("version", Json::Str(v));
      vs.items.push_back(std::move(entry));
    }
    g.Set("preferredVersion", vs.items.front());
    return g;
  };
  if (segments.size() == 1) {
    Json list = Json::Object();
    list.Set("kind", Json::Str("APIGroupList"));
    list.Set("apiVersion", Json::Str("v1"));
    Json& groups = list.Set("groups", Json::Array());
    for (const auto& [group, versions] : Groups()) {
      groups.items.push_back(group_json(group, versions));
    }
    return Ok(list.Dump());
  }
  for (const auto& [group, versions] : Groups()) {
    if (group != segments[1]) continue;
    Json g = group_json(group, versions);
    Json out = Json::Object();
    out.Set("kind", Json::Str("APIGroup"));
    out.Set("apiVersion", Json::Str("v1"));
    for (auto& field : g.fields) out.fields.push_back(std::move(field));
    return Ok(out.Dump());
  }
  return NotFoundPath();
}

Response Discovery::ResourceList(const std::string& group, const std::string& version) const {
  Json list = Json::Object();
  list.Set("kind", Json::Str("APIResourceList"));
  list.Set("apiVersion", Json::Str("v1"));
  list.Set("groupVersion", Json::Str(group.empty() ? version : StrCat(group, "/", version)));
  Json& resources = list.Set("resources", Json::Array());
  for (const ResourceType& t : types_) {
    if (t.group != group || t.version != version) continue;
    Json r = Json::Object();
    r.Set("name", Json::Str(t.plural));
    r.Set("singularName", Json::Str(t.singular));
    r.Set("namespaced", Json::Bool(t.namespaced));
    r.Set("kind", Json::Str(t.kind));
    r.Set("verbs", Verbs());
    if (!t.short_names.empty()) r.Set("shortNames", Strings(t.short_names));
    if (!t.categories.empty()) r.Set("categories", Strings(t.categories));
    resources.items.push_back(std::move(r));
    if (t.has_status) {
      Json s = Json::Object();
      s.Set("name", Json::Str(StrCat(t.plural, "/status")));
      s.Set("singularName", Json::Str(""));
      s.Set("namespaced", Json::Bool(t.namespaced));
      s.Set("kind", Json::Str(t.kind));
      s.Set("verbs", Strings({"get", "patch", "update"}));
      resources.items.push_back(std::move(s));
    }
  }
  if (resources.items.empty()) {
    return NotFoundPath();
  }
  return Ok(list.Dump());
}

Json Discovery::OpenApiDoc(const std::string& group, const std::string& version) const {
  Json doc = Json::Object();
  doc.Set("openapi", Json::Str("3.0.0"));
  // All top-level members first: a reference into `doc` must not outlive a later Set.
  doc.Set("info", Json::Object());
  doc.Set("paths", Json::Object());
  doc.Set("components", Json::Object()).Set("schemas", Json::Object());
  doc.Get("info")->Set("title", Json::Str("Kubernetes"));
  doc.Get("info")->Set("version", Json::Str("v1.32.0"));
  Json& paths = *doc.Get("paths");
  Json& schemas = *doc.Get("components")->Get("schemas");
  auto query_param = [](const char* name, const char* type) {
    Json p = Json::Object();
    p.Set("name", Json::Str(name));
    p.Set("in", Json::Str("query"));
    p.Set("schema", Json::Object()).Set("type", Json::Str(type));
    return p;
  };
  auto path_param = [](const char* name) {
    Json p = Json::Object();
    p.Set("name", Json::Str(name));
    p.Set("in", Json::Str("path"));
    p.Set("required", Json::Bool(true));
    p.Set("schema", Json::Object()).Set("type", Json::Str("string"));
    return p;
  };
  for (const ResourceType& t : types_) {
    if (t.group != group || t.version != version) continue;
    std::string schema = SchemaName(t);
    Json gvk = Json::Object();
    gvk.Set("group", Json::Str(t.group));
    gvk.Set("version", Json::Str(t.version));
    gvk.Set("kind", Json::Str(t.kind));
    Json ref = Json::Object();
    ref.Set("$ref", Json::Str(StrCat("#/components/schemas/", schema)));
    auto operation = [&](const std::string& action, const std::string& op_kind, bool body,
                         bool patch) {
      Json op = Json::Object();
      op.Set("operationId", Json::Str(StrCat(action, op_kind)));
      Json& params = op.Set("parameters", Json::Array());
      if (body) {
        params.items.push_back(query_param("dryRun", "string"));
        params.items.push_back(query_param("fieldManager", "string"));
        params.items.push_back(query_param("fieldValidation", "string"));
        if (patch) params.items.push_back(query_param("force", "boolean"));
        Json& content = op.Set("requestBody", Json::Object()).Set("content", Json::Object());
        Json schema_ref = Json::Object();
        schema_ref.Set("schema", patch ? Json::Object() : ref);
        if (patch) {
          content.Set("application/json-patch+json", schema_ref);
          content.Set("application/merge-patch+json", schema_ref);
          content.Set("application/apply-patch+yaml", schema_ref);
        } else {
          content.Set("*/*", schema_ref);
        }
        op.Child("requestBody").Set("required", Json::Bool(true));
      }
      Json ok = Json::Object();
      ok.Set("description", Json::Str("OK"));
      Json media = Json::Object();
      media.Set("schema", ref);
      ok.Set("content", Json::Object()).Set("application/json", media);
      op.Set("responses", Json::Object()).Set("200", ok);
      op.Set("x-kubernetes-action", Json::Str(action == "read"      ? "get"
                                              : action == "replace" ? "put"
                                                                    : action));
      op.Set("x-kubernetes-group-version-kind", gvk);
      return op;
    };
    std::string prefix = t.GroupVersionPath();
    std::string collection = t.namespaced ? StrCat(prefix, "/namespaces/{namespace}/", t.plural)
                                          : StrCat(prefix, "/", t.plural);
    std::string scope = t.namespaced ? StrCat("Namespaced", t.kind) : t.kind;
    Json& coll = paths.Set(collection, Json::Object());
    coll.Set("get", operation("list", scope, false, false));
    coll.Set("post", operation("create", scope, true, false));
    coll.Set("delete", operation("deletecollection", scope, false, false));
    Json common = Json::Array();
    common.items.push_back(path_param("name"));
    if (t.namespaced) common.items.push_back(path_param("namespace"));
    Json& item = paths.Set(StrCat(collection, "/{name}"), Json::Object());
    item.Set("get", operation("read", scope, false, false));
    item.Set("put", operation("replace", scope, true, false));
    item.Set("patch", operation("patch", scope, true, true));
    item.Set("delete", operation("delete", scope, false, false));
    item.Set("parameters", common);
    if (t.has_status) {
      Json& status = paths.Set(StrCat(collection, "/{name}/status"), Json::Object());
      status.Set("get", operation("read", StrCat(scope, "Status"), false, false));
      status.Set("put", operation("replace", StrCat(scope, "Status"), true, false));
      status.Set("patch", operation("patch", StrCat(scope, "Status"), true, true));
      status.Set("parameters", common);
    }
    if (t.namespaced) {
      paths.Set(StrCat(prefix, "/", t.plural), Json::Object())
          .Set("get", operation("list", StrCat(t.kind, "ForAllNamespaces"), false, false));
    }
    // Permissive schemas: every field is accepted (the server does not validate them).
    Json s = Json::Object();
    s.Set("type", Json::Str("object"));
    Json& props = s.Set("properties", Json::Object());
    props.Set("apiVersion", Json::Object()).Set("type", Json::Str("string"));
    props.Set("kind", Json::Object()).Set("type", Json::Str("string"));
    Json& meta = props.Set("metadata", Json::Object());
    meta.Set("type", Json::Str("object"));
    meta.Set("x-kubernetes-preserve-unknown-fields", Json::Bool(true));
    for (const char* field : {"spec", "status", "data", "stringData"}) {
      Json& f = props.Set(field, Json::Object());
      f.Set("x-kubernetes-preserve-unknown-fields", Json::Bool(true));
    }
    s.Set("x-kubernetes-preserve-unknown-fields", Json::Bool(true));
    Json gvks = Json::Array();
    gvks.items.push_back(gvk);
    s.Set("x-kubernetes-group-version-kind", gvks);
    schemas.Set(schema, std::move(s));
  }
  return doc;
}

Response Discovery::OpenApi(const HttpRequest& request) const {
  std::string rest = request.path.substr(strlen("/openapi/"));
  if (rest == "v3" || rest == "v3/") {
    Json index = Json::Object();
    Json& paths = index.Set("paths", Json::Object());
    auto add = [&](const std::string& group, const std::string& version) {
      std::string key =
          group.empty() ? StrCat("api/", version) : StrCat("apis/", group, "/", version);
      size_t hash = std::hash<std::string>{}(OpenApiDoc(group, version).Dump());
      char hex[32];
      std::snprintf(hex, sizeof hex, "%016zX", hash);
      paths.Set(key, Json::Object())
          .Set("serverRelativeURL", Json::Str(StrCat("/openapi/v3/", key, "?hash=", hex)));
    };
    add("", "v1");
    for (const auto& [group, versions] : Groups()) {
      for (const std::string& v : versions) add(group, v);
    }
    return Ok(index.Dump());
  }
  std::vector<std::string> parts = absl::StrSplit(rest, '/', absl::SkipEmpty());
  if (parts.size() == 3 && parts[0] == "v3" && parts[1] == "api" && parts[2] == "v1") {
    return Ok(OpenApiDoc("", "v1").Dump());
  }
  if (parts.size() == 4 && parts[0] == "v3" && parts[1] == "apis" &&
      !GroupVersionEmpty(parts[2], parts[3])) {
    return Ok(OpenApiDoc(parts[2], parts[3]).Dump());
  }
  return NotFoundPath();
}

bool Discovery::GroupVersionEmpty(const std::string& group, const std::string& version) const {
  for (const ResourceType& t : types_) {
    if (t.group == group && t.version == version) return false;
  }
  return true;
}

}  // namespace mailring::fakes::kube
