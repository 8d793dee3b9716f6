// Kubeconfig and in-cluster configuration (control/kube/kubeconfig.h). The YAML is yaml-cpp's; this
// file maps the kubeconfig schema (current-context → context → cluster and user) onto
// KubeConfig, with errors that name the field.
#include "control/kube/kubeconfig.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "control/small_file.h"
#include "proto/absl_string_view.h"
#include "proto/str_cat.h"
#include "yaml-cpp/yaml.h"

namespace mailring::control {
namespace {

using mailring::StrCat;

constexpr std::string_view kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

std::string ErrnoText(int error) { return std::string(std::strerror(error)); }

class KubeconfigReader {
 public:
  KubeconfigReader(std::string_view path, YAML::Node root) : path_(path), root_(std::move(root)) {
    const size_t slash = path_.rfind('/');
    directory_ = slash == std::string::npos ? "." : path_.substr(0, slash);
  }

  absl::StatusOr<KubeConfig> Read() {
    absl::StatusOr<std::string> context_name = String(root_, "current-context", "");
    if (!context_name.ok()) return context_name.status();
    if (context_name->empty()) return Error("current-context is not set");
    absl::StatusOr<YAML::Node> context = Named("contexts", *context_name, "context");
    if (!context.ok()) return context.status();
    const std::string at_context = StrCat("contexts[\"", *context_name, "\"].context");
    absl::StatusOr<std::string> cluster_name = String(*context, "cluster", at_context);
    if (!cluster_name.ok()) return cluster_name.status();
    if (cluster_name->empty()) return Error(StrCat(at_context, ".cluster is missing"));
    absl::StatusOr<std::string> user_name = String(*context, "user", at_context);
    if (!user_name.ok()) return user_name.status();

    KubeConfig config;
    absl::StatusOr<YAML::Node> cluster = Named("clusters", *cluster_name, "cluster");
    if (!cluster.ok()) return cluster.status();
    if (absl::Status status = ReadCluster(*cluster, *cluster_name, config); !status.ok()) {
      return status;
    }
    if (!user_name->empty()) {  // a context without a user is anonymous
      absl::StatusOr<YAML::Node> user = Named("users", *user_name, "user");
      if (!user.ok()) return user.status();
      if (absl::Status status = ReadUser(*user, *user_name, config); !status.ok()) return status;
    }
    return config;
  }

 private:
  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(StrCat("kubeconfig ", path_, ": ", what));
  }

  // A scalar field of `map` ("" when absent); `where` names the map in errors.
  absl::StatusOr<std::string> String(const YAML::Node& map, std::string_view key,
                                     std::string_view where) const {
    const YAML::Node value = map[std::string(key)];
    if (!value.IsDefined() || value.IsNull()) return std::string();
    if (!value.IsScalar()) {
      return Error(StrCat(where, where.empty() ? "" : ".", key, " is not a string"));
    }
    return value.Scalar();
  }

  // The `field` mapping of the item of the `list` sequence whose name is `name`.
  absl::StatusOr<YAML::Node> Named(std::string_view list, std::string_view name,
                                        std::string_view field) const {
    const YAML::Node items = root_[std::string(list)];
    if (items.IsSequence()) {
      for (const YAML::Node& item : items) {
        if (!item.IsMap()) continue;
        const YAML::Node item_name = item["name"];
        if (!item_name.IsScalar() || item_name.Scalar() != name) continue;
        const YAML::Node value = item[std::string(field)];
        if (!value.IsMap()) {
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
  absl::StatusOr<std::string> FileOrData(const YAML::Node& map, std::string_view key,
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

  absl::Status ReadCluster(const YAML::Node& cluster, std::string_view name, KubeConfig& config) {
    const std::string where = StrCat("clusters[\"", name, "\"].cluster");
    for (std::string_view unsupported : {"proxy-url", "tls-server-name"}) {
      if (cluster[std::string(unsupported)].IsDefined()) {
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

  absl::Status ReadUser(const YAML::Node& user, std::string_view name, KubeConfig& config) {
    const std::string where = StrCat("users[\"", name, "\"].user");
    for (std::string_view unsupported : {"exec", "auth-provider", "username", "password", "as"}) {
      if (user[std::string(unsupported)].IsDefined()) {
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
  YAML::Node root_;
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
  // yaml-cpp reports syntax errors as exceptions; they end here, on the control thread at
  // start-up, as a Status that names the file and the position (never on the data path).
  YAML::Node root;
  try {
    root = YAML::Load(*text);
  } catch (const YAML::Exception& error) {
    return absl::InvalidArgumentError(
        StrCat("kubeconfig ", file, ": not valid YAML (line ", error.mark.line + 1, ", column ",
               error.mark.column + 1, ": ", error.msg, ")"));
  }
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(StrCat("kubeconfig ", file, ": not a YAML mapping"));
  }
  try {
    return KubeconfigReader(file, root).Read();
  } catch (const YAML::Exception& error) {
    return absl::InvalidArgumentError(StrCat("kubeconfig ", file, ": ", error.msg));
  }
}

}  // namespace mailring::control
