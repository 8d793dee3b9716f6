#include "control/metrics.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"

namespace mailring::control {
namespace {

std::shared_ptr<const core::RouteTable> NoRoutes() {
  return std::make_shared<const core::RouteTable>();
}

TEST(MetricsTest, SumsEveryWorkersCountersIntoPrometheusText) {
  core::Worker first(0, NoRoutes(), core::WorkerOptions{});
  core::WorkerOptions small_pool;
  small_pool.max_pipes = 8;
  core::Worker second(1, NoRoutes(), small_pool);
  first.mutable_counters().sessions_accepted = 5;
  second.mutable_counters().sessions_accepted = 7;
  first.mutable_counters().sessions_open = 2;
  first.mutable_counters().logins_ok = 4;
  second.mutable_counters().logins_failed = 1;
  first.mutable_counters().bytes_client_to_upstream = 100;
  second.mutable_counters().bytes_upstream_to_client = 2000;
  first.mutable_counters().recv_ring_empty = 3;
  second.mutable_counters().recv_ring_empty = 4;
  const std::string text = RenderMetrics({.workers = {&first, &second}});
  for (const char* line : {
           "mailring_sessions_total 12\n",
           "mailring_sessions_open 2\n",
           "mailring_logins_total{result=\"ok\"} 4\n",
           "mailring_logins_total{result=\"failed\"} 1\n",
           "mailring_relayed_bytes_total{direction=\"client_to_upstream\"} 100\n",
           "mailring_relayed_bytes_total{direction=\"upstream_to_client\"} 2000\n",
           "mailring_recv_buffer_ring_empty_total 7\n",
           "# TYPE mailring_recv_buffer_ring_empty_total counter\n",
           "# TYPE mailring_sessions_open gauge\n",
           "mailring_pipes_in_use 0\n",
           "mailring_pipes_limit 520\n",
           "# TYPE mailring_pipes_in_use gauge\n",
           "mailring_pipe_pool_exhausted_total 0\n",
           "mailring_pipe_create_failures_total 0\n",
           "mailring_relay_copy_fallbacks_total 0\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << " missing from:\n" << text;
  }
  EXPECT_EQ(text.find("mailring_token_requests"), std::string::npos)
      << "no control thread, no token metrics";
}

}  // namespace
}  // namespace mailring::control
