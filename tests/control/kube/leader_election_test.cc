// Leader election against the fake Kubernetes API server: one leader among candidates, a
// takeover only after the holder stops renewing for the lease duration. The candidates' clock is
// driven by the test (LeaderElectionOptions::now_ms); only the HTTP round trips take real time,
// and each step waits for them to finish, so the timing asserted is exact to a step however
// loaded the machine is.
#include "control/kube/leader_election.h"

#include <memory>
#include <vector>

#include "control/http_client.h"
#include "control/kube/kube_client.h"
#include "gtest/gtest.h"
#include "tests/fakes/kube_apiserver.h"

namespace mailring::control {
namespace {

constexpr int64_t kLeaseDurationMs = 2000;  // whole seconds: the Lease carries seconds
constexpr int64_t kRenewDeadlineMs = 1000;
constexpr int64_t kRetryPeriodMs = 200;
constexpr int64_t kStepMs = 50;  // how far the clock moves between two rounds of Tick()

class LeaderElectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fakes::FakeKubeApiServer::Options options;
    options.require_namespaces = false;
    api_ = std::make_unique<fakes::FakeKubeApiServer>(options);
    ASSERT_TRUE(api_->Start().ok());
    KubeConfig config;
    config.server = api_->Url();
    kube_ = std::make_unique<KubeClient>(&http_, config);
  }
  void TearDown() override {
    kube_.reset();
    api_->Stop();
  }
  std::unique_ptr<LeaderElection> Candidate(const std::string& identity, int* changes,
                                            bool* leader) {
    LeaderElectionOptions options;
    options.namespace_name = "mailring";
    options.identity = identity;
    options.lease_duration = absl::Milliseconds(kLeaseDurationMs);
    options.renew_deadline = absl::Milliseconds(kRenewDeadlineMs);
    options.retry_period = absl::Milliseconds(kRetryPeriodMs);
    options.now_ms = [this] { return now_ms_; };
    return std::make_unique<LeaderElection>(kube_.get(), options, [changes, leader](bool now) {
      ++*changes;
      *leader = now;
    });
  }
  // One round of the control loop: every candidate ticks at the current time, then the requests
  // they started (and those their callbacks start) finish before the clock moves on.
  void Step(const std::vector<LeaderElection*>& candidates) {
    for (LeaderElection* candidate : candidates) candidate->Tick(now_ms_);
    const absl::Time deadline = absl::Now() + absl::Seconds(30);  // a bound, not a timing
    while (http_.in_flight() > 0 && absl::Now() < deadline) http_.Poll(absl::Milliseconds(20));
    ASSERT_EQ(http_.in_flight(), 0u) << "the fake API server answers";
    now_ms_ += kStepMs;
  }
  // Drives the candidates for `ms` milliseconds of their clock.
  void Run(const std::vector<LeaderElection*>& candidates, int64_t ms) {
    const int64_t end = now_ms_ + ms;
    while (now_ms_ < end && !HasFatalFailure()) Step(candidates);
  }

  int64_t now_ms_ = 1'000'000;
  HttpClient http_;
  std::unique_ptr<fakes::FakeKubeApiServer> api_;
  std::unique_ptr<KubeClient> kube_;
};

TEST_F(LeaderElectionTest, ExactlyOneLeaderThenTakeoverAfterTheHolderStops) {
  int changes_a = 0, changes_b = 0;
  bool leader_a = false, leader_b = false;
  std::unique_ptr<LeaderElection> a = Candidate("pod-a", &changes_a, &leader_a);
  std::unique_ptr<LeaderElection> b = Candidate("pod-b", &changes_b, &leader_b);
  Run({a.get(), b.get()}, 2000);
  EXPECT_NE(leader_a, leader_b) << "exactly one leader";
  EXPECT_EQ(a->leader(), leader_a);
  // Stable: nobody flips while the leader renews, over several lease durations.
  const int flips = changes_a + changes_b;
  Run({a.get(), b.get()}, 3 * kLeaseDurationMs);
  EXPECT_EQ(changes_a + changes_b, flips);
  // The leader stops (pod gone): the other takes over only after the lease expired. The
  // holder's last renewal was at most a retry period before the stop, the follower saw it at
  // most a retry period later, and it looks again every retry period: the takeover comes more
  // than the lease duration less a retry period after the stop, at most two retry periods more.
  LeaderElection* follower = leader_a ? b.get() : a.get();
  const bool* follower_flag = leader_a ? &leader_b : &leader_a;
  const int64_t stopped_at = now_ms_;
  while (!*follower_flag && now_ms_ < stopped_at + 3 * kLeaseDurationMs && !HasFatalFailure()) {
    Step({follower});
  }
  ASSERT_TRUE(*follower_flag) << "the follower took over";
  const int64_t waited = now_ms_ - kStepMs - stopped_at;  // Step() moved the clock after it
  EXPECT_GT(waited, kLeaseDurationMs - kRetryPeriodMs) << "waited for the lease to expire";
  EXPECT_LE(waited, kLeaseDurationMs + 2 * kRetryPeriodMs) << "took over once it expired";
}

TEST_F(LeaderElectionTest, LeaderStepsDownWhenItCannotRenew) {
  int changes = 0;
  bool leader = false;
  std::unique_ptr<LeaderElection> a = Candidate("pod-a", &changes, &leader);
  Run({a.get()}, 800);
  ASSERT_TRUE(leader);
  api_->Stop();  // the API server goes away: renewals fail
  // The last renewal was at most a retry period before the stop: still leader until the renew
  // deadline minus that, no longer leader a retry period (plus a step) after the deadline.
  Run({a.get()}, kRenewDeadlineMs - kRetryPeriodMs);
  EXPECT_TRUE(leader) << "kept leading within the renew deadline";
  Run({a.get()}, 2 * kRetryPeriodMs + kStepMs);
  EXPECT_FALSE(leader) << "stepped down after the renew deadline";
}

TEST_F(LeaderElectionTest, IdentityWithJsonSpecialCharactersStillWinsTheLease) {
  // A pod name cannot hold these, but --identity can: the Lease body must stay valid JSON (the
  // API server would refuse it and nobody would ever lead).
  int changes = 0;
  bool leader = false;
  std::unique_ptr<LeaderElection> a = Candidate(R"(pod "a" \ 1)", &changes, &leader);
  Run({a.get()}, 800);
  EXPECT_TRUE(leader);
}

}  // namespace
}  // namespace mailring::control
