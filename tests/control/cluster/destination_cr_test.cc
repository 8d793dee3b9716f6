#include "control/cluster/destination_cr.h"

#include <string>

#include "gtest/gtest.h"
#include "simdjson.h"

namespace mailring::control {
namespace {

constexpr char kCr[] = R"({"apiVersion":"destination.connectivity.api.sap/v1","kind":"Destination",
  "metadata":{"name":"example-imap","namespace":"apps","uid":"u-1","generation":3,
    "resourceVersion":"42","finalizers":["other/finalizer"]},
  "spec":{"destinationRef":{"name":"example-dest-imap"},"destinationServiceInstanceName":"inst",
    "service":{"port":1143}}})";

TEST(DestinationCrTest, ParsesSpecAndMetadata) {
  absl::StatusOr<DestinationCr> cr = ParseDestinationCr(kCr);
  ASSERT_TRUE(cr.ok()) << cr.status();
  EXPECT_EQ(cr->namespace_name, "apps");
  EXPECT_EQ(cr->name, "example-imap");
  EXPECT_EQ(cr->uid, "u-1");
  EXPECT_EQ(cr->generation, 3);
  EXPECT_EQ(cr->resource_version, "42");
  EXPECT_EQ(cr->destination_name, "example-dest-imap");
  EXPECT_EQ(cr->instance, "inst");
  EXPECT_EQ(cr->port, 1143);
  EXPECT_FALSE(cr->deleting);
  ASSERT_EQ(cr->tenants.size(), 1u);
  EXPECT_EQ(cr->tenants[0], "") << "no annotation: single tenant";
  EXPECT_TRUE(cr->tenants_error.empty());
}

TEST(DestinationCrTest, AbsentPortIsLeftToTheProtocolAndDeletionIsSeen) {
  absl::StatusOr<DestinationCr> cr = ParseDestinationCr(R"({"metadata":{"name":"a","namespace":"b",
    "deletionTimestamp":"2026-11-26T00:00:00Z"},"spec":{"destinationRef":{"name":"d"}}})");
  ASSERT_TRUE(cr.ok());
  EXPECT_EQ(cr->port, 0) << "the destination's protocol decides (143, 993, 587, ...)";
  EXPECT_TRUE(cr->deleting);
}

TEST(DestinationCrTest, TenantAnnotationListsTenants) {
  absl::StatusOr<DestinationCr> cr = ParseDestinationCr(R"({"metadata":{"name":"a","namespace":"b",
    "annotations":{"transparent-proxy.connectivity.api.sap/tenant-subdomains":"[\"t1\", \"t-2\"]"}},
    "spec":{"destinationRef":{"name":"d"}}})");
  ASSERT_TRUE(cr.ok());
  EXPECT_EQ(cr->tenants, (std::vector<std::string>{"t1", "t-2"}));
}

TEST(DestinationCrTest, InvalidTenantAnnotationIsReportedNotGuessed) {
  for (const char* annotation : {R"(\"t1\")", R"(not json)", R"([\"Upper\"])", R"([])",
                                 R"([1])", R"([\"a b\"])"}) {
    const std::string json = std::string(R"({"metadata":{"name":"a","namespace":"b","annotations":{)"
                                         R"("transparent-proxy.connectivity.api.sap/tenant-subdomains":")") +
                             annotation + R"("}},"spec":{"destinationRef":{"name":"d"}}})";
    absl::StatusOr<DestinationCr> cr = ParseDestinationCr(json);
    ASSERT_TRUE(cr.ok()) << json;
    EXPECT_FALSE(cr->tenants_error.empty()) << annotation;
    EXPECT_TRUE(cr->tenants.empty()) << annotation;
  }
}

TEST(DestinationCrTest, ClientServiceNamesAreDns1035Labels) {
  DestinationCr cr;
  cr.name = "example-imap";
  EXPECT_EQ(*ClientServiceName(cr, ""), "example-imap");
  EXPECT_EQ(*ClientServiceName(cr, "tenant-a"), "example-imap-tenant-a");
  cr.name = std::string(60, 'a');
  EXPECT_FALSE(ClientServiceName(cr, "tenant").ok()) << "longer than 63";
  EXPECT_TRUE(IsDns1035Label("a-1"));
  EXPECT_FALSE(IsDns1035Label("1a"));
  EXPECT_FALSE(IsDns1035Label("a-"));
  EXPECT_FALSE(IsDns1035Label("A"));
  EXPECT_FALSE(IsDns1035Label("a.b"));
}

TEST(DestinationCrTest, ManagedServiceNamesAreStableUniqueAndValid) {
  const std::string a = ManagedServiceName("apps", "example-imap", "");
  EXPECT_EQ(a, ManagedServiceName("apps", "example-imap", ""));
  EXPECT_NE(a, ManagedServiceName("apps", "example-imap", "t1"));
  EXPECT_NE(a, ManagedServiceName("apps2", "example-imap", ""));
  // "a-b" + "c" and "a" + "b-c" read the same but must not collide.
  EXPECT_NE(ManagedServiceName("a-b", "c", ""), ManagedServiceName("a", "b-c", ""));
  EXPECT_TRUE(IsDns1035Label(a)) << a;
  const std::string long_name =
      ManagedServiceName(std::string(63, 'n'), std::string(63, 'c'), std::string(63, 't'));
  EXPECT_TRUE(IsDns1035Label(long_name)) << long_name;
}

TEST(DestinationCrTest, ManagedServiceRoundTrips) {
  ManagedServiceSpec spec;
  spec.name = ManagedServiceName("apps", "example-imap", "t1");
  spec.mailring_namespace = "mailring";
  spec.cr_namespace = "apps";
  spec.cr_name = "example-imap";
  spec.cr_uid = "u-1";
  spec.tenant = "t1";
  spec.destination_name = "example-dest-imap";
  spec.instance = "inst";
  spec.port = 143;
  spec.target_port = 20007;
  const std::string json = ManagedServiceJson(spec);
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  ASSERT_EQ(parser.parse(json).get(root), simdjson::SUCCESS) << json;
  std::string_view policy;
  ASSERT_EQ(root.at_pointer("/spec/internalTrafficPolicy").get_string().get(policy),
            simdjson::SUCCESS);
  EXPECT_EQ(policy, "Local");
  absl::StatusOr<ManagedService> parsed = ParseManagedService(json);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->name, spec.name);
  EXPECT_EQ(parsed->cr_namespace, "apps");
  EXPECT_EQ(parsed->cr_name, "example-imap");
  EXPECT_EQ(parsed->tenant, "t1");
  EXPECT_EQ(parsed->destination_name, "example-dest-imap");
  EXPECT_EQ(parsed->instance, "inst");
  EXPECT_EQ(parsed->port, 143);
  EXPECT_EQ(parsed->target_port, 20007);

  const std::string client = ClientServiceJson(spec, "example-imap-t1", "cluster.local");
  ASSERT_EQ(parser.parse(client).get(root), simdjson::SUCCESS) << client;
  std::string_view external;
  ASSERT_EQ(root.at_pointer("/spec/externalName").get_string().get(external), simdjson::SUCCESS);
  EXPECT_EQ(external, spec.name + ".mailring.svc.cluster.local");
}

TEST(DestinationCrTest, ForeignServicesAreNotManaged) {
  absl::StatusOr<ManagedService> parsed = ParseManagedService(
      R"({"metadata":{"name":"x","labels":{"app":"other"}},"spec":{"ports":[{"port":143}]}})");
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kNotFound);
}

TEST(DestinationCrTest, StatusCarriesConditionAndTenants) {
  absl::StatusOr<DestinationCr> cr = ParseDestinationCr(kCr);
  ASSERT_TRUE(cr.ok());
  const std::string status = StatusJson(
      *cr, false, "ConfigurationError-ReferencedDestination-NotFound",
      "destination \"example-dest-imap\" not found", {{"t1", "example-imap-t1", "Error", "why"}},
      "2026-11-26T23:00:00.000000Z");
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  ASSERT_EQ(parser.parse(status).get(root), simdjson::SUCCESS) << status;
  std::string_view reason, value, tenant;
  ASSERT_EQ(root.at_pointer("/status/conditions/0/reason").get_string().get(reason),
            simdjson::SUCCESS);
  EXPECT_EQ(reason, "ConfigurationError-ReferencedDestination-NotFound");
  ASSERT_EQ(root.at_pointer("/status/conditions/0/status").get_string().get(value),
            simdjson::SUCCESS);
  EXPECT_EQ(value, "False");
  ASSERT_EQ(root.at_pointer("/status/tenants/0/serviceName").get_string().get(tenant),
            simdjson::SUCCESS);
  EXPECT_EQ(tenant, "example-imap-t1");
  ASSERT_EQ(root.at_pointer("/status/tenants/0/tenantSubdomain").get_string().get(tenant),
            simdjson::SUCCESS)
      << "SAP's CRD types each entry as {tenantSubdomain}";
  EXPECT_EQ(tenant, "t1");
  std::string_view rv;
  ASSERT_EQ(root.at_pointer("/metadata/resourceVersion").get_string().get(rv), simdjson::SUCCESS);
  EXPECT_EQ(rv, "42") << "status writes are optimistic: 409 on a stale version";
}

}  // namespace
}  // namespace mailring::control
