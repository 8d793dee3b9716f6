// The patches the Kubernetes API fake applies to its Json tree: JSON merge patch (RFC 7386) and
// JSON patch (RFC 6902, with its JSON pointers) from nlohmann-json, and the strategic merge
// patch as far as kubectl sends it for the fake's types (no library has it).
#pragma once

#include <string>

#include "tests/fakes/kube/json.h"

namespace mailring::fakes::kube {

// RFC 7386 JSON merge patch.
void MergePatch(Json* target, const Json& patch);

// Strategic merge patch, restricted to what kubectl sends for our types: maps merge, nulls
// delete, lists with a known merge key merge element-wise ($patch: delete removes one,
// $setElementOrder orders), finalizers merge as a set ($deleteFromPrimitiveList removes),
// other lists are replaced.
void StrategicMergePatch(Json* target, const Json& patch);

// RFC 6902 JSON patch (add, remove, replace, test, move, copy); false with a reason, naming the
// first operation that cannot be applied. *target is unchanged on failure.
bool JsonPatch(Json* target, const Json& patch, std::string* error);

}  // namespace mailring::fakes::kube
