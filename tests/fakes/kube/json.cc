#include "tests/fakes/kube/json.h"

#include <charconv>
#include <cstdio>

#include "simdjson.h"

namespace mailring::fakes::kube {
namespace {

Json FromElement(simdjson::dom::element element);

}  // namespace

void AppendQuoted(std::string_view s, std::string* out) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          *out += buf;
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

std::string Quote(std::string_view s) {
  std::string out;
  AppendQuoted(s, &out);
  return out;
}

void Json::DumpTo(std::string* out) const {
  switch (type) {
    case Type::kNull:
      *out += "null";
      break;
    case Type::kBool:
      *out += boolean ? "true" : "false";
      break;
    case Type::kNumber:
      *out += text;
      break;
    case Type::kString:
      AppendQuoted(text, out);
      break;
    case Type::kArray:
      out->push_back('[');
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out->push_back(',');
        items[i].DumpTo(out);
      }
      out->push_back(']');
      break;
    case Type::kObject:
      out->push_back('{');
      for (size_t i = 0; i < fields.size(); ++i) {
        if (i > 0) out->push_back(',');
        AppendQuoted(fields[i].first, out);
        out->push_back(':');
        fields[i].second.DumpTo(out);
      }
      out->push_back('}');
      break;
  }
}

std::string Json::Display() const {
  switch (type) {
    case Type::kString:
    case Type::kNumber:
      return text;
    case Type::kBool:
      return boolean ? "true" : "false";
    case Type::kNull:
      return "";
    default:
      return Dump();
  }
}

std::vector<std::string> StringList(const Json* list) {
  std::vector<std::string> out;
  if (list != nullptr && list->IsArray()) {
    for (const Json& item : list->items) {
      if (item.IsString()) out.push_back(item.text);
    }
  }
  return out;
}

bool ParseJson(std::string_view text, Json* out, std::string* error) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(text);
  simdjson::dom::element element;
  if (auto code = parser.parse(padded).get(element); code != simdjson::SUCCESS) {
    *error = simdjson::error_message(code);
    return false;
  }
  *out = FromElement(element);
  return true;
}

namespace {

Json FromElement(simdjson::dom::element element) {
  Json j;
  switch (element.type()) {
    case simdjson::dom::element_type::ARRAY: {
      j.type = Json::Type::kArray;
      simdjson::dom::array array;
      if (element.get_array().get(array) == simdjson::SUCCESS) {
        for (simdjson::dom::element child : array) j.items.push_back(FromElement(child));
      }
      break;
    }
    case simdjson::dom::element_type::OBJECT: {
      j.type = Json::Type::kObject;
      simdjson::dom::object object;
      if (element.get_object().get(object) == simdjson::SUCCESS) {
        for (simdjson::dom::key_value_pair field : object) {
          j.Set(field.key, FromElement(field.value));  // a repeated key: the last one wins
        }
      }
      break;
    }
    case simdjson::dom::element_type::INT64: {
      int64_t n = 0;
      if (element.get_int64().get(n) != simdjson::SUCCESS) break;
      j = Json::Int(n);
      break;
    }
    case simdjson::dom::element_type::UINT64: {
      uint64_t n = 0;
      if (element.get_uint64().get(n) != simdjson::SUCCESS) break;
      j.type = Json::Type::kNumber;
      j.text = mailring::StrCat(n);
      break;
    }
    case simdjson::dom::element_type::DOUBLE: {
      double d = 0;
      if (element.get_double().get(d) != simdjson::SUCCESS) break;
      char buf[64];
      auto result = std::to_chars(buf, buf + sizeof buf, d);
      j.type = Json::Type::kNumber;
      j.text.assign(buf, result.ptr);
      break;
    }
    case simdjson::dom::element_type::STRING: {
      std::string_view s;
      if (element.get_string().get(s) != simdjson::SUCCESS) break;
      j = Json::Str(std::string(s));
      break;
    }
    case simdjson::dom::element_type::BOOL: {
      bool b = false;
      if (element.get_bool().get(b) != simdjson::SUCCESS) break;
      j = Json::Bool(b);
      break;
    }
    case simdjson::dom::element_type::NULL_VALUE:
      break;
  }
  return j;
}

}  // namespace

}  // namespace mailring::fakes::kube
