// OnPremise destinations end to end: mailring reaches Dovecot only through the fake SAP
// Connectivity Proxy (tests/fakes/connectivity_proxy.h: SOCKS5 with method 0x80), which accepts
// only JWTs that the fake XSUAA of the Connectivity service (a FakeOAuthServer) issued, knows the
// Cloud Connector location ids and maps the virtual host to Dovecot's real ports.
//
//   basic / OAuth2ClientCredentials   PREAUTH + FETCH through the tunnel (Dovecot introspects
//                                     bearer tokens at a second fake authorization server, the
//                                     mail provider's)
//   imap4s / STARTTLS in the tunnel   verified against the virtual host's certificate
//   tenant routes                     their own Connectivity JWT, from the tenant's token host
//   failures                          every SOCKS5 reply code, an unknown location, a missing
//                                     mapping, bad Connectivity credentials → clear BYE
//
// Every test checks that no JWT, client secret or password appears in mailring's log.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/fakes/connectivity_proxy.h"
#include "tests/fakes/oauth_server.h"
#include "tests/integration/mailring_test.h"

namespace mailring::integration {
namespace {

using fakes::FakeConnectivityProxy;
using fakes::FakeOAuthServer;

constexpr char kDestinationName[] = "onprem-dest";
constexpr char kVirtualHost[] = "imap.onprem.internal";
constexpr uint16_t kVirtualImapPort = 143;
constexpr uint16_t kVirtualImapsPort = 993;
constexpr char kLocationId[] = "berlin-cc";
constexpr char kConnectivityClientId[] = "sb-connectivity-it!b17";
constexpr char kMailClientId[] = "mail-provider-client";
constexpr char kCarolPassword[] = "p{5}ass\\";

std::string UniqueSecret(const std::string& prefix) {
  static int counter = 0;
  return absl::StrCat(prefix, "-", absl::ToUnixNanos(absl::Now()), "-", ++counter, "-q9Zk");
}

// A TCP forwarder in front of the Connectivity token service that records the Host header of the
// first request of every connection (libcurl opens one connection per host name), so a test can
// see which token host mailring asked. Loopback only; every wait is bounded.
class HostRecorder {
 public:
  explicit HostRecorder(uint16_t target_port) : target_port_(target_port) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listen_fd_ < 0 || bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        listen(listen_fd_, 64) != 0 ||
        getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      std::perror("HostRecorder");
      std::abort();
    }
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { Accept(); });
  }

  ~HostRecorder() {
    stop_.store(true);
    acceptor_.join();
    for (std::thread& thread : connections_) thread.join();
    close(listen_fd_);
  }

  uint16_t port() const { return port_; }
  std::vector<std::string> hosts() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return hosts_;
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    hosts_.clear();
  }

 private:
  void Accept() {
    while (!stop_.load()) {
      pollfd pfd{listen_fd_, POLLIN, 0};
      if (poll(&pfd, 1, 50) <= 0) continue;
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      if (connections_.size() >= 64) {  // bounded: a runaway client cannot exhaust threads
        close(fd);
        continue;
      }
      connections_.emplace_back([this, fd] { Forward(fd); });
    }
  }

  void Forward(int client) {
    int upstream = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(target_port_);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (upstream < 0 || connect(upstream, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      close(client);
      if (upstream >= 0) close(upstream);
      return;
    }
    std::string head;
    bool recorded = false;
    bool open[2] = {true, true};  // client→upstream, upstream→client
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    char buffer[16384];
    while ((open[0] || open[1]) && !stop_.load() && absl::Now() < deadline) {
      pollfd fds[2] = {{client, static_cast<short>(open[0] ? POLLIN : 0), 0},
                       {upstream, static_cast<short>(open[1] ? POLLIN : 0), 0}};
      if (poll(fds, 2, 50) <= 0) continue;
      for (int i = 0; i < 2; ++i) {
        if (!open[i] || fds[i].revents == 0) continue;
        const int from = i == 0 ? client : upstream;
        const int to = i == 0 ? upstream : client;
        const ssize_t n = read(from, buffer, sizeof buffer);
        if (n <= 0) {
          open[i] = false;
          shutdown(to, SHUT_WR);
          continue;
        }
        if (i == 0 && !recorded && head.size() < 65536) {
          head.append(buffer, static_cast<size_t>(n));
          if (head.find("\r\n\r\n") != std::string::npos) {
            recorded = true;
            Record(head);
          }
        }
        for (ssize_t sent = 0; sent < n;) {
          const ssize_t w = write(to, buffer + sent, static_cast<size_t>(n - sent));
          if (w <= 0) {
            open[0] = open[1] = false;
            break;
          }
          sent += w;
        }
      }
    }
    close(client);
    close(upstream);
  }

  void Record(const std::string& head) {
    for (absl::string_view line : absl::StrSplit(head, "\r\n")) {
      if (line.size() > 5 && absl::EqualsIgnoreCase(line.substr(0, 5), "host:")) {
        std::lock_guard<std::mutex> lock(mutex_);
        hosts_.push_back(std::string(absl::StripAsciiWhitespace(line.substr(5))));
        return;
      }
    }
  }

  const uint16_t target_port_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::list<std::thread> connections_;  // only the acceptor touches it until the destructor
  mutable std::mutex mutex_;
  std::vector<std::string> hosts_;
};

const ImapResponse* FindLiteralResponse(const std::vector<ImapResponse>& responses,
                                        absl::string_view prefix) {
  for (const ImapResponse& response : responses) {
    if (!response.literals.empty() && absl::StartsWith(response.text, prefix)) return &response;
  }
  return nullptr;
}

void ExpectInboxReadable(ImapTestClient& client) {
  MR_ASSERT_OK_AND_ASSIGN(auto select, client.Command("S1", "SELECT INBOX"));
  ASSERT_EQ(select.back().Status(), "OK") << Transcript(select);
  MR_ASSERT_OK_AND_ASSIGN(auto fetch, client.Command("S2", "FETCH 1 BODY[TEXT]"));
  ASSERT_EQ(fetch.back().Status(), "OK") << Transcript(fetch);
  const ImapResponse* body = FindLiteralResponse(fetch, "* 1 FETCH ");
  ASSERT_NE(body, nullptr) << Transcript(fetch);
  EXPECT_EQ(body->literals[0], DovecotServer::SmallMessageText(1));
}

// "cannot reach the on-premise mail server of destination onprem-dest: <reason>".
std::string UnreachableBye(absl::string_view reason) {
  return absl::StrCat("* BYE [UNAVAILABLE] cannot reach the on-premise mail server of destination ",
                      kDestinationName, ": ", reason);
}

class OnPremiseTest : public MailringTest {
 protected:
  static void SetUpTestSuite() {
    skip_reason_.clear();
    setup_error_.clear();
    if (FindDovecot().empty()) {
      skip_reason_ = "dovecot is not installed (apt-get install dovecot-imapd; scripts/test.sh does)";
      return;
    }
    connectivity_uaa_ = new FakeOAuthServer();
    mail_uaa_ = new FakeOAuthServer();
    for (FakeOAuthServer* server : {connectivity_uaa_, mail_uaa_}) {
      if (absl::Status status = server->Start(); !status.ok()) {
        setup_error_ = absl::StrCat("starting a fake OAuth server: ", status.ToString());
        return;
      }
    }
    recorder_ = new HostRecorder(connectivity_uaa_->token_port());
    ca_dir_ = new TempDir();
    absl::StatusOr<TestCa> ca = MakeTestCa(ca_dir_->path() + "/ca", {kVirtualHost});
    if (!ca.ok()) {
      setup_error_ = ca.status().ToString();
      return;
    }
    ca_ = *ca;
    DovecotOptions options;
    options.oauth2_introspection_url = mail_uaa_->IntrospectionUrl();
    options.tls_cert = ca_.chain("server");
    options.tls_key = ca_.key("server");
    absl::StatusOr<std::unique_ptr<DovecotServer>> server = DovecotServer::Start(options);
    if (!server.ok()) {
      setup_error_ = server.status().ToString();
      return;
    }
    dovecot_ = server->release();
  }

  static void TearDownTestSuite() {
    delete dovecot_;
    dovecot_ = nullptr;
    delete recorder_;
    recorder_ = nullptr;
    delete connectivity_uaa_;
    connectivity_uaa_ = nullptr;
    delete mail_uaa_;
    mail_uaa_ = nullptr;
    delete ca_dir_;
    ca_dir_ = nullptr;
  }

  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    MR_ASSERT_OK(connectivity_uaa_->Reset());
    MR_ASSERT_OK(mail_uaa_->Reset());
    recorder_->Clear();
    connectivity_secret_ = UniqueSecret("connectivity-secret");
    connectivity_uaa_->RegisterClient(kConnectivityClientId, connectivity_secret_, "connectivity");
    mail_secret_ = UniqueSecret("mail-client-secret");
    mail_uaa_->RegisterClient(kMailClientId, mail_secret_, "alice");
    secrets_ = {connectivity_secret_, mail_secret_, kCarolPassword};

    proxy_ = std::make_unique<FakeConnectivityProxy>();
    proxy_->SetIdleTimeout(std::chrono::seconds(20));
    MR_ASSERT_OK(proxy_->Start());
    // Only JWTs of the Connectivity service's token service pass.
    proxy_->SetJwtValidator([](std::string_view jwt) {
      const std::vector<std::string> issued = connectivity_uaa_->IssuedAccessTokens();
      return std::find(issued.begin(), issued.end(), jwt) != issued.end();
    });
    proxy_->SetLocations({"", kLocationId});
    proxy_->AddMapping(kVirtualHost, kVirtualImapPort, dovecot_->port());
    proxy_->AddMapping(kVirtualHost, kVirtualImapsPort, dovecot_->imaps_port());
  }

  void TearDown() override {
    if (mailring_ != nullptr && connectivity_uaa_ != nullptr) {
      mailring_->Signal(SIGTERM);
      (void)mailring_->WaitExit(absl::Seconds(10));
      const std::string log = MailringLog();
      std::vector<std::string> secrets = secrets_;
      for (FakeOAuthServer* server : {connectivity_uaa_, mail_uaa_}) {
        for (const std::string& token : server->IssuedAccessTokens()) secrets.push_back(token);
      }
      for (const std::string& secret : secrets) {
        EXPECT_FALSE(absl::StrContains(log, secret))
            << "a secret (" << secret.size() << " bytes, starting " << secret.substr(0, 6)
            << "...) appears in mailring's log " << mailring_->log_path();
      }
    }
    MailringTest::TearDown();
    if (proxy_ != nullptr) proxy_->Stop();
    proxy_.reset();
  }

  // The Connectivity service key file; `url` is the token service base (mailring appends
  // /oauth/token). Default: the host recorder in front of the fake, by address.
  std::string WriteServiceKey(const std::string& secret, const std::string& url = "") {
    const std::string path = absl::StrCat(work_dir_.path(), "/connectivity-key-", ++keys_, ".json");
    const std::string base =
        url.empty() ? absl::StrCat("http://127.0.0.1:", recorder_->port()) : url;
    const std::string json =
        absl::StrCat("{\"clientid\": \"", kConnectivityClientId, "\", \"clientsecret\": \"", secret,
                     "\", \"url\": \"", base, "\", \"xsappname\": \"connectivity-it\"}\n");
    EXPECT_TRUE(WriteFile(path, json).ok());
    return path;
  }

  std::vector<std::string> Flags(const std::string& key_path) {
    return {absl::StrCat("--connectivity-proxy=127.0.0.1:", proxy_->port()),
            "--connectivity-service-key=" + key_path, "--ca-file=" + ca_.ca_pem()};
  }
  std::vector<std::string> Flags() { return Flags(WriteServiceKey(connectivity_secret_)); }

  static Destination OnPremiseBasic(const std::string& user = "alice",
                                    const std::string& password = "secret") {
    return {{"Name", kDestinationName},
            {"Type", "MAIL"},
            {"Authentication", "BasicAuthentication"},
            {"mail.user", user},
            {"mail.password", password},
            {"mail.transport.protocol", "imap4"},
            {"mail.imap4.host", kVirtualHost},
            {"mail.imap4.port", absl::StrCat(kVirtualImapPort)},
            {"mail.imap4.auth", "true"},
            {"ProxyType", "OnPremise"},
            {"CloudConnectorLocationId", kLocationId}};
  }

  // StartMailring, then waits until the sessions of its readiness probe (a connect that closes
  // at once, which mailring still carries through the proxy and the login) have ended, so that
  // the proxy's counters afterwards belong to the test.
  absl::Status StartSettled(const std::vector<Destination>& destinations,
                            const std::vector<std::string>& flags) {
    if (absl::Status status = StartMailring(destinations, flags); !status.ok()) return status;
    return WaitForProbeSessions();
  }
  // One probe per listen port (MailringProcess::Start connects once to each).
  absl::Status WaitForProbeSessions() {
    size_t accepted = 0, ended = 0;
    const bool settled = WaitFor(
        [&] {
          const std::string log = MailringLog();
          accepted = CountOf(log, " accepted, connecting");
          ended = CountOf(log, " closed: ") + CountOf(log, " failed: ");
          return accepted >= listen_ports_.size() && ended >= accepted;
        },
        absl::Seconds(10), absl::Milliseconds(20));
    if (settled) return absl::OkStatus();
    return absl::DeadlineExceededError(absl::StrCat(
        "the readiness probe's sessions did not end: ", accepted, " accepted, ", ended, " ended"));
  }
  // The last line of Dovecot's log after `mark` that logs alice in, once there is one (bounded
  // wait: Dovecot writes its log asynchronously); "" if none came.
  std::string WaitForAliceLogin(size_t mark) {
    std::string login;
    WaitFor(
        [&] {
          for (absl::string_view line : absl::StrSplit(dovecot_->Log().substr(mark), '\n')) {
            if (absl::StrContains(line, "Login: user=<alice>")) login = std::string(line);
          }
          return !login.empty();
        },
        absl::Seconds(5), absl::Milliseconds(20));
    return login;
  }
  static size_t CountOf(const std::string& text, const std::string& needle) {
    size_t count = 0;
    for (size_t pos = text.find(needle); pos != std::string::npos;
         pos = text.find(needle, pos + needle.size())) {
      ++count;
    }
    return count;
  }

  bool IsConnectivityJwt(const std::string& jwt) const {
    const std::vector<std::string> issued = connectivity_uaa_->IssuedAccessTokens();
    return !jwt.empty() && std::find(issued.begin(), issued.end(), jwt) != issued.end();
  }

  static FakeOAuthServer* connectivity_uaa_;
  static FakeOAuthServer* mail_uaa_;
  static HostRecorder* recorder_;
  static TempDir* ca_dir_;
  static TestCa ca_;
  static DovecotServer* dovecot_;
  static std::string skip_reason_;
  static std::string setup_error_;
  std::unique_ptr<FakeConnectivityProxy> proxy_;
  std::string connectivity_secret_;
  std::string mail_secret_;
  std::vector<std::string> secrets_;
  int keys_ = 0;
};

FakeOAuthServer* OnPremiseTest::connectivity_uaa_ = nullptr;
FakeOAuthServer* OnPremiseTest::mail_uaa_ = nullptr;
HostRecorder* OnPremiseTest::recorder_ = nullptr;
TempDir* OnPremiseTest::ca_dir_ = nullptr;
TestCa OnPremiseTest::ca_;
DovecotServer* OnPremiseTest::dovecot_ = nullptr;
std::string OnPremiseTest::skip_reason_;
std::string OnPremiseTest::setup_error_;

// --- Through the tunnel -----------------------------------------------------------------------

TEST_F(OnPremiseTest, BasicAuthenticationPreauthAndFetch) {
  MR_ASSERT_OK(StartSettled({OnPremiseBasic()}, Flags()));
  const int tunnels = proxy_->tunnels();
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  ExpectInboxReadable(*session.client);
  EXPECT_EQ(proxy_->tunnels(), tunnels + 1);
  EXPECT_EQ(proxy_->auth_failures(), 0);
  EXPECT_EQ(proxy_->last_target(), absl::StrCat(kVirtualHost, ":", kVirtualImapPort));
  EXPECT_EQ(proxy_->last_location_id(), kLocationId);
  EXPECT_TRUE(IsConnectivityJwt(proxy_->last_jwt())) << "the proxy got a JWT the service never issued";
  EXPECT_EQ(connectivity_uaa_->client_credentials_grants(), 1);
  const std::vector<std::string> hosts = recorder_->hosts();
  ASSERT_FALSE(hosts.empty());
  EXPECT_EQ(hosts[0], absl::StrCat("127.0.0.1:", recorder_->port()));

  // Later sessions reuse the cached JWT.
  for (int i = 0; i < 3; ++i) {
    MR_ASSERT_OK_AND_ASSIGN(ProxySession next, OpenSession());
    EXPECT_TRUE(absl::StartsWith(next.greeting.text, "* PREAUTH ")) << next.greeting.text;
  }
  EXPECT_EQ(proxy_->tunnels(), tunnels + 4);
  EXPECT_EQ(connectivity_uaa_->client_credentials_grants(), 1);
}

TEST_F(OnPremiseTest, WithoutLocationIdTheDefaultCloudConnectorIsUsed) {
  Destination destination = OnPremiseBasic();
  destination.erase("CloudConnectorLocationId");
  MR_ASSERT_OK(StartSettled({destination}, Flags()));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  ExpectInboxReadable(*session.client);
  EXPECT_EQ(proxy_->last_location_id(), "");
}

TEST_F(OnPremiseTest, PasswordNeedingLiteralsThroughTheTunnelStaysOutOfTheLog) {
  const size_t mark = dovecot_->Log().size();
  MR_ASSERT_OK(StartSettled({OnPremiseBasic("carol", kCarolPassword)}, Flags()));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  MR_ASSERT_OK_AND_ASSIGN(auto select, session.client->Command("s", "SELECT INBOX"));
  EXPECT_EQ(select.back().Status(), "OK") << Transcript(select);
  EXPECT_TRUE(absl::StrContains(dovecot_->Log().substr(mark), "Login: user=<carol>"));
}

TEST_F(OnPremiseTest, OAuth2ClientCredentialsThroughTheProxy) {
  Destination destination = OnPremiseBasic();
  destination.erase("mail.password");
  destination["Authentication"] = "OAuth2ClientCredentials";
  destination["tokenServiceURL"] = mail_uaa_->TokenUrl();
  destination["tokenServiceURLType"] = "Dedicated";
  destination["clientId"] = kMailClientId;
  destination["clientSecret"] = mail_secret_;
  MR_ASSERT_OK(StartSettled({destination}, Flags()));
  const int tunnels = proxy_->tunnels();
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  ExpectInboxReadable(*session.client);
  EXPECT_EQ(mail_uaa_->client_credentials_grants(), 1);
  EXPECT_GE(mail_uaa_->active_introspections(), 1) << "Dovecot did not check the mail token";
  EXPECT_EQ(connectivity_uaa_->client_credentials_grants(), 1);
  EXPECT_TRUE(IsConnectivityJwt(proxy_->last_jwt()));
  EXPECT_EQ(proxy_->tunnels(), tunnels + 1);
}

TEST_F(OnPremiseTest, ImapsInsideTheTunnel) {
  const size_t mark = dovecot_->Log().size();
  Destination destination = OnPremiseBasic();
  destination.erase("mail.imap4.host");
  destination.erase("mail.imap4.port");
  destination.erase("mail.imap4.auth");
  destination["mail.transport.protocol"] = "imap4s";
  destination["mail.imap4s.host"] = kVirtualHost;
  destination["mail.imap4s.port"] = absl::StrCat(kVirtualImapsPort);
  destination["mail.imap4s.auth"] = "true";
  MR_ASSERT_OK(StartSettled({destination}, Flags()));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  ExpectInboxReadable(*session.client);
  EXPECT_EQ(proxy_->last_target(), absl::StrCat(kVirtualHost, ":", kVirtualImapsPort));
  const std::string login = WaitForAliceLogin(mark);
  EXPECT_TRUE(absl::StrContains(login, ", TLS,")) << "not a TLS login: " << login;
  MR_ASSERT_OK_AND_ASSIGN(auto logout, session.client->Command("L", "LOGOUT"));
  EXPECT_EQ(logout.back().Status(), "OK") << Transcript(logout);
  MR_ASSERT_OK(session.client->ExpectClosed());
}

TEST_F(OnPremiseTest, StartTlsRequiredInsideTheTunnel) {
  const size_t mark = dovecot_->Log().size();
  Destination destination = OnPremiseBasic();
  destination["mail.imap4.starttls.required"] = "true";
  MR_ASSERT_OK(StartSettled({destination}, Flags()));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  ExpectInboxReadable(*session.client);
  const std::string login = WaitForAliceLogin(mark);
  EXPECT_TRUE(absl::StrContains(login, ", TLS,")) << "not a TLS login: " << login;
}

TEST_F(OnPremiseTest, TenantRouteUsesItsOwnConnectivityToken) {
  // The service key names the provider's token host; a tenant's tokens come from the host whose
  // first label is the tenant (curl resolves every *.localhost name to loopback).
  const std::string key = WriteServiceKey(
      connectivity_secret_, absl::StrCat("http://provider.localhost:", recorder_->port()));
  const uint16_t provider_port = PickFreeLoopbackPort();
  uint16_t tenant_port = PickFreeLoopbackPort();
  while (tenant_port == provider_port) tenant_port = PickFreeLoopbackPort();
  std::string json = DestinationsFileJson(
      {{absl::StrCat("127.0.0.1:", provider_port), OnPremiseBasic()},
       {absl::StrCat("127.0.0.1:", tenant_port), OnPremiseBasic()}});
  const std::string tenant_listen = absl::StrCat("{\"listen\": \"127.0.0.1:", tenant_port, "\"");
  ASSERT_TRUE(absl::StrContains(json, tenant_listen)) << json;
  absl::StrReplaceAll({{tenant_listen, absl::StrCat("{\"tenant\": \"tenant-a\", \"listen\": "
                                                    "\"127.0.0.1:",
                                                    tenant_port, "\"")}},
                      &json);
  listen_ports_ = {provider_port, tenant_port};
  MR_ASSERT_OK_AND_ASSIGN(mailring_, MailringProcess::Start(work_dir_.path(), json, listen_ports_,
                                                            Flags(key)));
  MR_ASSERT_OK(WaitForProbeSessions());

  MR_ASSERT_OK_AND_ASSIGN(ProxySession provider, OpenSession(0));
  ASSERT_TRUE(absl::StartsWith(provider.greeting.text, "* PREAUTH ")) << provider.greeting.text;
  const std::string provider_jwt = proxy_->last_jwt();
  MR_ASSERT_OK_AND_ASSIGN(ProxySession tenant, OpenSession(1));
  ASSERT_TRUE(absl::StartsWith(tenant.greeting.text, "* PREAUTH ")) << tenant.greeting.text;
  const std::string tenant_jwt = proxy_->last_jwt();
  ExpectInboxReadable(*tenant.client);

  EXPECT_TRUE(IsConnectivityJwt(provider_jwt));
  EXPECT_TRUE(IsConnectivityJwt(tenant_jwt));
  EXPECT_NE(provider_jwt, tenant_jwt) << "the tenant route used the provider's JWT";
  EXPECT_EQ(connectivity_uaa_->client_credentials_grants(), 2);
  const std::vector<std::string> hosts = recorder_->hosts();
  const std::set<std::string> seen(hosts.begin(), hosts.end());
  EXPECT_TRUE(seen.contains(absl::StrCat("provider.localhost:", recorder_->port())))
      << absl::StrJoin(hosts, ", ");
  EXPECT_TRUE(seen.contains(absl::StrCat("tenant-a.localhost:", recorder_->port())))
      << absl::StrJoin(hosts, ", ");
}

// --- Failures ---------------------------------------------------------------------------------

TEST_F(OnPremiseTest, EveryReplyCodeGivesItsDocumentedReason) {
  const std::vector<std::pair<uint8_t, std::string>> codes = {
      {0x01, "general failure in the Connectivity Proxy"},
      {0x02, "no access-control mapping in the Cloud Connector for this virtual host"},
      {0x03, "Cloud Connector not connected, or unknown location id"},
      {0x04, "virtual host unreachable from the Cloud Connector"},
      {0x05, "connection refused or authentication failed at the Connectivity Proxy"},
      {0x07, "command not supported"},
      {0x08, "address type not supported"},
  };
  MR_ASSERT_OK(StartSettled({OnPremiseBasic()}, Flags()));
  const int tunnels = proxy_->tunnels();
  for (const auto& [code, reason] : codes) {
    SCOPED_TRACE(absl::StrCat("reply code ", code));
    proxy_->ForceConnectReply(code);
    MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
    EXPECT_TRUE(IsUnavailableBye(session.greeting)) << session.greeting.text;
    EXPECT_TRUE(absl::StartsWith(session.greeting.text, UnreachableBye(reason)))
        << session.greeting.text;
    MR_ASSERT_OK(session.client->ExpectClosed());
    EXPECT_EQ(proxy_->replies(code), 1);
  }
  EXPECT_EQ(proxy_->tunnels(), tunnels);
  proxy_->ForceConnectReply(0);
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  EXPECT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
}

TEST_F(OnPremiseTest, UnknownLocationIdGivesReason03) {
  Destination destination = OnPremiseBasic();
  destination["CloudConnectorLocationId"] = "nowhere-cc";
  MR_ASSERT_OK(StartSettled({destination}, Flags()));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  EXPECT_TRUE(absl::StartsWith(
      session.greeting.text,
      UnreachableBye("Cloud Connector not connected, or unknown location id")))
      << session.greeting.text;
  EXPECT_EQ(proxy_->replies(0x03), 2) << "the readiness probe's session and the test's";
  EXPECT_EQ(proxy_->last_location_id(), "nowhere-cc");
  MR_ASSERT_OK(session.client->ExpectClosed());
}

TEST_F(OnPremiseTest, MissingMappingGivesReason02) {
  Destination destination = OnPremiseBasic();
  destination["mail.imap4.host"] = "unmapped.onprem.internal";
  MR_ASSERT_OK(StartSettled({destination}, Flags()));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  EXPECT_TRUE(absl::StartsWith(
      session.greeting.text,
      UnreachableBye("no access-control mapping in the Cloud Connector for this virtual host")))
      << session.greeting.text;
  EXPECT_EQ(proxy_->replies(0x02), 2) << "the readiness probe's session and the test's";
  EXPECT_EQ(proxy_->last_target(), "unmapped.onprem.internal:143");
}

TEST_F(OnPremiseTest, MappedButUnreachableBackendGivesReason04) {
  const uint16_t dead_port = PickFreeLoopbackPort();  // nobody listens there
  proxy_->AddMapping("dead.onprem.internal", 143, dead_port);
  Destination destination = OnPremiseBasic();
  destination["mail.imap4.host"] = "dead.onprem.internal";
  MR_ASSERT_OK(StartSettled({destination}, Flags()));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  EXPECT_TRUE(absl::StartsWith(session.greeting.text,
                               UnreachableBye("virtual host unreachable from the Cloud Connector")))
      << session.greeting.text;
}

TEST_F(OnPremiseTest, JwtRejectedByTheProxyGivesClearBye) {
  proxy_->SetJwtValidator([](std::string_view) { return false; });
  MR_ASSERT_OK(StartSettled({OnPremiseBasic()}, Flags()));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  EXPECT_TRUE(IsUnavailableBye(session.greeting)) << session.greeting.text;
  EXPECT_TRUE(absl::StrContains(session.greeting.text, "rejected the JWT"))
      << session.greeting.text;
  EXPECT_EQ(proxy_->auth_failures(), 2) << "the readiness probe's session and the test's";

  // The other way SAP documents it: authentication passes, CONNECT answers 05.
  proxy_->SetRejectJwtAtConnect(true);
  MR_ASSERT_OK_AND_ASSIGN(ProxySession again, OpenSession());
  EXPECT_TRUE(absl::StartsWith(
      again.greeting.text,
      UnreachableBye("connection refused or authentication failed at the Connectivity Proxy")))
      << again.greeting.text;
}

TEST_F(OnPremiseTest, BadConnectivityCredentialsGiveClearBye) {
  const std::string wrong = UniqueSecret("wrong-connectivity-secret");
  secrets_.push_back(wrong);
  MR_ASSERT_OK(StartSettled({OnPremiseBasic()}, Flags(WriteServiceKey(wrong))));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  EXPECT_TRUE(IsUnavailableBye(session.greeting)) << session.greeting.text;
  EXPECT_TRUE(absl::StartsWith(session.greeting.text, UnreachableBye("no token for the "
                                                                     "Connectivity Proxy")))
      << session.greeting.text;
  EXPECT_TRUE(absl::StrContains(session.greeting.text, "invalid_client")) << session.greeting.text;
  MR_ASSERT_OK(session.client->ExpectClosed());
  // mailring may open the TCP connection to the proxy while it waits for the token, but it
  // sends nothing without one.
  EXPECT_EQ(proxy_->auth_failures(), 0);
  EXPECT_EQ(proxy_->connect_requests(), 0);
  EXPECT_EQ(proxy_->last_jwt(), "");
  EXPECT_GE(connectivity_uaa_->failed_token_requests(), 1);
}

TEST_F(OnPremiseTest, ProxyDownGivesClearBye) {
  const std::vector<std::string> flags = Flags();
  proxy_->Stop();
  MR_ASSERT_OK(StartSettled({OnPremiseBasic()}, flags));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  EXPECT_TRUE(IsUnavailableBye(session.greeting)) << session.greeting.text;
  MR_ASSERT_OK(session.client->ExpectClosed());
}

}  // namespace
}  // namespace mailring::integration
