#include "tests/fakes/kube/patch.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "nlohmann/json.hpp"
#include "proto/str_cat.h"

namespace mailring::fakes::kube {
namespace {

using mailring::StrCat;

// The merge patch (RFC 7386) and the JSON patch (RFC 6902, with its JSON pointers) are
// nlohmann-json's, on a copy of the tree: ordered_json keeps the key order the fake shows.
using LibraryJson = nlohmann::ordered_json;

LibraryJson ToLibrary(const Json& value) {
  switch (value.type) {
    case Json::Type::kNull:
      return nullptr;
    case Json::Type::kBool:
      return value.boolean;
    case Json::Type::kNumber: {
      int64_t integer = 0;
      uint64_t unsigned_integer = 0;
      double real = 0;
      if (absl::SimpleAtoi(value.text, &integer)) return integer;
      if (absl::SimpleAtoi(value.text, &unsigned_integer)) return unsigned_integer;
      if (absl::SimpleAtod(value.text, &real)) return real;
      return nullptr;
    }
    case Json::Type::kString:
      return value.text;
    case Json::Type::kArray: {
      LibraryJson array = LibraryJson::array();
      for (const Json& item : value.items) array.push_back(ToLibrary(item));
      return array;
    }
    case Json::Type::kObject: {
      LibraryJson object = LibraryJson::object();
      for (const auto& [key, field] : value.fields) object[key] = ToLibrary(field);
      return object;
    }
  }
  return nullptr;
}

Json FromLibrary(const LibraryJson& value) {
  Json out;
  switch (value.type()) {
    case LibraryJson::value_t::null:
    case LibraryJson::value_t::discarded:
    case LibraryJson::value_t::binary:
      break;
    case LibraryJson::value_t::boolean:
      out = Json::Bool(value.get<bool>());
      break;
    case LibraryJson::value_t::number_integer:
      out = Json::Int(value.get<int64_t>());
      break;
    case LibraryJson::value_t::number_unsigned:
      out.type = Json::Type::kNumber;
      out.text = StrCat(value.get<uint64_t>());
      break;
    case LibraryJson::value_t::number_float: {
      char buffer[64];
      auto result = std::to_chars(buffer, buffer + sizeof buffer, value.get<double>());
      out.type = Json::Type::kNumber;
      out.text.assign(buffer, result.ptr);
      break;
    }
    case LibraryJson::value_t::string:
      out = Json::Str(value.get<std::string>());
      break;
    case LibraryJson::value_t::array:
      out = Json::Array();
      for (const LibraryJson& item : value) out.items.push_back(FromLibrary(item));
      break;
    case LibraryJson::value_t::object:
      out = Json::Object();
      for (const auto& [key, field] : value.items()) out.Set(key, FromLibrary(field));
      break;
  }
  return out;
}

// Removes strategic-merge-patch directives ($patch, $setElementOrder/..., $retainKeys, ...).
Json StripDirectives(const Json& value) {
  Json out = value;
  if (out.IsObject()) {
    out.fields.clear();
    for (const auto& [k, v] : value.fields) {
      if (!k.empty() && k[0] == '$') continue;
      out.fields.emplace_back(k, StripDirectives(v));
    }
  } else if (out.IsArray()) {
    out.items.clear();
    for (const Json& item : value.items) {
      if (item.IsObject() && item.StringAt("$patch") == "delete") continue;
      out.items.push_back(StripDirectives(item));
    }
  }
  return out;
}

// The patchMergeKey of a list field in the built-in types this fake serves (Service, Pod
// templates, conditions); "" for a list that is replaced as a whole.
std::string MergeKeyFor(const std::string& field, const Json& list) {
  static const std::map<std::string, std::string> kKeys = {
      {"containers", "name"},
      {"initContainers", "name"},
      {"env", "name"},
      {"volumes", "name"},
      {"volumeMounts", "mountPath"},
      {"conditions", "type"},
      {"ownerReferences", "uid"},
      {"imagePullSecrets", "name"},
      {"topologySpreadConstraints", "topologyKey"},
  };
  if (field == "ports") {
    for (const Json& item : list.items) {
      if (item.IsObject() && item.Get("containerPort") != nullptr) return "containerPort";
    }
    return "port";
  }
  auto it = kKeys.find(field);
  return it == kKeys.end() ? "" : it->second;
}

// Lists of scalars that strategic merge patch merges (union) instead of replacing.
bool IsMergedScalarList(const std::string& field) { return field == "finalizers"; }

}  // namespace

void MergePatch(Json* target, const Json& patch) {
  LibraryJson result = ToLibrary(*target);
  result.merge_patch(ToLibrary(patch));
  *target = FromLibrary(result);
}

void StrategicMergePatch(Json* target, const Json& patch) {
  if (!patch.IsObject()) {
    *target = StripDirectives(patch);
    return;
  }
  if (patch.StringAt("$patch") == "replace") {
    *target = StripDirectives(patch);
    return;
  }
  if (!target->IsObject()) *target = Json::Object();
  std::vector<std::pair<std::string, const Json*>> orders;
  for (const auto& [key, value] : patch.fields) {
    if (absl::StartsWith(key, "$setElementOrder/")) {
      orders.emplace_back(key.substr(strlen("$setElementOrder/")), &value);
      continue;
    }
    if (absl::StartsWith(key, "$deleteFromPrimitiveList/")) {
      Json* list = target->Get(key.substr(strlen("$deleteFromPrimitiveList/")));
      if (list != nullptr && list->IsArray() && value.IsArray()) {
        std::vector<Json> kept;
        for (const Json& item : list->items) {
          if (std::find(value.items.begin(), value.items.end(), item) == value.items.end()) {
            kept.push_back(item);
          }
        }
        list->items = std::move(kept);
      }
      continue;
    }
    if (!key.empty() && key[0] == '$') continue;  // $patch (merge), $retainKeys
    if (value.IsNull()) {
      target->Erase(key);
      continue;
    }
    Json* existing = target->Get(key);
    if (value.IsObject()) {
      if (value.StringAt("$patch") == "delete") {
        target->Erase(key);
        continue;
      }
      if (existing == nullptr || !existing->IsObject())
        existing = &target->Set(key, Json::Object());
      StrategicMergePatch(existing, value);
      continue;
    }
    if (value.IsArray() && existing != nullptr && existing->IsArray()) {
      std::string merge_key = MergeKeyFor(key, value);
      if (!merge_key.empty()) {
        for (const Json& item : value.items) {
          const Json* id = item.IsObject() ? item.Get(merge_key) : nullptr;
          auto match =
              std::find_if(existing->items.begin(), existing->items.end(), [&](const Json& e) {
                const Json* eid = e.IsObject() ? e.Get(merge_key) : nullptr;
                return id != nullptr && eid != nullptr && *eid == *id;
              });
          if (item.IsObject() && item.StringAt("$patch") == "delete") {
            if (match != existing->items.end()) existing->items.erase(match);
          } else if (match != existing->items.end()) {
            StrategicMergePatch(&*match, item);
          } else {
            existing->items.push_back(StripDirectives(item));
          }
        }
        continue;
      }
      if (IsMergedScalarList(key)) {
        for (const Json& item : value.items) {
          if (std::find(existing->items.begin(), existing->items.end(), item) ==
              existing->items.end()) {
            existing->items.push_back(item);
          }
        }
        continue;
      }
    }
    target->Set(key, StripDirectives(value));
  }
  for (const auto& [field, order] : orders) {
    Json* list = target->Get(field);
    if (list == nullptr || !list->IsArray() || !order->IsArray()) continue;
    std::string merge_key = MergeKeyFor(field, *order);
    auto rank = [&](const Json& item) -> size_t {
      for (size_t i = 0; i < order->items.size(); ++i) {
        const Json& o = order->items[i];
        if (merge_key.empty() ? o == item
                              : (item.IsObject() && o.IsObject() && item.Get(merge_key) &&
                                 o.Get(merge_key) && *item.Get(merge_key) == *o.Get(merge_key))) {
          return i;
        }
      }
      return order->items.size();
    };
    std::stable_sort(list->items.begin(), list->items.end(),
                     [&](const Json& a, const Json& b) { return rank(a) < rank(b); });
  }
}

bool JsonPatch(Json* target, const Json& patch, std::string* error) {
  if (!patch.IsArray()) {
    *error = "a JSON patch must be an array of operations";
    return false;
  }
  LibraryJson result = ToLibrary(*target);
  for (const Json& op : patch.items) {
    // One operation at a time, so that the error names the one that failed. nlohmann-json
    // reports a failed operation by an exception; it stays inside this function.
    try {
      result = result.patch(LibraryJson::array({ToLibrary(op)}));
    } catch (const nlohmann::json::exception&) {
      *error = StrCat("the JSON patch operation \"", op.StringAt("op"), "\" on \"",
                      op.StringAt("path"), "\" cannot be applied");
      return false;
    }
  }
  *target = FromLibrary(result);
  return true;
}

}  // namespace mailring::fakes::kube
