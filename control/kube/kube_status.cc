#include "control/kube/kube_status.h"

#include <string>

#include "proto/str_cat.h"
#include "simdjson.h"

namespace mailring::control {
namespace {

struct StatusObject {
  std::string_view message;
  std::string_view reason;
};

// The message and reason of a metav1.Status body; empty when the body is something else.
StatusObject ParseStatusObject(std::string_view body, simdjson::dom::parser& parser) {
  StatusObject out;
  simdjson::dom::element document;
  if (parser.parse(body.data(), body.size()).get(document) != simdjson::SUCCESS) return out;
  if (document["message"].get_string().get(out.message) != simdjson::SUCCESS) out.message = {};
  if (document["reason"].get_string().get(out.reason) != simdjson::SUCCESS) out.reason = {};
  return out;
}

absl::StatusCode CodeOf(long http_status, std::string_view reason) {
  switch (http_status) {
    case 400:
    case 422:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 409:
      return reason == "AlreadyExists" ? absl::StatusCode::kAlreadyExists
                                       : absl::StatusCode::kAborted;
    case 410:
      return absl::StatusCode::kOutOfRange;
    case 412:
      return absl::StatusCode::kFailedPrecondition;
    case 429:
      return absl::StatusCode::kResourceExhausted;
    default:
      break;
  }
  if (http_status >= 500 && http_status < 600) return absl::StatusCode::kUnavailable;
  return absl::StatusCode::kUnknown;
}

std::string Describe(long http_status, std::string_view body, const StatusObject& object) {
  std::string_view detail = object.message.empty() ? body : object.message;
  if (detail.size() > 300) detail = detail.substr(0, 300);
  return StrCat("HTTP ", http_status, detail.empty() ? "" : ": ", detail);
}

}  // namespace

absl::Status KubeApiStatus(long http_status, std::string_view body) {
  simdjson::dom::parser parser;
  const StatusObject object = ParseStatusObject(body, parser);
  return absl::Status(CodeOf(http_status, object.reason), Describe(http_status, body, object));
}

std::string DescribeKubeResponse(long http_status, std::string_view body) {
  simdjson::dom::parser parser;
  return Describe(http_status, body, ParseStatusObject(body, parser));
}

}  // namespace mailring::control
