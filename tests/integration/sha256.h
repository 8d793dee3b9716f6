// Sha256Hex: the SHA-256 digest of a byte string as lowercase hex (FIPS 180-4).
//
// Written here rather than taken from wolfSSL so the byte-identity tests check the proxy with
// nothing the proxy itself links.
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace mailring::integration {

std::string Sha256Hex(absl::string_view data);

}  // namespace mailring::integration
