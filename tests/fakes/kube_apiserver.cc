#include "tests/fakes/kube_apiserver.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "proto/str_cat.h"
#include "simdjson.h"
#include "tests/fakes/kube/discovery.h"
#include "tests/fakes/kube/json.h"
#include "tests/fakes/kube/patch.h"
#include "tests/fakes/kube/resource_type.h"
#include "tests/fakes/kube/status.h"
#include "tests/fakes/kube/watch.h"

namespace mailring::fakes {
namespace {

using kube::AppendQuoted;
using kube::BuiltinTypes;
using kube::Discovery;
using kube::EventLine;
using kube::Json;
using kube::JsonPatch;
using kube::MergePatch;
using kube::ParseJson;
using kube::PrinterColumn;
using kube::Quote;
using kube::ReasonFor;
using kube::ResourceType;
using kube::StatusObject;
using kube::StrategicMergePatch;
using kube::StringList;
using kube::TypesFromCrd;
using kube::WatchEvent;
using kube::WatchHub;
using mailring::StrCat;

// Requests (headers + body) larger than this are answered 413 and the connection is closed.
constexpr size_t kMaxRequestBytes = 16 * 1024 * 1024;
// A keep-alive connection idle this long is closed.
constexpr absl::Duration kIdleTimeout = absl::Seconds(120);

// ---------------------------------------------------------------------------------------------
// Small helpers.

std::string Rfc3339(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::time_t ParseRfc3339(const std::string& s) {
  std::tm tm{};
  if (strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) return 0;
  return timegm(&tm);
}

// kubectl's AGE: k8s.io/apimachinery/pkg/util/duration.HumanDuration.
std::string HumanDuration(int64_t seconds) {
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 60 * 2) return StrCat(seconds, "s");
  int64_t minutes = seconds / 60;
  if (minutes < 10) {
    int64_t s = seconds % 60;
    return s == 0 ? StrCat(minutes, "m") : StrCat(minutes, "m", s, "s");
  }
  if (minutes < 60 * 3) return StrCat(minutes, "m");
  int64_t hours = minutes / 60;
  if (hours < 8) {
    int64_t m = minutes % 60;
    return m == 0 ? StrCat(hours, "h") : StrCat(hours, "h", m, "m");
  }
  if (hours < 48) return StrCat(hours, "h");
  if (hours < 24 * 8) {
    int64_t h = hours % 24;
    return h == 0 ? StrCat(hours / 24, "d") : StrCat(hours / 24, "d", h, "h");
  }
  if (hours < 24 * 365 * 2) return StrCat(hours / 24, "d");
  if (hours < 24 * 365 * 8) {
    int64_t d = (hours / 24) % 365;
    return d == 0 ? StrCat(hours / 24 / 365, "y") : StrCat(hours / 24 / 365, "y", d, "d");
  }
  return StrCat(hours / 24 / 365, "y");
}

std::string AgeOf(const Json& object) {
  const Json* metadata = object.Get("metadata");
  if (metadata == nullptr) return "<unknown>";
  std::time_t created = ParseRfc3339(metadata->StringAt("creationTimestamp"));
  if (created == 0) return "<unknown>";
  return HumanDuration(std::time(nullptr) - created);
}

std::string QueryValue(const std::map<std::string, std::string>& query, const std::string& key) {
  auto it = query.find(key);
  return it == query.end() ? "" : it->second;
}

// A DNS-1123 subdomain (most object names) or, with `label`, a DNS-1123 label (Namespaces)
// or, with `label` and `rfc1035`, a DNS-1035 label (Services).
bool ValidName(const std::string& name, bool label, bool rfc1035) {
  if (name.empty() || name.size() > (label ? 63u : 253u)) return false;
  if (rfc1035 && !(name[0] >= 'a' && name[0] <= 'z')) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front()) || !alnum(name.back())) return false;
  for (char c : name) {
    if (!alnum(c) && c != '-' && !(c == '.' && !label)) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Selectors.

struct LabelRequirement {
  enum class Op { kEq, kNeq, kIn, kNotIn, kExists, kNotExists };
  std::string key;
  Op op = Op::kEq;
  std::vector<std::string> values;
};

std::string Trim(std::string_view s) {
  absl::string_view a(s.data(), s.size());
  a = absl::StripAsciiWhitespace(a);
  return std::string(a);
}

// labels.Parse's grammar: comma-separated requirements, `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
// `k notin (a,b)`, `k`, `!k`. False on a syntax error.
bool ParseLabelSelector(const std::string& text, std::vector<LabelRequirement>* out) {
  std::vector<std::string> terms;
  std::string current;
  int depth = 0;
  for (char c : text) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c == ',' && depth == 0) {
      terms.push_back(current);
      current.clear();
    } else {
      current.push_back(c);
    }
  }
  if (depth != 0) return false;
  terms.push_back(current);
  for (const std::string& raw : terms) {
    std::string term = Trim(raw);
    if (term.empty()) continue;
    LabelRequirement r;
    size_t pos;
    if (term[0] == '!') {
      r.op = LabelRequirement::Op::kNotExists;
      r.key = Trim(term.substr(1));
    } else if (size_t paren = term.find('('); paren != std::string::npos) {
      if (term.back() != ')') return false;
      std::string head = Trim(term.substr(0, paren));
      std::vector<std::string> words = absl::StrSplit(head, ' ', absl::SkipWhitespace());
      if (words.size() != 2) return false;
      r.key = words[0];
      if (words[1] == "in") {
        r.op = LabelRequirement::Op::kIn;
      } else if (words[1] == "notin") {
        r.op = LabelRequirement::Op::kNotIn;
      } else {
        return false;
      }
      std::string inside = term.substr(paren + 1, term.size() - paren - 2);
      for (absl::string_view v : absl::StrSplit(inside, ',')) {
        r.values.push_back(Trim(std::string_view(v.data(), v.size())));
      }
    } else if ((pos = term.find("!=")) != std::string::npos) {
      r.op = LabelRequirement::Op::kNeq;
      r.key = Trim(term.substr(0, pos));
      r.values.push_back(Trim(term.substr(pos + 2)));
    } else if ((pos = term.find("==")) != std::string::npos) {
      r.key = Trim(term.substr(0, pos));
      r.values.push_back(Trim(term.substr(pos + 2)));
    } else if ((pos = term.find('=')) != std::string::npos) {
      r.key = Trim(term.substr(0, pos));
      r.values.push_back(Trim(term.substr(pos + 1)));
    } else {
      r.op = LabelRequirement::Op::kExists;
      r.key = term;
    }
    if (r.key.empty()) return false;
    out->push_back(std::move(r));
  }
  return true;
}

struct FieldRequirement {
  std::vector<std::string> path;  // "metadata.name" → {"metadata", "name"}
  bool negate = false;
  std::string value;
};

bool ParseFieldSelector(const std::string& text, std::vector<FieldRequirement>* out) {
  for (absl::string_view raw : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::string term = Trim(std::string_view(raw.data(), raw.size()));
    FieldRequirement r;
    size_t pos;
    std::string key;
    if ((pos = term.find("!=")) != std::string::npos) {
      r.negate = true;
      key = term.substr(0, pos);
      r.value = term.substr(pos + 2);
    } else if ((pos = term.find("==")) != std::string::npos) {
      key = term.substr(0, pos);
      r.value = term.substr(pos + 2);
    } else if ((pos = term.find('=')) != std::string::npos) {
      key = term.substr(0, pos);
      r.value = term.substr(pos + 1);
    } else {
      return false;
    }
    r.path = absl::StrSplit(Trim(key), '.');
    out->push_back(std::move(r));
  }
  return true;
}

struct Selectors {
  std::vector<LabelRequirement> labels;
  std::vector<FieldRequirement> fields;

  bool Matches(const Json& object) const {
    const Json* metadata = object.Get("metadata");
    const Json* label_map = metadata != nullptr ? metadata->Get("labels") : nullptr;
    for (const LabelRequirement& r : labels) {
      const Json* v = label_map != nullptr ? label_map->Get(r.key) : nullptr;
      bool has = v != nullptr && v->IsString();
      std::string value = has ? v->text : "";
      bool in = std::find(r.values.begin(), r.values.end(), value) != r.values.end();
      switch (r.op) {
        case LabelRequirement::Op::kEq:
        case LabelRequirement::Op::kIn:
          if (!has || !in) return false;
          break;
        case LabelRequirement::Op::kNeq:
        case LabelRequirement::Op::kNotIn:
          if (has && in) return false;
          break;
        case LabelRequirement::Op::kExists:
          if (!has) return false;
          break;
        case LabelRequirement::Op::kNotExists:
          if (has) return false;
          break;
      }
    }
    for (const FieldRequirement& r : fields) {
      const Json* v = &object;
      for (const std::string& step : r.path) {
        v = v != nullptr ? v->Get(step) : nullptr;
      }
      std::string value = v != nullptr ? v->Display() : "";
      if ((value == r.value) == r.negate) return false;
    }
    return true;
  }
};

// ---------------------------------------------------------------------------------------------
// JSONPath, as far as additionalPrinterColumns use it: `.a.b`, `.a[0]`, `.a[*]`,
// `.a[?(@.k=="v")].b`.
std::vector<const Json*> EvalJsonPath(const Json& root, const std::string& path) {
  std::vector<const Json*> current = {&root};
  size_t i = 0;
  std::string p = path;
  if (absl::StartsWith(p, "{") && absl::EndsWith(p, "}")) p = p.substr(1, p.size() - 2);
  if (absl::StartsWith(p, "$")) p = p.substr(1);
  while (i < p.size() && !current.empty()) {
    if (p[i] == '.') {
      size_t end = p.find_first_of(".[", i + 1);
      if (end == std::string::npos) end = p.size();
      std::string name = p.substr(i + 1, end - i - 1);
      std::vector<const Json*> next;
      for (const Json* node : current) {
        if (name.empty()) {
          next.push_back(node);
        } else if (const Json* child = node->Get(name); child != nullptr) {
          next.push_back(child);
        }
      }
      current = std::move(next);
      i = end;
    } else if (p[i] == '[') {
      size_t end = p.find(']', i);
      if (end == std::string::npos) return {};
      std::string inside = p.substr(i + 1, end - i - 1);
      std::vector<const Json*> next;
      if (absl::StartsWith(inside, "?(") && absl::EndsWith(inside, ")")) {
        std::string expr = inside.substr(2, inside.size() - 3);
        size_t eq = expr.find("==");
        if (eq == std::string::npos) return {};
        std::string lhs = Trim(expr.substr(0, eq));
        std::string rhs = Trim(expr.substr(eq + 2));
        if (rhs.size() >= 2 && (rhs[0] == '"' || rhs[0] == '\''))
          rhs = rhs.substr(1, rhs.size() - 2);
        if (absl::StartsWith(lhs, "@")) lhs = lhs.substr(1);
        for (const Json* node : current) {
          if (!node->IsArray()) continue;
          for (const Json& item : node->items) {
            std::vector<const Json*> value = EvalJsonPath(item, lhs);
            if (!value.empty() && value[0]->Display() == rhs) next.push_back(&item);
          }
        }
      } else if (inside == "*") {
        for (const Json* node : current) {
          if (node->IsArray()) {
            for (const Json& item : node->items) next.push_back(&item);
          }
        }
      } else {
        int index = 0;
        if (!absl::SimpleAtoi(inside, &index)) return {};
        for (const Json* node : current) {
          if (!node->IsArray()) continue;
          int n = static_cast<int>(node->items.size());
          int at = index < 0 ? n + index : index;
          if (at >= 0 && at < n) next.push_back(&node->items[at]);
        }
      }
      current = std::move(next);
      i = end + 1;
    } else {
      // A path without a leading dot ("spec.x"): treat as ".spec.x".
      p.insert(i, ".");
    }
  }
  return current;
}

// ---------------------------------------------------------------------------------------------
// Protobuf request bodies. kubectl's typed clients (`kubectl create namespace|secret|configmap|
// service`) send `application/vnd.kubernetes.protobuf`: the "k8s\0" magic, then a
// runtime.Unknown {typeMeta{apiVersion, kind}, raw} whose raw bytes are the object. Decoded
// here to JSON for the kinds that have a schema below (fields from k8s.io/api's
// generated.proto); anything unknown is skipped.

enum class PbKind {
  kString,
  kBytes,
  kInt,
  kBool,
  kMessage,
  kStringMap,
  kBytesMap,
  kIntOrString,
  kTime,
  kMicroTime
};
struct PbMessage;
struct PbField {
  int number;
  const char* name;
  PbKind kind;
  bool repeated = false;
  const PbMessage* message = nullptr;
};
struct PbMessage {
  std::vector<PbField> fields;
};

const PbMessage& OwnerReferenceSchema() {
  static const PbMessage m{{{1, "kind", PbKind::kString},
                            {3, "name", PbKind::kString},
                            {4, "uid", PbKind::kString},
                            {5, "apiVersion", PbKind::kString},
                            {6, "controller", PbKind::kBool},
                            {7, "blockOwnerDeletion", PbKind::kBool}}};
  return m;
}
const PbMessage& ObjectMetaSchema() {
  static const PbMessage m{
      {{1, "name", PbKind::kString},
       {2, "generateName", PbKind::kString},
       {3, "namespace", PbKind::kString},
       {5, "uid", PbKind::kString},
       {6, "resourceVersion", PbKind::kString},
       {7, "generation", PbKind::kInt},
       {11, "labels", PbKind::kStringMap},
       {12, "annotations", PbKind::kStringMap},
       {13, "ownerReferences", PbKind::kMessage, true, &OwnerReferenceSchema()},
       {14, "finalizers", PbKind::kString, true}}};
  return m;
}
const PbMessage& FinalizersSpecSchema() {
  static const PbMessage m{{{1, "finalizers", PbKind::kString, true}}};
  return m;
}
const PbMessage& ServicePortSchema() {
  static const PbMessage m{{{1, "name", PbKind::kString},
                            {2, "protocol", PbKind::kString},
                            {3, "port", PbKind::kInt},
                            {4, "targetPort", PbKind::kIntOrString},
                            {5, "nodePort", PbKind::kInt},
                            {6, "appProtocol", PbKind::kString}}};
  return m;
}
const PbMessage& ServiceSpecSchema() {
  static const PbMessage m{{{1, "ports", PbKind::kMessage, true, &ServicePortSchema()},
                            {2, "selector", PbKind::kStringMap},
                            {3, "clusterIP", PbKind::kString},
                            {4, "type", PbKind::kString},
                            {5, "externalIPs", PbKind::kString, true},
                            {7, "sessionAffinity", PbKind::kString},
                            {8, "loadBalancerIP", PbKind::kString},
                            {10, "externalName", PbKind::kString},
                            {11, "externalTrafficPolicy", PbKind::kString},
                            {13, "publishNotReadyAddresses", PbKind::kBool},
                            {17, "ipFamilyPolicy", PbKind::kString},
                            {18, "clusterIPs", PbKind::kString, true},
                            {19, "ipFamilies", PbKind::kString, true},
                            {22, "internalTrafficPolicy", PbKind::kString}}};
  return m;
}
const PbMessage& LeaseSpecSchema() {
  static const PbMessage m{{{1, "holderIdentity", PbKind::kString},
                            {2, "leaseDurationSeconds", PbKind::kInt},
                            {3, "acquireTime", PbKind::kMicroTime},
                            {4, "renewTime", PbKind::kMicroTime},
                            {5, "leaseTransitions", PbKind::kInt}}};
  return m;
}
// The top-level schema of a kind, or null.
const PbMessage* PbSchemaFor(const std::string& kind) {
  static const PbMessage kNamespace{
      {{1, "metadata", PbKind::kMessage, false, &ObjectMetaSchema()},
       {2, "spec", PbKind::kMessage, false, &FinalizersSpecSchema()}}};
  static const PbMessage kConfigMap{{{1, "metadata", PbKind::kMessage, false, &ObjectMetaSchema()},
                                     {2, "data", PbKind::kStringMap},
                                     {3, "binaryData", PbKind::kBytesMap},
                                     {4, "immutable", PbKind::kBool}}};
  static const PbMessage kSecret{{{1, "metadata", PbKind::kMessage, false, &ObjectMetaSchema()},
                                  {2, "data", PbKind::kBytesMap},
                                  {3, "type", PbKind::kString},
                                  {4, "stringData", PbKind::kStringMap},
                                  {5, "immutable", PbKind::kBool}}};
  static const PbMessage kService{{{1, "metadata", PbKind::kMessage, false, &ObjectMetaSchema()},
                                   {2, "spec", PbKind::kMessage, false, &ServiceSpecSchema()}}};
  static const PbMessage kLease{{{1, "metadata", PbKind::kMessage, false, &ObjectMetaSchema()},
                                 {2, "spec", PbKind::kMessage, false, &LeaseSpecSchema()}}};
  if (kind == "Namespace") return &kNamespace;
  if (kind == "ConfigMap") return &kConfigMap;
  if (kind == "Secret") return &kSecret;
  if (kind == "Service") return &kService;
  if (kind == "Lease") return &kLease;
  return nullptr;
}

class PbReader {
 public:
  explicit PbReader(std::string_view data) : data_(data) {}
  bool done() const { return pos_ >= data_.size(); }
  bool Varint(uint64_t* out) {
    *out = 0;
    for (int shift = 0; shift < 64 && pos_ < data_.size(); shift += 7) {
      uint8_t b = static_cast<uint8_t>(data_[pos_++]);
      *out |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }
  // One field: its number, wire type, and value (varint in *number_value, bytes in *bytes).
  bool Next(int* field, int* wire, uint64_t* number_value, std::string_view* bytes) {
    uint64_t tag = 0;
    if (!Varint(&tag)) return false;
    *field = static_cast<int>(tag >> 3);
    *wire = static_cast<int>(tag & 7);
    switch (*wire) {
      case 0:
        return Varint(number_value);
      case 1:
        if (pos_ + 8 > data_.size()) return false;
        pos_ += 8;
        return true;
      case 5:
        if (pos_ + 4 > data_.size()) return false;
        pos_ += 4;
        return true;
      case 2: {
        uint64_t length = 0;
        if (!Varint(&length) || length > data_.size() - pos_) return false;
        *bytes = data_.substr(pos_, length);
        pos_ += length;
        return true;
      }
    }
    return false;
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

std::string Base64(std::string_view bytes) {
  static const char kTable[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t n = (static_cast<uint8_t>(bytes[i]) << 16) |
                 (static_cast<uint8_t>(bytes[i + 1]) << 8) | static_cast<uint8_t>(bytes[i + 2]);
    for (int k = 3; k >= 0; --k) out.push_back(kTable[(n >> (6 * k)) & 63]);
  }
  if (i + 1 == bytes.size()) {
    uint32_t n = static_cast<uint8_t>(bytes[i]) << 16;
    out += StrCat(std::string(1, kTable[(n >> 18) & 63]), std::string(1, kTable[(n >> 12) & 63]),
                  "==");
  } else if (i + 2 == bytes.size()) {
    uint32_t n = (static_cast<uint8_t>(bytes[i]) << 16) | (static_cast<uint8_t>(bytes[i + 1]) << 8);
    out += StrCat(std::string(1, kTable[(n >> 18) & 63]), std::string(1, kTable[(n >> 12) & 63]),
                  std::string(1, kTable[(n >> 6) & 63]), "=");
  }
  return out;
}

bool DecodePb(std::string_view data, const PbMessage& schema, Json* out, int depth = 0);

// A metav1.Time / MicroTime {seconds = 1, nanos = 2} as RFC 3339.
std::string PbTime(std::string_view data, bool micro) {
  PbReader reader(data);
  uint64_t seconds = 0, nanos = 0;
  int field, wire;
  uint64_t value;
  std::string_view bytes;
  while (!reader.done() && reader.Next(&field, &wire, &value, &bytes)) {
    if (field == 1 && wire == 0) seconds = value;
    if (field == 2 && wire == 0) nanos = value;
  }
  std::string text = Rfc3339(static_cast<std::time_t>(seconds));
  if (!micro) return text;
  char frac[16];
  std::snprintf(frac, sizeof frac, ".%06u", static_cast<unsigned>(nanos / 1000));
  return StrCat(text.substr(0, text.size() - 1), frac, "Z");
}

bool DecodePb(std::string_view data, const PbMessage& schema, Json* out, int depth) {
  if (depth > 16) return false;
  *out = Json::Object();
  PbReader reader(data);
  while (!reader.done()) {
    int number = 0, wire = 0;
    uint64_t value = 0;
    std::string_view bytes;
    if (!reader.Next(&number, &wire, &value, &bytes)) return false;
    auto it = std::find_if(schema.fields.begin(), schema.fields.end(),
                           [&](const PbField& f) { return f.number == number; });
    if (it == schema.fields.end()) continue;
    const PbField& f = *it;
    Json item;
    switch (f.kind) {
      case PbKind::kString:
        if (wire != 2) return false;
        item = Json::Str(std::string(bytes));
        break;
      case PbKind::kBytes:
        if (wire != 2) return false;
        item = Json::Str(Base64(bytes));
        break;
      case PbKind::kInt:
        if (wire != 0) return false;
        item = Json::Int(static_cast<int64_t>(value));
        break;
      case PbKind::kBool:
        if (wire != 0) return false;
        item = Json::Bool(value != 0);
        break;
      case PbKind::kTime:
      case PbKind::kMicroTime:
        if (wire != 2) return false;
        item = Json::Str(PbTime(bytes, f.kind == PbKind::kMicroTime));
        break;
      case PbKind::kMessage:
        if (wire != 2 || !DecodePb(bytes, *f.message, &item, depth + 1)) return false;
        break;
      case PbKind::kIntOrString: {
        if (wire != 2) return false;
        PbReader inner(bytes);
        uint64_t type = 0, int_value = 0;
        std::string str_value;
        int n, w;
        uint64_t v;
        std::string_view b;
        while (!inner.done() && inner.Next(&n, &w, &v, &b)) {
          if (n == 1) type = v;
          if (n == 2) int_value = v;
          if (n == 3) str_value = std::string(b);
        }
        item = type == 1 ? Json::Str(str_value) : Json::Int(static_cast<int32_t>(int_value));
        break;
      }
      case PbKind::kStringMap:
      case PbKind::kBytesMap: {
        if (wire != 2) return false;
        PbReader inner(bytes);
        std::string key, map_value;
        int n, w;
        uint64_t v;
        std::string_view b;
        while (!inner.done() && inner.Next(&n, &w, &v, &b)) {
          if (n == 1) key = std::string(b);
          if (n == 2) map_value = std::string(b);
        }
        out->Child(f.name).Set(
            key, Json::Str(f.kind == PbKind::kBytesMap ? Base64(map_value) : map_value));
        continue;
      }
    }
    // gogo-protobuf writes every scalar; JSON's omitempty drops the empty ones. Do as JSON.
    if (!f.repeated &&
        ((item.IsString() && item.text.empty()) ||
         (item.type == Json::Type::kNumber && item.text == "0" && f.kind == PbKind::kInt) ||
         (item.type == Json::Type::kBool && !item.boolean))) {
      continue;
    }
    if (f.repeated) {
      Json* list = out->Get(f.name);
      if (list == nullptr || !list->IsArray()) list = &out->Set(f.name, Json::Array());
      list->items.push_back(std::move(item));
    } else {
      out->Set(f.name, std::move(item));
    }
  }
  return true;
}

// Decodes a Kubernetes protobuf body (magic + runtime.Unknown) to JSON; false with a reason.
bool DecodeKubeProtobuf(std::string_view body, Json* out, std::string* error) {
  static constexpr std::string_view kMagic("k8s\0", 4);
  if (body.substr(0, 4) != kMagic) {
    *error = "missing the k8s protobuf magic";
    return false;
  }
  PbReader reader(body.substr(4));
  std::string api_version, kind;
  std::string_view raw;
  while (!reader.done()) {
    int number = 0, wire = 0;
    uint64_t value = 0;
    std::string_view bytes;
    if (!reader.Next(&number, &wire, &value, &bytes)) {
      *error = "malformed protobuf";
      return false;
    }
    if (number == 1 && wire == 2) {
      PbReader type_meta(bytes);
      int n, w;
      uint64_t v;
      std::string_view b;
      while (!type_meta.done() && type_meta.Next(&n, &w, &v, &b)) {
        if (n == 1) api_version = std::string(b);
        if (n == 2) kind = std::string(b);
      }
    } else if (number == 2 && wire == 2) {
      raw = bytes;
    }
  }
  const PbMessage* schema = PbSchemaFor(kind);
  if (schema == nullptr) {
    *error = StrCat("this fake decodes no protobuf for kind ", kind, "; send JSON");
    return false;
  }
  if (!DecodePb(raw, *schema, out, 0)) {
    *error = "malformed protobuf object";
    return false;
  }
  Json typed = Json::Object();
  typed.Set("kind", Json::Str(kind));
  typed.Set("apiVersion", Json::Str(api_version));
  for (auto& field : out->fields) typed.fields.push_back(std::move(field));
  *out = std::move(typed);
  return true;
}

struct WatchSpec {
  ResourceType type;
  std::string ns;  // "" for all namespaces
  Selectors selectors;
  bool initial = false;  // resourceVersion absent or "0": the current objects as ADDED first
  int64_t from_rv = 0;
  bool bookmarks = false;
  bool table = false;  // events carry a one-row Table (kubectl get -w)
  std::string include_object;
  absl::Duration timeout;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// The store: the API objects under one mutex with the registry of resource types, the watch hub
// that shares that mutex, and the test controls.
struct FakeKubeApiServer::State {
  using Response = FakeKubeApiServer::Response;
  using ObjectMap = std::map<std::pair<std::string, std::string>, Json>;  // (namespace, name)

  explicit State(const Options& options)
      : options(options),
        watches(&mu, options.history_limit, options.bookmark_interval),
        random(std::random_device{}()) {
    absl::MutexLock lock(&mu);
    types = BuiltinTypes();
    loading = true;  // the bootstrap objects must not overwrite a saved state before Start()
    for (const char* ns : {"default", "kube-system", "kube-public", "kube-node-lease"}) {
      Json object = Json::Object();
      object.Child("metadata").Set("name", Json::Str(ns));
      CreateLocked(*FindTypeLocked("", "v1", "namespaces"), "", std::move(object), false);
    }
    Json kubernetes = Json::Object();
    kubernetes.Child("metadata").Set("name", Json::Str("kubernetes"));
    kubernetes.Child("metadata").Child("labels").Set("component", Json::Str("apiserver"));
    kubernetes.Child("spec").Set("clusterIP", Json::Str("10.96.0.1"));
    Json port = Json::Object();
    port.Set("name", Json::Str("https"));
    port.Set("port", Json::Int(443));
    port.Set("targetPort", Json::Int(6443));
    kubernetes.Child("spec").Set("ports", Json::Array()).items.push_back(std::move(port));
    CreateLocked(*FindTypeLocked("", "v1", "services"), "default", std::move(kubernetes), false);
    loading = false;
  }

  // ---- entry point ---------------------------------------------------------------------------
  // Answers one request; for a watch (when `watch` is not null) fills *watch and answers
  // status 0: the caller streams it with RunWatch.
  Response Handle(const HttpRequest& request, WatchSpec* watch) {
    absl::Duration delay;
    {
      absl::MutexLock lock(&mu);
      delay = latency;
    }
    if (delay > absl::ZeroDuration()) absl::SleepFor(delay);
    absl::MutexLock lock(&mu);
    if (!options.token.empty() &&
        request.Header("authorization") != StrCat("Bearer ", options.token)) {
      ++counts["discovery\t"];
      return Error(401, "Unauthorized", "Unauthorized");
    }
    const std::string& path = request.path;
    if (path == "/version" || path == "/version/") {
      Count("discovery", "");
      return Ok(
          "{\"major\":\"1\",\"minor\":\"32\",\"gitVersion\":\"v1.32.0-mailring-fake\","
          "\"gitCommit\":\"0000000000000000000000000000000000000000\",\"gitTreeState\":\"clean\","
          "\"buildDate\":\"2025-01-01T00:00:00Z\",\"goVersion\":\"go1.23.0\",\"compiler\":\"gc\","
          "\"platform\":\"linux/amd64\"}");
    }
    if (path == "/healthz" || path == "/readyz" || path == "/livez") {
      return Response{200, "text/plain; charset=utf-8", "ok"};
    }
    if (absl::StartsWith(path, "/openapi/")) {
      Count("discovery", "");
      return Discovery(types, port).OpenApi(request);
    }
    std::vector<std::string> segments = absl::StrSplit(path, '/', absl::SkipEmpty());
    if (segments.empty() || (segments[0] != "api" && segments[0] != "apis")) {
      return Error(404, "NotFound", "the server could not find the requested resource");
    }
    bool core = segments[0] == "api";
    size_t gv_end = core ? 2 : 3;
    if (segments.size() < gv_end) {
      Count("discovery", "");
      return Discovery(types, port).Api(request, segments);
    }
    if (segments.size() == gv_end) {
      Count("discovery", "");
      std::string group = core ? "" : segments[1];
      return Discovery(types, port).ResourceList(group, segments[gv_end - 1]);
    }
    return ResourceLocked(request, segments, watch);
  }

  // ---- responses ------------------------------------------------------------------------------
  static Response Ok(std::string body, int status = 200) {
    return Response{status, "application/json", std::move(body)};
  }
  static Response Error(int code, const std::string& reason, const std::string& message,
                        const std::string& name = "", const std::string& group = "",
                        const std::string& kind = "") {
    return Response{code, "application/json",
                    StatusObject(code, reason, message, name, group, kind).Dump()};
  }
  static Response NotFound(const ResourceType& t, const std::string& name) {
    return Error(404, "NotFound", StrCat(t.Key(), " \"", name, "\" not found"), name, t.group,
                 t.plural);
  }
  static Response Invalid(const ResourceType& t, const std::string& name,
                          const std::string& message) {
    return Error(422, "Invalid", StrCat(t.kind, " \"", name, "\" is invalid: ", message), name,
                 t.group, t.kind);
  }
  static Response Conflict(const ResourceType& t, const std::string& name,
                           const std::string& why =
                               "the object has been modified; please apply "
                               "your changes to the latest version and try "
                               "again") {
    return Error(409, "Conflict",
                 StrCat("Operation cannot be fulfilled on ", t.Key(), " \"", name, "\": ", why),
                 name, t.group, t.plural);
  }

  void Count(const std::string& verb, const std::string& resource) {
    ++counts[StrCat(verb, "\t", resource)];
  }

  // ---- registry -------------------------------------------------------------------------------
  const ResourceType* FindTypeLocked(const std::string& group, const std::string& version,
                                     const std::string& plural) const {
    for (const ResourceType& t : types) {
      if (t.group == group && t.version == version && t.plural == plural) return &t;
    }
    return nullptr;
  }
  const ResourceType* FindTypeByKeyLocked(const std::string& key) const {
    for (const ResourceType& t : types) {
      if (t.Key() == key || t.plural == key) return &t;
    }
    return nullptr;
  }
  // ---- resources: routing -----------------------------------------------------------------
  Response ResourceLocked(const HttpRequest& request, const std::vector<std::string>& segments,
                          WatchSpec* watch) {
    bool core = segments[0] == "api";
    std::string group = core ? "" : segments[1];
    std::string version = core ? segments[1] : segments[2];
    std::vector<std::string> rest(segments.begin() + (core ? 2 : 3), segments.end());
    std::string ns, plural, name, sub;
    bool in_namespace = false;
    if (rest[0] == "namespaces" && rest.size() >= 3) {
      const ResourceType* t = FindTypeLocked(group, version, rest[2]);
      if (t != nullptr && t->namespaced) {
        if (rest.size() > 5) return NotFoundPath();
        in_namespace = true;
        ns = rest[1];
        plural = rest[2];
        name = rest.size() > 3 ? rest[3] : "";
        sub = rest.size() > 4 ? rest[4] : "";
      }
    }
    if (!in_namespace) {
      if (rest.size() > 3) return NotFoundPath();
      plural = rest[0];
      name = rest.size() > 1 ? rest[1] : "";
      sub = rest.size() > 2 ? rest[2] : "";
    }
    const ResourceType* found = FindTypeLocked(group, version, plural);
    if (found == nullptr) return NotFoundPath();
    const ResourceType t = *found;  // a copy: the request may change the registry
    if (t.namespaced && !in_namespace && !name.empty()) return NotFoundPath();
    if (!sub.empty() && !(sub == "status" && t.has_status) &&
        !(sub == "finalize" && t.kind == "Namespace")) {
      return NotFoundPath();
    }
    std::string verb;
    const std::string& method = request.method;
    std::string watch_param = QueryValue(request.query, "watch");
    if (method == "GET") {
      verb = !name.empty()                                   ? "get"
             : (watch_param == "true" || watch_param == "1") ? "watch"
                                                             : "list";
      if (!sub.empty() && name.empty()) return NotFoundPath();
    } else if (method == "POST" && name.empty()) {
      verb = "create";
    } else if (method == "PUT" && !name.empty()) {
      verb = "update";
    } else if (method == "PATCH" && !name.empty()) {
      verb = "patch";
    } else if (method == "DELETE" && sub.empty()) {
      verb = name.empty() ? "deletecollection" : "delete";
    } else {
      return Error(405, "MethodNotAllowed",
                   StrCat("the server does not allow this method on the requested resource"));
    }
    Count(verb, t.plural);
    for (auto it = faults.begin(); it != faults.end(); ++it) {
      if ((it->resource.empty() || it->resource == t.plural || it->resource == t.Key()) &&
          (it->verb.empty() || it->verb == verb)) {
        int code = it->status;
        if (--it->remaining <= 0) faults.erase(it);
        if (code == 409) return Conflict(t, name.empty() ? t.plural : name);
        return Error(code, ReasonFor(code),
                     StrCat("injected failure (", code, ") for ", verb, " ", t.Key()), name,
                     t.group, t.plural);
      }
    }
    bool dry_run = !QueryValue(request.query, "dryRun").empty();
    if (verb == "get") return GetLocked(t, ns, name, sub, request);
    if (verb == "list") return ListLocked(t, ns, request);
    if (verb == "watch") {
      if (watch == nullptr) return Error(400, "BadRequest", "watch is not served in process");
      return WatchLocked(t, ns, request, watch);
    }
    if (verb == "delete") return DeleteLocked(t, ns, name, request.body, dry_run);
    if (verb == "deletecollection") return DeleteCollectionLocked(t, ns, request, dry_run);
    if (verb == "patch") return PatchLocked(t, ns, name, sub, request, dry_run);
    std::string content_type = absl::AsciiStrToLower(request.Header("content-type"));
    Json body;
    std::string error;
    if (absl::StartsWith(content_type, "application/vnd.kubernetes.protobuf")) {
      if (!DecodeKubeProtobuf(request.body, &body, &error)) {
        return Error(415, "UnsupportedMediaType",
                     StrCat("the body of the request was in an "
                            "unknown format: ",
                            error));
      }
    } else if (!content_type.empty() && !absl::StrContains(content_type, "json")) {
      return Error(415, "UnsupportedMediaType",
                   StrCat("the body of the request was in an unknown format - accepted media "
                          "types include: application/json, application/vnd.kubernetes.protobuf "
                          "(not ",
                          content_type, ")"));
    } else if (!ParseJson(request.body, &body, &error)) {
      return Error(400, "BadRequest",
                   StrCat("the body of the request was in an unknown format - accepted media "
                          "types include: application/json (",
                          error, ")"));
    }
    if (verb == "create") {
      if (t.namespaced && !in_namespace) return NotFoundPath();
      return CreateLocked(t, ns, std::move(body), dry_run);
    }
    return UpdateLocked(t, ns, name, sub, std::move(body), dry_run);
  }

  static Response NotFoundPath() {
    return Error(404, "NotFound", "the server could not find the requested resource");
  }

  // ---- resources: reads ---------------------------------------------------------------------
  Response GetLocked(const ResourceType& t, const std::string& ns, const std::string& name,
                     const std::string& sub, const HttpRequest& request) {
    const Json* object = FindLocked(t, ns, name);
    if (object == nullptr) return NotFound(t, name);
    Json out = WithVersion(*object, t);
    if (absl::StrContains(request.Header("accept"), "as=Table") && sub.empty()) {
      Json metadata = Json::Object();
      metadata.Set("resourceVersion", Json::Str(out.Child("metadata").StringAt("resourceVersion")));
      return Response{
          200, "application/json;as=Table;v=v1;g=meta.k8s.io",
          TableLocked(t, {&out}, QueryValue(request.query, "includeObject"), metadata).Dump()};
    }
    return Ok(out.Dump());
  }

  bool SelectorsFrom(const HttpRequest& request, Selectors* selectors, Response* error) {
    std::string labels = QueryValue(request.query, "labelSelector");
    std::string fields = QueryValue(request.query, "fieldSelector");
    if (!ParseLabelSelector(labels, &selectors->labels)) {
      *error = Error(400, "BadRequest", StrCat("unable to parse requirement: ", labels));
      return false;
    }
    if (!ParseFieldSelector(fields, &selectors->fields)) {
      *error = Error(400, "BadRequest", StrCat("invalid field selector: ", fields));
      return false;
    }
    return true;
  }

  Response ListLocked(const ResourceType& t, const std::string& ns, const HttpRequest& request) {
    Selectors selectors;
    Response error;
    if (!SelectorsFrom(request, &selectors, &error)) return error;
    int64_t rv = 0;
    std::string rv_text = QueryValue(request.query, "resourceVersion");
    if (!rv_text.empty() && !absl::SimpleAtoi(rv_text, &rv)) {
      return Error(400, "BadRequest", StrCat("invalid resource version: ", rv_text));
    }
    if (QueryValue(request.query, "resourceVersionMatch") == "Exact" &&
        rv < watches.floor_locked() && rv != resource_version) {
      return Error(410, "Expired",
                   StrCat("too old resource version: ", rv, " (", watches.floor_locked(), ")"));
    }
    int64_t limit = 0;
    absl::SimpleAtoi(QueryValue(request.query, "limit"), &limit);
    std::string cont = QueryValue(request.query, "continue");
    std::pair<std::string, std::string> after;
    int64_t list_rv = resource_version;
    if (!cont.empty()) {
      std::vector<std::string> parts = absl::StrSplit(cont, absl::MaxSplits('/', 2));
      if (parts.size() != 3 || !absl::SimpleAtoi(parts[0], &list_rv)) {
        return Error(400, "BadRequest", "continue key is not valid");
      }
      if (list_rv < watches.floor_locked()) {
        return Error(410, "Expired",
                     "The provided continue parameter is too old to display a consistent list "
                     "result. You can start a new list without the continue parameter.");
      }
      after = {parts[1], parts[2]};
    }
    std::vector<Json> items;
    std::string next;
    int64_t remaining = 0;
    auto store_it = store.find(t.Key());
    if (store_it != store.end()) {
      for (const auto& [key, object] : store_it->second) {
        if (!ns.empty() && key.first != ns) continue;
        if (!cont.empty() && key <= after) continue;
        if (!selectors.Matches(object)) continue;
        if (limit > 0 && static_cast<int64_t>(items.size()) >= limit) {
          ++remaining;
          continue;
        }
        items.push_back(WithVersion(object, t));
        if (limit > 0 && static_cast<int64_t>(items.size()) == limit) {
          next = StrCat(list_rv, "/", key.first, "/", key.second);
        }
      }
    }
    if (remaining == 0) next.clear();
    Json metadata = Json::Object();
    metadata.Set("resourceVersion", Json::Str(StrCat(list_rv)));
    if (!next.empty()) {
      metadata.Set("continue", Json::Str(next));
      metadata.Set("remainingItemCount", Json::Int(remaining));
    }
    if (absl::StrContains(request.Header("accept"), "as=Table")) {
      std::vector<const Json*> rows;
      for (const Json& item : items) rows.push_back(&item);
      return Response{
          200, "application/json;as=Table;v=v1;g=meta.k8s.io",
          TableLocked(t, rows, QueryValue(request.query, "includeObject"), metadata).Dump()};
    }
    Json list = Json::Object();
    list.Set("kind", Json::Str(t.list_kind));
    list.Set("apiVersion", Json::Str(t.ApiVersion()));
    list.Set("metadata", std::move(metadata));
    Json& out_items = list.Set("items", Json::Array());
    out_items.items = std::move(items);
    return Ok(list.Dump());
  }

  // The object as served under `t`'s version (the store is shared by a CRD's versions).
  static Json WithVersion(const Json& object, const ResourceType& t) {
    Json out = object;
    out.Set("apiVersion", Json::Str(t.ApiVersion()));
    return out;
  }

  // ---- tables (kubectl get) -----------------------------------------------------------------
  Json TableLocked(const ResourceType& t, const std::vector<const Json*>& objects,
                   const std::string& include_object, const Json& list_metadata) const {
    struct Column {
      std::string name, type, format, description;
      int priority = 0;
      std::function<Json(const Json&)> cell;
    };
    auto path_cell = [](std::string path, std::string type) {
      return [path, type](const Json& o) -> Json {
        std::vector<const Json*> v = EvalJsonPath(o, path);
        if (v.empty()) return Json();
        if (type == "date") {
          std::time_t when = ParseRfc3339(v[0]->Display());
          return Json::Str(when == 0 ? v[0]->Display() : HumanDuration(std::time(nullptr) - when));
        }
        return v[0]->IsString() || v[0]->type == Json::Type::kNumber ||
                       v[0]->type == Json::Type::kBool
                   ? *v[0]
                   : Json::Str(v[0]->Display());
      };
    };
    auto age = [](const Json& o) { return Json::Str(AgeOf(o)); };
    std::vector<Column> columns;
    columns.push_back(
        {"Name", "string", "name", "Name must be unique within a namespace.", 0,
         [](const Json& o) { return Json::Str(o.Get("metadata")->StringAt("name")); }});
    if (t.kind == "Service") {
      columns.push_back(
          {"Type", "string", "", "The type of the service.", 0, path_cell(".spec.type", "string")});
      columns.push_back(
          {"Cluster-IP", "string", "", "The cluster IP of the service.", 0, [](const Json& o) {
             std::string ip = o.Get("spec") ? o.Get("spec")->StringAt("clusterIP") : "";
             return Json::Str(ip.empty() ? "<none>" : ip);
           }});
      columns.push_back(
          {"External-IP", "string", "", "The external IP of the service.", 0, [](const Json& o) {
             const Json* spec = o.Get("spec");
             std::string type = spec ? spec->StringAt("type") : "";
             if (type == "ExternalName") return Json::Str(spec->StringAt("externalName"));
             if (type == "LoadBalancer") return Json::Str("<pending>");
             return Json::Str("<none>");
           }});
      columns.push_back(
          {"Port(s)", "string", "", "The ports of the service.", 0, [](const Json& o) {
             const Json* spec = o.Get("spec");
             const Json* ports = spec ? spec->Get("ports") : nullptr;
             std::vector<std::string> parts;
             if (ports != nullptr && ports->IsArray()) {
               for (const Json& p : ports->items) {
                 std::string text = p.Get("port") ? p.Get("port")->Display() : "";
                 if (const Json* np = p.Get("nodePort"); np && !np->IsNull() && np->text != "0") {
                   text += ":" + np->Display();
                 }
                 std::string protocol = p.StringAt("protocol");
                 parts.push_back(text + "/" + (protocol.empty() ? "TCP" : protocol));
               }
             }
             return Json::Str(parts.empty() ? "<none>" : absl::StrJoin(parts, ","));
           }});
      columns.push_back({"Age", "string", "", "", 0, age});
      columns.push_back(
          {"Selector", "string", "", "The selector of the service.", 1, [](const Json& o) {
             const Json* spec = o.Get("spec");
             const Json* sel = spec ? spec->Get("selector") : nullptr;
             std::vector<std::string> parts;
             if (sel != nullptr && sel->IsObject()) {
               for (const auto& [k, v] : sel->fields) parts.push_back(k + "=" + v.Display());
             }
             return Json::Str(parts.empty() ? "<none>" : absl::StrJoin(parts, ","));
           }});
    } else if (t.kind == "Namespace") {
      columns.push_back({"Status", "string", "", "The status of the namespace", 0,
                         path_cell(".status.phase", "string")});
      columns.push_back({"Age", "string", "", "", 0, age});
    } else if (t.kind == "Lease") {
      columns.push_back({"Holder", "string", "", "The holder of the lease.", 0,
                         path_cell(".spec.holderIdentity", "string")});
      columns.push_back({"Age", "string", "", "", 0, age});
    } else if (t.kind == "CustomResourceDefinition") {
      columns.push_back({"Created At", "date", "", "", 0, [](const Json& o) {
                           return Json::Str(o.Get("metadata")->StringAt("creationTimestamp"));
                         }});
    } else if (!t.crd_name.empty()) {
      for (const PrinterColumn& c : t.columns) {
        columns.push_back({c.name, c.type == "date" ? "string" : c.type, c.format, c.description,
                           c.priority, path_cell(c.json_path, c.type)});
      }
    } else {
      columns.push_back({"Age", "string", "", "", 0, age});
    }
    Json table = Json::Object();
    table.Set("kind", Json::Str("Table"));
    table.Set("apiVersion", Json::Str("meta.k8s.io/v1"));
    table.Set("metadata", list_metadata);
    Json& defs = table.Set("columnDefinitions", Json::Array());
    for (const Column& c : columns) {
      Json d = Json::Object();
      d.Set("name", Json::Str(c.name));
      d.Set("type", Json::Str(c.type));
      d.Set("format", Json::Str(c.format));
      d.Set("description", Json::Str(c.description));
      d.Set("priority", Json::Int(c.priority));
      defs.items.push_back(std::move(d));
    }
    Json& rows = table.Set("rows", Json::Array());
    for (const Json* o : objects) {
      Json row = Json::Object();
      Json& cells = row.Set("cells", Json::Array());
      for (const Column& c : columns) cells.items.push_back(c.cell(*o));
      if (include_object == "Object") {
        row.Set("object", *o);
      } else if (include_object != "None") {
        Json partial = Json::Object();
        partial.Set("kind", Json::Str("PartialObjectMetadata"));
        partial.Set("apiVersion", Json::Str("meta.k8s.io/v1"));
        partial.Set("metadata", *o->Get("metadata"));
        row.Set("object", std::move(partial));
      }
      rows.items.push_back(std::move(row));
    }
    return table;
  }

  // ---- resources: writes --------------------------------------------------------------------
  Json* FindLocked(const ResourceType& t, const std::string& ns, const std::string& name) {
    auto it = store.find(t.Key());
    if (it == store.end()) return nullptr;
    auto object = it->second.find({t.namespaced ? ns : "", name});
    return object == it->second.end() ? nullptr : &object->second;
  }

  std::string NewUid() {
    uint64_t a = random(), b = random();
    char buf[40];
    std::snprintf(buf, sizeof buf, "%08x-%04x-4%03x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                  static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xfff),
                  static_cast<unsigned>(0x8000 | ((b >> 48) & 0x3fff)),
                  static_cast<unsigned long long>(b & 0xffffffffffffULL));
    return buf;
  }

  // Checks kind and apiVersion against the URL's type and fills them in when absent.
  static bool CheckKind(const ResourceType& t, Json* object, Response* error) {
    std::string kind = object->StringAt("kind");
    std::string api_version = object->StringAt("apiVersion");
    if (!kind.empty() && kind != t.kind) {
      *error = Error(400, "BadRequest",
                     StrCat("the kind in the data (", kind, ") does not match the expected kind (",
                            t.kind, ")"));
      return false;
    }
    if (!api_version.empty() && api_version != t.ApiVersion()) {
      *error = Error(400, "BadRequest",
                     StrCat("the API version in the data (", api_version,
                            ") does not match the expected API version (", t.ApiVersion(), ")"));
      return false;
    }
    Json out = Json::Object();
    out.Set("kind", Json::Str(t.kind));
    out.Set("apiVersion", Json::Str(t.ApiVersion()));
    for (auto& field : object->fields) {
      if (field.first != "kind" && field.first != "apiVersion")
        out.fields.push_back(std::move(field));
    }
    *object = std::move(out);
    return true;
  }

  // Service defaulting and the few validations a reconciler runs into.
  bool ServiceDefaults(const ResourceType& t, Json* object, const Json* old, Response* error) {
    std::string name = object->Child("metadata").StringAt("name");
    Json& spec = object->Child("spec");
    const Json* old_spec = old != nullptr ? old->Get("spec") : nullptr;
    std::string type = spec.StringAt("type");
    if (type.empty()) spec.Set("type", Json::Str(type = "ClusterIP"));
    if (type != "ClusterIP" && type != "NodePort" && type != "LoadBalancer" &&
        type != "ExternalName") {
      *error = Invalid(t, name, StrCat("spec.type: Unsupported value: \"", type, "\""));
      return false;
    }
    if (type == "ExternalName") {
      if (spec.StringAt("externalName").empty()) {
        *error = Invalid(t, name, "spec.externalName: Required value");
        return false;
      }
      spec.Erase("clusterIP");
      spec.Erase("clusterIPs");
    } else {
      std::string ip = spec.StringAt("clusterIP");
      std::string old_ip = old_spec != nullptr ? old_spec->StringAt("clusterIP") : "";
      if (ip.empty()) ip = old_ip;
      if (!old_ip.empty() && ip != old_ip) {
        *error = Invalid(t, name, "spec.clusterIPs[0]: Invalid value: field is immutable");
        return false;
      }
      if (ip.empty()) {
        int n = next_cluster_ip++;
        ip = StrCat("10.96.", (n / 254) % 256, ".", n % 254 + 1);
      }
      spec.Set("clusterIP", Json::Str(ip));
      spec.Set("clusterIPs", Json::Array()).items.push_back(Json::Str(ip));
      if (spec.Get("internalTrafficPolicy") == nullptr) {
        spec.Set("internalTrafficPolicy", Json::Str("Cluster"));
      }
      if (ip != "None") {
        spec.Set("ipFamilies", Json::Array()).items.push_back(Json::Str("IPv4"));
        spec.Set("ipFamilyPolicy", Json::Str("SingleStack"));
      }
    }
    if (spec.Get("sessionAffinity") == nullptr) spec.Set("sessionAffinity", Json::Str("None"));
    if (Json* ports = spec.Get("ports"); ports != nullptr && ports->IsArray()) {
      for (size_t i = 0; i < ports->items.size(); ++i) {
        Json& p = ports->items[i];
        int64_t port = 0;
        if (!p.IsObject() || p.Get("port") == nullptr ||
            !absl::SimpleAtoi(p.Get("port")->text, &port) || port < 1 || port > 65535) {
          *error = Invalid(t, name,
                           StrCat("spec.ports[", i,
                                  "].port: Invalid value: must be "
                                  "between 1 and 65535, inclusive"));
          return false;
        }
        if (p.Get("protocol") == nullptr) p.Set("protocol", Json::Str("TCP"));
        if (p.Get("targetPort") == nullptr) p.Set("targetPort", Json::Int(port));
      }
    } else if (type != "ExternalName") {
      *error = Invalid(t, name, "spec.ports: Required value");
      return false;
    }
    object->Child("status").Child("loadBalancer");
    return true;
  }

  // What generation counts: everything but metadata (and status when it is a subresource).
  static Json GenerationPart(const Json& object, const ResourceType& t) {
    Json out = object;
    out.Erase("metadata");
    out.Erase("kind");
    out.Erase("apiVersion");
    if (t.has_status) out.Erase("status");
    return out;
  }

  // Type-specific defaulting on create and update (`old` null on create).
  bool DefaultsLocked(const ResourceType& t, Json* object, const Json* old, Response* error) {
    std::string name = object->Child("metadata").StringAt("name");
    if (t.kind == "Service") return ServiceDefaults(t, object, old, error);
    if (t.kind == "Namespace") {
      object->Child("metadata").Child("labels").Set("kubernetes.io/metadata.name", Json::Str(name));
      if (old == nullptr) {
        object->Child("spec")
            .Set("finalizers", Json::Array())
            .items.push_back(Json::Str("kubernetes"));
        object->Set("status", Json::Object()).Set("phase", Json::Str("Active"));
      }
      return true;
    }
    if (t.kind == "CustomResourceDefinition") {
      std::vector<ResourceType> crd_types;
      std::string message;
      if (!TypesFromCrd(*object, &crd_types, &message)) {
        *error = Invalid(t, name, message);
        return false;
      }
      for (const ResourceType& other : types) {
        if (other.Key() == crd_types[0].Key() && other.crd_name.empty()) {
          *error = Invalid(t, name, "spec.group: the group is served by the server itself");
          return false;
        }
      }
      const Json* old_status = old != nullptr ? old->Get("status") : nullptr;
      const Json* old_conditions = old_status != nullptr ? old_status->Get("conditions") : nullptr;
      Json& status = object->Set("status", Json::Object());
      Json& conditions = status.Set("conditions", Json::Array());
      if (old_conditions != nullptr) conditions = *old_conditions;  // keeps transition times
      for (const char* type : {"NamesAccepted", "Established"}) {
        if (old_conditions != nullptr) break;
        Json c = Json::Object();
        c.Set("type", Json::Str(type));
        c.Set("status", Json::Str("True"));
        c.Set("lastTransitionTime", Json::Str(Rfc3339(std::time(nullptr))));
        c.Set("reason", Json::Str(std::string(type) == "Established" ? "InitialNamesAccepted"
                                                                     : "NoConflicts"));
        c.Set("message",
              Json::Str(std::string(type) == "Established" ? "the initial names have been accepted"
                                                           : "no conflicts found"));
        conditions.items.push_back(std::move(c));
      }
      if (const Json* names = object->Get("spec")->Get("names"))
        status.Set("acceptedNames", *names);
      Json& stored = status.Set("storedVersions", Json::Array());
      for (const Json& v : object->Get("spec")->Get("versions")->items) {
        const Json* storage = v.Get("storage");
        if (storage != nullptr && storage->boolean)
          stored.items.push_back(Json::Str(v.StringAt("name")));
      }
      return true;
    }
    return true;
  }

  Response CreateLocked(const ResourceType& t, const std::string& ns, Json object, bool dry_run) {
    if (!object.IsObject()) return Error(400, "BadRequest", "the object is not a JSON object");
    Response error;
    if (!CheckKind(t, &object, &error)) return error;
    Json& metadata = object.Child("metadata");
    std::string name = metadata.StringAt("name");
    if (name.empty()) {
      std::string prefix = metadata.StringAt("generateName");
      if (prefix.empty()) {
        return Invalid(t, "", "metadata.name: Required value: name or generateName is required");
      }
      static const char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
      name = prefix;
      for (int i = 0; i < 5; ++i) name.push_back(kAlphabet[random() % (sizeof kAlphabet - 1)]);
      metadata.Set("name", Json::Str(name));
    }
    bool label = t.kind == "Namespace" || t.kind == "Service";
    if (!ValidName(name, label, t.kind == "Service")) {
      return Invalid(t, name,
                     StrCat("metadata.name: Invalid value: \"", name, "\": a lowercase RFC ",
                            label ? "1123 label" : "1123 subdomain",
                            " must consist of lower case alphanumeric characters, '-' or '.'"));
    }
    if (t.namespaced) {
      std::string body_ns = metadata.StringAt("namespace");
      if (!body_ns.empty() && body_ns != ns) {
        return Error(400, "BadRequest",
                     "the namespace of the provided object does not match the namespace sent on "
                     "the request");
      }
      metadata.Set("namespace", Json::Str(ns));
      const ResourceType* namespaces = FindTypeLocked("", "v1", "namespaces");
      if (options.require_namespaces && FindLocked(*namespaces, "", ns) == nullptr) {
        return NotFound(*namespaces, ns);
      }
    } else {
      metadata.Erase("namespace");
    }
    if (FindLocked(t, ns, name) != nullptr) {
      return Error(409, "AlreadyExists", StrCat(t.Key(), " \"", name, "\" already exists"), name,
                   t.group, t.plural);
    }
    if (t.has_status && !t.crd_name.empty()) object.Erase("status");
    if (!DefaultsLocked(t, &object, nullptr, &error)) return error;
    Json& md = object.Child("metadata");
    for (const char* field : {"deletionTimestamp", "deletionGracePeriodSeconds", "selfLink",
                              "resourceVersion", "uid", "creationTimestamp", "generation"}) {
      md.Erase(field);
    }
    md.Set("uid", Json::Str(NewUid()));
    md.Set("creationTimestamp", Json::Str(Rfc3339(std::time(nullptr))));
    if (t.has_generation) md.Set("generation", Json::Int(1));
    if (dry_run) return Ok(object.Dump(), 201);
    md.Set("resourceVersion", Json::Str(StrCat(++resource_version)));
    std::string key = t.Key();
    store[key][{t.namespaced ? ns : "", name}] = object;
    RecordLocked("ADDED", key, object);
    if (t.kind == "CustomResourceDefinition") RegisterCrdLocked(object);
    return Ok(object.Dump(), 201);
  }

  Response UpdateLocked(const ResourceType& t, const std::string& ns, const std::string& name,
                        const std::string& sub, Json incoming, bool dry_run) {
    Json* existing = FindLocked(t, ns, name);
    if (existing == nullptr) return NotFound(t, name);
    if (!incoming.IsObject()) return Error(400, "BadRequest", "the object is not a JSON object");
    Response error;
    if (!CheckKind(t, &incoming, &error)) return error;
    Json& in_md = incoming.Child("metadata");
    if (!in_md.StringAt("name").empty() && in_md.StringAt("name") != name) {
      return Error(400, "BadRequest",
                   StrCat("the name of the object (", in_md.StringAt("name"),
                          ") does not match the name on the URL (", name, ")"));
    }
    if (t.namespaced && !in_md.StringAt("namespace").empty() && in_md.StringAt("namespace") != ns) {
      return Error(400, "BadRequest",
                   "the namespace of the provided object does not match the namespace sent on "
                   "the request");
    }
    const Json& old_md = *existing->Get("metadata");
    std::string old_rv = old_md.StringAt("resourceVersion");
    std::string in_rv = in_md.StringAt("resourceVersion");
    if (!in_rv.empty() && in_rv != old_rv) return Conflict(t, name);

    Json result;
    if (sub == "status") {
      result = *existing;
      if (const Json* status = incoming.Get("status")) {
        result.Set("status", *status);
      } else {
        result.Erase("status");
      }
    } else if (sub == "finalize") {
      result = *existing;
      const Json* spec = incoming.Get("spec");
      const Json* finalizers = spec != nullptr ? spec->Get("finalizers") : nullptr;
      result.Child("spec").Set("finalizers", finalizers != nullptr ? *finalizers : Json::Array());
    } else {
      result = std::move(incoming);
      Json& md = result.Child("metadata");
      for (const char* field :
           {"name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
            "deletionGracePeriodSeconds", "generation", "resourceVersion", "selfLink"}) {
        md.Erase(field);
        if (const Json* v = old_md.Get(field)) md.Set(field, *v);
      }
      if (t.has_status) {
        if (const Json* status = existing->Get("status")) {
          result.Set("status", *status);
        } else {
          result.Erase("status");
        }
      }
      if (!DefaultsLocked(t, &result, existing, &error)) return error;
    }
    Json& md = result.Child("metadata");
    if (t.has_generation && sub.empty() &&
        !(GenerationPart(result, t) == GenerationPart(*existing, t))) {
      int64_t generation = 0;
      if (const Json* g = md.Get("generation")) absl::SimpleAtoi(g->text, &generation);
      md.Set("generation", Json::Int(generation + 1));
    }
    if (result == *existing) return Ok(WithVersion(result, t).Dump());  // a no-op write
    if (dry_run) return Ok(WithVersion(result, t).Dump());
    md.Set("resourceVersion", Json::Str(StrCat(++resource_version)));
    std::string key = t.Key();
    const Json* finalizers = md.Get("finalizers");
    bool finalized = finalizers == nullptr || !finalizers->IsArray() || finalizers->items.empty();
    if (md.Get("deletionTimestamp") != nullptr && finalized) {
      Json last = result;
      RemoveLocked(t, ns, name, last);
      return Ok(WithVersion(last, t).Dump());
    }
    *existing = result;
    RecordLocked("MODIFIED", key, result);
    if (t.kind == "CustomResourceDefinition") RegisterCrdLocked(result);
    return Ok(WithVersion(result, t).Dump());
  }

  Response PatchLocked(const ResourceType& t, const std::string& ns, const std::string& name,
                       const std::string& sub, const HttpRequest& request, bool dry_run) {
    std::string content_type = absl::AsciiStrToLower(request.Header("content-type"));
    content_type = Trim(content_type.substr(0, content_type.find(';')));
    Json patch;
    std::string error;
    bool apply = content_type == "application/apply-patch+yaml";
    bool json_patch = content_type == "application/json-patch+json";
    if (!apply && !json_patch && content_type != "application/merge-patch+json" &&
        content_type != "application/strategic-merge-patch+json") {
      return Error(
          415, "UnsupportedMediaType",
          StrCat("the body of the request was in an unknown format - accepted media "
                 "types include: application/json-patch+json, application/merge-patch+json, "
                 "application/strategic-merge-patch+json, application/apply-patch+yaml "
                 "(this fake does not serve ",
                 content_type, ")"));
    }
    if (content_type == "application/strategic-merge-patch+json" && !t.crd_name.empty()) {
      return Error(415, "UnsupportedMediaType",
                   "strategic merge patch is not supported for custom resources");
    }
    if (!ParseJson(request.body, &patch, &error) || patch.IsArray() != json_patch) {
      return Error(400, "BadRequest",
                   StrCat("error decoding patch: ",
                          error.empty() ? "wrong JSON type for the patch type" : error,
                          apply ? " (this fake takes apply configurations as JSON only)" : ""));
    }
    Json* existing = FindLocked(t, ns, name);
    if (apply) {
      if (QueryValue(request.query, "fieldManager").empty()) {
        return Error(400, "BadRequest",
                     "PATCH requests with apply content type require fieldManager");
      }
      if (existing == nullptr) {
        if (!sub.empty()) return NotFound(t, name);
        Json& md = patch.Child("metadata");
        if (md.StringAt("name").empty()) md.Set("name", Json::Str(name));
        if (md.StringAt("name") != name) {
          return Error(400, "BadRequest", "the name of the object does not match the URL");
        }
        return CreateLocked(t, ns, std::move(patch), dry_run);
      }
    }
    if (existing == nullptr) return NotFound(t, name);
    Json result = *existing;
    if (json_patch) {
      if (!JsonPatch(&result, patch, &error)) return Error(422, "Invalid", error);
    } else if (content_type == "application/strategic-merge-patch+json") {
      StrategicMergePatch(&result, patch);
    } else {
      MergePatch(&result, patch);
    }
    return UpdateLocked(t, ns, name, sub, std::move(result), dry_run);
  }

  Response DeleteLocked(const ResourceType& t, const std::string& ns, const std::string& name,
                        const std::string& body, bool dry_run) {
    Json* existing = FindLocked(t, ns, name);
    if (existing == nullptr) return NotFound(t, name);
    Json options_json;
    std::string error;
    if (!Trim(body).empty()) {
      if (!ParseJson(body, &options_json, &error)) {
        return Error(400, "BadRequest", StrCat("invalid DeleteOptions: ", error));
      }
      if (const Json* pre = options_json.Get("preconditions")) {
        const Json& md = *existing->Get("metadata");
        std::string rv = pre->StringAt("resourceVersion");
        std::string uid = pre->StringAt("uid");
        if (!rv.empty() && rv != md.StringAt("resourceVersion")) {
          return Conflict(
              t, name,
              StrCat("Precondition failed: ResourceVersion in precondition: ", rv,
                     ", ResourceVersion in object meta: ", md.StringAt("resourceVersion")));
        }
        if (!uid.empty() && uid != md.StringAt("uid")) {
          return Conflict(t, name,
                          StrCat("Precondition failed: UID in precondition: ", uid,
                                 ", UID in object meta: ", md.StringAt("uid")));
        }
      }
      if (!StringList(options_json.Get("dryRun")).empty()) dry_run = true;
    }
    if (dry_run) return Ok(WithVersion(*existing, t).Dump());
    Json& md = existing->Child("metadata");
    const Json* finalizers = md.Get("finalizers");
    if (finalizers != nullptr && finalizers->IsArray() && !finalizers->items.empty()) {
      if (md.Get("deletionTimestamp") == nullptr) {
        md.Set("deletionTimestamp", Json::Str(Rfc3339(std::time(nullptr))));
        md.Set("deletionGracePeriodSeconds", Json::Int(0));
        if (t.has_generation) {
          int64_t generation = 0;
          if (const Json* g = md.Get("generation")) absl::SimpleAtoi(g->text, &generation);
          md.Set("generation", Json::Int(generation + 1));
        }
        md.Set("resourceVersion", Json::Str(StrCat(++resource_version)));
        RecordLocked("MODIFIED", t.Key(), *existing);
      }
      return Ok(WithVersion(*existing, t).Dump());
    }
    Json last = *existing;
    last.Child("metadata").Set("resourceVersion", Json::Str(StrCat(++resource_version)));
    RemoveLocked(t, ns, name, last);
    return Ok(WithVersion(last, t).Dump());
  }

  Response DeleteCollectionLocked(const ResourceType& t, const std::string& ns,
                                  const HttpRequest& request, bool dry_run) {
    Selectors selectors;
    Response error;
    if (!SelectorsFrom(request, &selectors, &error)) return error;
    std::vector<std::pair<std::string, std::string>> doomed;
    auto it = store.find(t.Key());
    if (it != store.end()) {
      for (const auto& [key, object] : it->second) {
        if ((ns.empty() || key.first == ns) && selectors.Matches(object)) doomed.push_back(key);
      }
    }
    Json list = Json::Object();
    list.Set("kind", Json::Str(t.list_kind));
    list.Set("apiVersion", Json::Str(t.ApiVersion()));
    Json& items = list.Set("items", Json::Array());
    for (const auto& [object_ns, name] : doomed) {
      Response r = DeleteLocked(t, object_ns, name, "", dry_run);
      Json deleted;
      std::string parse_error;
      if (r.status == 200 && ParseJson(r.body, &deleted, &parse_error)) {
        items.items.push_back(std::move(deleted));
      }
    }
    list.Child("metadata").Set("resourceVersion", Json::Str(StrCat(resource_version)));
    return Ok(list.Dump());
  }

  // Removes a stored object and records DELETED with `last` (which carries the new RV), with
  // the consequences: a CRD takes its resource and objects along, a Namespace its contents.
  void RemoveLocked(const ResourceType& t, const std::string& ns, const std::string& name,
                    const Json& last) {
    std::string key = t.Key();
    store[key].erase({t.namespaced ? ns : "", name});
    RecordLocked("DELETED", key, last);
    if (t.kind == "CustomResourceDefinition") {
      std::vector<ResourceType> crd_types;
      std::string error;
      if (TypesFromCrd(last, &crd_types, &error)) {
        std::string instances = crd_types[0].Key();
        ObjectMap objects = std::move(store[instances]);
        store.erase(instances);
        for (auto& [k, object] : objects) {
          object.Child("metadata").Set("resourceVersion", Json::Str(StrCat(++resource_version)));
          RecordLocked("DELETED", instances, object);
        }
      }
      std::erase_if(types, [&](const ResourceType& r) { return r.crd_name == name; });
    }
    if (t.kind == "Namespace") {
      for (const ResourceType& type : std::vector<ResourceType>(types)) {
        if (!type.namespaced) continue;
        std::vector<std::string> names;
        auto it = store.find(type.Key());
        if (it == store.end()) continue;
        for (const auto& [k, object] : it->second) {
          if (k.first == name) names.push_back(k.second);
        }
        for (const std::string& n : names) DeleteLocked(type, name, n, "", false);
      }
    }
  }

  void RegisterCrdLocked(const Json& crd) {
    std::vector<ResourceType> crd_types;
    std::string error;
    if (!TypesFromCrd(crd, &crd_types, &error)) return;
    std::string name = crd_types[0].crd_name;
    std::erase_if(types, [&](const ResourceType& r) { return r.crd_name == name; });
    for (ResourceType& t : crd_types) types.push_back(std::move(t));
  }

  // ---- watch ----------------------------------------------------------------------------------
  void RecordLocked(const std::string& type, const std::string& key, const Json& object) {
    watches.RecordLocked(WatchEvent{resource_version, type, key, object});
    PersistLocked();
  }

  Response WatchLocked(const ResourceType& t, const std::string& ns, const HttpRequest& request,
                       WatchSpec* watch) {
    Response error;
    if (!SelectorsFrom(request, &watch->selectors, &error)) return error;
    watch->type = t;
    watch->ns = ns;
    std::string rv = QueryValue(request.query, "resourceVersion");
    watch->initial = rv.empty() || rv == "0";
    if (!watch->initial && !absl::SimpleAtoi(rv, &watch->from_rv)) {
      return Error(400, "BadRequest", StrCat("invalid resource version: ", rv));
    }
    watch->bookmarks = QueryValue(request.query, "allowWatchBookmarks") == "true";
    watch->table = absl::StrContains(request.Header("accept"), "as=Table");
    watch->include_object = QueryValue(request.query, "includeObject");
    int64_t timeout_seconds = 0;
    if (absl::SimpleAtoi(QueryValue(request.query, "timeoutSeconds"), &timeout_seconds) &&
        timeout_seconds > 0) {
      watch->timeout = absl::Seconds(timeout_seconds);
    } else {
      watch->timeout = options.max_watch_duration;
    }
    return Response{0, "", ""};
  }

  bool Matches(const WatchSpec& spec, const std::string& key, const Json& object) const {
    if (key != spec.type.Key()) return false;
    if (!spec.ns.empty()) {
      const Json* md = object.Get("metadata");
      if (md == nullptr || md->StringAt("namespace") != spec.ns) return false;
    }
    return spec.selectors.Matches(object);
  }

  // One watch event line: the object, or a one-row Table of it when the watch asked for tables.
  std::string WatchLineLocked(const WatchSpec& spec, const std::string& type,
                              const Json& object) const {
    Json served = WithVersion(object, spec.type);
    if (!spec.table) return EventLine(type, served);
    Json metadata = Json::Object();
    metadata.Set("resourceVersion",
                 Json::Str(served.Child("metadata").StringAt("resourceVersion")));
    return EventLine(type, TableLocked(spec.type, {&served}, spec.include_object, metadata));
  }

  // Streams one watch through the hub, with this store's objects and lines.
  WatchHub::End RunWatch(const WatchSpec& spec,
                         const std::function<bool(const std::string&)>& write,
                         const std::function<bool()>& peer_open) {
    WatchHub::Params params;
    params.initial = spec.initial;
    params.from_rv = spec.from_rv;
    params.bookmarks = spec.bookmarks;
    params.timeout = spec.timeout;
    WatchHub::Source source;
    source.resource_version = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return resource_version; };
    source.initial_lines = [this, &spec]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      std::string lines;
      auto it = store.find(spec.type.Key());
      if (it == store.end()) return lines;
      for (const auto& [key, object] : it->second) {
        if (Matches(spec, spec.type.Key(), object)) lines += WatchLineLocked(spec, "ADDED", object);
      }
      return lines;
    };
    source.line = [this, &spec](const WatchEvent& event) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return Matches(spec, event.key, event.object)
                 ? WatchLineLocked(spec, event.type, event.object)
                 : std::string();
    };
    source.bookmark = [&spec](int64_t rv) {
      Json bookmark = Json::Object();
      bookmark.Set("kind", Json::Str(spec.type.kind));
      bookmark.Set("apiVersion", Json::Str(spec.type.ApiVersion()));
      bookmark.Child("metadata").Set("resourceVersion", Json::Str(StrCat(rv)));
      return EventLine("BOOKMARK", bookmark);
    };
    return watches.Run(params, source, write, peer_open);
  }

  // ---- persistence ----------------------------------------------------------------------------
  void PersistLocked() {
    if (options.state_file.empty() || loading) return;
    std::string out = StrCat("{\"resourceVersion\":", resource_version, ",\"objects\":[");
    bool first = true;
    // CRDs first, so that loading registers their types before their objects.
    std::vector<std::string> keys;
    for (const auto& [key, objects] : store) {
      if (key == "customresourcedefinitions.apiextensions.k8s.io") {
        keys.insert(keys.begin(), key);
      } else {
        keys.push_back(key);
      }
    }
    for (const std::string& key : keys) {
      for (const auto& [k, object] : store[key]) {
        if (!first) out += ",\n";
        first = false;
        out += StrCat("{\"resource\":", Quote(key), ",\"object\":");
        object.DumpTo(&out);
        out += "}";
      }
    }
    out += "]}\n";
    std::string tmp = options.state_file + ".tmp";
    {
      std::ofstream file(tmp, std::ios::trunc);
      file << out;
      if (!file) return;
    }
    std::rename(tmp.c_str(), options.state_file.c_str());
  }

  absl::Status LoadLocked() {
    if (options.state_file.empty()) return absl::OkStatus();
    std::ifstream file(options.state_file);
    if (!file) return absl::OkStatus();  // nothing saved yet
    std::stringstream text;
    text << file.rdbuf();
    Json saved;
    std::string error;
    if (!ParseJson(text.str(), &saved, &error)) {
      return absl::DataLossError(StrCat(options.state_file, ": ", error));
    }
    loading = true;
    store.clear();
    std::erase_if(types, [](const ResourceType& t) { return !t.crd_name.empty(); });
    if (const Json* objects = saved.Get("objects"); objects != nullptr && objects->IsArray()) {
      for (const Json& entry : objects->items) {
        const Json* object = entry.Get("object");
        if (object == nullptr) continue;
        std::string key = entry.StringAt("resource");
        const Json* md = object->Get("metadata");
        if (md == nullptr) continue;
        const ResourceType* t = FindTypeByKeyLocked(key);
        store[key][{t != nullptr && t->namespaced ? md->StringAt("namespace") : "",
                    md->StringAt("name")}] = *object;
        if (key == "customresourcedefinitions.apiextensions.k8s.io") RegisterCrdLocked(*object);
      }
    }
    int64_t rv = 0;
    if (const Json* v = saved.Get("resourceVersion")) absl::SimpleAtoi(v->text, &rv);
    resource_version = std::max(resource_version, rv);
    watches.CompactLocked(resource_version);
    loading = false;
    return absl::OkStatus();
  }

  // ---- members --------------------------------------------------------------------------------
  struct Fault {
    std::string resource;
    std::string verb;
    int remaining = 0;
    int status = 500;
  };

  const Options options;
  absl::Mutex mu;
  std::vector<ResourceType> types ABSL_GUARDED_BY(mu);
  std::map<std::string, ObjectMap> store ABSL_GUARDED_BY(mu);  // by ResourceType::Key()
  int64_t resource_version ABSL_GUARDED_BY(mu) = 0;
  WatchHub watches;  // the events of `store`'s writes; shares `mu`
  bool loading ABSL_GUARDED_BY(mu) = false;
  absl::Duration latency ABSL_GUARDED_BY(mu);
  std::vector<Fault> faults ABSL_GUARDED_BY(mu);
  std::map<std::string, int> counts ABSL_GUARDED_BY(mu);  // "verb\tresource"
  int next_cluster_ip ABSL_GUARDED_BY(mu) = 10;
  uint16_t port ABSL_GUARDED_BY(mu) = 0;
  std::mt19937_64 random ABSL_GUARDED_BY(mu);
};

// ---------------------------------------------------------------------------------------------
// The HTTP side: tests/fakes/http_server, with answers and errors as metav1.Status objects.

FakeKubeApiServer::FakeKubeApiServer() : FakeKubeApiServer(Options()) {}

FakeKubeApiServer::FakeKubeApiServer(Options options)
    : options_(std::move(options)), state_(std::make_unique<State>(options_)) {
  HttpServer::Options http;
  http.max_request_bytes = kMaxRequestBytes;
  http.max_connections = options_.max_connections;
  http.idle_timeout = kIdleTimeout;
  http.error_response = [](int status, std::string_view message) {
    HttpResponse response;
    response.status = status;
    response.headers = {{"Content-Type", "application/json"}};
    response.body = StatusObject(status, ReasonFor(status), std::string(message)).Dump();
    return response;
  };
  server_ = std::make_unique<HttpServer>(
      [this](const HttpRequest& request) { return Serve(request); }, std::move(http));
}

FakeKubeApiServer::~FakeKubeApiServer() { Stop(); }

std::string FakeKubeApiServer::Url() const { return StrCat("http://127.0.0.1:", port()); }

uint16_t FakeKubeApiServer::port() const { return server_->port(); }

absl::Status FakeKubeApiServer::Start(uint16_t port) {
  if (server_->running()) return absl::FailedPreconditionError("already started");
  {
    absl::MutexLock lock(&state_->mu);
    if (absl::Status status = state_->LoadLocked(); !status.ok()) return status;
    state_->watches.SetStoppingLocked(false);
  }
  if (absl::Status status = server_->Start(port); !status.ok()) return status;
  absl::MutexLock lock(&state_->mu);
  state_->port = server_->port();
  return absl::OkStatus();
}

void FakeKubeApiServer::Stop() {
  if (!server_->running()) return;
  {
    // Watches wait on `changed`: wake them, so the server's threads can be joined.
    absl::MutexLock lock(&state_->mu);
    state_->watches.SetStoppingLocked(true);
  }
  server_->Stop();
}

HttpResponse FakeKubeApiServer::Serve(const HttpRequest& request) {
  auto watch = std::make_shared<WatchSpec>();
  Response answer = state_->Handle(request, watch.get());
  HttpResponse response;
  response.status = answer.status == 0 ? 200 : answer.status;
  response.headers = {
      {"Content-Type", answer.status == 0 ? "application/json" : answer.content_type},
      {"Cache-Control", "no-cache, private"}};
  if (answer.status != 0) {
    response.body = std::move(answer.body);
    return response;
  }
  response.stream = [this, watch](HttpStream& stream) {
    WatchHub::End end = state_->RunWatch(
        *watch, [&stream](const std::string& lines) { return stream.Write(lines); },
        [&stream] { return stream.PeerOpen(); });
    return end == WatchHub::End::kAbrupt ? HttpResponse::StreamEnd::kAbort
                                         : HttpResponse::StreamEnd::kComplete;
  };
  return response;
}

FakeKubeApiServer::Response FakeKubeApiServer::Request(std::string_view method,
                                                       std::string_view target,
                                                       std::string_view body,
                                                       std::string_view content_type,
                                                       std::string_view accept) {
  HttpRequest request;
  request.method = std::string(method);
  if (!ParseRequestTarget(target, &request)) {
    return Response{400, "application/json",
                    StatusObject(400, "BadRequest", "malformed escape in the path").Dump()};
  }
  request.headers["content-type"] = std::string(content_type);
  request.headers["accept"] = std::string(accept);
  if (!options_.token.empty()) request.headers["authorization"] = StrCat("Bearer ", options_.token);
  request.body = std::string(body);
  return state_->Handle(request, nullptr);
}

absl::Status FakeKubeApiServer::WriteKubeconfig(const std::string& path,
                                                const std::string& default_namespace) const {
  std::ofstream file(path, std::ios::trunc);
  file << "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: " << Url()
       << "\nusers:\n- name: fake\n  user:\n";
  if (options_.token.empty()) {
    file << "    {}\n";
  } else {
    file << "    token: " << options_.token << "\n";
  }
  file << "contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: "
       << default_namespace << "\ncurrent-context: fake\n";
  file.close();
  if (!file) return absl::InternalError(StrCat("cannot write ", path));
  return absl::OkStatus();
}

void FakeKubeApiServer::DropWatches() {
  absl::MutexLock lock(&state_->mu);
  state_->watches.DropAllLocked();
}

void FakeKubeApiServer::CompactHistory() {
  absl::MutexLock lock(&state_->mu);
  state_->watches.CompactLocked(state_->resource_version);
}

void FakeKubeApiServer::SetLatency(absl::Duration latency) {
  absl::MutexLock lock(&state_->mu);
  state_->latency = latency;
}

void FakeKubeApiServer::SetBookmarkInterval(absl::Duration interval) {
  absl::MutexLock lock(&state_->mu);
  state_->watches.SetBookmarkIntervalLocked(interval);
}

void FakeKubeApiServer::FailNextRequests(std::string_view resource, int count, int http_status,
                                         std::string_view verb) {
  if (count <= 0) return;
  absl::MutexLock lock(&state_->mu);
  state_->faults.push_back({std::string(resource), std::string(verb), count, http_status});
}

int FakeKubeApiServer::RequestCount(std::string_view verb, std::string_view resource) const {
  absl::MutexLock lock(&state_->mu);
  int total = 0;
  for (const auto& [key, count] : state_->counts) {
    size_t tab = key.find('\t');
    std::string_view k(key);
    if ((verb.empty() || k.substr(0, tab) == verb) &&
        (resource.empty() || k.substr(tab + 1) == resource)) {
      total += count;
    }
  }
  return total;
}

void FakeKubeApiServer::ResetCounters() {
  absl::MutexLock lock(&state_->mu);
  state_->counts.clear();
}

int FakeKubeApiServer::OpenWatches() const {
  absl::MutexLock lock(&state_->mu);
  return state_->watches.open_watches_locked();
}

std::vector<std::string> FakeKubeApiServer::Objects(std::string_view resource,
                                                    std::string_view namespace_) const {
  absl::MutexLock lock(&state_->mu);
  std::vector<std::string> out;
  const ResourceType* t = state_->FindTypeByKeyLocked(std::string(resource));
  if (t == nullptr) return out;
  auto it = state_->store.find(t->Key());
  if (it == state_->store.end()) return out;
  for (const auto& [key, object] : it->second) {
    if (namespace_.empty() || key.first == namespace_) out.push_back(object.Dump());
  }
  return out;
}

std::optional<std::string> FakeKubeApiServer::Object(std::string_view resource,
                                                     std::string_view namespace_,
                                                     std::string_view name) const {
  absl::MutexLock lock(&state_->mu);
  const ResourceType* t = state_->FindTypeByKeyLocked(std::string(resource));
  if (t == nullptr) return std::nullopt;
  const Json* object = state_->FindLocked(*t, std::string(namespace_), std::string(name));
  if (object == nullptr) return std::nullopt;
  return object->Dump();
}

int64_t FakeKubeApiServer::ResourceVersion() const {
  absl::MutexLock lock(&state_->mu);
  return state_->resource_version;
}

}  // namespace mailring::fakes
