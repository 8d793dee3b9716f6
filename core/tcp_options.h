// TCP options of both legs: TCP_NODELAY (IMAP is command/response: never wait to coalesce) and
// keepalive (an IDLE session is silent for up to 29 minutes; a vanished peer must be noticed).
//
// Set once on each listening socket, they are inherited by every accepted socket (the kernel
// clones the listener's socket state), which saves five setsockopt calls per session on the
// client leg; the upstream socket gets them explicitly.
#pragma once

#include "core/worker_options.h"

namespace mailring::core {

void SetTcpOptions(int fd, const WorkerOptions& options);

}  // namespace mailring::core
