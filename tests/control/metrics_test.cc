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
  core::Worker second(1, NoRoutes(), core::WorkerOptions{});
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
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << " missing from:\n" << text;
  }
  EXPECT_EQ(text.find("mailring_token_requests"), std::string::npos)
      << "no control thread, no token metrics";
}

}  // namespace
}  // namespace mailring::control
