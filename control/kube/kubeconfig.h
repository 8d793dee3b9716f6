// KubeConfig: where the Kubernetes API server is and how mailring authenticates to it.
//
//  - InClusterKubeConfig(): in a pod, from KUBERNETES_SERVICE_HOST/PORT, the service-account
//    token file (re-read by KubeClient whenever it changes) and the service-account CA.
//  - LoadKubeconfig(path): a kubeconfig file for development (current context; server, bearer
//    token or tokenFile or client certificate, CA, insecure-skip-tls-verify). Embedded *-data
//    are written to a directory private to the user, since libcurl takes TLS material as files.
//    Unsupported credentials (exec, auth-provider, username/password) are errors that say so.
//
// Contract: start-up only (control thread); errors name the file and the field, never a token.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "proto/secret.h"

namespace mailring::control {

struct KubeConfig {
  std::string server;      // "https://10.0.0.1:443", "http://127.0.0.1:8001"
  proto::Secret token;     // bearer token, or empty
  std::string token_file;  // re-read when it changes (service-account token rotation)
  std::string ca_file;
  std::string client_certificate_file;  // client TLS auth (kubeconfig), optional
  std::string client_key_file;
  bool insecure_skip_tls_verify = false;
};

absl::StatusOr<KubeConfig> InClusterKubeConfig();
absl::StatusOr<KubeConfig> LoadKubeconfig(std::string_view path);

}  // namespace mailring::control
