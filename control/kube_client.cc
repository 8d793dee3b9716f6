// KubeClient: configuration (in-cluster, kubeconfig), REST requests and the list+watch informer.
//
// Layout, top to bottom: file helpers; the YAML subset a kubeconfig needs; LoadKubeconfig and
// InClusterKubeConfig; KubeContext (what requests and informers share: the HttpClient, the
// server, TLS files and the rotating token); KubeClient's requests; the informer's state
// machine (kListing → kWatching, kBackingOff between attempts, kStopped at the end).
//
// Lifetimes: the HttpClient outlives the KubeClient and every Informer. An Informer may outlive
// its KubeClient (it shares the KubeContext). ~KubeClient and ~Informer cancel what they have in
// flight, so none of their callbacks runs afterwards.
#include "control/kube_client.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "core/log.h"
#include "proto/absl_string_view.h"
#include "proto/str_cat.h"
#include "simdjson.h"

namespace mailring::control {
namespace {

constexpr std::string_view kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";
// A rotated service-account token is picked up within this long (or at the next request after a
// 401). kubelet rotates tokens well before they expire, so a short delay is harmless.
constexpr absl::Duration kTokenRecheck = absl::Seconds(2);
constexpr absl::Duration kRequestTimeout = absl::Seconds(30);
// Lists are paginated; one page of 500 large objects stays well under this.
constexpr size_t kMaxResponseBytes = size_t{64} << 20;
constexpr int kListPageSize = 500;
// One watch event is one line; a larger one is not an object we can hold (etcd's limit is
// 1.5 MiB per object), so it fails the watch and the informer relists.
constexpr size_t kMaxWatchLine = size_t{16} << 20;
// The server ends a watch after timeoutSeconds; jitter keeps many informers from reconnecting
// at once. The transfer's own timeout adds a margin for a server that does not end it.
constexpr int kWatchSeconds = 300;
constexpr absl::Duration kWatchTimeoutMargin = absl::Seconds(30);
constexpr absl::Duration kBackoffInitial = absl::Milliseconds(500);
constexpr absl::Duration kBackoffMax = absl::Seconds(30);

std::string ErrnoText(int error) { return std::string(std::strerror(error)); }

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return absl::NotFoundError(StrCat(path, ": ", ErrnoText(errno)));
  std::string content;
  char buffer[4096];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) {
    content.append(buffer, n);
    if (content.size() > kMaxResponseBytes) {
      std::fclose(file);
      return absl::InvalidArgumentError(StrCat(path, ": larger than ", kMaxResponseBytes));
    }
  }
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) return absl::UnavailableError(StrCat(path, ": read error"));
  return content;
}

// ---------------------------------------------------------------------------------------------
// The YAML subset of kubeconfig files as kubectl writes them: block mappings and sequences
// (kubectl puts "- " at the parent's indentation), plain, single- and double-quoted one-line
// scalars, comments, "{}" and "[]". Anything else (flow collections with content, block or
// multi-line scalars, anchors, aliases, tags, tabs) is an error naming the line, not a guess.

struct YamlNode {
  enum class Kind { kNull, kScalar, kMap, kSequence };
  Kind kind = Kind::kNull;
  std::string scalar;
  std::vector<std::pair<std::string, YamlNode>> map;
  std::vector<YamlNode> sequence;

  const YamlNode* Find(std::string_view key) const {
    if (kind != Kind::kMap) return nullptr;
    for (const auto& [name, value] : map) {
      if (name == key) return &value;
    }
    return nullptr;
  }
};

class YamlParser {
 public:
  static absl::StatusOr<YamlNode> Parse(std::string_view text) {
    YamlParser parser;
    if (absl::Status status = parser.Split(text); !status.ok()) return status;
    if (parser.lines_.empty()) return YamlNode{};
    absl::StatusOr<YamlNode> root = parser.Block(parser.lines_[0].indent);
    if (root.ok() && parser.at_ < parser.lines_.size()) {
      return parser.Error(parser.lines_[parser.at_], "unexpected indentation");
    }
    return root;
  }

 private:
  struct Line {
    int number;
    int indent;
    std::string text;  // without indentation, never empty
  };

  absl::Status Error(const Line& line, std::string_view what) const {
    return absl::InvalidArgumentError(StrCat("line ", line.number, ": ", what));
  }

  absl::Status Split(std::string_view text) {
    int number = 0;
    while (!text.empty()) {
      const size_t end = std::min(text.find('\n'), text.size());
      std::string_view raw = text.substr(0, end);
      text.remove_prefix(std::min(end + 1, text.size()));
      ++number;
      if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
      const size_t first = raw.find_first_not_of(' ');
      if (first == std::string_view::npos) continue;
      if (raw[first] == '\t') {
        return absl::InvalidArgumentError(StrCat("line ", number, ": tab in indentation"));
      }
      const std::string_view content = raw.substr(first);
      if (content[0] == '#') continue;
      if (first == 0 && (content == "---" || content == "...")) continue;
      lines_.push_back({number, static_cast<int>(first), std::string(content)});
    }
    return absl::OkStatus();
  }

  static bool IsItem(const Line& line) { return line.text == "-" || line.text.starts_with("- "); }

  absl::StatusOr<YamlNode> Block(int indent) {
    return IsItem(lines_[at_]) ? Sequence(indent) : Mapping(indent);
  }

  // The value after "key:" or "- ", or a nested block on the following lines.
  absl::StatusOr<YamlNode> ValueAfter(const Line& line, std::string_view rest, int indent) {
    ++at_;
    if (!rest.empty()) return Scalar(line, rest);
    if (at_ < lines_.size() && lines_[at_].indent > indent) {
      // An empty flow collection on its own line ("user:\n    {}") is an empty value.
      const std::string_view next = lines_[at_].text;
      if (next == "{}" || next == "[]") {
        ++at_;
        YamlNode empty;
        empty.kind = next == "{}" ? YamlNode::Kind::kMap : YamlNode::Kind::kSequence;
        return empty;
      }
      return Block(lines_[at_].indent);
    }
    if (at_ < lines_.size() && lines_[at_].indent == indent && IsItem(lines_[at_]) &&
        !IsItem(line)) {
      return Sequence(indent);  // kubectl's style: "key:" then "- item" at the same column
    }
    return YamlNode{};
  }

  absl::StatusOr<YamlNode> Mapping(int indent) {
    YamlNode node;
    node.kind = YamlNode::Kind::kMap;
    while (at_ < lines_.size() && lines_[at_].indent == indent && !IsItem(lines_[at_])) {
      const Line& line = lines_[at_];
      std::string key;
      std::string_view rest;
      if (absl::Status status = SplitKey(line, key, rest); !status.ok()) return status;
      if (node.Find(key) != nullptr) return Error(line, StrCat("duplicate key \"", key, "\""));
      absl::StatusOr<YamlNode> value = ValueAfter(line, rest, indent);
      if (!value.ok()) return value.status();
      node.map.emplace_back(std::move(key), *std::move(value));
    }
    return node;
  }

  absl::StatusOr<YamlNode> Sequence(int indent) {
    YamlNode node;
    node.kind = YamlNode::Kind::kSequence;
    while (at_ < lines_.size() && lines_[at_].indent == indent && IsItem(lines_[at_])) {
      Line& line = lines_[at_];
      const size_t content = line.text.find_first_not_of(' ', 1);
      if (content == std::string::npos) {  // "-" alone: the item is on the following lines
        absl::StatusOr<YamlNode> value = ValueAfter(line, "", indent);
        if (!value.ok()) return value.status();
        node.sequence.push_back(*std::move(value));
        continue;
      }
      if (line.text[content] == '-' && IsItem({0, 0, line.text.substr(content)})) {
        return Error(line, "nested sequences on one line are not supported");
      }
      // "- key: value" opens a mapping whose keys sit at the column of "key".
      line.indent += static_cast<int>(content);
      line.text.erase(0, content);
      std::string key;
      std::string_view rest;
      if (SplitKey(line, key, rest).ok()) {
        absl::StatusOr<YamlNode> value = Mapping(line.indent);
        if (!value.ok()) return value.status();
        node.sequence.push_back(*std::move(value));
      } else {
        absl::StatusOr<YamlNode> value = Scalar(line, line.text);
        if (!value.ok()) return value.status();
        ++at_;
        node.sequence.push_back(*std::move(value));
      }
    }
    return node;
  }

  // "key: value" or "key:" (key plain or quoted) → key and the rest, trimmed.
  absl::Status SplitKey(const Line& line, std::string& key, std::string_view& rest) const {
    std::string_view text = line.text;
    size_t colon;
    if (text[0] == '"' || text[0] == '\'') {
      size_t end = 0;
      absl::StatusOr<std::string> quoted = Quoted(line, text, end);
      if (!quoted.ok()) return quoted.status();
      key = *std::move(quoted);
      colon = end;
      if (colon >= text.size() || text[colon] != ':') return Error(line, "expected \"key: value\"");
    } else {
      colon = text.find(": ");
      if (colon == std::string_view::npos) {
        if (text.back() != ':') return Error(line, "expected \"key: value\"");
        colon = text.size() - 1;
      }
      key = std::string(absl::StripTrailingAsciiWhitespace(proto::AsAbsl(text.substr(0, colon))));
    }
    if (colon + 1 < text.size() && text[colon + 1] != ' ') {
      return Error(line, "expected \"key: value\"");
    }
    rest = proto::AsStd(absl::StripAsciiWhitespace(proto::AsAbsl(text.substr(colon + 1))));
    if (rest.starts_with("#")) rest = {};
    return absl::OkStatus();
  }

  // A quoted scalar starting at text[0]; `end` becomes the index after its closing quote.
  absl::StatusOr<std::string> Quoted(const Line& line, std::string_view text, size_t& end) const {
    const char quote = text[0];
    std::string value;
    for (size_t i = 1; i < text.size(); ++i) {
      const char c = text[i];
      if (quote == '\'' && c == '\'') {
        if (i + 1 < text.size() && text[i + 1] == '\'') {
          value.push_back('\'');
          ++i;
          continue;
        }
        end = i + 1;
        return value;
      }
      if (quote == '"' && c == '"') {
        end = i + 1;
        return value;
      }
      if (quote == '"' && c == '\\') {
        if (++i >= text.size()) break;
        switch (text[i]) {
          case 'n':
            value.push_back('\n');
            break;
          case 't':
            value.push_back('\t');
            break;
          case 'r':
            value.push_back('\r');
            break;
          case '0':
            value.push_back('\0');
            break;
          case '"':
          case '\\':
          case '/':
          case ' ':
            value.push_back(text[i]);
            break;
          default:
            return Error(line, "unsupported escape in a double-quoted scalar");
        }
        continue;
      }
      value.push_back(c);
    }
    return Error(line, "unterminated quoted scalar (multi-line scalars are not supported)");
  }

  absl::StatusOr<YamlNode> Scalar(const Line& line, std::string_view text) const {
    YamlNode node;
    if (text == "{}") {
      node.kind = YamlNode::Kind::kMap;
      return node;
    }
    if (text == "[]") {
      node.kind = YamlNode::Kind::kSequence;
      return node;
    }
    switch (text[0]) {
      case '{':
      case '[':
        return Error(line, "flow collections are not supported");
      case '|':
      case '>':
        return Error(line, "block scalars are not supported");
      case '&':
      case '*':
      case '!':
        return Error(line, "anchors, aliases and tags are not supported");
      default:
        break;
    }
    if (text[0] == '"' || text[0] == '\'') {
      size_t end = 0;
      absl::StatusOr<std::string> quoted = Quoted(line, text, end);
      if (!quoted.ok()) return quoted.status();
      const std::string_view after =
          proto::AsStd(absl::StripAsciiWhitespace(proto::AsAbsl(text.substr(end))));
      if (!after.empty() && after[0] != '#') return Error(line, "text after a quoted scalar");
      node.kind = YamlNode::Kind::kScalar;
      node.scalar = *std::move(quoted);
      return node;
    }
    const size_t comment = text.find(" #");
    if (comment != std::string_view::npos) text = text.substr(0, comment);
    text = proto::AsStd(absl::StripTrailingAsciiWhitespace(proto::AsAbsl(text)));
    if (text == "null" || text == "~") return node;
    node.kind = YamlNode::Kind::kScalar;
    node.scalar = std::string(text);
    return node;
  }

  std::vector<Line> lines_;
  size_t at_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Kubeconfig.

// Reads kubeconfig fields, naming each as kubectl's documentation does in errors.
class KubeconfigReader {
 public:
  KubeconfigReader(std::string_view path, const YamlNode& root) : path_(path), root_(root) {
    const size_t slash = path_.rfind('/');
    directory_ = slash == std::string::npos ? "." : path_.substr(0, slash);
  }

  absl::StatusOr<KubeConfig> Read() {
    absl::StatusOr<std::string> context_name = String(root_, "current-context", "");
    if (!context_name.ok()) return context_name.status();
    if (context_name->empty()) return Error("current-context is not set");
    absl::StatusOr<const YamlNode*> context = Named("contexts", *context_name, "context");
    if (!context.ok()) return context.status();
    const std::string at_context = StrCat("contexts[\"", *context_name, "\"].context");
    absl::StatusOr<std::string> cluster_name = String(**context, "cluster", at_context);
    if (!cluster_name.ok()) return cluster_name.status();
    if (cluster_name->empty()) return Error(StrCat(at_context, ".cluster is missing"));
    absl::StatusOr<std::string> user_name = String(**context, "user", at_context);
    if (!user_name.ok()) return user_name.status();

    KubeConfig config;
    absl::StatusOr<const YamlNode*> cluster = Named("clusters", *cluster_name, "cluster");
    if (!cluster.ok()) return cluster.status();
    if (absl::Status status = ReadCluster(**cluster, *cluster_name, config); !status.ok()) {
      return status;
    }
    if (!user_name->empty()) {  // a context without a user is anonymous
      absl::StatusOr<const YamlNode*> user = Named("users", *user_name, "user");
      if (!user.ok()) return user.status();
      if (absl::Status status = ReadUser(**user, *user_name, config); !status.ok()) return status;
    }
    return config;
  }

 private:
  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(StrCat("kubeconfig ", path_, ": ", what));
  }

  // A scalar field of `map` ("" when absent); `where` names the map in errors.
  absl::StatusOr<std::string> String(const YamlNode& map, std::string_view key,
                                     std::string_view where) const {
    const YamlNode* value = map.Find(key);
    if (value == nullptr || value->kind == YamlNode::Kind::kNull) return std::string();
    if (value->kind != YamlNode::Kind::kScalar) {
      return Error(StrCat(where, where.empty() ? "" : ".", key, " is not a string"));
    }
    return value->scalar;
  }

  // The `field` mapping of the item of the `list` sequence whose name is `name`.
  absl::StatusOr<const YamlNode*> Named(std::string_view list, std::string_view name,
                                        std::string_view field) const {
    const YamlNode* items = root_.Find(list);
    if (items != nullptr && items->kind == YamlNode::Kind::kSequence) {
      for (const YamlNode& item : items->sequence) {
        const YamlNode* item_name = item.Find("name");
        if (item_name == nullptr || item_name->scalar != name) continue;
        const YamlNode* value = item.Find(field);
        if (value == nullptr || value->kind != YamlNode::Kind::kMap) {
          return Error(StrCat(list, "[\"", name, "\"].", field, " is missing"));
        }
        return value;
      }
    }
    return Error(StrCat("no ", field, " named \"", name, "\" in ", list));
  }

  std::string Resolve(const std::string& file) const {
    if (file.empty() || file[0] == '/') return file;
    return StrCat(directory_, "/", file);
  }

  // `key` (a file) or `key`-data (base64, written to a private file); "" when neither is set.
  absl::StatusOr<std::string> FileOrData(const YamlNode& map, std::string_view key,
                                         std::string_view where) const {
    absl::StatusOr<std::string> file = String(map, key, where);
    if (!file.ok()) return file.status();
    const std::string data_key = StrCat(key, "-data");
    absl::StatusOr<std::string> data = String(map, data_key, where);
    if (!data.ok()) return data.status();
    if (data->empty()) return Resolve(*file);
    std::string decoded;
    if (!absl::Base64Unescape(proto::AsAbsl(*data), &decoded)) {
      return Error(StrCat(where, ".", data_key, " is not valid base64"));
    }
    absl::StatusOr<std::string> written = WritePrivateFile(key, decoded);
    if (!written.ok()) {
      return Error(StrCat(where, ".", data_key, ": ", written.status().message()));
    }
    return written;
  }

  absl::Status ReadCluster(const YamlNode& cluster, std::string_view name, KubeConfig& config) {
    const std::string where = StrCat("clusters[\"", name, "\"].cluster");
    for (std::string_view unsupported : {"proxy-url", "tls-server-name"}) {
      if (cluster.Find(unsupported) != nullptr) {
        return Error(StrCat(where, ".", unsupported, " is not supported"));
      }
    }
    absl::StatusOr<std::string> server = String(cluster, "server", where);
    if (!server.ok()) return server.status();
    if (server->empty()) return Error(StrCat(where, ".server is missing"));
    while (server->ends_with("/")) server->pop_back();
    config.server = *std::move(server);
    absl::StatusOr<std::string> ca = FileOrData(cluster, "certificate-authority", where);
    if (!ca.ok()) return ca.status();
    config.ca_file = *std::move(ca);
    absl::StatusOr<std::string> insecure = String(cluster, "insecure-skip-tls-verify", where);
    if (!insecure.ok()) return insecure.status();
    if (*insecure == "true") {
      config.insecure_skip_tls_verify = true;
    } else if (!insecure->empty() && *insecure != "false") {
      return Error(StrCat(where, ".insecure-skip-tls-verify is neither true nor false"));
    }
    return absl::OkStatus();
  }

  absl::Status ReadUser(const YamlNode& user, std::string_view name, KubeConfig& config) {
    const std::string where = StrCat("users[\"", name, "\"].user");
    for (std::string_view unsupported : {"exec", "auth-provider", "username", "password", "as"}) {
      if (user.Find(unsupported) != nullptr) {
        return Error(StrCat(where, ".", unsupported,
                            " is not supported (use a token, tokenFile or a client certificate)"));
      }
    }
    absl::StatusOr<std::string> token = String(user, "token", where);
    if (!token.ok()) return token.status();
    config.token = proto::Secret(*std::move(token));
    absl::StatusOr<std::string> token_file = String(user, "tokenFile", where);
    if (!token_file.ok()) return token_file.status();
    config.token_file = Resolve(*token_file);
    absl::StatusOr<std::string> certificate = FileOrData(user, "client-certificate", where);
    if (!certificate.ok()) return certificate.status();
    absl::StatusOr<std::string> key = FileOrData(user, "client-key", where);
    if (!key.ok()) return key.status();
    if (certificate->empty() != key->empty()) {
      return Error(StrCat(where, certificate->empty() ? ".client-certificate" : ".client-key",
                          " is missing (client-certificate and client-key go together)"));
    }
    config.client_certificate_file = *std::move(certificate);
    config.client_key_file = *std::move(key);
    return absl::OkStatus();
  }

  // libcurl takes TLS material as files, and KubeConfig names files: embedded data goes to a
  // directory only this user can enter, one file per content (named by its hash), so repeated
  // loads reuse it instead of piling up temporary files.
  static absl::StatusOr<std::string> WritePrivateFile(std::string_view kind,
                                                      std::string_view content) {
    const char* runtime = std::getenv("XDG_RUNTIME_DIR");
    const std::string base = runtime != nullptr && runtime[0] == '/' ? runtime : "/tmp";
    const std::string directory = StrCat(base, "/mailring-kubeconfig-", ::geteuid());
    if (::mkdir(directory.c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::UnavailableError(StrCat(directory, ": ", ErrnoText(errno)));
    }
    struct stat info {};
    if (::lstat(directory.c_str(), &info) != 0 || !S_ISDIR(info.st_mode) ||
        info.st_uid != ::geteuid() || (info.st_mode & 077) != 0) {
      return absl::PermissionDeniedError(
          StrCat(directory, " is not a directory private to this user"));
    }
    uint64_t hash = 14695981039346656037ull;  // FNV-1a: a name, not a security property
    for (unsigned char c : content) hash = (hash ^ c) * 1099511628211ull;
    char hex[17];
    std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(hash));
    const std::string path = StrCat(directory, "/", kind, "-", hex, ".pem");
    if (absl::StatusOr<std::string> existing = ReadSmallFile(path);
        existing.ok() && *existing == content) {
      return path;
    }
    std::string temporary = StrCat(path, ".XXXXXX");
    const int fd = ::mkstemp(temporary.data());  // mode 0600
    if (fd < 0) return absl::UnavailableError(StrCat(directory, ": ", ErrnoText(errno)));
    size_t written = 0;
    while (written < content.size()) {
      const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      written += static_cast<size_t>(n);
    }
    const bool closed = ::close(fd) == 0;
    if (written != content.size() || !closed || ::rename(temporary.c_str(), path.c_str()) != 0) {
      const int error = errno;
      ::unlink(temporary.c_str());
      return absl::UnavailableError(StrCat(path, ": ", ErrnoText(error)));
    }
    return path;
  }

  std::string path_;
  std::string directory_;
  const YamlNode& root_;
};

// ---------------------------------------------------------------------------------------------
// The bearer token, from KubeConfig::token or re-read from token_file when that file changes
// (kubelet rotates projected service-account tokens by swapping a symlink: a new inode).
class TokenSource {
 public:
  TokenSource(proto::Secret token, std::string file)
      : token_(std::move(token)), file_(std::move(file)) {}

  std::string_view Current() {
    if (file_.empty()) return token_.Reveal();
    const absl::Time now = absl::Now();
    if (now < next_check_) return token_.Reveal();
    next_check_ = now + kTokenRecheck;
    struct stat info {};
    if (::stat(file_.c_str(), &info) != 0) {
      Warn(StrCat(file_, ": ", ErrnoText(errno)));
      return token_.Reveal();
    }
    const Stamp stamp{info.st_dev, info.st_ino, info.st_size, info.st_mtim.tv_sec,
                      info.st_mtim.tv_nsec};
    if (have_stamp_ && stamp == stamp_) return token_.Reveal();
    absl::StatusOr<std::string> content = ReadSmallFile(file_);
    if (!content.ok()) {
      Warn(std::string(proto::AsStd(content.status().message())));
      return token_.Reveal();
    }
    const std::string_view trimmed = proto::AsStd(absl::StripAsciiWhitespace(*content));
    if (trimmed.empty()) {
      Warn(StrCat(file_, " is empty"));
      return token_.Reveal();
    }
    token_ = proto::Secret(std::string(trimmed));
    stamp_ = stamp;
    have_stamp_ = true;
    warned_.clear();
    return token_.Reveal();
  }

  // After a 401: the next request checks the file again at once.
  void Invalidate() {
    next_check_ = absl::InfinitePast();
    have_stamp_ = false;
  }

 private:
  struct Stamp {
    dev_t device;
    ino_t inode;
    off_t size;
    time_t seconds;
    long nanoseconds;
    bool operator==(const Stamp&) const = default;
  };

  void Warn(std::string text) {
    if (text == warned_) return;  // once per distinct problem, not per request
    MAILRING_LOG(kWarning, "kube: service-account token unreadable, keeping the last one: ", text);
    warned_ = std::move(text);
  }

  proto::Secret token_;
  const std::string file_;
  absl::Time next_check_ = absl::InfinitePast();
  Stamp stamp_{};
  bool have_stamp_ = false;
  std::string warned_;
};

std::string PercentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// "HTTP 500: <the Status object's message, or the start of the body>".
std::string DescribeResponse(const HttpResponse& response) {
  std::string_view detail = response.body;
  simdjson::dom::parser parser;
  simdjson::dom::element document;
  std::string_view message;
  if (parser.parse(response.body.data(), response.body.size()).get(document) == simdjson::SUCCESS &&
      document["message"].get_string().get(message) == simdjson::SUCCESS) {
    detail = message;
  }
  if (detail.size() > 300) detail = detail.substr(0, 300);
  return StrCat("HTTP ", response.status, detail.empty() ? "" : ": ", detail);
}

// What requests and informers share. Control thread only.
struct KubeContext {
  KubeContext(HttpClient* http_client, KubeConfig kube_config)
      : http(http_client),
        config(std::move(kube_config)),
        token(std::move(config.token), config.token_file) {}

  HttpRequest Request(std::string_view method, std::string_view path_and_query,
                      std::string body = {}, std::string_view content_type = {}) {
    HttpRequest request;
    request.method = std::string(method);
    request.url = StrCat(config.server, path_and_query);
    request.headers.push_back("Accept: application/json");
    request.headers.push_back("User-Agent: mailring");
    const std::string_view bearer = token.Current();
    if (!bearer.empty()) request.headers.push_back(StrCat("Authorization: Bearer ", bearer));
    if (!content_type.empty()) request.headers.push_back(StrCat("Content-Type: ", content_type));
    request.body = std::move(body);
    request.timeout = kRequestTimeout;
    request.ca_file = config.ca_file;
    request.client_certificate_file = config.client_certificate_file;
    request.client_key_file = config.client_key_file;
    request.insecure_skip_tls_verify = config.insecure_skip_tls_verify;
    request.max_response_bytes = kMaxResponseBytes;
    return request;
  }

  // Every response passes here: a 401 may mean the token rotated under us.
  void Observe(const absl::StatusOr<HttpResponse>& response) {
    if (response.ok() && response->status == 401) token.Invalidate();
  }

  HttpClient* const http;
  KubeConfig config;  // its token moved into `token`
  TokenSource token;
};

}  // namespace

absl::StatusOr<KubeConfig> InClusterKubeConfig() {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || host[0] == '\0' || port == nullptr || port[0] == '\0') {
    return absl::FailedPreconditionError(
        "not running in a Kubernetes cluster: KUBERNETES_SERVICE_HOST and "
        "KUBERNETES_SERVICE_PORT are not set (outside a cluster, pass --kubeconfig)");
  }
  const std::string_view host_text = host;
  KubeConfig config;
  config.server = host_text.find(':') != std::string_view::npos
                      ? StrCat("https://[", host_text, "]:", port)  // IPv6
                      : StrCat("https://", host_text, ":", port);
  config.token_file = StrCat(kServiceAccountDir, "/token");
  config.ca_file = StrCat(kServiceAccountDir, "/ca.crt");
  absl::StatusOr<std::string> token = ReadSmallFile(config.token_file);
  if (!token.ok()) {
    return absl::FailedPreconditionError(
        StrCat("in-cluster service-account token: ", token.status().message(),
               " (is automountServiceAccountToken disabled?)"));
  }
  const std::string_view trimmed = proto::AsStd(absl::StripAsciiWhitespace(*token));
  if (trimmed.empty()) {
    return absl::FailedPreconditionError(
        StrCat("in-cluster service-account token ", config.token_file, " is empty"));
  }
  config.token = proto::Secret(std::string(trimmed));
  if (::access(config.ca_file.c_str(), R_OK) != 0) {
    return absl::FailedPreconditionError(
        StrCat("in-cluster service-account CA ", config.ca_file, ": ", ErrnoText(errno)));
  }
  return config;
}

absl::StatusOr<KubeConfig> LoadKubeconfig(std::string_view path) {
  const std::string file(path);
  absl::StatusOr<std::string> text = ReadSmallFile(file);
  if (!text.ok()) return absl::NotFoundError(StrCat("kubeconfig ", text.status().message()));
  absl::StatusOr<YamlNode> root = YamlParser::Parse(*text);
  if (!root.ok()) {
    return absl::InvalidArgumentError(StrCat("kubeconfig ", file, ": ", root.status().message()));
  }
  if (root->kind != YamlNode::Kind::kMap) {
    return absl::InvalidArgumentError(StrCat("kubeconfig ", file, ": not a YAML mapping"));
  }
  return KubeconfigReader(file, *root).Read();
}

// ---------------------------------------------------------------------------------------------
// Requests.

struct KubeClient::Impl {
  std::shared_ptr<KubeContext> context;
  // Requests in flight by a local key: ~KubeClient cancels them.
  absl::flat_hash_map<uint64_t, HttpClient::RequestId> pending;
  uint64_t last_key = 0;

  void Send(std::string_view method, std::string_view path, std::string body,
            std::string_view content_type, Callback done) {
    const uint64_t key = ++last_key;
    // Runs only while this Impl lives: ~KubeClient cancels every pending request.
    pending[key] = context->http->Start(
        context->Request(method, path, std::move(body), content_type),
        [this, key, done = std::move(done)](absl::StatusOr<HttpResponse> response) {
          pending.erase(key);
          context->Observe(response);
          if (!response.ok()) {
            done(response.status());
            return;
          }
          done(KubeResponse{response->status, std::move(response->body)});
        });
  }
};

KubeClient::KubeClient(HttpClient* http, KubeConfig config) : impl_(std::make_unique<Impl>()) {
  impl_->context = std::make_shared<KubeContext>(http, std::move(config));
}

KubeClient::~KubeClient() {
  for (const auto& [key, id] : impl_->pending) impl_->context->http->Cancel(id);
}

void KubeClient::Get(std::string path, Callback done) {
  impl_->Send("GET", path, {}, {}, std::move(done));
}
void KubeClient::Create(std::string path, std::string json, Callback done) {
  impl_->Send("POST", path, std::move(json), "application/json", std::move(done));
}
void KubeClient::Replace(std::string path, std::string json, Callback done) {
  impl_->Send("PUT", path, std::move(json), "application/json", std::move(done));
}
void KubeClient::MergePatch(std::string path, std::string json, Callback done) {
  impl_->Send("PATCH", path, std::move(json), "application/merge-patch+json", std::move(done));
}
void KubeClient::Delete(std::string path, Callback done) {
  impl_->Send("DELETE", path, {}, {}, std::move(done));
}

// ---------------------------------------------------------------------------------------------
// Informer.
namespace {

// One informer's state machine. HttpClient callbacks hold it weakly and lock it while they run,
// so a handler that destroys the Informer does not pull the state from under the running code;
// `phase_ == kStopped` then ends the work. `generation_` changes with every new request or
// timer, so a callback from an earlier one (a stream's last data after a relist) is ignored.
class InformerState : public std::enable_shared_from_this<InformerState> {
 public:
  using Handler = KubeClient::Informer::Handler;

  InformerState(std::shared_ptr<KubeContext> context, std::string path, Handler handler)
      : context_(std::move(context)),
        path_(std::move(path)),
        handler_(std::move(handler)),
        random_(std::random_device{}()) {}

  void Begin() { List(); }

  void Stop() {
    phase_ = Phase::kStopped;
    ++generation_;
    if (current_ != 0) context_->http->Cancel(current_);
    current_ = 0;
  }

  bool synced() const { return synced_; }
  const std::string& resource_version() const { return resource_version_; }

 private:
  enum class Phase { kListing, kWatching, kBackingOff, kStopped };

  std::string WithQuery(std::string_view query) const {
    return StrCat(path_, path_.find('?') == std::string::npos ? "?" : "&", query);
  }

  // Wraps a callback so it runs only for the current generation of a live informer.
  template <typename... Args>
  std::function<void(Args...)> Guard(void (InformerState::*method)(Args...)) {
    return [weak = weak_from_this(), generation = generation_, method](Args... args) {
      std::shared_ptr<InformerState> self = weak.lock();
      if (self == nullptr || self->phase_ == Phase::kStopped || self->generation_ != generation) {
        return;
      }
      (self.get()->*method)(std::forward<Args>(args)...);
    };
  }

  void SetCurrent(HttpClient::RequestId id) { current_ = id; }

  void NewGeneration() {
    ++generation_;
    if (current_ != 0) context_->http->Cancel(current_);
    current_ = 0;
  }

  // kListing: GET the collection page by page, then report the difference and watch.
  void List() {
    NewGeneration();
    phase_ = Phase::kListing;
    listed_.clear();
    listed_order_.clear();
    paging_ = false;
    RequestPage("");
  }

  void RequestPage(std::string_view continue_token) {
    std::string query = StrCat("limit=", kListPageSize);
    if (!continue_token.empty()) StrAppend(&query, "&continue=", PercentEncode(continue_token));
    paging_ = !continue_token.empty();
    SetCurrent(context_->http->Start(context_->Request("GET", WithQuery(query)),
                                     Guard(&InformerState::OnPage)));
  }

  void OnPage(absl::StatusOr<HttpResponse> response) {
    context_->Observe(response);
    const std::string what = StrCat("list ", path_);
    if (!response.ok()) return Retry(&InformerState::List, response.status());
    if (response->status == 410 && paging_) {
      // The continue token expired between pages: start over from a fresh snapshot.
      MAILRING_LOG(kInfo, "kube: ", what, ": continue token expired, listing again");
      return List();
    }
    if (response->status != 200) {
      return Retry(&InformerState::List,
                   absl::UnavailableError(StrCat(what, ": ", DescribeResponse(*response))));
    }
    simdjson::dom::element document;
    simdjson::dom::array items;
    std::string_view version;
    std::string_view next;
    const simdjson::error_code parsed = parser_.parse(response->body).get(document);
    if (parsed != simdjson::SUCCESS ||
        document["metadata"]["resourceVersion"].get_string().get(version) != simdjson::SUCCESS) {
      return Retry(&InformerState::List,
                   absl::DataLossError(StrCat(what, ": not a list with metadata.resourceVersion")));
    }
    if (document["metadata"]["continue"].get_string().get(next) != simdjson::SUCCESS) next = {};
    simdjson::dom::element items_element;
    if (document["items"].get(items_element) == simdjson::SUCCESS && !items_element.is_null()) {
      if (items_element.get_array().get(items) != simdjson::SUCCESS) {
        return Retry(&InformerState::List,
                     absl::DataLossError(StrCat(what, ": items is not an array")));
      }
      for (simdjson::dom::element item : items) {
        std::string key = ObjectKey(item);
        if (key.empty() || listed_.contains(key)) continue;
        listed_.emplace(key, simdjson::minify(item));
        listed_order_.push_back(std::move(key));
      }
    }
    list_version_ = std::string(version);
    if (!next.empty()) return RequestPage(next);
    FinishList();
  }

  // Reports the list as the difference from what was known: first what vanished (a consumer
  // keyed by name sees a re-created object as remove, then upsert), then every listed object.
  void FinishList() {
    std::vector<std::string> removed;
    for (auto& [key, json] : objects_) {
      if (!listed_.contains(key)) removed.push_back(std::move(json));
    }
    objects_ = std::move(listed_);
    listed_.clear();
    std::vector<std::string> order = std::move(listed_order_);
    listed_order_.clear();
    resource_version_ = list_version_;
    attempts_ = 0;
    Watch();  // queued: its callbacks run in a later Poll()
    const uint64_t generation = generation_;
    auto live = [this, generation] { return generation_ == generation; };
    for (const std::string& json : removed) {
      if (handler_.remove) handler_.remove(json);
      if (!live()) return;
    }
    for (const std::string& key : order) {
      auto it = objects_.find(key);
      if (it == objects_.end()) continue;
      if (handler_.upsert) handler_.upsert(it->second);
      if (!live()) return;
    }
    synced_ = true;
    if (handler_.synced) handler_.synced();
  }

  // kWatching: one stream from resource_version_.
  void Watch() {
    NewGeneration();
    phase_ = Phase::kWatching;
    partial_.clear();
    std::uniform_int_distribution<int> jitter(-kWatchSeconds / 10, kWatchSeconds / 10);
    const int seconds = kWatchSeconds + jitter(random_);
    HttpRequest request = context_->Request(
        "GET", WithQuery(StrCat("watch=true&allowWatchBookmarks=true&resourceVersion=",
                                PercentEncode(resource_version_), "&timeoutSeconds=", seconds)));
    request.timeout = absl::Seconds(seconds) + kWatchTimeoutMargin;
    SetCurrent(context_->http->StartStream(std::move(request), Guard(&InformerState::OnWatchData),
                                           Guard(&InformerState::OnWatchEnd)));
  }

  void OnWatchData(std::string_view chunk) {
    const uint64_t generation = generation_;
    while (!chunk.empty()) {
      const size_t newline = chunk.find('\n');
      const std::string_view piece = chunk.substr(0, newline);
      if (partial_.size() + piece.size() > kMaxWatchLine) {
        partial_.clear();
        if (handler_.error) {
          handler_.error(absl::ResourceExhaustedError(StrCat(
              "watch ", path_, ": an event longer than ", kMaxWatchLine, " bytes; listing again")));
        }
        if (generation_ == generation) List();
        return;
      }
      if (newline == std::string_view::npos) {
        partial_.append(piece);
        return;
      }
      chunk.remove_prefix(newline + 1);
      std::string_view line = piece;
      if (!partial_.empty()) {
        partial_.append(piece);
        line = partial_;
      }
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (!line.empty()) OnEvent(line);
      if (generation_ != generation) return;  // relisted or stopped: the stream is moot
      partial_.clear();
    }
  }

  void OnEvent(std::string_view line) {
    const std::string what = StrCat("watch ", path_);
    simdjson::dom::element event;
    simdjson::dom::element object;
    std::string_view type;
    if (parser_.parse(line.data(), line.size()).get(event) != simdjson::SUCCESS ||
        event["type"].get_string().get(type) != simdjson::SUCCESS ||
        event["object"].get(object) != simdjson::SUCCESS) {
      return Relist(absl::DataLossError(StrCat(what, ": malformed event")));
    }
    std::string_view version;
    const bool has_version =
        object["metadata"]["resourceVersion"].get_string().get(version) == simdjson::SUCCESS;
    if (type == "ADDED" || type == "MODIFIED" || type == "DELETED") {
      std::string key = ObjectKey(object);
      if (key.empty() || !has_version) {
        return Relist(absl::DataLossError(StrCat(what, ": ", type, " event without metadata")));
      }
      resource_version_ = std::string(version);
      attempts_ = 0;
      std::string json = simdjson::minify(object);
      if (type == "DELETED") {
        objects_.erase(key);
        if (handler_.remove) handler_.remove(json);
      } else {
        auto [it, inserted] = objects_.insert_or_assign(std::move(key), std::move(json));
        if (handler_.upsert) handler_.upsert(it->second);
      }
      return;
    }
    if (type == "BOOKMARK") {
      if (has_version) resource_version_ = std::string(version);
      attempts_ = 0;
      return;
    }
    if (type == "ERROR") {
      int64_t code = 0;
      std::string_view message;
      if (object["code"].get_int64().get(code) != simdjson::SUCCESS) code = 0;
      if (object["message"].get_string().get(message) != simdjson::SUCCESS) message = {};
      if (code == 410) {
        MAILRING_LOG(kInfo, "kube: ", what, ": resourceVersion ", resource_version_,
                     " expired, listing again");
        return List();
      }
      return Retry(&InformerState::Watch,
                   absl::UnavailableError(StrCat(what, ": ERROR event ", code, ": ", message)));
    }
    MAILRING_LOG(kWarning, "kube: ", what, ": ignoring an event of type ", type);
  }

  void OnWatchEnd(absl::StatusOr<HttpResponse> response) {
    context_->Observe(response);
    partial_.clear();  // an event cut short is sent again: resource_version_ predates it
    if (!response.ok()) return Retry(&InformerState::Watch, response.status());
    if (response->status == 410) return List();
    if (response->status != 200) {
      return Retry(&InformerState::Watch, absl::UnavailableError(StrCat(
                                              "watch ", path_, ": ", DescribeResponse(*response))));
    }
    Retry(&InformerState::Watch, absl::OkStatus());  // the server's timeoutSeconds ended it
  }

  void Relist(absl::Status why) {
    if (handler_.error) handler_.error(why);
    if (phase_ != Phase::kStopped) List();
  }

  // kBackingOff: reports `why` (unless OK) and runs `next` after a jittered exponential delay.
  void Retry(void (InformerState::*next)(), absl::Status why) {
    const uint64_t generation = generation_;
    if (!why.ok() && handler_.error) handler_.error(why);
    if (generation_ != generation || phase_ == Phase::kStopped) return;
    NewGeneration();
    phase_ = Phase::kBackingOff;
    const absl::Duration base =
        std::min(kBackoffMax, kBackoffInitial * (int64_t{1} << std::min(attempts_, 8)));
    ++attempts_;
    std::uniform_real_distribution<double> jitter(0.75, 1.25);
    const absl::Duration delay =
        std::clamp(base * jitter(random_), kBackoffInitial / 2, kBackoffMax);
    SetCurrent(context_->http->StartTimer(delay, Guard(next)));
  }

  // metadata.uid, else namespace/name; "" when neither is there.
  static std::string ObjectKey(simdjson::dom::element object) {
    std::string_view uid;
    if (object["metadata"]["uid"].get_string().get(uid) == simdjson::SUCCESS && !uid.empty()) {
      return std::string(uid);
    }
    std::string_view name;
    std::string_view name_space;
    if (object["metadata"]["name"].get_string().get(name) != simdjson::SUCCESS) return "";
    if (object["metadata"]["namespace"].get_string().get(name_space) != simdjson::SUCCESS) {
      name_space = {};
    }
    return StrCat(name_space, "/", name);
  }

  const std::shared_ptr<KubeContext> context_;
  const std::string path_;
  const Handler handler_;
  Phase phase_ = Phase::kListing;
  uint64_t generation_ = 0;
  HttpClient::RequestId current_ = 0;  // the request, stream or timer of this generation
  bool synced_ = false;
  std::string resource_version_;
  int attempts_ = 0;  // failures since the last progress, for the backoff
  // Last JSON of every known object by key, and the list being assembled page by page.
  absl::flat_hash_map<std::string, std::string> objects_;
  absl::flat_hash_map<std::string, std::string> listed_;
  std::vector<std::string> listed_order_;
  std::string list_version_;
  bool paging_ = false;  // the current page was asked for with a continue token
  std::string partial_;  // the watch line received so far
  simdjson::dom::parser parser_;
  std::mt19937_64 random_;
};

class InformerImpl : public KubeClient::Informer {
 public:
  explicit InformerImpl(std::shared_ptr<InformerState> state) : state_(std::move(state)) {}
  ~InformerImpl() override { state_->Stop(); }
  bool synced() const override { return state_->synced(); }
  std::string resource_version() const override { return state_->resource_version(); }

 private:
  std::shared_ptr<InformerState> state_;
};

}  // namespace

std::unique_ptr<KubeClient::Informer> KubeClient::Watch(std::string collection_path,
                                                        Informer::Handler handler) {
  auto state = std::make_shared<InformerState>(impl_->context, std::move(collection_path),
                                               std::move(handler));
  state->Begin();
  return std::make_unique<InformerImpl>(std::move(state));
}

}  // namespace mailring::control
