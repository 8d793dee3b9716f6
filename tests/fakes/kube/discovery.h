// Discovery: what the Kubernetes API fake says about the resources it serves, from its registry
// of ResourceTypes: /api, /apis (aggregated v2 when the Accept header asks for
// as=APIGroupDiscoveryList, else APIVersions / APIGroupList), /apis/<group>, the
// APIResourceLists of /api/v1 and /apis/<group>/<version>, and /openapi/v3 (an index with hashes
// and one permissive document per group-version whose PATCH operations carry fieldValidation,
// which kubectl checks for server-side validation).
//
// Contract: a view over the registry for one request; the caller holds whatever guards `types`.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tests/fakes/http_server.h"
#include "tests/fakes/kube/json.h"
#include "tests/fakes/kube/resource_type.h"
#include "tests/fakes/kube_apiserver.h"

namespace mailring::fakes::kube {

class Discovery {
 public:
  using Response = FakeKubeApiServer::Response;

  // `port`: the server's, for the OpenAPI documents' server URL.
  Discovery(const std::vector<ResourceType>& types, uint16_t port) : types_(types), port_(port) {}

  // /api, /apis, /api/v1 ... below a group-version: `segments` are the path's.
  Response Api(const HttpRequest& request, const std::vector<std::string>& segments) const;
  // The APIResourceList of a group-version ("" for core).
  Response ResourceList(const std::string& group, const std::string& version) const;
  // /openapi/...
  Response OpenApi(const HttpRequest& request) const;

 private:
  static Json Verbs();
  static Json Strings(const std::vector<std::string>& values);
  // Group names in discovery order (core excluded), each with its versions.
  std::vector<std::pair<std::string, std::vector<std::string>>> Groups() const;
  Json AggregatedVersion(const std::string& group, const std::string& version) const;
  Json OpenApiDoc(const std::string& group, const std::string& version) const;
  bool GroupVersionEmpty(const std::string& group, const std::string& version) const;

  const std::vector<ResourceType>& types_;
  const uint16_t port_;
};

}  // namespace mailring::fakes::kube
