// What this binary is: mailring's version, the git revision it was built from, and the versions
// of the libraries on its data path. Shown by `mailring --version`, in the start-up log line and
// as the mailring_build_info metric; scripts/image.sh copies them into the image's labels.
#pragma once

#include <string>
#include <string_view>

namespace mailring::control {

struct BuildInfo {
  std::string_view version;        // CMake's project version, "0.1.0"
  std::string_view git_revision;   // 12 hex digits, "-dirty" appended, or "unknown"
  std::string_view liburing;       // liburing's version at build time (it has no runtime query)
  std::string_view wolfssl;        // wolfSSL's version at run time (the shared library loaded)
};

const BuildInfo& GetBuildInfo();

// "mailring 0.1.0 (revision 0123abcd4567) liburing 2.3 wolfSSL 5.5.4": one line, no newline.
std::string BuildInfoLine();

}  // namespace mailring::control
