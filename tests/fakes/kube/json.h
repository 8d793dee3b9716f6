// Json: the Kubernetes API fake's mutable JSON tree. simdjson parses (a read-only DOM); this
// holds what the server edits. Objects keep their key order; numbers keep their literal text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proto/str_cat.h"

namespace mailring::fakes::kube {

struct Json {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  Type type = Type::kNull;
  bool boolean = false;
  std::string text;  // a string's value, or a number's literal
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> fields;

  static Json Str(std::string s) {
    Json j;
    j.type = Type::kString;
    j.text = std::move(s);
    return j;
  }
  static Json Int(int64_t n) {
    Json j;
    j.type = Type::kNumber;
    j.text = mailring::StrCat(n);
    return j;
  }
  static Json Bool(bool b) {
    Json j;
    j.type = Type::kBool;
    j.boolean = b;
    return j;
  }
  static Json Object() {
    Json j;
    j.type = Type::kObject;
    return j;
  }
  static Json Array() {
    Json j;
    j.type = Type::kArray;
    return j;
  }

  bool IsNull() const { return type == Type::kNull; }
  bool IsObject() const { return type == Type::kObject; }
  bool IsArray() const { return type == Type::kArray; }
  bool IsString() const { return type == Type::kString; }

  const Json* Get(std::string_view key) const {
    if (type != Type::kObject) return nullptr;
    for (const auto& [k, v] : fields) {
      if (k == key) return &v;
    }
    return nullptr;
  }
  Json* Get(std::string_view key) {
    return const_cast<Json*>(static_cast<const Json*>(this)->Get(key));
  }
  // Inserts or replaces; makes this an object if it is not one.
  Json& Set(std::string_view key, Json value) {
    if (type != Type::kObject) *this = Object();
    for (auto& [k, v] : fields) {
      if (k == key) return v = std::move(value);
    }
    fields.emplace_back(std::string(key), std::move(value));
    return fields.back().second;
  }
  // The object member `key`, created as an empty object when absent or not an object.
  Json& Child(std::string_view key) {
    Json* existing = Get(key);
    if (existing != nullptr && existing->IsObject()) return *existing;
    return Set(key, Object());
  }
  bool Erase(std::string_view key) {
    if (type != Type::kObject) return false;
    for (auto it = fields.begin(); it != fields.end(); ++it) {
      if (it->first == key) {
        fields.erase(it);
        return true;
      }
    }
    return false;
  }
  // A string member's value, "" otherwise.
  std::string StringAt(std::string_view key) const {
    const Json* v = Get(key);
    return v != nullptr && v->IsString() ? v->text : "";
  }
  // The value's text for display (strings unquoted, numbers as written, others as JSON).
  std::string Display() const;

  void DumpTo(std::string* out) const;
  std::string Dump() const {
    std::string out;
    DumpTo(&out);
    return out;
  }
  bool operator==(const Json& other) const {
    return type == other.type && boolean == other.boolean && text == other.text &&
           items == other.items && fields == other.fields;
  }
};

// `s` as a JSON string literal, appended to *out or returned.
void AppendQuoted(std::string_view s, std::string* out);
std::string Quote(std::string_view s);

// The strings of a JSON array (other items skipped); empty for null or a non-array.
std::vector<std::string> StringList(const Json* list);

// Parses one JSON document; false (with a reason) when it is not valid JSON.
bool ParseJson(std::string_view text, Json* out, std::string* error);

}  // namespace mailring::fakes::kube
