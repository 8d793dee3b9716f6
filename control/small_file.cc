#include "control/small_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "proto/str_cat.h"

namespace mailring::control {

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, size_t max_bytes) {
  FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return absl::NotFoundError(mailring::StrCat(path, ": ", std::strerror(errno)));
  }
  std::string content;
  char buffer[4096];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) {
    content.append(buffer, n);
    if (content.size() > max_bytes) {
      std::fclose(file);
      return absl::InvalidArgumentError(mailring::StrCat(path, ": larger than ", max_bytes, " bytes"));
    }
  }
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) return absl::UnavailableError(mailring::StrCat(path, ": read error"));
  return content;
}

}  // namespace mailring::control
