// OAuth2 destinations end to end: mailring in front of a Dovecot that checks every bearer token by
// RFC 7662 introspection at a fake authorization server (tests/fakes/oauth_server.h), which is
// also mailring's token service.
//
//   OAuth2ClientCredentials  mailring fetches and refreshes the token itself; the client sees
//                            PREAUTH; a token service that goes away is bridged by the cached
//                            token until it expires, then new sessions get a clear BYE.
//   OAuth2RefreshToken       the client authenticates to mailring with XOAUTH2 carrying a refresh
//   OAuth2AuthorizationCode  token or an authorization code; mailring exchanges it (once per
//                            token lifetime, a code only once) and logs in upstream.
//
// Every test checks at the end that no access token, refresh token, code or client secret it
// handled appears in mailring's log. Timing-dependent tests use lifetimes of a few seconds and
// assert only outside generous margins around the expected refresh and expiry instants.
#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/fakes/oauth_server.h"
#include "tests/integration/line_test_client.h"
#include "tests/integration/mailring_test.h"

namespace mailring::integration {
namespace {

using fakes::FakeOAuthServer;

constexpr char kDestinationName[] = "oauth-dest";
constexpr char kClientId[] = "mailring-it-client";

// base64("user=<user>\x01auth=Bearer <secret>\x01\x01"), the XOAUTH2 initial response.
std::string XOAuth2(const std::string& user, const std::string& secret) {
  return absl::Base64Escape(absl::StrCat("user=", user, "\x01", "auth=Bearer ", secret, "\x01\x01"));
}

// A secret that is easy to find in a log and unlikely to occur there by chance.
std::string UniqueSecret(const std::string& prefix) {
  static int counter = 0;
  return absl::StrCat(prefix, "-", absl::ToUnixNanos(absl::Now()), "-", ++counter, "-x7Qz");
}

// True for "TAG NO [AUTHENTICATIONFAILED] <non-empty reason>".
bool IsAuthenticationFailed(const ImapResponse& response, const std::string& tag) {
  const std::string prefix = absl::StrCat(tag, " NO [AUTHENTICATIONFAILED] ");
  return absl::StartsWith(response.text, prefix) && response.text.size() > prefix.size();
}

class OAuthTest : public MailringTest {
 protected:
  static void SetUpTestSuite() {
    skip_reason_.clear();
    setup_error_.clear();
    if (FindDovecot().empty()) {
      skip_reason_ = "dovecot is not installed (apt-get install dovecot-imapd; scripts/test.sh does)";
      return;
    }
    fake_ = new FakeOAuthServer();
    if (absl::Status status = fake_->Start(); !status.ok()) {
      setup_error_ = absl::StrCat("starting the fake OAuth server: ", status.ToString());
      return;
    }
    DovecotOptions options;
    options.oauth2_introspection_url = fake_->IntrospectionUrl();
    options.pop3 = true;  // the mail family's OAuth cases at the end
    options.submission = true;
    absl::StatusOr<std::unique_ptr<DovecotServer>> server = DovecotServer::Start(options);
    if (!server.ok()) {
      setup_error_ = server.status().ToString();
      return;
    }
    dovecot_ = std::move(server).value().release();
  }

  static void TearDownTestSuite() {
    delete dovecot_;
    dovecot_ = nullptr;
    delete fake_;
    fake_ = nullptr;
  }

  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    MR_ASSERT_OK(fake().Reset());
    client_secret_ = UniqueSecret("client-secret");
    fake().RegisterClient(kClientId, client_secret_, "alice");
    secrets_.push_back(client_secret_);
  }

  void TearDown() override {
    if (mailring_ != nullptr && fake_ != nullptr) {
      // Stop first, so that everything mailring logs until it exits is checked.
      StopMailringAndCheckLog();
    }
    MailringTest::TearDown();
  }

  // SIGTERM, wait, then check that no secret the test handled (registered client secrets,
  // refresh tokens and codes, every token the fake issued) appears in mailring's log.
  void StopMailringAndCheckLog() {
    mailring_->Signal(SIGTERM);
    (void)mailring_->WaitExit(absl::Seconds(10));
    const std::string log = MailringLog();
    std::vector<std::string> secrets = secrets_;
    for (const std::string& token : fake().IssuedAccessTokens()) secrets.push_back(token);
    for (const std::string& token : fake().IssuedRefreshTokens()) secrets.push_back(token);
    for (const std::string& secret : secrets) {
      EXPECT_FALSE(absl::StrContains(log, secret))
          << "a secret (" << secret.size() << " bytes, starting " << secret.substr(0, 6)
          << "...) appears in mailring's log " << mailring_->log_path();
    }
  }

  static FakeOAuthServer& fake() { return *fake_; }
  static DovecotServer& dovecot() { return *dovecot_; }

  // An OAuth2 destination of `type` for Dovecot's alice, token service = the fake.
  Destination OAuthDestination(const std::string& type, const std::string& mail_user = "alice") {
    return {{"Name", kDestinationName},
            {"Type", "MAIL"},
            {"Authentication", type},
            {"mail.user", mail_user},
            {"mail.transport.protocol", "imap4"},
            {"mail.imap4.host", "127.0.0.1"},
            {"mail.imap4.port", absl::StrCat(dovecot().port())},
            {"mail.imap4.auth", "true"},
            {"ProxyType", "Internet"},
            {"tokenServiceURL", fake().TokenUrl()},
            {"tokenServiceURLType", "Dedicated"},
            {"clientId", kClientId},
            {"clientSecret", client_secret_}};
  }

  // The same destination speaking `protocol` ("smtp", "pop3") to Dovecot's service for it.
  Destination OAuthMailDestination(const std::string& type, const std::string& protocol) {
    Destination destination = OAuthDestination(type);
    for (const char* key : {"mail.imap4.host", "mail.imap4.port", "mail.imap4.auth"}) {
      destination.erase(key);
    }
    const uint16_t port = protocol == "smtp" ? dovecot().submission_port() : dovecot().pop3_port();
    destination["mail.transport.protocol"] = protocol;
    destination[absl::StrCat("mail.", protocol, ".host")] = "127.0.0.1";
    destination[absl::StrCat("mail.", protocol, ".port")] = absl::StrCat(port);
    return destination;
  }

  // A refresh token (or code) registered at the fake for alice, remembered for the log check.
  std::string NewRefreshToken(const std::string& user = "alice") {
    std::string token = UniqueSecret("refresh-token");
    fake().RegisterRefreshToken(token, user);
    secrets_.push_back(token);
    return token;
  }
  std::string NewCode(const std::string& redirect_uri = "") {
    std::string code = UniqueSecret("auth-code");
    fake().RegisterCode(code, "alice", redirect_uri);
    secrets_.push_back(code);
    return code;
  }

  // Reads SELECT INBOX and FETCH 1 BODY[TEXT] through `client` and checks the fixture's mail.
  static void ExpectMailboxReadable(ImapTestClient& client) {
    MR_ASSERT_OK_AND_ASSIGN(auto select, client.Command("S1", "SELECT INBOX"));
    ASSERT_EQ(select.back().Status(), "OK") << Transcript(select);
    EXPECT_TRUE(absl::StrContains(Transcript(select), "EXISTS")) << Transcript(select);
    MR_ASSERT_OK_AND_ASSIGN(auto fetch, client.Command("S2", "FETCH 1 BODY[TEXT]"));
    ASSERT_EQ(fetch.back().Status(), "OK") << Transcript(fetch);
    ASSERT_FALSE(fetch.front().literals.empty()) << Transcript(fetch);
    EXPECT_EQ(fetch.front().literals[0], DovecotServer::SmallMessageText(1));
  }

  // Opens a session on route 0 of a refresh-token / code destination and authenticates with
  // XOAUTH2 in one line; returns the session and the responses up to the tagged one.
  struct AuthResult {
    ProxySession session;
    std::vector<ImapResponse> responses;
  };
  absl::StatusOr<AuthResult> OpenAndAuthenticate(const std::string& user,
                                                 const std::string& secret,
                                                 const std::string& tag = "A1") {
    absl::StatusOr<ProxySession> session = OpenSession();
    if (!session.ok()) return session.status();
    if (!absl::StartsWith(session->greeting.text, "* OK [CAPABILITY ")) {
      return absl::InternalError(absl::StrCat("unexpected greeting: ", session->greeting.text));
    }
    absl::StatusOr<std::vector<ImapResponse>> responses =
        session->client->Command(tag, absl::StrCat("AUTHENTICATE XOAUTH2 ", XOAuth2(user, secret)));
    if (!responses.ok()) return responses.status();
    return AuthResult{*std::move(session), *std::move(responses)};
  }

  static FakeOAuthServer* fake_;
  static DovecotServer* dovecot_;
  static std::string skip_reason_;
  static std::string setup_error_;
  std::string client_secret_;
  std::vector<std::string> secrets_;  // registered secrets to look for in the log
};

FakeOAuthServer* OAuthTest::fake_ = nullptr;
DovecotServer* OAuthTest::dovecot_ = nullptr;
std::string OAuthTest::skip_reason_;
std::string OAuthTest::setup_error_;

// --- The fixture itself: Dovecot checks bearer tokens at the fake ------------------------------

TEST_F(OAuthTest, DovecotAcceptsAnIntrospectedTokenAndRejectsOthers) {
  const std::string token = fake().IssueAccessToken("alice", kClientId);
  {
    MR_ASSERT_OK_AND_ASSIGN(auto client, ImapTestClient::Connect(dovecot().port()));
    MR_ASSERT_OK_AND_ASSIGN(ImapResponse greeting, client->ReadResponse());
    EXPECT_TRUE(absl::StrContains(greeting.text, "AUTH=XOAUTH2")) << greeting.text;
    MR_ASSERT_OK_AND_ASSIGN(auto login,
                            client->Command("A", "AUTHENTICATE XOAUTH2 " + XOAuth2("alice", token)));
    EXPECT_EQ(login.back().Status(), "OK") << Transcript(login);
  }
  {
    // A bogus token: the XOAUTH2 error challenge, answered with an empty line, then NO.
    MR_ASSERT_OK_AND_ASSIGN(auto client, ImapTestClient::Connect(dovecot().port()));
    MR_ASSERT_OK(client->ReadResponse().status());
    MR_ASSERT_OK(client->Send("A AUTHENTICATE XOAUTH2 " + XOAuth2("alice", "bogus") + "\r\n"));
    MR_ASSERT_OK_AND_ASSIGN(ImapResponse challenge, client->ReadResponse());
    ASSERT_TRUE(absl::StartsWith(challenge.text, "+ ")) << challenge.text;
    std::string json;
    ASSERT_TRUE(absl::Base64Unescape(challenge.text.substr(2), &json)) << challenge.text;
    EXPECT_TRUE(absl::StrContains(json, "\"status\":\"401\"")) << json;
    MR_ASSERT_OK(client->Send("\r\n"));
    MR_ASSERT_OK_AND_ASSIGN(auto rest, client->ReadUntilTagged("A"));
    EXPECT_EQ(rest.back().Status(), "NO") << Transcript(rest);
  }
  {
    // A valid token of another user.
    MR_ASSERT_OK_AND_ASSIGN(auto client, ImapTestClient::Connect(dovecot().port()));
    MR_ASSERT_OK(client->ReadResponse().status());
    MR_ASSERT_OK(client->Send("A AUTHENTICATE XOAUTH2 " + XOAuth2("bob", token) + "\r\n"));
    MR_ASSERT_OK_AND_ASSIGN(ImapResponse challenge, client->ReadResponse());
    ASSERT_TRUE(absl::StartsWith(challenge.text, "+ ")) << challenge.text;
    MR_ASSERT_OK(client->Send("\r\n"));
    MR_ASSERT_OK_AND_ASSIGN(auto rest, client->ReadUntilTagged("A"));
    EXPECT_EQ(rest.back().Status(), "NO") << Transcript(rest);
  }
  {
    // Passwords still go to the passwd-file.
    MR_ASSERT_OK_AND_ASSIGN(auto client, ImapTestClient::Connect(dovecot().port()));
    MR_ASSERT_OK(client->ReadResponse().status());
    MR_ASSERT_OK_AND_ASSIGN(auto login, client->Command("A", "LOGIN alice secret"));
    EXPECT_EQ(login.back().Status(), "OK") << Transcript(login);
  }
  EXPECT_GE(fake().introspections(), 3);
}

// --- OAuth2ClientCredentials --------------------------------------------------------------------

TEST_F(OAuthTest, ClientCredentialsPreauthThenSelectAndFetch) {
  MR_ASSERT_OK(StartMailring({OAuthDestination("OAuth2ClientCredentials")}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  ExpectMailboxReadable(*session.client);
  EXPECT_EQ(fake().client_credentials_grants(), 1);
  EXPECT_GE(fake().active_introspections(), 1) << "Dovecot did not check the token";

  // The next sessions reuse the cached token.
  for (int i = 0; i < 3; ++i) {
    MR_ASSERT_OK_AND_ASSIGN(ProxySession next, OpenSession());
    EXPECT_TRUE(absl::StartsWith(next.greeting.text, "* PREAUTH ")) << next.greeting.text;
  }
  EXPECT_EQ(fake().client_credentials_grants(), 1);
}

TEST_F(OAuthTest, ClientCredentialsWithHttpBasicClientAuthentication) {
  const std::string user = "basic-client";
  const std::string password = UniqueSecret("basic-password");
  fake().RegisterClient(user, password, "alice");
  secrets_.push_back(password);
  Destination destination = OAuthDestination("OAuth2ClientCredentials");
  destination["tokenServiceUser"] = user;
  destination["tokenServicePassword"] = password;
  destination["scope"] = "mail.read";
  MR_ASSERT_OK(StartMailring({destination}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  ExpectMailboxReadable(*session.client);
  EXPECT_EQ(fake().client_credentials_grants(), 1);
}

TEST_F(OAuthTest, ClientCredentialsWithWrongSecretGivesClearBye) {
  Destination destination = OAuthDestination("OAuth2ClientCredentials");
  destination["clientSecret"] = UniqueSecret("wrong-secret");
  secrets_.push_back(destination["clientSecret"]);
  MR_ASSERT_OK(StartMailring({destination}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  EXPECT_TRUE(IsUnavailableBye(session.greeting)) << session.greeting.text;
  EXPECT_TRUE(absl::StrContains(session.greeting.text, "no access token")) << session.greeting.text;
  EXPECT_TRUE(absl::StrContains(session.greeting.text, "invalid_client")) << session.greeting.text;
  MR_ASSERT_OK(session.client->ExpectClosed());
}

// The refresh and expiry logic itself is unit-tested on an injected clock
// (tests/control/btp/credential_service_test.cc, StandaloneCredentialServiceTest); the tests
// below run it end to end on real time, because real Dovecot checks a real token's expiry
// against the fake token service. Their margins allow for a loaded sanitizer build: waiting
// longer only ever makes a token more expired.
TEST_F(OAuthTest, ClientCredentialsTokenIsRefreshedBeforeItExpires) {
  // 4 s tokens: mailring refreshes at ~3.2 s (±10 %); Dovecot rejects a token 4 s after issue.
  fake().SetExpiresIn(4);
  MR_ASSERT_OK(StartMailring({OAuthDestination("OAuth2ClientCredentials")}));
  const absl::Time end = absl::Now() + absl::Seconds(11);
  int sessions = 0;
  while (absl::Now() < end) {
    MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
    ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH "))
        << "session " << sessions << ": " << session.greeting.text;
    MR_ASSERT_OK_AND_ASSIGN(auto noop, session.client->Command("N", "NOOP"));
    ASSERT_EQ(noop.back().Status(), "OK") << Transcript(noop);
    ++sessions;
    absl::SleepFor(absl::Milliseconds(200));
  }
  // At 0 s, ~3.2 s, ~6.4 s, ~9.6 s: at least the first and two refreshes.
  EXPECT_GE(fake().client_credentials_grants(), 3);
  EXPECT_LE(fake().client_credentials_grants(), 6) << "refreshing far too often";
  EXPECT_GE(sessions, 10) << "sessions spread over the refreshes";
}

TEST_F(OAuthTest, ClientCredentialsTokenServiceDownServesCachedTokenUntilExpiryThenBye) {
  // Usable by mailring until 9 s (margin 10 %), refresh at 7.2-8.8 s. `issued` is read after
  // start-up, later than the real issue by as much as a slow start takes: the cached phase below
  // ends 3 s before the usable time does, and the expired phase begins after the token's end.
  fake().SetExpiresIn(10);
  MR_ASSERT_OK(StartMailring({OAuthDestination("OAuth2ClientCredentials")}));
  ASSERT_TRUE(WaitFor([] { return fake().client_credentials_grants() == 1; }, absl::Seconds(5),
                      absl::Milliseconds(20)));
  const absl::Time issued = absl::Now();  // no earlier than the token's issue
  {
    MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
    ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  }
  fake().Stop();  // introspection (Dovecot's side) stays up

  // Until well before expiry every new session works on the cached token.
  int cached_sessions = 0;
  while (absl::Now() < issued + absl::Seconds(6)) {
    MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
    ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH "))
        << "at " << absl::FormatDuration(absl::Now() - issued) << ": " << session.greeting.text;
    MR_ASSERT_OK_AND_ASSIGN(auto noop, session.client->Command("N", "NOOP"));
    EXPECT_EQ(noop.back().Status(), "OK") << Transcript(noop);
    ++cached_sessions;
    absl::SleepFor(absl::Milliseconds(250));
  }
  EXPECT_GE(cached_sessions, 3);

  // After it expired: a clear BYE naming the destination and the cause.
  absl::SleepFor(issued + absl::Milliseconds(10500) - absl::Now());
  for (int i = 0; i < 3; ++i) {
    MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
    EXPECT_TRUE(IsUnavailableBye(session.greeting)) << session.greeting.text;
    EXPECT_TRUE(absl::StartsWith(session.greeting.text,
                                 absl::StrCat("* BYE [UNAVAILABLE] no access token for destination ",
                                              kDestinationName, ": ")))
        << session.greeting.text;
    EXPECT_TRUE(session.client->ExpectClosed().ok());
  }
  EXPECT_EQ(fake().client_credentials_grants(), 1);

  // The token service comes back: within the retry backoff (at most 60 s, ×1.5; after a few
  // failures a few seconds) sessions work again.
  MR_ASSERT_OK(fake().Start());
  bool recovered = false;
  const absl::Time deadline = absl::Now() + absl::Seconds(25);
  while (!recovered && absl::Now() < deadline) {
    MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
    recovered = absl::StartsWith(session.greeting.text, "* PREAUTH ");
    if (!recovered) absl::SleepFor(absl::Milliseconds(250));
  }
  EXPECT_TRUE(recovered) << "no PREAUTH within 25 s of the token service's return";
}

TEST_F(OAuthTest, ClientCredentialsTokenRejectedUpstreamGivesByeThenRecovers) {
  MR_ASSERT_OK(StartMailring({OAuthDestination("OAuth2ClientCredentials")}));
  {
    MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
    ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* PREAUTH ")) << session.greeting.text;
  }
  fake().RevokeAllAccessTokens();  // introspection now says active: false
  {
    MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
    EXPECT_TRUE(IsUnavailableBye(session.greeting)) << session.greeting.text;
    EXPECT_TRUE(session.client->ExpectClosed().ok());
  }
  // The rejected token was dropped: mailring fetches a new one and sessions work again.
  bool recovered = false;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!recovered && absl::Now() < deadline) {
    MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
    recovered = absl::StartsWith(session.greeting.text, "* PREAUTH ");
    if (!recovered) absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_TRUE(recovered) << "still no PREAUTH 10 s after the token was rejected";
  EXPECT_EQ(fake().client_credentials_grants(), 2);
}

TEST_F(OAuthTest, ClientCredentialsTokenServiceFaultsGiveClearBye) {
  struct Case {
    FakeOAuthServer::Fault fault;
    std::string reason;  // expected in the BYE
  };
  const std::vector<Case> cases = {
      {FakeOAuthServer::Fault::kHttp500, "HTTP 500"},
      {FakeOAuthServer::Fault::kBadJson, "not valid JSON"},
      {FakeOAuthServer::Fault::kMissingAccessToken, "no access_token"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.reason);
    if (mailring_ != nullptr) StopMailringAndCheckLog();
    // Every attempt fails for the duration of this case (retries included).
    fake().FailNextTokenRequests(1000, c.fault);
    const int failed_before = fake().failed_token_requests();
    MR_ASSERT_OK(StartMailring({OAuthDestination("OAuth2ClientCredentials")}));
    ASSERT_TRUE(WaitFor([&] { return fake().failed_token_requests() > failed_before; },
                        absl::Seconds(5)));
    MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
    EXPECT_TRUE(absl::StartsWith(session.greeting.text,
                                 absl::StrCat("* BYE [UNAVAILABLE] no access token for destination ",
                                              kDestinationName, ": ")))
        << session.greeting.text;
    EXPECT_TRUE(absl::StrContains(session.greeting.text, c.reason)) << session.greeting.text;
    fake().FailNextTokenRequests(0, c.fault);
  }
}

// --- OAuth2RefreshToken ------------------------------------------------------------------------

TEST_F(OAuthTest, RefreshTokenGreetingAndPreAuthenticationCommands) {
  MR_ASSERT_OK(StartMailring({OAuthDestination("OAuth2RefreshToken")}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  ASSERT_TRUE(absl::StartsWith(session.greeting.text, "* OK [CAPABILITY IMAP4rev1 "))
      << session.greeting.text;
  EXPECT_TRUE(absl::StrContains(session.greeting.text, " SASL-IR")) << session.greeting.text;
  EXPECT_TRUE(absl::StrContains(session.greeting.text, " AUTH=XOAUTH2")) << session.greeting.text;

  MR_ASSERT_OK_AND_ASSIGN(auto capability, session.client->Command("C1", "CAPABILITY"));
  EXPECT_EQ(capability.back().Status(), "OK") << Transcript(capability);
  EXPECT_TRUE(absl::StrContains(Transcript(capability), "* CAPABILITY ")) << Transcript(capability);
  MR_ASSERT_OK_AND_ASSIGN(auto noop, session.client->Command("C2", "NOOP"));
  EXPECT_EQ(noop.back().Status(), "OK") << Transcript(noop);
  MR_ASSERT_OK_AND_ASSIGN(auto id, session.client->Command("C3", "ID NIL"));
  EXPECT_EQ(id.back().Status(), "OK") << Transcript(id);
  MR_ASSERT_OK_AND_ASSIGN(auto select, session.client->Command("C4", "SELECT INBOX"));
  EXPECT_TRUE(select.back().Status() == "BAD" || select.back().Status() == "NO")
      << Transcript(select);
  MR_ASSERT_OK_AND_ASSIGN(auto login, session.client->Command("C5", "LOGIN alice secret"));
  EXPECT_TRUE(login.back().Status() == "BAD" || login.back().Status() == "NO") << Transcript(login);
  MR_ASSERT_OK_AND_ASSIGN(auto logout, session.client->Command("C6", "LOGOUT"));
  EXPECT_EQ(logout.back().Status(), "OK") << Transcript(logout);
  EXPECT_TRUE(session.client->ExpectClosed().ok());
  EXPECT_EQ(fake().token_requests(), 0);
}

TEST_F(OAuthTest, RefreshTokenOneLineAuthenticateThenSelectAndFetch) {
  const std::string refresh_token = NewRefreshToken();
  MR_ASSERT_OK(StartMailring({OAuthDestination("OAuth2RefreshToken")}));
  MR_ASSERT_OK_AND_ASSIGN(AuthResult auth, OpenAndAuthenticate("alice", refresh_token));
  ASSERT_EQ(auth.responses.back().Status(), "OK") << Transcript(auth.responses);
  EXPECT_TRUE(absl::StartsWith(auth.responses.back().text, "A1 OK ")) << Transcript(auth.responses);
  ExpectMailboxReadable(*auth.session.client);
  EXPECT_EQ(fake().refresh_token_grants(), 1);
  EXPECT_GE(fake().active_introspections(), 1);
}

TEST_F(OAuthTest, RefreshTokenTwoStepAuthenticate) {
  const std::string refresh_token = NewRefreshToken();
  MR_ASSERT_OK(StartMailring({OAuthDestination("OAuth2RefreshToken")}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  MR_ASSERT_OK(session.client->Send("T1 AUTHENTICATE XOAUTH2\r\n"));
  MR_ASSERT_OK_AND_ASSIGN(ImapResponse go_ahead, session.client->ReadResponse());
  ASSERT_TRUE(absl::StartsWith(go_ahead.text, "+")) << go_ahead.text;
  MR_ASSERT_OK(session.client->Send(XOAuth2("alice", refresh_token) + "\r\n"));
  MR_ASSERT_OK_AND_ASSIGN(auto responses, session.client->ReadUntilTagged("T1"));
  ASSERT_EQ(responses.back().Status(), "OK") << Transcript(responses);
  ExpectMailboxReadable(*session.client);
  EXPECT_EQ(fake().refresh_token_grants(), 1);
}

TEST_F(OAuthTest, RefreshTokenCancelledTwoStepThenAuthenticateAgain) {
  const std::string refresh_token = NewRefreshToken();
  MR_ASSERT_OK(StartMailring({OAuthDestination("OAuth2RefreshToken")}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  MR_ASSERT_OK(session.client->Send("T1 AUTHENTICATE XOAUTH2\r\n"));
  MR_ASSERT_OK_AND_ASSIGN(ImapResponse go_ahead, session.client->ReadResponse());
  ASSERT_TRUE(absl::StartsWith(go_ahead.text, "+")) << go_ahead.text;
  MR_ASSERT_OK(session.client->Send("*\r\n"));
  MR_ASSERT_OK_AND_ASSIGN(auto cancelled, session.client->ReadUntilTagged("T1"));
  EXPECT_EQ(cancelled.back().Status(), "BAD") << Transcript(cancelled);
  MR_ASSERT_OK_AND_ASSIGN(
      auto auth, session.client->Command("T2", "AUTHENTICATE XOAUTH2 " + XOAuth2("alice", refresh_token)));
  EXPECT_EQ(auth.back().Status(), "OK") << Transcript(auth);
  EXPECT_EQ(fake().refresh_token_grants(), 1);
}

TEST_F(OAuthTest, RefreshTokenReconnectingCostsOneExchange) {
  const std::string refresh_token = NewRefreshToken();
  MR_ASSERT_OK(StartMailring({OAuthDestination("OAuth2RefreshToken")}));
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(absl::StrCat("connection ", i));
    MR_ASSERT_OK_AND_ASSIGN(AuthResult auth, OpenAndAuthenticate("alice", refresh_token));
    ASSERT_EQ(auth.responses.back().Status(), "OK") << Transcript(auth.responses);
    MR_ASSERT_OK_AND_ASSIGN(auto select, auth.session.client->Command("S", "SELECT INBOX"));
    EXPECT_EQ(select.back().Status(), "OK") << Transcript(select);
  }
  EXPECT_EQ(fake().refresh_token_grants(), 1);

  // Another refresh token is another exchange.
  const std::string other = NewRefreshToken();
  MR_ASSERT_OK_AND_ASSIGN(AuthResult auth, OpenAndAuthenticate("alice", other));
  EXPECT_EQ(auth.responses.back().Status(), "OK") << Transcript(auth.responses);
  EXPECT_EQ(fake().refresh_token_grants(), 2);
}

TEST_F(OAuthTest, RefreshTokenExchangedAgainAfterTheAccessTokenExpired) {
  fake().SetExpiresIn(3);
  const std::string refresh_token = NewRefreshToken();
  MR_ASSERT_OK(StartMailring({OAuthDestination("OAuth2RefreshToken")}));
  {
    MR_ASSERT_OK_AND_ASSIGN(AuthResult auth, OpenAndAuthenticate("alice", refresh_token));
    ASSERT_EQ(auth.responses.back().Status(), "OK") << Transcript(auth.responses);
  }
  absl::SleepFor(absl::Milliseconds(3500));  // past the 3 s token (real time: see above)
  MR_ASSERT_OK_AND_ASSIGN(AuthResult auth, OpenAndAuthenticate("alice", refresh_token));
  EXPECT_EQ(auth.responses.back().Status(), "OK") << Transcript(auth.responses);
  EXPECT_EQ(fake().refresh_token_grants(), 2);
}

TEST_F(OAuthTest, RefreshTokenEmptyMailUserLogsInAsTheClientsUser) {
  const std::string refresh_token = NewRefreshToken("alice");
  MR_ASSERT_OK(StartMailring({OAuthDestination("OAuth2RefreshToken", /*mail_user=*/"")}));
  {
    MR_ASSERT_OK_AND_ASSIGN(AuthResult auth, OpenAndAuthenticate("alice", refresh_token));
    ASSERT_EQ(auth.responses.back().Status(), "OK") << Transcript(auth.responses);
    ExpectMailboxReadable(*auth.session.client);
  }
  // Alice's token presented as bob: Dovecot's introspection names alice, so it refuses.
  MR_ASSERT_OK_AND_ASSIGN(AuthResult auth, OpenAndAuthenticate("bob", refresh_token));
  EXPECT_TRUE(IsAuthenticationFailed(auth.responses.back(), "A1")) << Transcript(auth.responses);
}

TEST_F(OAuthTest, RefreshTokenRejectedUpstreamGivesTaggedNoThenRetryWorks) {
  const std::string refresh_token = NewRefreshToken();
  MR_ASSERT_OK(StartMailring({OAuthDestination("OAuth2RefreshToken")}));
  {
    MR_ASSERT_OK_AND_ASSIGN(AuthResult auth, OpenAndAuthenticate("alice", refresh_token));
    ASSERT_EQ(auth.responses.back().Status(), "OK") << Transcript(auth.responses);
  }
  fake().RevokeAllAccessTokens();  // the cached access token is now refused by Dovecot
  MR_ASSERT_OK_AND_ASSIGN(AuthResult auth, OpenAndAuthenticate("alice", refresh_token));
  EXPECT_TRUE(IsAuthenticationFailed(auth.responses.back(), "A1")) << Transcript(auth.responses);
  EXPECT_EQ(fake().refresh_token_grants(), 1) << "the cached token should have been tried";

  // The refused token was dropped: trying again exchanges the refresh token anew.
  MR_ASSERT_OK_AND_ASSIGN(
      auto retry, auth.session.client->Command(
                      "A2", "AUTHENTICATE XOAUTH2 " + XOAuth2("alice", refresh_token)));
  EXPECT_EQ(retry.back().Status(), "OK") << Transcript(retry);
  EXPECT_EQ(fake().refresh_token_grants(), 2);
  ExpectMailboxReadable(*auth.session.client);
}

TEST_F(OAuthTest, RefreshTokenUnknownToTheTokenServiceGivesTaggedNo) {
  const std::string unknown = UniqueSecret("unknown-refresh-token");
  secrets_.push_back(unknown);
  MR_ASSERT_OK(StartMailring({OAuthDestination("OAuth2RefreshToken")}));
  MR_ASSERT_OK_AND_ASSIGN(AuthResult auth, OpenAndAuthenticate("alice", unknown));
  EXPECT_TRUE(IsAuthenticationFailed(auth.responses.back(), "A1")) << Transcript(auth.responses);
  EXPECT_TRUE(absl::StrContains(auth.responses.back().text, "invalid_grant"))
      << Transcript(auth.responses);
  EXPECT_EQ(fake().refresh_token_grants(), 0);
  EXPECT_EQ(fake().token_requests(), 1);
}

TEST_F(OAuthTest, RefreshTokenTokenServiceFaultsGiveTaggedNoWithReason) {
  struct Case {
    FakeOAuthServer::Fault fault;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {FakeOAuthServer::Fault::kHttp500, "HTTP 500"},
      {FakeOAuthServer::Fault::kBadJson, "not valid JSON"},
      {FakeOAuthServer::Fault::kMissingAccessToken, "no access_token"},
  };
  MR_ASSERT_OK(StartMailring({OAuthDestination("OAuth2RefreshToken")}));
  for (const Case& c : cases) {
    SCOPED_TRACE(c.reason);
    const std::string refresh_token = NewRefreshToken();  // a fresh cache key per case
    fake().FailNextTokenRequests(1, c.fault);
    MR_ASSERT_OK_AND_ASSIGN(AuthResult auth, OpenAndAuthenticate("alice", refresh_token));
    EXPECT_TRUE(IsAuthenticationFailed(auth.responses.back(), "A1")) << Transcript(auth.responses);
    EXPECT_TRUE(absl::StrContains(auth.responses.back().text, c.reason))
        << Transcript(auth.responses);
  }
  EXPECT_EQ(fake().refresh_token_grants(), 0);
}

TEST_F(OAuthTest, RefreshTokenTokenServiceDownGivesTaggedNo) {
  const std::string refresh_token = NewRefreshToken();
  MR_ASSERT_OK(StartMailring({OAuthDestination("OAuth2RefreshToken")}));
  fake().Stop();
  MR_ASSERT_OK_AND_ASSIGN(AuthResult auth, OpenAndAuthenticate("alice", refresh_token));
  EXPECT_TRUE(IsAuthenticationFailed(auth.responses.back(), "A1")) << Transcript(auth.responses);
  MR_ASSERT_OK(fake().Start());
}

TEST_F(OAuthTest, TokenServiceThatNeverAnswersIsBoundedByTheDestinationsReadTimeout) {
  // tokenServiceURL.SocketReadTimeoutInSeconds = 1: a token service that accepts and says
  // nothing fails the exchange after about a second, not after the 10 s default.
  SilentUpstream silent(SilentUpstream::Behaviour::kHoldOpen);
  Destination destination = OAuthDestination("OAuth2RefreshToken");
  destination["tokenServiceURL"] = absl::StrCat("http://127.0.0.1:", silent.port(), "/oauth/token");
  destination["tokenServiceURL.SocketReadTimeoutInSeconds"] = "1";
  MR_ASSERT_OK(StartMailring({destination}));
  const std::string refresh_token = NewRefreshToken();
  const absl::Time start = absl::Now();
  MR_ASSERT_OK_AND_ASSIGN(AuthResult auth, OpenAndAuthenticate("alice", refresh_token));
  const absl::Duration took = absl::Now() - start;
  EXPECT_TRUE(IsAuthenticationFailed(auth.responses.back(), "A1")) << Transcript(auth.responses);
  EXPECT_GE(silent.accepted(), 1) << "the request reached the silent token service";
  // Generous for a loaded machine, still well below the 10 s a fixed timeout would take.
  EXPECT_LT(took, absl::Seconds(5)) << Transcript(auth.responses);
  std::cout << "[ MEASURED ] silent token service answered after " << took << std::endl;
}

TEST_F(OAuthTest, MalformedClientResponsesGiveTaggedNoWithoutTokenRequest) {
  MR_ASSERT_OK(StartMailring({OAuthDestination("OAuth2RefreshToken")}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  // Not base64.
  MR_ASSERT_OK_AND_ASSIGN(auto bad_base64,
                          session.client->Command("M1", "AUTHENTICATE XOAUTH2 !!!not*base64!!!"));
  EXPECT_TRUE(IsAuthenticationFailed(bad_base64.back(), "M1")) << Transcript(bad_base64);
  // Base64 of something that is not an XOAUTH2 response.
  MR_ASSERT_OK_AND_ASSIGN(
      auto not_xoauth2,
      session.client->Command("M2", "AUTHENTICATE XOAUTH2 " + absl::Base64Escape("hello world")));
  EXPECT_TRUE(IsAuthenticationFailed(not_xoauth2.back(), "M2")) << Transcript(not_xoauth2);
  EXPECT_EQ(fake().token_requests(), 0);
  // Malformed on the second step too, on a new connection (three failures end a session).
  MR_ASSERT_OK_AND_ASSIGN(ProxySession second, OpenSession());
  MR_ASSERT_OK(second.client->Send("M3 AUTHENTICATE XOAUTH2\r\n"));
  MR_ASSERT_OK_AND_ASSIGN(ImapResponse go_ahead, second.client->ReadResponse());
  ASSERT_TRUE(absl::StartsWith(go_ahead.text, "+")) << go_ahead.text;
  MR_ASSERT_OK(second.client->Send("%%%\r\n"));
  MR_ASSERT_OK_AND_ASSIGN(auto step_two, second.client->ReadUntilTagged("M3"));
  EXPECT_TRUE(IsAuthenticationFailed(step_two.back(), "M3")) << Transcript(step_two);
  EXPECT_EQ(fake().token_requests(), 0);
}

TEST_F(OAuthTest, ThreeFailedAuthenticationsEndTheSession) {
  MR_ASSERT_OK(StartMailring({OAuthDestination("OAuth2RefreshToken")}));
  MR_ASSERT_OK_AND_ASSIGN(ProxySession session, OpenSession());
  for (int i = 1; i <= 3; ++i) {
    const std::string tag = absl::StrCat("F", i);
    MR_ASSERT_OK_AND_ASSIGN(auto responses,
                            session.client->Command(tag, "AUTHENTICATE XOAUTH2 =notbase64="));
    EXPECT_TRUE(IsAuthenticationFailed(responses.back(), tag)) << Transcript(responses);
  }
  // Possibly a BYE, then the connection is closed.
  absl::StatusOr<ImapResponse> after = session.client->ReadResponse();
  if (after.ok()) {
    EXPECT_TRUE(absl::StartsWith(after->text, "* BYE ")) << after->text;
    EXPECT_TRUE(session.client->ExpectClosed().ok());
  } else {
    EXPECT_TRUE(absl::StartsWith(after.status().message(), "EOF")) << after.status();
  }
}

// --- OAuth2AuthorizationCode -------------------------------------------------------------------

TEST_F(OAuthTest, AuthorizationCodeAuthenticateThenSelectAndFetch) {
  const std::string redirect_uri = "https://app.example.org/oauth/callback";
  const std::string code = NewCode(redirect_uri);
  Destination destination = OAuthDestination("OAuth2AuthorizationCode");
  destination["redirectUri"] = redirect_uri;
  MR_ASSERT_OK(StartMailring({destination}));
  MR_ASSERT_OK_AND_ASSIGN(AuthResult auth, OpenAndAuthenticate("alice", code));
  ASSERT_EQ(auth.responses.back().Status(), "OK") << Transcript(auth.responses);
  ExpectMailboxReadable(*auth.session.client);
  EXPECT_EQ(fake().authorization_code_grants(), 1);
}

TEST_F(OAuthTest, AuthorizationCodeWithWrongRedirectUriGivesTaggedNo) {
  const std::string code = NewCode("https://app.example.org/oauth/callback");
  Destination destination = OAuthDestination("OAuth2AuthorizationCode");
  destination["redirectUri"] = "https://evil.example.org/callback";
  MR_ASSERT_OK(StartMailring({destination}));
  MR_ASSERT_OK_AND_ASSIGN(AuthResult auth, OpenAndAuthenticate("alice", code));
  EXPECT_TRUE(IsAuthenticationFailed(auth.responses.back(), "A1")) << Transcript(auth.responses);
  EXPECT_TRUE(absl::StrContains(auth.responses.back().text, "invalid_grant"))
      << Transcript(auth.responses);
  EXPECT_EQ(fake().authorization_code_grants(), 0);
}

TEST_F(OAuthTest, AuthorizationCodeIsExchangedOnceAndRenewedWithItsRefreshToken) {
  fake().SetExpiresIn(3);
  const std::string code = NewCode();
  MR_ASSERT_OK(StartMailring({OAuthDestination("OAuth2AuthorizationCode")}));
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(absl::StrCat("connection ", i));
    MR_ASSERT_OK_AND_ASSIGN(AuthResult auth, OpenAndAuthenticate("alice", code));
    ASSERT_EQ(auth.responses.back().Status(), "OK") << Transcript(auth.responses);
  }
  EXPECT_EQ(fake().authorization_code_grants(), 1);
  EXPECT_EQ(fake().refresh_token_grants(), 0);
  EXPECT_EQ(fake().failed_token_requests(), 0);

  // After the access token expired the same client comes back with its (used) code: mailring
  // renews with the refresh token the code exchange returned, never re-sending the code.
  absl::SleepFor(absl::Milliseconds(3500));  // past the 3 s token (real time: see above)
  MR_ASSERT_OK_AND_ASSIGN(AuthResult auth, OpenAndAuthenticate("alice", code));
  EXPECT_EQ(auth.responses.back().Status(), "OK") << Transcript(auth.responses);
  EXPECT_EQ(fake().authorization_code_grants(), 1);
  EXPECT_EQ(fake().refresh_token_grants(), 1);
  EXPECT_EQ(fake().failed_token_requests(), 0) << "the used code was sent again";
}

// --- SMTP and POP3: the same credential path -------------------------------------------------

TEST_F(OAuthTest, SmtpClientCredentialsSendsMailWithXoauth2Upstream) {
  MR_ASSERT_OK(StartMailring({OAuthMailDestination("OAuth2ClientCredentials", "smtp")}));
  MR_ASSERT_OK_AND_ASSIGN(auto client, LineClient::Connect(listen_ports_[0]));
  MR_ASSERT_OK_AND_ASSIGN(std::string greeting, client->ReadSmtpReply());
  ASSERT_TRUE(absl::StartsWith(greeting, "220 ")) << greeting << "\n" << MailringLog();
  MR_ASSERT_OK_AND_ASSIGN(std::string mail, client->Smtp("MAIL FROM:<alice@example.org>"));
  EXPECT_TRUE(absl::StartsWith(mail, "250")) << mail;
  MR_ASSERT_OK_AND_ASSIGN(std::string rcpt, client->Smtp("RCPT TO:<bob@example.org>"));
  EXPECT_TRUE(absl::StartsWith(rcpt, "250")) << rcpt;
  MR_ASSERT_OK_AND_ASSIGN(std::string data, client->Smtp("DATA"));
  ASSERT_TRUE(absl::StartsWith(data, "354")) << data;
  MR_ASSERT_OK_AND_ASSIGN(std::string done,
                          client->Smtp("Subject: oauth\r\n\r\nsent with a client-credentials token\r\n."));
  EXPECT_TRUE(absl::StartsWith(done, "250")) << done;
  MR_ASSERT_OK_AND_ASSIGN(std::string message, dovecot().SinkMessage(1, absl::Seconds(10)));
  EXPECT_TRUE(absl::StrContains(message, "sent with a client-credentials token"));
  EXPECT_GE(fake().introspections(), 1);
}

TEST_F(OAuthTest, Pop3RefreshTokenClientAuthenticatesThenReadsMail) {
  MR_ASSERT_OK(StartMailring({OAuthMailDestination("OAuth2RefreshToken", "pop3")}));
  const std::string refresh = NewRefreshToken();
  MR_ASSERT_OK_AND_ASSIGN(auto client, LineClient::Connect(listen_ports_[0]));
  MR_ASSERT_OK_AND_ASSIGN(std::string greeting, client->ReadLine());
  ASSERT_TRUE(absl::StartsWith(greeting, "+OK")) << greeting;
  MR_ASSERT_OK_AND_ASSIGN(std::string early, client->Pop3("STAT"));
  EXPECT_TRUE(absl::StartsWith(early, "-ERR [AUTH] ")) << early;
  MR_ASSERT_OK_AND_ASSIGN(std::string bad, client->Pop3("AUTH XOAUTH2 " + XOAuth2("alice", "nope")));
  EXPECT_TRUE(absl::StartsWith(bad, "-ERR [AUTH] ")) << "an unknown refresh token: " << bad;
  MR_ASSERT_OK_AND_ASSIGN(std::string auth,
                          client->Pop3("AUTH XOAUTH2 " + XOAuth2("alice", refresh)));
  ASSERT_TRUE(absl::StartsWith(auth, "+OK")) << auth << "\n" << MailringLog();
  MR_ASSERT_OK_AND_ASSIGN(std::string stat, client->Pop3("STAT"));
  EXPECT_TRUE(absl::StartsWith(stat, "+OK 4 ")) << stat;
}

TEST_F(OAuthTest, SmtpRefreshTokenClientAuthenticatesWithXoauth2) {
  MR_ASSERT_OK(StartMailring({OAuthMailDestination("OAuth2RefreshToken", "smtp")}));
  const std::string refresh = NewRefreshToken();
  MR_ASSERT_OK_AND_ASSIGN(auto client, LineClient::Connect(listen_ports_[0]));
  MR_ASSERT_OK_AND_ASSIGN(std::string greeting, client->ReadSmtpReply());
  ASSERT_TRUE(absl::StartsWith(greeting, "220 ")) << greeting;
  MR_ASSERT_OK_AND_ASSIGN(std::string ehlo, client->Smtp("EHLO app"));
  EXPECT_TRUE(absl::StrContains(ehlo, "AUTH XOAUTH2")) << ehlo;
  MR_ASSERT_OK_AND_ASSIGN(std::string auth,
                          client->Smtp("AUTH XOAUTH2 " + XOAuth2("alice", refresh)));
  ASSERT_TRUE(absl::StartsWith(auth, "235 ")) << auth << "\n" << MailringLog();
  MR_ASSERT_OK_AND_ASSIGN(std::string mail, client->Smtp("MAIL FROM:<alice@example.org>"));
  EXPECT_TRUE(absl::StartsWith(mail, "250")) << mail;
}

}  // namespace
}  // namespace mailring::integration
