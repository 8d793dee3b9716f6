// PrintableText: text that came from a peer (a server's reason, a token service's error) made
// safe to put into an IMAP response line or a log line: printable ASCII only (anything else
// becomes '?', so no CR/LF can start a forged response line) and at most `limit` bytes.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mailring::proto {

std::string PrintableText(std::string_view text, size_t limit = 300);

}  // namespace mailring::proto
