// One soak session: an IMAP client that logs in through mailring, reads the fixture's mail and
// checks every literal byte against the reference as it streams, then classifies how the
// session ended. The rules (what is a mismatch, what is a clear failure) are in soak.cc's header;
// this file reports the facts they need.
//
// The session: connect, greeting (PREAUTH: the route logs in upstream itself), SELECT INBOX,
// FETCH 1:3 (BODY.PEEK[TEXT]) (the three small messages), FETCH 4 (BODY.PEEK[]) (the ~20 MiB
// one) `big_fetches` times, LOGOUT. (Logging in costs the upstream far more than a FETCH: a few
// big FETCHes per session keep most sessions mid-transfer, where a fault cuts literals.) Commands
// are never pipelined, so the client never leaves unread data at the proxy.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace mailring::soak {

// The bytes every FETCH must return: the fixture's mail (tests/integration/dovecot_fixture.sh).
struct ReferenceMail {
  std::string big;                      // BODY[] of message 4 (the fixture's big.eml)
  std::vector<std::string> small_text;  // BODY[TEXT] of messages 1..3
};

enum class SessionEnd {
  kCompleted,     // LOGOUT answered OK; every literal complete and byte-identical
  kProtocolLine,  // the proxy/server sent a failure line (BYE, tagged NO/BAD): `line`
  kClosedNoLine,  // orderly close (EOF) after the greeting, with no failure line; every
                  // byte delivered was correct (a prefix, if a literal was cut)
  kMismatch,      // a delivered byte differs from the reference (lost, reordered, altered)
  kUnclear,       // anything else: refused, reset, closed before a greeting, odd answer
  kHang,          // no byte for the inactivity timeout, or past the session deadline
};

const char* SessionEndName(SessionEnd end);

struct SessionOutcome {
  SessionEnd end = SessionEnd::kUnclear;
  // kProtocolLine: the client-visible line, verbatim (without CRLF). Otherwise what happened.
  std::string line;
  std::string stage;            // connect, greeting, SELECT, FETCH small, FETCH big, LOGOUT
  uint64_t verified_bytes = 0;  // literal bytes delivered and equal to the reference
  int literals_verified = 0;    // literals delivered whole and equal
  int big_verified = 0;         // ~20 MiB literals delivered whole and equal
  absl::Time started;
  absl::Time ended;
};

struct SessionOptions {
  uint16_t port = 0;  // mailring's route on 127.0.0.1
  absl::Duration inactivity_timeout = absl::Seconds(30);
  absl::Duration deadline = absl::Seconds(300);  // the whole session
  int big_fetches = 3;
};

SessionOutcome RunSession(const SessionOptions& options, const ReferenceMail& reference);

}  // namespace mailring::soak
