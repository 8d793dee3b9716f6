// KubeApiStatus: a Kubernetes API server's non-2xx answer as an absl::Status, mapped in one
// place so that KubeClient's callers test codes (absl::IsNotFound) instead of HTTP statuses.
//
//   400, 422 InvalidArgument     401 Unauthenticated      403 PermissionDenied
//   404 NotFound                 409 AlreadyExists when the Status object's reason is
//                                    "AlreadyExists" (a create), else Aborted (a write with a
//                                    stale resourceVersion: read again and retry)
//   410 OutOfRange (the resourceVersion is older than the server keeps)
//   412 FailedPrecondition       429 ResourceExhausted    5xx Unavailable    others Unknown
//
// The message is "HTTP <code>: <the Status object's message>", or the start of the body when
// it is not a Status object; at most 300 bytes of it, so that a large body never reaches a log.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace mailring::control {

// `http_status` is outside 200-299.
absl::Status KubeApiStatus(long http_status, std::string_view body);

// "HTTP <code>: <message>", as in KubeApiStatus's messages.
std::string DescribeKubeResponse(long http_status, std::string_view body);

}  // namespace mailring::control
