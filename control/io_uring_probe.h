// The start-up check that io_uring may be used at all. Container runtimes' default seccomp
// profiles (podman's, containerd's and Docker's RuntimeDefault) block io_uring_setup, and a
// kernel can disable io_uring (sysctl kernel.io_uring_disabled); either way every worker would
// fail with a bare errno. This turns that into one line an operator can act on.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace mailring::control {

// Sets up and tears down a one-entry ring. OK when that works; FailedPrecondition with
// IoUringBlockedMessage when io_uring_setup fails with ENOSYS or EPERM; Internal with the errno
// for other failures (those are not about permission, e.g. ENOMEM under a low RLIMIT_MEMLOCK).
absl::Status ProbeIoUring();

// The one line for io_uring_setup failing with `error` (ENOSYS or EPERM): names io_uring,
// seccomp and the fix (k8s/mailring-seccomp.json), no newline.
std::string IoUringBlockedMessage(int error);

}  // namespace mailring::control
