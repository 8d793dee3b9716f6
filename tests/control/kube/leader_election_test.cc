// Leader election against the fake Kubernetes API server: one leader among candidates, a
// takeover only after the holder stops renewing for the lease duration.
#include "control/kube/leader_election.h"

#include <memory>

#include "control/http_client.h"
#include "control/kube/kube_client.h"
#include "core/clock.h"
#include "gtest/gtest.h"
#include "tests/fakes/kube_apiserver.h"

namespace mailring::control {
namespace {

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
    options.lease_duration = absl::Milliseconds(1500);
    options.renew_deadline = absl::Milliseconds(1000);
    options.retry_period = absl::Milliseconds(200);
    return std::make_unique<LeaderElection>(kube_.get(), options, [changes, leader](bool now) {
      ++*changes;
      *leader = now;
    });
  }
  // Drives the candidates like the control loop does, for `ms` milliseconds.
  void Run(std::vector<LeaderElection*> candidates, int64_t ms) {
    const int64_t end = core::MonotonicMs() + ms;
    while (core::MonotonicMs() < end) {
      for (LeaderElection* candidate : candidates) candidate->Tick(core::MonotonicMs());
      http_.Poll(absl::Milliseconds(20));
    }
  }

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
  // Stable: nobody flips while the leader renews.
  const int flips = changes_a + changes_b;
  Run({a.get(), b.get()}, 2000);
  EXPECT_EQ(changes_a + changes_b, flips);
  // The leader stops (pod gone): the other takes over only after the lease expired.
  LeaderElection* follower = leader_a ? b.get() : a.get();
  const bool* follower_flag = leader_a ? &leader_b : &leader_a;
  const int64_t stopped_at = core::MonotonicMs();
  int64_t took_over_at = 0;
  const int64_t end = stopped_at + 5000;
  while (core::MonotonicMs() < end && !*follower_flag) {
    follower->Tick(core::MonotonicMs());
    http_.Poll(absl::Milliseconds(20));
    if (*follower_flag) took_over_at = core::MonotonicMs();
  }
  ASSERT_TRUE(*follower_flag) << "the follower took over";
  // Expiry counts from when the follower last saw the lease renewed (its own clock), which is
  // at least a retry period before the holder stopped, more when the machine is loaded; so
  // only "not at once" is asserted here (the stable phase above shows no takeover while the
  // holder renews).
  EXPECT_GE(took_over_at - stopped_at, 300) << "the follower waited for the lease to expire";
}

TEST_F(LeaderElectionTest, LeaderStepsDownWhenItCannotRenew) {
  int changes = 0;
  bool leader = false;
  std::unique_ptr<LeaderElection> a = Candidate("pod-a", &changes, &leader);
  Run({a.get()}, 800);
  ASSERT_TRUE(leader);
  api_->Stop();  // the API server goes away: renewals fail
  Run({a.get()}, 1800);
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
