// ProbeIoUring against a real seccomp filter: a child process installs a filter that fails
// io_uring_setup with ENOSYS (what podman's default profile does) or EPERM, as a container
// runtime would, and the probe must name io_uring, seccomp and the profile that fixes it.
#include "control/io_uring_probe.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>

#include "gtest/gtest.h"

namespace mailring::control {
namespace {

// Makes io_uring_setup fail with `error` in this process (and only that syscall).
void BlockIoUringSetup(int error) {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (static_cast<unsigned>(error) & 0xffff)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog program = {static_cast<unsigned short>(sizeof(filter) / sizeof(filter[0])), filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
    std::perror("seccomp");
    std::_Exit(3);
  }
}

// In a child: block io_uring_setup with `error`, probe, print the message, exit 0 when the
// probe reported FailedPrecondition.
void ProbeUnderFilter(int error) {
  BlockIoUringSetup(error);
  const absl::Status status = ProbeIoUring();
  std::fprintf(stderr, "%s\n", std::string(status.message()).c_str());
  std::_Exit(status.code() == absl::StatusCode::kFailedPrecondition ? 0 : 1);
}

TEST(IoUringProbeTest, WorksWhereIoUringIsAllowed) { EXPECT_TRUE(ProbeIoUring().ok()); }

TEST(IoUringProbeDeathTest, EnosysFromSeccompNamesTheProfile) {
  EXPECT_EXIT(ProbeUnderFilter(ENOSYS), testing::ExitedWithCode(0),
              "io_uring is blocked: io_uring_setup failed with Function not implemented "
              "\\(ENOSYS\\).*seccomp.*io_uring_enter.*k8s/mailring-seccomp.json");
}

TEST(IoUringProbeDeathTest, EpermNamesTheProfileAndTheSysctl) {
  EXPECT_EXIT(ProbeUnderFilter(EPERM), testing::ExitedWithCode(0),
              "io_uring is blocked: .*\\(EPERM\\).*seccomp.*k8s/mailring-seccomp.json.*"
              "io_uring_disabled");
}

TEST(IoUringProbeTest, MessageIsOneLine) {
  for (const int error : {ENOSYS, EPERM}) {
    EXPECT_EQ(IoUringBlockedMessage(error).find('\n'), std::string::npos);
  }
}

}  // namespace
}  // namespace mailring::control
