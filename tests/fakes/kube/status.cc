#include "tests/fakes/kube/status.h"

#include <utility>

namespace mailring::fakes::kube {

std::string ReasonFor(int status) {
  switch (status) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 405:
      return "MethodNotAllowed";
    case 406:
      return "NotAcceptable";
    case 409:
      return "Conflict";
    case 410:
      return "Expired";
    case 413:
      return "RequestEntityTooLarge";
    case 415:
      return "UnsupportedMediaType";
    case 422:
      return "Invalid";
    case 429:
      return "TooManyRequests";
    case 503:
      return "ServiceUnavailable";
    case 504:
      return "Timeout";
  }
  return "InternalError";
}

Json StatusObject(int code, const std::string& reason, const std::string& message,
                  const std::string& name, const std::string& group, const std::string& kind) {
  Json status = Json::Object();
  status.Set("kind", Json::Str("Status"));
  status.Set("apiVersion", Json::Str("v1"));
  status.Set("metadata", Json::Object());
  status.Set("status", Json::Str("Failure"));
  status.Set("message", Json::Str(message));
  status.Set("reason", Json::Str(reason));
  if (!name.empty() || !kind.empty()) {
    Json details = Json::Object();
    if (!name.empty()) details.Set("name", Json::Str(name));
    if (!group.empty()) details.Set("group", Json::Str(group));
    if (!kind.empty()) details.Set("kind", Json::Str(kind));
    status.Set("details", std::move(details));
  }
  status.Set("code", Json::Int(code));
  return status;
}

}  // namespace mailring::fakes::kube
