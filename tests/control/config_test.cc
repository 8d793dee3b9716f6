#include "control/config.h"

#include <unistd.h>

#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace mailring::control {
namespace {

Flags Standalone() {
  Flags flags;
  flags.destinations = "/etc/mailring/destinations.json";
  return flags;
}

Flags Cluster() {
  Flags flags;
  flags.kubeconfig = "/home/dev/.kube/config";
  return flags;
}

Environment Host() {
  Environment environment;
  environment.hostname = "mailring-7c9f-abcde";
  environment.cpus_available = 6;
  return environment;
}

std::string ErrorOf(const Flags& flags, const Environment& environment = Host()) {
  absl::StatusOr<Config> config = Config::FromFlags(flags, environment);
  EXPECT_FALSE(config.ok());
  return config.ok() ? "" : std::string(config.status().message());
}

// A service key file in the test's temporary directory.
std::string WriteKey(const std::string& name, const std::string& json) {
  const std::string path =
      ::testing::TempDir() + "/config_test_" + std::to_string(getpid()) + "_" + name + ".json";
  std::ofstream(path) << json;
  return path;
}

constexpr char kKey[] =
    R"({"clientid": "sb-mailring", "clientsecret": "k3y-s3cr3t", "url": "https://uaa.example"})";

TEST(ConfigTest, StandaloneDefaults) {
  absl::StatusOr<Config> config = Config::FromFlags(Standalone(), Host());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->cluster_mode());
  EXPECT_EQ(config->destinations_file, "/etc/mailring/destinations.json");
  EXPECT_EQ(config->log_level, core::LogLevel::kInfo);
  EXPECT_EQ(config->log_format, core::LogFormat::kText);
  EXPECT_EQ(config->worker_count, 6);  // one per CPU
  EXPECT_EQ(config->drain_timeout, absl::Seconds(10));
  EXPECT_EQ(config->worker_options.connect_timeout, absl::Seconds(10));
  EXPECT_EQ(config->worker_options.login_timeout, absl::Seconds(30));
  EXPECT_EQ(config->worker_options.client_auth_timeout, absl::Minutes(2));
  EXPECT_EQ(config->worker_options.idle_timeout, absl::Minutes(30));
  EXPECT_EQ(config->worker_options.recv_buffer_count, 64u);
  EXPECT_EQ(config->worker_options.max_pipes, 512u);
  EXPECT_TRUE(config->worker_options.tls_aes_ni);
  EXPECT_TRUE(config->worker_options.tls_resumption);
  EXPECT_TRUE(config->worker_options.tls_record_takeover);
  EXPECT_FALSE(config->route_options.starttls_opportunistic);
  EXPECT_FALSE(config->route_options.connectivity_proxy.has_value());
  EXPECT_FALSE(config->route_options.has_connectivity_key);
  EXPECT_FALSE(config->route_options.reject_loopback_upstreams);
  EXPECT_FALSE(config->connectivity_key.has_value());
  EXPECT_FALSE(config->admin_listen.has_value());
}

TEST(ConfigTest, FlagValuesReachTheConfig) {
  Flags flags = Standalone();
  flags.workers = 3;
  flags.log_level = "debug";
  flags.log_format = "json";
  flags.drain_timeout = absl::ZeroDuration();  // allowed: BYE at once
  flags.idle_timeout = absl::Minutes(45);
  flags.recv_buffers = 256;
  flags.pipes_per_worker = 0;
  flags.tls_aes_ni = false;
  flags.tls_resumption = false;
  flags.tls_record_takeover = false;
  flags.ca_file = "/etc/ssl/extra.pem";
  flags.upstream_starttls = "opportunistic";
  flags.admin_listen = "127.0.0.1:9090";
  flags.connectivity_proxy = "127.0.0.1";
  absl::StatusOr<Config> config = Config::FromFlags(flags, Host());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->worker_count, 3);
  EXPECT_EQ(config->log_level, core::LogLevel::kDebug);
  EXPECT_EQ(config->log_format, core::LogFormat::kJson);
  EXPECT_EQ(config->drain_timeout, absl::ZeroDuration());
  EXPECT_EQ(config->worker_options.idle_timeout, absl::Minutes(45));
  EXPECT_EQ(config->worker_options.recv_buffer_count, 256u);
  EXPECT_EQ(config->worker_options.max_pipes, 0u);
  EXPECT_FALSE(config->worker_options.tls_aes_ni);
  EXPECT_FALSE(config->worker_options.tls_resumption);
  EXPECT_FALSE(config->worker_options.tls_record_takeover);
  EXPECT_EQ(config->worker_options.ca_file, "/etc/ssl/extra.pem");
  EXPECT_TRUE(config->route_options.starttls_opportunistic);
  ASSERT_TRUE(config->admin_listen.has_value());
  EXPECT_EQ(config->admin_listen->ToString(), "127.0.0.1:9090");
  ASSERT_TRUE(config->route_options.connectivity_proxy.has_value());
  EXPECT_EQ(config->route_options.connectivity_proxy->ToString(), "127.0.0.1:20004");
}

TEST(ConfigTest, ClusterModeFromKubeconfigHasClusterDefaults) {
  absl::StatusOr<Config> config = Config::FromFlags(Cluster(), Host());
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(config->cluster_mode());
  EXPECT_EQ(config->destinations_file, "");
  EXPECT_EQ(config->cluster->kubeconfig_file, "/home/dev/.kube/config");
  const ClusterOptions& options = config->cluster->options;
  EXPECT_EQ(options.mailring_namespace, "mailring");
  EXPECT_EQ(options.pod_name, "mailring-7c9f-abcde");  // the host name
  EXPECT_EQ(options.port_min, 20000);
  EXPECT_EQ(options.port_max, 20999);
  EXPECT_EQ(options.cluster_domain, "cluster.local");
  EXPECT_EQ(options.listen_address, "0.0.0.0");
  EXPECT_EQ(options.default_instance, "");
  EXPECT_TRUE(config->route_options.reject_loopback_upstreams);
  EXPECT_TRUE(options.route_options.reject_loopback_upstreams);
}

TEST(ConfigTest, ClusterModeInAPodUsesTheServiceAccount) {
  Environment pod = Host();
  pod.in_pod = true;
  absl::StatusOr<Config> config = Config::FromFlags(Flags(), pod);
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(config->cluster_mode());
  EXPECT_EQ(config->cluster->kubeconfig_file, "");
}

TEST(ConfigTest, DestinationsFileWinsOverCluster) {
  Flags flags = Cluster();
  flags.destinations = "/etc/mailring/destinations.json";
  Environment pod = Host();
  pod.in_pod = true;
  absl::StatusOr<Config> config = Config::FromFlags(flags, pod);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->cluster_mode());
}

TEST(ConfigTest, ClusterFlagsReachTheOptions) {
  Flags flags = Cluster();
  flags.mailring_namespace = "mail";
  flags.pod_name = "mailring-0";
  flags.port_range = "30000-30009";
  flags.cluster_domain = "corp.local";
  flags.listen_address = "10.0.0.1";
  flags.allow_loopback_upstreams = true;
  flags.destination_service_keys = {"eu10=" + WriteKey("eu10", kKey)};
  absl::StatusOr<Config> config = Config::FromFlags(flags, Host());
  ASSERT_TRUE(config.ok()) << config.status();
  const ClusterOptions& options = config->cluster->options;
  EXPECT_EQ(options.mailring_namespace, "mail");
  EXPECT_EQ(options.pod_name, "mailring-0");
  EXPECT_EQ(options.port_min, 30000);
  EXPECT_EQ(options.port_max, 30009);
  EXPECT_EQ(options.cluster_domain, "corp.local");
  EXPECT_EQ(options.listen_address, "10.0.0.1");
  EXPECT_FALSE(options.route_options.reject_loopback_upstreams);
  ASSERT_EQ(config->cluster->instances.count("eu10"), 1u);
  EXPECT_EQ(config->cluster->instances.at("eu10").client_id, "sb-mailring");
  EXPECT_EQ(options.default_instance, "eu10");  // the only instance
}

TEST(ConfigTest, DefaultInstanceIsNotGuessedAmongSeveral) {
  Flags flags = Cluster();
  flags.destination_service_keys = {"eu10=" + WriteKey("a", kKey), "us10=" + WriteKey("b", kKey)};
  absl::StatusOr<Config> config = Config::FromFlags(flags, Host());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->cluster->options.default_instance, "");
  flags.default_instance = "us10";
  config = Config::FromFlags(flags, Host());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->cluster->options.default_instance, "us10");
}

TEST(ConfigTest, ConnectivityServiceKeyIsLoaded) {
  Flags flags = Standalone();
  flags.connectivity_service_key = WriteKey("connectivity", kKey);
  absl::StatusOr<Config> config = Config::FromFlags(flags, Host());
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(config->connectivity_key.has_value());
  EXPECT_EQ(config->connectivity_key->token_url, "https://uaa.example/oauth/token");
  EXPECT_TRUE(config->route_options.has_connectivity_key);
}

TEST(ConfigTest, NoModeIsAnError) {
  EXPECT_EQ(ErrorOf(Flags()),
            "--destinations FILE (standalone) or --kubeconfig FILE / a pod's service account "
            "(cluster mode) is required (see --help)");
}

TEST(ConfigTest, LoggingErrorsNameTheFlag) {
  Flags flags = Standalone();
  flags.log_level = "loud";
  EXPECT_EQ(ErrorOf(flags).rfind("--log-level: ", 0), 0u) << ErrorOf(flags);
  flags = Standalone();
  flags.log_format = "xml";
  EXPECT_EQ(ErrorOf(flags).rfind("--log-format: ", 0), 0u) << ErrorOf(flags);
}

TEST(ConfigTest, UpstreamStarttlsMustBeKnown) {
  Flags flags = Standalone();
  flags.upstream_starttls = "always";
  EXPECT_EQ(ErrorOf(flags), "--upstream-starttls must be 'destination' or 'opportunistic'");
}

TEST(ConfigTest, ConnectivityErrorsNameTheFlag) {
  Flags flags = Standalone();
  flags.connectivity_service_key = "/nonexistent/connectivity.json";
  EXPECT_EQ(ErrorOf(flags).rfind("--connectivity-service-key: ", 0), 0u) << ErrorOf(flags);
  flags = Standalone();
  flags.connectivity_service_key = WriteKey("no_secret", R"({"clientid": "x", "url": "u"})");
  EXPECT_EQ(ErrorOf(flags), "--connectivity-service-key: service key " +
                                flags.connectivity_service_key +
                                ": field \"clientsecret\" is required");
  flags = Standalone();
  flags.connectivity_proxy = "proxy.example:99999";
  EXPECT_EQ(ErrorOf(flags), "--connectivity-proxy: \"proxy.example:99999\" has no valid port");
}

TEST(ConfigTest, PortRangeMustBeFirstDashLast) {
  for (const char* range : {"20000", "a-b", "0-10", "10-65536", "300-200", "-5", ""}) {
    Flags flags = Cluster();
    flags.port_range = range;
    EXPECT_EQ(ErrorOf(flags), std::string("cluster mode: --port-range: \"") + range +
                                  "\" is not FIRST-LAST within 1-65535");
  }
}

TEST(ConfigTest, DestinationServiceKeyMustBeNameEqualsFile) {
  for (const char* entry : {"eu10", "=/etc/key.json"}) {
    Flags flags = Cluster();
    flags.destination_service_keys = {entry};
    EXPECT_EQ(ErrorOf(flags), std::string("cluster mode: --destination-service-key: \"") + entry +
                                  "\" is not NAME=FILE");
  }
  Flags flags = Cluster();
  flags.destination_service_keys = {"eu10=/nonexistent/key.json"};
  EXPECT_EQ(ErrorOf(flags).rfind("cluster mode: ", 0), 0u);
}

TEST(ConfigTest, TimeoutsMustBePositive) {
  const struct {
    absl::Duration Flags::*field;
    const char* name;
  } timeouts[] = {{&Flags::connect_timeout, "--connect-timeout"},
                  {&Flags::login_timeout, "--login-timeout"},
                  {&Flags::client_auth_timeout, "--client-auth-timeout"},
                  {&Flags::idle_timeout, "--idle-timeout"}};
  for (const auto& timeout : timeouts) {
    Flags flags = Standalone();
    flags.*timeout.field = absl::ZeroDuration();
    EXPECT_EQ(ErrorOf(flags), std::string(timeout.name) + " must be positive");
  }
  Flags flags = Standalone();
  flags.drain_timeout = -absl::Seconds(1);
  EXPECT_EQ(ErrorOf(flags), "--drain-timeout must be positive");
}

TEST(ConfigTest, WorkerLimitsAreChecked) {
  for (int recv_buffers : {0, 3, 65536, -64}) {
    Flags flags = Standalone();
    flags.recv_buffers = recv_buffers;
    EXPECT_EQ(ErrorOf(flags), "--recv-buffers must be a power of two from 1 to 32768");
  }
  for (int pipes : {-1, 65537}) {
    Flags flags = Standalone();
    flags.pipes_per_worker = pipes;
    EXPECT_EQ(ErrorOf(flags), "--pipes-per-worker must be between 0 and 65536");
  }
  for (int workers : {-1, 257}) {
    Flags flags = Standalone();
    flags.workers = workers;
    EXPECT_EQ(ErrorOf(flags), "--workers must be between 0 and 256");
  }
}

TEST(ConfigTest, AdminListenMustBeNumeric) {
  Flags flags = Standalone();
  flags.admin_listen = "localhost:9090";
  EXPECT_EQ(ErrorOf(flags).rfind("--admin-listen: ", 0), 0u) << ErrorOf(flags);
}

}  // namespace
}  // namespace mailring::control
