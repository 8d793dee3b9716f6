// TlsResumptionKey: the identity under which a worker keeps the TLS sessions of a route's
// upstream (core/tls/session_cache.h). A session may only be offered to the server it came
// from, under the same TLS settings it was verified with, so the key holds everything that
// decides either: the tenant and destination name (two destinations never share a session,
// even towards one server), the host (the SNI and the name the certificate was checked
// against), the port, the connected address (the server itself, or the Connectivity Proxy and
// the Cloud Connector location behind it), how TLS starts (imap4s or STARTTLS) and whether the
// certificate was verified.
//
// Contract: the same key for equal routes, different keys when any of the fields above differ;
// every field is length-prefixed, so no choice of field contents makes two routes collide. The
// key holds no secret (no user, password or token).
#pragma once

#include <string>

#include "core/route.h"

namespace mailring::core {

std::string TlsResumptionKey(const Route& route);

}  // namespace mailring::core
