#include "proto/socks5.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"

namespace mailring::proto {
namespace {

using namespace std::string_literals;  // NOLINT: the messages below contain NUL bytes
using Outcome = Socks5Client::Outcome;

// 18 bytes (0x12); something a failure text must never contain.
constexpr std::string_view kJwt = "hdr.jwt-secret.sig";
constexpr std::string_view kHost = "virtual-imap";  // 12 bytes (0x0c)
constexpr uint16_t kPort = 143;                     // 0x008f

const std::string kMethodSelected = "\x05\x80"s;
const std::string kAuthenticated = "\x01\x00"s;

// The CONNECT replies a proxy may send (every BND.ADDR type), each with its size.
struct Reply {
  std::string name;
  std::string bytes;
};
std::vector<Reply> SuccessReplies() {
  return {
      {"ipv4", "\x05\x00\x00\x01\x7f\x00\x00\x01\x4e\x24"s},
      {"ipv6", "\x05\x00\x00\x04"s + std::string(15, '\0') + "\x01" + "\x00\x8f"s},
      {"domain", "\x05\x00\x00\x03\x0b"s + "cc.internal" + "\x01\xbb"s},
      {"domain_255", "\x05\x00\x00\x03\xff"s + std::string(255, 'd') + "\x00\x00"s},
  };
}

void ExpectNoJwt(const Socks5Client::Step& step) {
  EXPECT_EQ(step.failure.find(kJwt), std::string::npos) << step.failure;
  EXPECT_EQ(step.failure.find("jwt-secret"), std::string::npos) << step.failure;
}

// A client that has sent CONNECT and waits for the reply.
Socks5Client AtConnect(std::string_view location_id = "") {
  Socks5Client client(kJwt, location_id, kHost, kPort);
  client.Start();
  EXPECT_EQ(client.OnBytes(kMethodSelected).outcome, Outcome::kSend);
  EXPECT_EQ(client.OnBytes(kAuthenticated).outcome, Outcome::kSend);
  return client;
}

// Feeds `stream` as the transport would: each chunk appended to what is still unconsumed, every
// kSend collected. Returns the final step and leaves the unconsumed bytes in `*pending`.
Socks5Client::Step Feed(Socks5Client& client, const std::vector<std::string>& chunks,
                        std::string* pending, std::vector<std::string>* sent) {
  Socks5Client::Step step;
  for (const std::string& chunk : chunks) {
    pending->append(chunk);
    // A chunk may complete more than one message; at most four steps per handshake.
    for (int i = 0; i < 4; ++i) {
      step = client.OnBytes(*pending);
      EXPECT_LE(step.consumed, pending->size());
      pending->erase(0, step.consumed);
      if (step.outcome == Outcome::kSend) {
        sent->push_back(step.send);
        continue;
      }
      if (step.outcome != Outcome::kNeedMore) return step;
      EXPECT_EQ(step.consumed, 0u) << "kNeedMore consumes nothing";
      break;
    }
  }
  return step;
}

std::vector<std::string> OneByteAtATime(std::string_view stream) {
  std::vector<std::string> chunks;
  for (char c : stream) chunks.emplace_back(1, c);
  return chunks;
}

TEST(Socks5ClientTest, GreetingOffersOnlyMethod0x80) {
  Socks5Client client(kJwt, "", kHost, kPort);
  EXPECT_EQ(client.Start(), "\x05\x01\x80"s);
  EXPECT_EQ(client.action(), "waiting for the proxy's method selection");
}

TEST(Socks5ClientTest, AuthenticationWithLocationIdIsByteExact) {
  Socks5Client client(kJwt, "Dallas1", kHost, kPort);
  client.Start();
  const Socks5Client::Step step = client.OnBytes(kMethodSelected);
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.consumed, 2u);
  // 01, JWT length 18 big-endian, JWT, 12, base64("Dallas1").
  EXPECT_EQ(step.send, "\x01\x00\x00\x00\x12"s + "hdr.jwt-secret.sig" + "\x0c" + "RGFsbGFzMQ==");
  EXPECT_EQ(client.action(), "authenticating to the Connectivity Proxy with the JWT");
}

TEST(Socks5ClientTest, AuthenticationWithoutLocationIdEndsWithZeroLength) {
  // SAP: "the byte representing the length of the location ID ... should have the value 0,
  // without including any value for the Cloud Connector location ID".
  Socks5Client client(kJwt, "", kHost, kPort);
  client.Start();
  const Socks5Client::Step step = client.OnBytes(kMethodSelected);
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.send, "\x01\x00\x00\x00\x12"s + "hdr.jwt-secret.sig" + "\x00"s);
}

TEST(Socks5ClientTest, JwtLengthIsFourBytesBigEndian) {
  const std::string jwt(70000, 'j');  // 0x00011170
  Socks5Client client(jwt, "", kHost, kPort);
  client.Start();
  const Socks5Client::Step step = client.OnBytes(kMethodSelected);
  ASSERT_EQ(step.outcome, Outcome::kSend);
  ASSERT_EQ(step.send.size(), 1 + 4 + jwt.size() + 1);
  EXPECT_EQ(step.send.substr(0, 5), "\x01\x00\x01\x11\x70"s);
  EXPECT_EQ(step.send.substr(5, jwt.size()), jwt);
}

TEST(Socks5ClientTest, ConnectRequestNamesTheVirtualHost) {
  Socks5Client client(kJwt, "loc", kHost, kPort);
  client.Start();
  ASSERT_EQ(client.OnBytes(kMethodSelected).outcome, Outcome::kSend);
  const Socks5Client::Step step = client.OnBytes(kAuthenticated);
  ASSERT_EQ(step.outcome, Outcome::kSend);
  EXPECT_EQ(step.consumed, 2u);
  EXPECT_EQ(step.send, "\x05\x01\x00\x03\x0c"s + "virtual-imap" + "\x00\x8f"s);
  EXPECT_EQ(client.action(), "waiting for the Connectivity Proxy's reply to CONNECT");
}

TEST(Socks5ClientTest, ConnectRequestPortIsBigEndian) {
  Socks5Client client(kJwt, "", "h", 20004);  // 0x4e24
  client.Start();
  client.OnBytes(kMethodSelected);
  EXPECT_EQ(client.OnBytes(kAuthenticated).send, "\x05\x01\x00\x03\x01h\x4e\x24"s);
}

TEST(Socks5ClientTest, EverySuccessReplyConnectsAndConsumesExactlyTheReply) {
  for (const Reply& reply : SuccessReplies()) {
    SCOPED_TRACE(reply.name);
    Socks5Client client = AtConnect();
    const std::string tunnelled = "* OK [CAPABILITY IMAP4rev1] ready\r\n";
    const Socks5Client::Step step = client.OnBytes(reply.bytes + tunnelled);
    ASSERT_EQ(step.outcome, Outcome::kConnected) << step.failure;
    EXPECT_EQ(step.consumed, reply.bytes.size());
    EXPECT_TRUE(step.failure.empty());
    EXPECT_EQ(client.action(), "tunnelling through the Connectivity Proxy");
    // Later calls consume nothing: the bytes are the tunnelled protocol's.
    const Socks5Client::Step again = client.OnBytes(tunnelled);
    EXPECT_EQ(again.outcome, Outcome::kConnected);
    EXPECT_EQ(again.consumed, 0u);
  }
}

TEST(Socks5ClientTest, ReplySplitAtEveryByteBoundary) {
  const std::string tunnelled = "* OK hi\r\n";
  for (const Reply& reply : SuccessReplies()) {
    SCOPED_TRACE(reply.name);
    const std::string stream = reply.bytes + tunnelled;
    for (size_t cut = 0; cut <= stream.size(); ++cut) {
      SCOPED_TRACE(cut);
      Socks5Client client = AtConnect();
      std::string pending;
      std::vector<std::string> sent;
      const Socks5Client::Step step =
          Feed(client, {stream.substr(0, cut), stream.substr(cut)}, &pending, &sent);
      ASSERT_EQ(step.outcome, Outcome::kConnected) << step.failure;
      EXPECT_TRUE(sent.empty());
      if (cut >= reply.bytes.size()) {
        // Connected within the first chunk: the second is still to be handed to the tunnel.
        EXPECT_EQ(pending, stream.substr(reply.bytes.size(), cut - reply.bytes.size()));
      } else {
        EXPECT_EQ(pending, tunnelled);
      }
    }
  }
}

TEST(Socks5ClientTest, WholeHandshakeOneByteAtATime) {
  for (const Reply& reply : SuccessReplies()) {
    SCOPED_TRACE(reply.name);
    Socks5Client client(kJwt, "Dallas1", kHost, kPort);
    client.Start();
    std::string pending;
    std::vector<std::string> sent;
    const Socks5Client::Step step = Feed(
        client, OneByteAtATime(kMethodSelected + kAuthenticated + reply.bytes), &pending, &sent);
    ASSERT_EQ(step.outcome, Outcome::kConnected) << step.failure;
    EXPECT_TRUE(pending.empty());
    ASSERT_EQ(sent.size(), 2u);
    EXPECT_EQ(sent[0][0], '\x01');
    EXPECT_EQ(sent[1], "\x05\x01\x00\x03\x0c"s + "virtual-imap" + "\x00\x8f"s);
  }
}

TEST(Socks5ClientTest, PipelinedRepliesAreTakenOneMessageAtATime) {
  Socks5Client client(kJwt, "", kHost, kPort);
  client.Start();
  const std::string all = kMethodSelected + kAuthenticated + SuccessReplies()[0].bytes + "tail";
  std::string pending;
  std::vector<std::string> sent;
  const Socks5Client::Step step = Feed(client, {all}, &pending, &sent);
  ASSERT_EQ(step.outcome, Outcome::kConnected);
  EXPECT_EQ(sent.size(), 2u);
  EXPECT_EQ(pending, "tail");
}

TEST(Socks5ClientTest, EmptyInputNeedsMore) {
  Socks5Client client(kJwt, "", kHost, kPort);
  client.Start();
  const Socks5Client::Step step = client.OnBytes("");
  EXPECT_EQ(step.outcome, Outcome::kNeedMore);
  EXPECT_EQ(step.consumed, 0u);
  EXPECT_EQ(client.OnBytes("\x05").outcome, Outcome::kNeedMore);
}

TEST(Socks5ClientTest, NoAcceptableMethod) {
  Socks5Client client(kJwt, "", kHost, kPort);
  client.Start();
  const Socks5Client::Step step = client.OnBytes("\x05\xff"s);
  EXPECT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_EQ(step.failure, "the proxy accepts no method mailring offers");
  EXPECT_TRUE(step.send.empty());
  EXPECT_EQ(client.action(), "waiting for the proxy's method selection");
}

TEST(Socks5ClientTest, MethodNotOfferedIsRefused) {
  // 00 would mean "no authentication": mailring must not go on without sending the JWT...
  // nor send it to a proxy that did not ask for it.
  Socks5Client client(kJwt, "", kHost, kPort);
  client.Start();
  const Socks5Client::Step step = client.OnBytes("\x05\x00"s);
  EXPECT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_EQ(step.failure,
            "the proxy selected method 0x00, which mailring did not offer (only 0x80)");
  EXPECT_TRUE(step.send.empty());
}

TEST(Socks5ClientTest, NotASocks5Server) {
  Socks5Client client(kJwt, "", kHost, kPort);
  client.Start();
  // An HTTP proxy or an IMAP server on the port: fails on the first byte.
  const Socks5Client::Step step = client.OnBytes("*");
  EXPECT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_EQ(step.failure, "the proxy did not answer as a SOCKS5 server (version byte 0x2a)");
}

TEST(Socks5ClientTest, JwtRejected) {
  for (const std::string& status : {"\x01"s, "\x02"s, "\xff"s}) {
    Socks5Client client(kJwt, "", kHost, kPort);
    client.Start();
    client.OnBytes(kMethodSelected);
    const Socks5Client::Step step = client.OnBytes("\x01"s + status);
    EXPECT_EQ(step.outcome, Outcome::kFailed);
    EXPECT_EQ(step.failure, "Connectivity Proxy rejected the JWT (authentication failed)");
    EXPECT_EQ(client.action(), "authenticating to the Connectivity Proxy with the JWT");
    ExpectNoJwt(step);
  }
}

TEST(Socks5ClientTest, AuthenticationReplyWithWrongVersion) {
  Socks5Client client(kJwt, "", kHost, kPort);
  client.Start();
  client.OnBytes(kMethodSelected);
  const Socks5Client::Step step = client.OnBytes("\x05\x00"s);
  EXPECT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_EQ(step.failure,
            "unexpected reply to the JWT authentication (version byte 0x05, expected 0x01)");
}

TEST(Socks5ClientTest, ReplyReasons) {
  EXPECT_EQ(Socks5ReplyReason(0x00), "succeeded");
  EXPECT_EQ(Socks5ReplyReason(0x01), "general failure in the Connectivity Proxy");
  EXPECT_EQ(Socks5ReplyReason(0x02),
            "no access-control mapping in the Cloud Connector for this virtual host");
  EXPECT_EQ(Socks5ReplyReason(0x03), "Cloud Connector not connected, or unknown location id");
  EXPECT_EQ(Socks5ReplyReason(0x04), "virtual host unreachable from the Cloud Connector");
  EXPECT_EQ(Socks5ReplyReason(0x05),
            "connection refused or authentication failed at the Connectivity Proxy");
  EXPECT_EQ(Socks5ReplyReason(0x06), "TTL expired");
  EXPECT_EQ(Socks5ReplyReason(0x07), "command not supported");
  EXPECT_EQ(Socks5ReplyReason(0x08), "address type not supported");
  EXPECT_EQ(Socks5ReplyReason(0x09), "unknown reply code 0x09");
  EXPECT_EQ(Socks5ReplyReason(0x80), "unknown reply code 0x80");
  EXPECT_EQ(Socks5ReplyReason(0xff), "unknown reply code 0xff");
}

TEST(Socks5ClientTest, EveryFailureReplyCodeFailsWithItsReason) {
  for (int code = 1; code <= 0xff; ++code) {
    SCOPED_TRACE(code);
    Socks5Client client = AtConnect("Dallas1");
    const std::string reply =
        "\x05"s + static_cast<char>(code) + "\x00\x01\x00\x00\x00\x00\x00\x00"s;
    const Socks5Client::Step step = client.OnBytes(reply);
    EXPECT_EQ(step.outcome, Outcome::kFailed);
    EXPECT_EQ(step.failure, Socks5ReplyReason(static_cast<uint8_t>(code)));
    EXPECT_TRUE(step.send.empty());
    EXPECT_EQ(client.action(), "waiting for the Connectivity Proxy's reply to CONNECT");
    ExpectNoJwt(step);
  }
}

TEST(Socks5ClientTest, FailureCodeIsReportedBeforeTheRestOfTheReply) {
  // A proxy may close right after the code: its reason must not be lost to "connection closed".
  Socks5Client client = AtConnect();
  const Socks5Client::Step step = client.OnBytes("\x05\x02"s);
  EXPECT_EQ(step.outcome, Outcome::kFailed);
  EXPECT_EQ(step.failure, Socks5ReplyReason(0x02));
}

TEST(Socks5ClientTest, MalformedConnectReplies) {
  const struct {
    std::string reply;
    std::string failure;
  } cases[] = {
      {"\x04\x00\x00\x01\x00\x00\x00\x00\x00\x00"s,
       "malformed CONNECT reply: version byte 0x04, expected 0x05"},
      {"\x05\x00\x01\x01\x00\x00\x00\x00\x00\x00"s,
       "malformed CONNECT reply: reserved byte 0x01, expected 0x00"},
      {"\x05\x00\x00\x02\x00\x00\x00\x00\x00\x00"s,
       "malformed CONNECT reply: unknown address type 0x02"},
      {"\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00"s,
       "malformed CONNECT reply: unknown address type 0x00"},
      {"\x05\x00\x00\x03\x00\x00\x00"s, "malformed CONNECT reply: empty domain name"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.failure);
    Socks5Client client = AtConnect();
    const Socks5Client::Step step = client.OnBytes(c.reply);
    EXPECT_EQ(step.outcome, Outcome::kFailed);
    EXPECT_EQ(step.failure, c.failure);
    EXPECT_LE(step.consumed, c.reply.size());
    ExpectNoJwt(step);
  }
}

TEST(Socks5ClientTest, FailureIsFinal) {
  Socks5Client client = AtConnect();
  const Socks5Client::Step first = client.OnBytes("\x05\x04"s);
  ASSERT_EQ(first.outcome, Outcome::kFailed);
  const Socks5Client::Step again = client.OnBytes("\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"s);
  EXPECT_EQ(again.outcome, Outcome::kFailed);
  EXPECT_EQ(again.failure, first.failure);
  EXPECT_EQ(again.consumed, 0u);
  EXPECT_TRUE(again.send.empty());
}

TEST(Socks5ClientTest, UnusableHostOrLocationFailsBeforeTheJwtIsSent) {
  const struct {
    std::string host;
    std::string location_id;
    std::string failure;
  } cases[] = {
      {"", "", "the virtual host name must be 1 to 255 bytes long (it has 0)"},
      {std::string(256, 'h'), "", "the virtual host name must be 1 to 255 bytes long (it has 256)"},
      {"h", std::string(190, 'l'),
       "the Cloud Connector location id is too long (190 bytes; at most 189 fit the "
       "authentication request base64-encoded)"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.failure);
    Socks5Client client(kJwt, c.location_id, c.host, kPort);
    EXPECT_EQ(client.Start(), "\x05\x01\x80"s);
    const Socks5Client::Step step = client.OnBytes(kMethodSelected);
    EXPECT_EQ(step.outcome, Outcome::kFailed);
    EXPECT_EQ(step.failure, c.failure);
    EXPECT_TRUE(step.send.empty());
  }
}

TEST(Socks5ClientTest, LongestHostAndLocationIdFit) {
  const std::string host(255, 'h');
  const std::string location(189, 'l');  // base64: 252 bytes
  Socks5Client client(kJwt, location, host, kPort);
  client.Start();
  const Socks5Client::Step auth = client.OnBytes(kMethodSelected);
  ASSERT_EQ(auth.outcome, Outcome::kSend) << auth.failure;
  EXPECT_EQ(auth.send[5 + kJwt.size()], static_cast<char>(252));
  const Socks5Client::Step connect = client.OnBytes(kAuthenticated);
  ASSERT_EQ(connect.outcome, Outcome::kSend);
  EXPECT_EQ(connect.send.size(), 5 + host.size() + 2);
  EXPECT_EQ(connect.send[4], static_cast<char>(255));
}

}  // namespace
}  // namespace mailring::proto
