// UpstreamTransport without sockets or io_uring: the test plays the session (it sends what a
// kSend step holds to a scripted Connectivity Proxy or an in-memory wolfSSL server and feeds
// their answers back), so every step the session would see is checked in order: SOCKS5 → plain,
// TLS, SOCKS5 → TLS, STARTTLS, failures at each layer, bytes split at every position.
#include "core/transport/upstream_transport.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/tls_client.h"
#include "gtest/gtest.h"
#include "proto/secret.h"
#include "proto/socks5.h"
#include "tests/core/tls/in_memory_tls_server.h"

namespace mailring::core {
namespace {

using namespace std::string_literals;  // NOLINT: SOCKS5 messages contain NUL bytes
using Outcome = TransportStep::Outcome;

constexpr std::string_view kJwt = "hdr.jwt-secret.sig";  // 18 bytes
constexpr std::string_view kAction = "waiting for the server's greeting";
// Bounds every drive loop: a transport that never waits fails the test instead of spinning.
constexpr int kMaxSteps = 10000;

// The proxy's side of a successful handshake, as tests/fakes/connectivity_proxy.h answers.
const std::string kMethodSelected = "\x05\x80"s;
const std::string kAuthenticated = "\x01\x00"s;
const std::string kConnected = "\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x8f"s;
// What mailring must send: greeting, JWT authentication (no location id), CONNECT by name.
const std::string kGreeting = "\x05\x01\x80"s;
const std::string kAuthentication = "\x01\x00\x00\x00\x12"s + std::string(kJwt) + "\x00"s;
const std::string kConnect = "\x05\x01\x00\x03\x09"s + "localhost" + "\x00\x8f"s;

// What the session saw, in order.
struct Trace {
  std::vector<Outcome> outcomes;
  std::vector<std::pair<TransportLayer, std::string>> sent;
  std::string plaintext;
  std::optional<TransportFailure> failure;

  Outcome last() const { return outcomes.empty() ? Outcome::kNeedMore : outcomes.back(); }
  bool Saw(Outcome outcome) const {
    for (const Outcome seen : outcomes) {
      if (seen == outcome) return true;
    }
    return false;
  }
  std::string SentBy(TransportLayer layer) const {
    std::string bytes;
    for (const auto& [from, sent_bytes] : sent) {
      if (from == layer) bytes += sent_bytes;
    }
    return bytes;
  }
};

// Asks for steps as Session::DriveTransport does, until the transport waits (more input, the
// proxy's token) or failed.
Outcome Drive(UpstreamTransport& transport, Trace* trace) {
  for (int i = 0; i < kMaxSteps; ++i) {
    TransportStep step = transport.Next(kAction);
    trace->outcomes.push_back(step.outcome);
    switch (step.outcome) {
      case Outcome::kSend:
        trace->sent.emplace_back(step.layer, std::move(step.bytes));
        break;
      case Outcome::kPlaintext:
        EXPECT_FALSE(step.bytes.empty()) << "kPlaintext without bytes";
        trace->plaintext += step.bytes;
        break;
      case Outcome::kFailed:
        trace->failure = step.failure;
        return step.outcome;
      case Outcome::kNeedMore:
      case Outcome::kNeedProxyToken:
        return step.outcome;
      default:
        break;
    }
  }
  ADD_FAILURE() << "the transport did not wait within " << kMaxSteps << " steps";
  return Outcome::kFailed;
}

UpstreamTransport::Options PlainOptions() {
  UpstreamTransport::Options options;
  options.destination_name = "dest-imap";
  options.host = "localhost";
  options.port = 143;
  return options;
}

UpstreamTransport::Options ProxyOptions() {
  UpstreamTransport::Options options = PlainOptions();
  options.via_connectivity_proxy = true;
  return options;
}

// Runs the proxy handshake with `server_bytes` (the proxy's replies and whatever follows them)
// fed in the chunks given; returns the trace from the token on.
Trace ProxyHandshake(UpstreamTransport& transport, const std::vector<std::string>& chunks) {
  Trace trace;
  EXPECT_EQ(Drive(transport, &trace), Outcome::kNeedProxyToken);
  transport.ProvideProxyToken(proto::Secret(std::string(kJwt)));
  Drive(transport, &trace);
  for (const std::string& chunk : chunks) {
    if (trace.failure.has_value()) break;
    transport.Feed(chunk);
    Drive(transport, &trace);
  }
  return trace;
}

// --- Plain and the Connectivity Proxy ---------------------------------------------------------

TEST(UpstreamTransportTest, BareSocketIsEstablishedAtOnceAndHandsBytesToTheDialog) {
  UpstreamTransport transport(PlainOptions());
  Trace trace;
  EXPECT_EQ(Drive(transport, &trace), Outcome::kNeedMore);
  EXPECT_EQ(trace.outcomes, (std::vector{Outcome::kEstablished, Outcome::kNeedMore}));
  transport.Feed("* OK ready\r\n");
  transport.Feed("* more");
  EXPECT_EQ(Drive(transport, &trace), Outcome::kNeedMore);
  EXPECT_EQ(trace.plaintext, "* OK ready\r\n* more");
  EXPECT_EQ(transport.tls(), nullptr);
  EXPECT_FALSE(trace.Saw(Outcome::kNeedProxyToken));
}

TEST(UpstreamTransportTest, SealOnPlainSendsTheBytesAsTheyAre) {
  UpstreamTransport transport(PlainOptions());
  Trace trace;
  Drive(transport, &trace);
  const TransportStep sealed = transport.Seal("a1 LOGIN u p\r\n");
  EXPECT_EQ(sealed.outcome, Outcome::kSend);
  EXPECT_EQ(sealed.layer, TransportLayer::kStream);
  EXPECT_EQ(sealed.bytes, "a1 LOGIN u p\r\n");
}

TEST(UpstreamTransportTest, ProxyWaitsForItsTokenAndSendsNothingBefore) {
  UpstreamTransport transport(ProxyOptions());
  Trace trace;
  EXPECT_EQ(Drive(transport, &trace), Outcome::kNeedProxyToken);
  EXPECT_TRUE(trace.sent.empty());
  EXPECT_EQ(transport.proxy_action(), "waiting for a Connectivity Proxy token");
  // Asking again changes nothing.
  EXPECT_EQ(Drive(transport, &trace), Outcome::kNeedProxyToken);
  EXPECT_TRUE(trace.sent.empty());
}

TEST(UpstreamTransportTest, ProxyHandshakeThenPlainDeliversTheServersGreeting) {
  UpstreamTransport transport(ProxyOptions());
  const Trace trace =
      ProxyHandshake(transport, {kMethodSelected, kAuthenticated, kConnected + "* OK hi\r\n"});
  ASSERT_FALSE(trace.failure.has_value()) << trace.failure->log_reason;
  ASSERT_EQ(trace.sent.size(), 3u);
  for (const auto& [layer, bytes] : trace.sent) EXPECT_EQ(layer, TransportLayer::kProxy);
  EXPECT_EQ(trace.sent[0].second, kGreeting);
  EXPECT_EQ(trace.sent[1].second, kAuthentication);
  EXPECT_EQ(trace.sent[2].second, kConnect);
  EXPECT_EQ(trace.plaintext, "* OK hi\r\n");
  EXPECT_EQ(
      trace.outcomes,
      (std::vector{Outcome::kNeedProxyToken, Outcome::kSend, Outcome::kNeedMore, Outcome::kSend,
                   Outcome::kNeedMore, Outcome::kSend, Outcome::kNeedMore, Outcome::kProxyConnected,
                   Outcome::kEstablished, Outcome::kPlaintext, Outcome::kNeedMore}));
}

TEST(UpstreamTransportTest, ProxyRepliesSplitAtEveryPositionGiveTheSameSteps) {
  const std::string server = kMethodSelected + kAuthenticated + kConnected + "* OK hi\r\n";
  for (size_t cut = 0; cut <= server.size(); ++cut) {
    SCOPED_TRACE(cut);
    UpstreamTransport transport(ProxyOptions());
    const Trace trace = ProxyHandshake(transport, {server.substr(0, cut), server.substr(cut)});
    ASSERT_FALSE(trace.failure.has_value()) << trace.failure->log_reason;
    EXPECT_EQ(trace.SentBy(TransportLayer::kProxy), kGreeting + kAuthentication + kConnect);
    EXPECT_EQ(trace.plaintext, "* OK hi\r\n");
    EXPECT_TRUE(trace.Saw(Outcome::kProxyConnected));
    EXPECT_TRUE(trace.Saw(Outcome::kEstablished));
  }
  // And one byte at a time.
  std::vector<std::string> bytes;
  for (const char byte : server) bytes.emplace_back(1, byte);
  UpstreamTransport transport(ProxyOptions());
  const Trace trace = ProxyHandshake(transport, bytes);
  EXPECT_EQ(trace.SentBy(TransportLayer::kProxy), kGreeting + kAuthentication + kConnect);
  EXPECT_EQ(trace.plaintext, "* OK hi\r\n");
}

TEST(UpstreamTransportTest, ProxyRefusingTheJwtFailsWithTheProxysReason) {
  UpstreamTransport transport(ProxyOptions());
  const Trace trace = ProxyHandshake(transport, {kMethodSelected, "\x01\x01"s});
  ASSERT_TRUE(trace.failure.has_value());
  EXPECT_EQ(trace.last(), Outcome::kFailed);
  EXPECT_TRUE(trace.failure->log_reason.starts_with("Connectivity Proxy: "))
      << trace.failure->log_reason;
  EXPECT_TRUE(trace.failure->client_reason.starts_with(
      "cannot reach the on-premise mail server of destination dest-imap: "))
      << trace.failure->client_reason;
  EXPECT_EQ(trace.failure->log_reason.find(kJwt), std::string::npos);
  EXPECT_EQ(trace.failure->client_reason.find(kJwt), std::string::npos);
}

TEST(UpstreamTransportTest, ProxyConnectReplyCodeBecomesTheReason) {
  UpstreamTransport transport(ProxyOptions());
  const Trace trace = ProxyHandshake(
      transport, {kMethodSelected, kAuthenticated, "\x05\x02\x00\x01\x00\x00\x00\x00\x00\x00"s});
  ASSERT_TRUE(trace.failure.has_value());
  const std::string reason(proto::Socks5ReplyReason(0x02));
  EXPECT_NE(trace.failure->log_reason.find(reason), std::string::npos) << trace.failure->log_reason;
  EXPECT_EQ(trace.failure->client_reason,
            "cannot reach the on-premise mail server of destination dest-imap: " +
                std::string(trace.failure->log_reason.substr(strlen("Connectivity Proxy: "))));
}

TEST(UpstreamTransportTest, FailureIsFinal) {
  UpstreamTransport transport(ProxyOptions());
  Trace trace = ProxyHandshake(transport, {"\x05\xff"s});
  ASSERT_TRUE(trace.failure.has_value());
  const TransportFailure first = *trace.failure;
  transport.Feed("* OK late\r\n");
  Trace again;
  EXPECT_EQ(Drive(transport, &again), Outcome::kFailed);
  EXPECT_EQ(again.failure->log_reason, first.log_reason);
  EXPECT_EQ(again.failure->client_reason, first.client_reason);
  EXPECT_TRUE(again.plaintext.empty());
}

TEST(UpstreamTransportTest, ProxyActionFollowsTheHandshake) {
  UpstreamTransport transport(ProxyOptions());
  Trace trace;
  Drive(transport, &trace);
  transport.ProvideProxyToken(proto::Secret(std::string(kJwt)));
  Drive(transport, &trace);
  EXPECT_EQ(transport.proxy_action(), proto::Socks5Client("j", "", "h", 1).action());
  transport.Feed(kMethodSelected);
  Drive(transport, &trace);
  EXPECT_NE(transport.proxy_action(), proto::Socks5Client("j", "", "h", 1).action());
}

TEST(UpstreamTransportTest, RelayTakesTheBytesThatFollowedTheConnectReply) {
  UpstreamTransport transport(ProxyOptions());
  Trace trace;
  Drive(transport, &trace);
  transport.ProvideProxyToken(proto::Secret(std::string(kJwt)));
  Drive(transport, &trace);
  transport.Feed(kMethodSelected + kAuthenticated + kConnected + "* OK hi\r\n");
  // The session stops at kEstablished (relay-only): nothing was handed out as plaintext yet.
  for (int i = 0; i < kMaxSteps; ++i) {
    const TransportStep step = transport.Next(kAction);
    ASSERT_NE(step.outcome, Outcome::kFailed);
    ASSERT_NE(step.outcome, Outcome::kPlaintext);
    if (step.outcome == Outcome::kEstablished) break;
  }
  EXPECT_EQ(transport.TakeBufferedPlaintext(), "* OK hi\r\n");
  EXPECT_EQ(transport.TakeTls(), nullptr);
}

TEST(UpstreamTransportTest, SendFailedSpeaksForTheLayerThatMadeTheBytes) {
  const UpstreamTransport transport(ProxyOptions());
  const TransportFailure proxy =
      transport.SendFailed(TransportLayer::kProxy, "connection reset by peer", kAction);
  EXPECT_EQ(proxy.log_reason, "writing to the Connectivity Proxy failed: connection reset by peer");
  EXPECT_EQ(proxy.client_reason, "the Connectivity Proxy stopped answering");
  const TransportFailure handshake =
      transport.SendFailed(TransportLayer::kTlsHandshake, "connection reset by peer", kAction);
  EXPECT_EQ(handshake.log_reason, "TLS handshake with upstream failed: connection reset by peer");
  EXPECT_EQ(handshake.client_reason,
            "TLS handshake with the mail server of destination dest-imap failed: connection "
            "reset by peer");
  const TransportFailure stream =
      transport.SendFailed(TransportLayer::kStream, "connection reset by peer", kAction);
  EXPECT_EQ(stream.log_reason,
            "writing to upstream failed while waiting for the server's greeting: connection "
            "reset by peer");
  EXPECT_EQ(stream.client_reason, "the mail server of destination dest-imap stopped answering");
}

TEST(UpstreamTransportTest, OptionsFollowTheRoute) {
  Route route;
  route.destination.name = "dest";
  route.destination.host = "mail.example";
  route.destination.port = 993;
  route.destination.cloud_connector_location_id = "loc";
  EXPECT_TRUE(UpstreamTransport::IsBareSocket(route));
  route.tls = Route::Tls::kStartTlsIfOffered;
  EXPECT_FALSE(UpstreamTransport::IsBareSocket(route));
  route.tls = Route::Tls::kNone;
  route.via_connectivity_proxy = true;
  EXPECT_FALSE(UpstreamTransport::IsBareSocket(route));
  route.tls = Route::Tls::kImplicit;
  route.tls_verify = false;
  const UpstreamTransport::Options options = UpstreamTransport::OptionsFor(route, nullptr);
  EXPECT_EQ(options.destination_name, "dest");
  EXPECT_EQ(options.host, "mail.example");
  EXPECT_EQ(options.port, 993);
  EXPECT_EQ(options.location_id, "loc");
  EXPECT_TRUE(options.via_connectivity_proxy);
  EXPECT_TRUE(options.implicit_tls);
  EXPECT_FALSE(options.verify);
  EXPECT_EQ(options.resumption.cache, nullptr);
}

TEST(UpstreamTransportTest, TlsWithoutAContextFailsWithItsReason) {
  UpstreamTransport::Options options = PlainOptions();
  options.implicit_tls = true;
  UpstreamTransport transport(options);
  Trace trace;
  EXPECT_EQ(Drive(transport, &trace), Outcome::kFailed);
  EXPECT_EQ(trace.failure->log_reason, "no TLS context on this worker");
  EXPECT_EQ(trace.failure->client_reason, "mailring cannot speak TLS to this server");
  EXPECT_TRUE(trace.sent.empty());
}

// --- TLS against an in-memory wolfSSL server ------------------------------------------------

class UpstreamTransportTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { certificates_ = new TlsTestCertificates(); }
  static void TearDownTestSuite() {
    delete certificates_;
    certificates_ = nullptr;
  }
  void SetUp() override {
    if (!certificates_->error().empty()) GTEST_SKIP() << certificates_->error();
    TlsContextOptions options;
    options.use_system_ca = false;
    options.ca_file = certificates_->File("ca.pem");
    absl::StatusOr<std::unique_ptr<TlsContext>> context = TlsContext::Create(options);
    ASSERT_TRUE(context.ok()) << context.status();
    context_ = std::move(*context);
  }

  UpstreamTransport::Options TlsOptions(bool via_proxy) const {
    UpstreamTransport::Options options = via_proxy ? ProxyOptions() : PlainOptions();
    options.implicit_tls = true;
    options.tls_context = context_.get();
    return options;
  }
  static std::unique_ptr<InMemoryTlsServer> Server(const std::string& name = "server") {
    return std::make_unique<InMemoryTlsServer>(certificates_->File(name + "-chain.pem"),
                                           certificates_->File(name + ".key"));
  }

  // Moves TLS bytes between the transport and `server` until the transport waits with nothing
  // in flight, or failed. `sent_from`: the first of trace->sent not yet given to the server.
  static Outcome Exchange(UpstreamTransport& transport, InMemoryTlsServer& server, Trace* trace,
                          size_t* sent_from, bool* accepted) {
    Outcome outcome = Drive(transport, trace);
    for (int round = 0; round < kMaxSteps && outcome == Outcome::kNeedMore; ++round) {
      bool moved = false;
      for (; *sent_from < trace->sent.size(); ++*sent_from) {
        server.Feed(trace->sent[*sent_from].second);
        moved = true;
      }
      if (!*accepted) {
        const int accept = server.Accept();
        if (accept < 0) return Outcome::kFailed;
        *accepted = accept == 1;
      }
      const std::string answer = server.TakeOutput();
      if (answer.empty() && !moved) return outcome;
      transport.Feed(answer);
      outcome = Drive(transport, trace);
    }
    return outcome;
  }

  static inline TlsTestCertificates* certificates_ = nullptr;
  std::unique_ptr<TlsContext> context_;
};

TEST_F(UpstreamTransportTlsTest, ImplicitTlsHandshakesThenHandsTheGreetingToTheDialog) {
  UpstreamTransport transport(TlsOptions(/*via_proxy=*/false));
  auto server = Server();
  Trace trace;
  size_t sent_from = 0;
  bool accepted = false;
  ASSERT_EQ(Exchange(transport, *server, &trace, &sent_from, &accepted), Outcome::kNeedMore)
      << (trace.failure ? trace.failure->log_reason : "");
  ASSERT_TRUE(accepted);
  ASSERT_NE(transport.tls(), nullptr);
  EXPECT_EQ(transport.tls()->protocol_version(), "TLSv1.3");
  EXPECT_FALSE(transport.tls()->resumed());
  // Events in order: started, established, then the stack.
  std::vector<Outcome> events;
  for (const Outcome outcome : trace.outcomes) {
    if (outcome != Outcome::kSend && outcome != Outcome::kNeedMore) events.push_back(outcome);
  }
  EXPECT_EQ(events,
            (std::vector{Outcome::kTlsStarted, Outcome::kTlsEstablished, Outcome::kEstablished}));
  for (const auto& [layer, bytes] : trace.sent) EXPECT_EQ(layer, TransportLayer::kTlsHandshake);

  ASSERT_TRUE(server->Write("* OK IMAP ready\r\n"));
  transport.Feed(server->TakeOutput());
  EXPECT_EQ(Drive(transport, &trace), Outcome::kNeedMore);
  EXPECT_EQ(trace.plaintext, "* OK IMAP ready\r\n");

  const TransportStep sealed = transport.Seal("a1 LOGIN u p\r\n");
  ASSERT_EQ(sealed.outcome, Outcome::kSend);
  EXPECT_EQ(sealed.layer, TransportLayer::kStream);
  EXPECT_EQ(sealed.bytes.find("LOGIN"), std::string::npos);  // sealed, not plain
  server->Feed(sealed.bytes);
  EXPECT_EQ(server->ReadAll(), "a1 LOGIN u p\r\n");
}

TEST_F(UpstreamTransportTlsTest, ServerFlightsOneByteAtATime) {
  UpstreamTransport transport(TlsOptions(false));
  auto server = Server();
  Trace trace;
  size_t sent_from = 0;
  bool accepted = false;
  for (int round = 0; round < 100 && !trace.Saw(Outcome::kEstablished); ++round) {
    Drive(transport, &trace);
    ASSERT_FALSE(trace.failure.has_value()) << trace.failure->log_reason;
    for (; sent_from < trace.sent.size(); ++sent_from) server->Feed(trace.sent[sent_from].second);
    if (!accepted) accepted = server->Accept() == 1;
    for (const char byte : server->TakeOutput()) {
      transport.Feed(std::string_view(&byte, 1));
      Drive(transport, &trace);
      ASSERT_FALSE(trace.failure.has_value()) << trace.failure->log_reason;
    }
  }
  ASSERT_TRUE(trace.Saw(Outcome::kEstablished));
  // The client's Finished, to the server.
  for (; sent_from < trace.sent.size(); ++sent_from) server->Feed(trace.sent[sent_from].second);
  ASSERT_EQ(server->Accept(), 1);
  ASSERT_TRUE(server->Write("* OK one by one\r\n"));
  for (const char byte : server->TakeOutput()) {
    transport.Feed(std::string_view(&byte, 1));
    Drive(transport, &trace);
  }
  EXPECT_EQ(trace.plaintext, "* OK one by one\r\n");
}

TEST_F(UpstreamTransportTlsTest, GreetingRecordSplitAtEveryPosition) {
  const std::string greeting = "* OK split\r\n";
  size_t record_size = 0;
  for (size_t cut = 0; cut == 0 || cut <= record_size; ++cut) {
    SCOPED_TRACE(cut);
    UpstreamTransport transport(TlsOptions(false));
    auto server = Server();
    Trace trace;
    size_t sent_from = 0;
    bool accepted = false;
    ASSERT_EQ(Exchange(transport, *server, &trace, &sent_from, &accepted), Outcome::kNeedMore);
    ASSERT_TRUE(server->Write(greeting));
    const std::string record = server->TakeOutput();
    record_size = record.size();
    transport.Feed(record.substr(0, cut));
    EXPECT_EQ(Drive(transport, &trace), Outcome::kNeedMore);
    EXPECT_EQ(trace.plaintext, cut == record.size() ? greeting : "");
    transport.Feed(record.substr(cut));
    EXPECT_EQ(Drive(transport, &trace), Outcome::kNeedMore);
    EXPECT_EQ(trace.plaintext, greeting);
  }
}

TEST_F(UpstreamTransportTlsTest, ProxyThenTls) {
  UpstreamTransport transport(TlsOptions(/*via_proxy=*/true));
  Trace trace = ProxyHandshake(transport, {kMethodSelected + kAuthenticated, kConnected});
  ASSERT_FALSE(trace.failure.has_value()) << trace.failure->log_reason;
  EXPECT_EQ(trace.SentBy(TransportLayer::kProxy), kGreeting + kAuthentication + kConnect);
  ASSERT_TRUE(trace.Saw(Outcome::kProxyConnected));
  ASSERT_TRUE(trace.Saw(Outcome::kTlsStarted));
  EXPECT_FALSE(trace.Saw(Outcome::kEstablished));  // not before TLS
  // From here on the bytes are TLS, starting with the ClientHello sent after kProxyConnected.
  size_t sent_from = 0;
  while (trace.sent[sent_from].first == TransportLayer::kProxy) ++sent_from;
  auto server = Server();
  bool accepted = false;
  ASSERT_EQ(Exchange(transport, *server, &trace, &sent_from, &accepted), Outcome::kNeedMore);
  EXPECT_TRUE(trace.Saw(Outcome::kTlsEstablished));
  EXPECT_TRUE(trace.Saw(Outcome::kEstablished));
  ASSERT_TRUE(server->Write("* OK tunnelled\r\n"));
  transport.Feed(server->TakeOutput());
  Drive(transport, &trace);
  EXPECT_EQ(trace.plaintext, "* OK tunnelled\r\n");
}

TEST_F(UpstreamTransportTlsTest, StartTlsUpgradesThePlainDialog) {
  UpstreamTransport::Options options = PlainOptions();
  options.tls_context = context_.get();
  UpstreamTransport transport(options);
  Trace trace;
  transport.Feed("* OK\r\n");
  EXPECT_EQ(Drive(transport, &trace), Outcome::kNeedMore);
  EXPECT_EQ(trace.plaintext, "* OK\r\n");
  EXPECT_EQ(transport.tls(), nullptr);
  transport.StartTls("");
  auto server = Server();
  size_t sent_from = trace.sent.size();
  bool accepted = false;
  ASSERT_EQ(Exchange(transport, *server, &trace, &sent_from, &accepted), Outcome::kNeedMore);
  // kEstablished again, after the TLS events.
  std::vector<Outcome> events;
  for (const Outcome outcome : trace.outcomes) {
    if (outcome != Outcome::kSend && outcome != Outcome::kNeedMore &&
        outcome != Outcome::kPlaintext) {
      events.push_back(outcome);
    }
  }
  EXPECT_EQ(events, (std::vector{Outcome::kEstablished, Outcome::kTlsStarted,
                                 Outcome::kTlsEstablished, Outcome::kEstablished}));
  ASSERT_TRUE(server->Write("a1 OK capabilities\r\n"));
  transport.Feed(server->TakeOutput());
  Drive(transport, &trace);
  EXPECT_EQ(trace.plaintext, "* OK\r\na1 OK capabilities\r\n");
}

TEST_F(UpstreamTransportTlsTest, StartTlsEarlyBytesGoToTlsNeverToTheDialog) {
  // A server (or someone on the path) that sends plaintext after its STARTTLS answer: those
  // bytes must be read as TLS, not injected into the dialog.
  UpstreamTransport::Options options = PlainOptions();
  options.tls_context = context_.get();
  UpstreamTransport transport(options);
  Trace trace;
  Drive(transport, &trace);
  transport.StartTls("* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n");
  EXPECT_EQ(Drive(transport, &trace), Outcome::kFailed);
  EXPECT_TRUE(trace.plaintext.empty());
  EXPECT_TRUE(trace.Saw(Outcome::kTlsStarted));
  ASSERT_FALSE(trace.sent.empty());  // the ClientHello left first
  EXPECT_EQ(trace.sent.front().first, TransportLayer::kTlsHandshake);
  EXPECT_TRUE(
      trace.failure->log_reason.starts_with("TLS handshake with upstream localhost failed: "))
      << trace.failure->log_reason;
  EXPECT_TRUE(trace.failure->client_reason.starts_with(
      "TLS handshake with the mail server of destination dest-imap failed: "))
      << trace.failure->client_reason;
}

TEST_F(UpstreamTransportTlsTest, CertificateForAnotherHostFailsTheHandshakeWithTheReason) {
  UpstreamTransport transport(TlsOptions(false));
  auto server = Server("wronghost");
  Trace trace;
  size_t sent_from = 0;
  bool accepted = false;
  EXPECT_EQ(Exchange(transport, *server, &trace, &sent_from, &accepted), Outcome::kFailed);
  ASSERT_TRUE(trace.failure.has_value());
  EXPECT_TRUE(
      trace.failure->log_reason.starts_with("TLS handshake with upstream localhost failed: "))
      << trace.failure->log_reason;
  EXPECT_NE(trace.failure->log_reason.find("mismatch"), std::string::npos)
      << trace.failure->log_reason;
  EXPECT_FALSE(trace.Saw(Outcome::kTlsEstablished));
  EXPECT_FALSE(trace.Saw(Outcome::kEstablished));
}

TEST_F(UpstreamTransportTlsTest, ServerEndingTlsBeforeTheRelayNamesTheAction) {
  UpstreamTransport transport(TlsOptions(false));
  auto server = Server();
  Trace trace;
  size_t sent_from = 0;
  bool accepted = false;
  ASSERT_EQ(Exchange(transport, *server, &trace, &sent_from, &accepted), Outcome::kNeedMore);
  server->Shutdown();
  transport.Feed(server->TakeOutput());
  EXPECT_EQ(Drive(transport, &trace), Outcome::kFailed);
  EXPECT_EQ(trace.failure->log_reason,
            "upstream TLS ended while waiting for the server's greeting: the server closed TLS");
  EXPECT_EQ(trace.failure->client_reason,
            "the mail server of destination dest-imap ended TLS while mailring was waiting for "
            "the server's greeting: the server closed TLS");
}

TEST_F(UpstreamTransportTlsTest, RelayTakesTheTlsClientWithItsUnopenedRecords) {
  UpstreamTransport transport(TlsOptions(false));
  auto server = Server();
  Trace trace;
  size_t sent_from = 0;
  bool accepted = false;
  ASSERT_EQ(Exchange(transport, *server, &trace, &sent_from, &accepted), Outcome::kNeedMore);
  ASSERT_TRUE(server->Write("* OK for the relay\r\n"));
  transport.Feed(server->TakeOutput());  // fed, not yet asked for: the relay-only case
  EXPECT_TRUE(transport.TakeBufferedPlaintext().empty());
  std::unique_ptr<TlsClient> tls = transport.TakeTls();
  ASSERT_NE(tls, nullptr);
  std::string plaintext;
  EXPECT_EQ(tls->Read(&plaintext, 1024), TlsClient::Result::kDone);
  EXPECT_EQ(plaintext, "* OK for the relay\r\n");
}

}  // namespace
}  // namespace mailring::core
