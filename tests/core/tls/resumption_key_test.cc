// TlsResumptionKey: equal routes share a key; any TLS-relevant difference separates them.
#include "core/tls/resumption_key.h"

#include <functional>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace mailring::core {
namespace {

Route BaseRoute() {
  Route route;
  route.upstream = *SocketAddress::ParseNumeric("127.0.0.1:993");
  route.tls = Route::Tls::kImplicit;
  route.tls_verify = true;
  route.tenant = "tenant-a";
  route.destination.name = "mail-dest";
  route.destination.host = "imap.example.com";
  route.destination.port = 993;
  return route;
}

TEST(TlsResumptionKeyTest, EqualRoutesShareAKey) {
  Route other = BaseRoute();
  other.index = 7;  // where it listens does not matter, only where it goes
  other.listen = *SocketAddress::ParseNumeric("127.0.0.1:1143");
  EXPECT_EQ(TlsResumptionKey(BaseRoute()), TlsResumptionKey(other));
}

TEST(TlsResumptionKeyTest, EveryTlsRelevantFieldSeparatesKeys) {
  const std::vector<std::function<void(Route&)>> changes = {
      [](Route& r) { r.tenant = "tenant-b"; },
      [](Route& r) { r.destination.name = "other-dest"; },
      [](Route& r) { r.destination.host = "imap.example.org"; },
      [](Route& r) { r.destination.port = 994; },
      [](Route& r) { r.upstream = *SocketAddress::ParseNumeric("127.0.0.2:993"); },
      [](Route& r) { r.via_connectivity_proxy = true; },
      [](Route& r) { r.destination.cloud_connector_location_id = "loc"; },
      [](Route& r) { r.tls = Route::Tls::kStartTlsRequired; },
      [](Route& r) { r.tls_verify = false; },
  };
  const std::string base = TlsResumptionKey(BaseRoute());
  std::vector<std::string> keys = {base};
  for (size_t i = 0; i < changes.size(); ++i) {
    Route route = BaseRoute();
    changes[i](route);
    const std::string key = TlsResumptionKey(route);
    for (const std::string& seen : keys) EXPECT_NE(key, seen) << "change " << i;
    keys.push_back(key);
  }
}

TEST(TlsResumptionKeyTest, FieldBoundariesCannotCollide) {
  Route a = BaseRoute();
  a.tenant = "x;";
  a.destination.name = "y";
  Route b = BaseRoute();
  b.tenant = "x";
  b.destination.name = ";y";
  EXPECT_NE(TlsResumptionKey(a), TlsResumptionKey(b));
}

TEST(TlsResumptionKeyTest, HoldsNoCredentials) {
  Route route = BaseRoute();
  route.destination.user = "alice@example.com";
  route.destination.password = proto::Secret("hunter2-secret");
  const std::string key = TlsResumptionKey(route);
  EXPECT_EQ(key.find("alice"), std::string::npos);
  EXPECT_EQ(key.find("hunter2"), std::string::npos);
  EXPECT_EQ(key, TlsResumptionKey(BaseRoute()));
}

}  // namespace
}  // namespace mailring::core
