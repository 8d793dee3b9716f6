// LeaderElection: one writer among mailring's pods, with a coordination.k8s.io/v1 Lease, the
// way client-go's leaderelection does it.
//
// Every retry period the pod reads the Lease. Free (absent, or its holder has not renewed for
// leaseDurationSeconds as observed on this pod's own clock — clocks of pods are never compared)
// → it writes itself as holder with the resourceVersion it read; a concurrent writer gets 409
// and stays follower. The holder renews every retry period; if it cannot renew for the renew
// deadline it steps down before anybody else can take over (renew deadline < lease duration).
//
// Contract: control thread only; Tick() is called from the control loop; on_change runs there.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/time/time.h"
#include "control/kube/kube_client.h"
#include "core/clock.h"

namespace mailring::control {

struct LeaderElectionOptions {
  std::string namespace_name;
  std::string lease_name = "mailring-leader";
  std::string identity;  // the pod's name
  absl::Duration lease_duration = absl::Seconds(15);
  absl::Duration renew_deadline = absl::Seconds(10);
  absl::Duration retry_period = absl::Seconds(2);
  // A monotonic clock in milliseconds (KubeClientOptions::now_ms's kind): when a Lease was seen
  // renewed and when this pod last renewed it. Tick()'s `now_ms` must come from the same clock.
  std::function<int64_t()> now_ms = core::MonotonicMs;
};

class LeaderElection {
 public:
  LeaderElection(KubeClient* kube, LeaderElectionOptions options,
                 std::function<void(bool leader)> on_change);

  // Returns when it wants to run again (on options.now_ms's clock).
  int64_t Tick(int64_t now_ms);
  bool leader() const { return leader_; }

 private:
  void OnRead(absl::StatusOr<KubeResponse> response);
  void OnWritten(absl::StatusOr<KubeResponse> response);
  void SetLeader(bool leader);
  std::string LeaseJson(std::string_view resource_version, std::string_view acquire_time,
                        int64_t transitions) const;

  KubeClient* kube_;
  LeaderElectionOptions options_;
  std::function<void(bool)> on_change_;
  bool leader_ = false;
  bool in_flight_ = false;
  int64_t next_attempt_ms_ = 0;
  int64_t last_renew_ms_ = 0;
  // What this pod last saw of the Lease, and when (its own clock).
  std::string observed_holder_;
  std::string observed_renew_time_;
  int64_t observed_at_ms_ = 0;
  int64_t observed_duration_ms_ = 0;
  std::string observed_acquire_time_;
  int64_t observed_transitions_ = 0;
};

std::string NowRfc3339Micro();

}  // namespace mailring::control
