// ReadSmallFile: a configuration or credential file read whole, refusing anything larger than
// `max_bytes` (a token file, a kubeconfig, a CA bundle), with errors that name the path.
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"

namespace mailring::control {

absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          size_t max_bytes = size_t{1} << 20);

}  // namespace mailring::control
