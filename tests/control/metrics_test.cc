#include "control/metrics.h"

#include "control/build_info.h"
#include "proto/str_cat.h"

#include <algorithm>
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
  first.mutable_counters().tls_handshakes_full = 3;
  second.mutable_counters().tls_handshakes_full = 2;
  second.mutable_counters().tls_handshakes_resumed = 9;
  first.mutable_counters().tls_relays_ktls = 2;
  second.mutable_counters().tls_relays_userspace = 3;
  second.mutable_counters()
      .ktls_fallbacks[static_cast<size_t>(core::KtlsFallback::kNoKernelTls)] = 3;
  first.mutable_counters().ktls_spliced_bytes = 1000;
  second.mutable_counters().ktls_spliced_bytes = 24;
  first.mutable_counters().ktls_control_records = 5;
  const std::string text = RenderMetrics({.workers = {&first, &second}});
  for (const char* line : {
           "mailring_sessions_total 12\n",
           "mailring_sessions_open 2\n",
           "mailring_logins_total{result=\"ok\"} 4\n",
           "mailring_logins_total{result=\"failed\"} 1\n",
           "mailring_relayed_bytes_total{direction=\"client_to_upstream\"} 100\n",
           "mailring_relayed_bytes_total{direction=\"upstream_to_client\"} 2000\n",
           "mailring_recv_buffer_ring_empty_total 7\n",
           "mailring_tls_handshakes_total{kind=\"full\"} 5\n",
           "mailring_tls_handshakes_total{kind=\"resumed\"} 9\n",
           "mailring_tls_relay_sessions_total{path=\"ktls\"} 2\n",
           "mailring_tls_relay_sessions_total{path=\"userspace\"} 3\n",
           "mailring_ktls_fallbacks_total{reason=\"no_kernel_tls\"} 3\n",
           "mailring_ktls_fallbacks_total{reason=\"not_at_record_boundary\"} 0\n",
           "mailring_ktls_spliced_bytes_total 1024\n",
           "mailring_ktls_control_records_total 5\n",
           "# TYPE mailring_ktls_fallbacks_total counter\n",
           "# TYPE mailring_tls_handshakes_total counter\n",
           "# TYPE mailring_tls_records_total counter\n",
           "mailring_tls_records_total{engine=\"record_layer\",direction=\"received\"} ",
           "# TYPE mailring_tls_record_takeovers_total counter\n",
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

TEST(MetricsTest, BuildInfoCarriesTheVersionAndRevisionOfThisBinary) {
  const std::string text = RenderMetrics({});
  const BuildInfo& build = GetBuildInfo();
  EXPECT_FALSE(build.version.empty());
  EXPECT_FALSE(build.git_revision.empty());
  EXPECT_FALSE(build.wolfssl.empty());
  const std::string line = mailring::StrCat(
      "mailring_build_info{version=\"", build.version, "\",revision=\"", build.git_revision,
      "\",liburing=\"", build.liburing, "\",wolfssl=\"", build.wolfssl, "\"} 1\n");
  EXPECT_NE(text.find(line), std::string::npos) << line << " missing from:\n" << text;
  EXPECT_NE(text.find("# TYPE mailring_build_info gauge\n"), std::string::npos) << text;
}

TEST(MetricsTest, BuildInfoLineNamesEveryVersion) {
  const BuildInfo& build = GetBuildInfo();
  EXPECT_EQ(BuildInfoLine(),
            mailring::StrCat("mailring ", build.version, " (revision ", build.git_revision,
                             ") liburing ", build.liburing, " wolfSSL ", build.wolfssl));
  // CMake's project version: three numbers.
  EXPECT_TRUE(std::count(build.version.begin(), build.version.end(), '.') == 2) << build.version;
}

}  // namespace
}  // namespace mailring::control
