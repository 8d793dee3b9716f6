// JsonWriter: the one way mailring writes a JSON document (Kubernetes objects and patches,
// Lease and status bodies, JSON log lines). Strings go through JsonQuote (proto/json_quote.h):
// quotes, backslash and control characters escaped, UTF-8 passed through. Commas and nesting
// are the writer's business, so a document cannot come out with a missing or extra comma.
//
//   JsonWriter json;
//   json.BeginObject().StringField("kind", "Service").Key("spec").BeginObject()
//       .IntField("port", 143).EndObject().EndObject();
//   std::string text = std::move(json).Take();  // {"kind":"Service","spec":{"port":143}}
//
// Contract: calls form one JSON value (a Key() only inside an object, followed by its value;
// every Begin matched by its End) before Take(); the writer does not check this beyond what
// the unit test covers, so builders are kept small and flat. Not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mailring::proto {

class JsonWriter {
 public:
  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  // An object member's name; the next call writes its value.
  JsonWriter& Key(std::string_view key);

  JsonWriter& String(std::string_view value);
  JsonWriter& Int(int64_t value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();

  // Key(key) followed by the value.
  JsonWriter& StringField(std::string_view key, std::string_view value);
  JsonWriter& IntField(std::string_view key, int64_t value);
  JsonWriter& BoolField(std::string_view key, bool value);
  // An array of strings.
  JsonWriter& StringArrayField(std::string_view key, const std::vector<std::string>& values);

  // The document written so far (complete when every Begin has had its End).
  const std::string& text() const { return out_; }
  std::string Take() && { return std::move(out_); }

 private:
  // Before a value or a key: the comma that separates it from the previous one.
  void Separate();

  std::string out_;
  // One entry per open object or array: whether it has a member or element yet.
  std::vector<bool> has_items_;
  bool after_key_ = false;
};

}  // namespace mailring::proto
