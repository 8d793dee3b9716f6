// metav1.Status: how the Kubernetes API fake answers an error (and a watch's ERROR event).
#pragma once

#include <string>

#include "tests/fakes/kube/json.h"

namespace mailring::fakes::kube {

// The metav1.StatusReason Kubernetes pairs with an HTTP status ("InternalError" by default).
std::string ReasonFor(int status);

// A Status object of kind Failure; details (name, group, kind) when `name` or `kind` is set.
Json StatusObject(int code, const std::string& reason, const std::string& message,
                  const std::string& name = "", const std::string& group = "",
                  const std::string& kind = "");

}  // namespace mailring::fakes::kube
