#include "control/io_uring_probe.h"

#include <liburing.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "proto/str_cat.h"

namespace mailring::control {

std::string IoUringBlockedMessage(int error) {
  return mailring::StrCat(
      "io_uring is blocked: io_uring_setup failed with ", std::strerror(error), " (",
      error == ENOSYS ? "ENOSYS" : "EPERM",
      "), which is what a container runtime's default seccomp profile does; mailring needs the "
      "io_uring_setup, io_uring_enter and io_uring_register syscalls. Fix: run it with the "
      "seccomp profile k8s/mailring-seccomp.json (Kubernetes: securityContext.seccompProfile "
      "{type: Localhost, localhostProfile: mailring-seccomp.json}, see k8s/README.md; podman or "
      "docker: --security-opt seccomp=k8s/mailring-seccomp.json), and check that the kernel "
      "allows io_uring (sysctl kernel.io_uring_disabled=0)");
}

absl::Status ProbeIoUring() {
  io_uring ring;
  const int rc = io_uring_queue_init(1, &ring, 0);
  if (rc == 0) {
    io_uring_queue_exit(&ring);
    return absl::OkStatus();
  }
  if (rc == -ENOSYS || rc == -EPERM) {
    return absl::FailedPreconditionError(IoUringBlockedMessage(-rc));
  }
  return absl::InternalError(
      mailring::StrCat("io_uring_setup failed: ", std::strerror(-rc), " (errno ", -rc, ")"));
}

}  // namespace mailring::control
