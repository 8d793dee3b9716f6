// Start-up validation of the destinations file: every bad file makes mailring exit with code 2
// before opening any port, with a message naming the route (its listen address) and the field.
// The bad route is the second one, after a valid route, so "no port opened" means something.
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/integration/mailring_test.h"

namespace mailring::integration {
namespace {

constexpr char kPassword[] = "do-not-log-Xq4";

struct BadFileCase {
  std::string name;
  // Turns the second route (a valid copy of the first) into the bad one.
  std::function<void(Route& bad, const Route& good)> spoil;
  // Must all appear in mailring's stderr.
  std::vector<std::string> expected;
};

void PrintTo(const BadFileCase& c, std::ostream* os) { *os << c.name; }

class DestinationsFileTest : public testing::TestWithParam<BadFileCase> {
 protected:
  TempDir dir_;
};

TEST_P(DestinationsFileTest, RejectsBadRouteNamingRouteAndField) {
  const BadFileCase& c = GetParam();
  uint16_t good_port = PickFreeLoopbackPort();
  uint16_t bad_port = PickFreeLoopbackPort();
  Route good{absl::StrCat("127.0.0.1:", good_port), BasicDestination("alice", kPassword, 143)};
  Route bad{absl::StrCat("127.0.0.1:", bad_port), good.destination};
  c.spoil(bad, good);
  std::string json = DestinationsFileJson({good, bad});

  MR_ASSERT_OK_AND_ASSIGN(MailringExit result,
                          RunMailringToExit(dir_.path(), json, {good_port, bad_port}));
  EXPECT_EQ(result.exit_code, 2) << result.log;
  EXPECT_TRUE(absl::StrContains(result.log, bad.listen))
      << "stderr does not name the route's listen address " << bad.listen << ":\n"
      << result.log;
  for (const std::string& needle : c.expected) {
    EXPECT_TRUE(absl::StrContains(result.log, needle)) << "stderr lacks \"" << needle << "\":\n"
                                                       << result.log;
  }
  EXPECT_FALSE(absl::StrContains(result.log, kPassword)) << "password echoed:\n" << result.log;
  EXPECT_FALSE(result.ports_accepted) << "a port accepted connections before mailring exited";
  EXPECT_FALSE(PortAcceptsConnections(good_port));
}

INSTANTIATE_TEST_SUITE_P(
    BadRoutes, DestinationsFileTest,
    testing::Values(
        BadFileCase{"MissingHost",
                    [](Route& bad, const Route&) { bad.destination.erase("mail.imap4.host"); },
                    {"mail.imap4.host"}},
        BadFileCase{"NonNumericPort",
                    [](Route& bad, const Route&) { bad.destination["mail.imap4.port"] = "imap"; },
                    {"mail.imap4.port"}},
        BadFileCase{"PortOutOfRange",
                    [](Route& bad, const Route&) { bad.destination["mail.imap4.port"] = "70000"; },
                    {"mail.imap4.port"}},
        BadFileCase{"MissingUser",
                    [](Route& bad, const Route&) { bad.destination.erase("mail.user"); },
                    {"mail.user"}},
        BadFileCase{"MissingPassword",
                    [](Route& bad, const Route&) { bad.destination.erase("mail.password"); },
                    {"mail.password"}},
        BadFileCase{"OAuth2ClientCredentialsWithoutTokenServiceUrl",
                    [](Route& bad, const Route&) {
                      bad.destination["Authentication"] = "OAuth2ClientCredentials";
                    },
                    {"tokenServiceURL"}},
        BadFileCase{
            "UnknownAuthentication",
            [](Route& bad, const Route&) { bad.destination["Authentication"] = "SAMLAssertion"; },
            {"Authentication"}},
        BadFileCase{"RelayOnlyWithStartTls",
                    [](Route& bad, const Route&) {
                      bad.destination["mail.imap4.auth"] = "false";
                      bad.destination["mail.imap4.starttls.required"] = "true";
                    },
                    {"mail.imap4.auth", "STARTTLS"}},
        BadFileCase{"OnPremiseWithoutConnectivityProxy",
                    [](Route& bad, const Route&) { bad.destination["ProxyType"] = "OnPremise"; },
                    {"ProxyType", "--connectivity-proxy"}},
        BadFileCase{"NotAMailDestination",
                    [](Route& bad, const Route&) { bad.destination["Type"] = "HTTP"; },
                    {"Type"}},
        BadFileCase{"DuplicateListen",
                    [](Route& bad, const Route& good) { bad.listen = good.listen; },
                    {"listen"}},
        BadFileCase{"ListenWithoutPort",
                    [](Route& bad, const Route&) { bad.listen = "127.0.0.1"; },
                    {"listen"}}),
    [](const testing::TestParamInfo<BadFileCase>& info) { return info.param.name; });

class DestinationsFileSyntaxTest : public testing::Test {
 protected:
  TempDir dir_;
};

TEST_F(DestinationsFileSyntaxTest, RejectsInvalidJson) {
  MR_ASSERT_OK_AND_ASSIGN(MailringExit result,
                          RunMailringToExit(dir_.path(), "{\"routes\": [{\"listen\": "));
  EXPECT_EQ(result.exit_code, 2) << result.log;
  EXPECT_FALSE(absl::StripAsciiWhitespace(result.log).empty()) << "no message on stderr";
}

TEST_F(DestinationsFileSyntaxTest, RejectsFileWithoutRoutes) {
  MR_ASSERT_OK_AND_ASSIGN(MailringExit result, RunMailringToExit(dir_.path(), "{}"));
  EXPECT_EQ(result.exit_code, 2) << result.log;
  EXPECT_TRUE(absl::StrContains(result.log, "routes")) << result.log;
}

}  // namespace
}  // namespace mailring::integration
