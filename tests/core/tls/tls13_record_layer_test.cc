// Tls13RecordLayer on its own: two layers with mirrored keys talk to each other, and records are
// damaged or forged on purpose. Interoperability with a real TLS stack (wolfSSL's record layer on
// the other side) is tested through TlsClient in tests/core/tls_client_test.cc.
#include "core/tls/tls13_record_layer.h"

#include <span>
#include <string>
#include <string_view>

#include "gtest/gtest.h"

namespace mailring::core {
namespace {

using Opened = Tls13RecordLayer::Opened;

TrafficKey Key(char fill, uint64_t sequence, size_t size = 16) {
  TrafficKey key;
  key.key.assign(size, fill);
  key.iv.fill(static_cast<uint8_t>(fill + 1));
  key.sequence = sequence;
  return key;
}

// A client-side layer and the server-side layer it talks to.
struct Pair {
  Tls13RecordLayer client;
  Tls13RecordLayer server;
};

Pair MakePair(size_t key_size = 16, uint64_t client_sequence = 0, uint64_t server_sequence = 0) {
  auto client = Tls13RecordLayer::Create(Key('c', client_sequence, key_size),
                                         Key('s', server_sequence, key_size));
  auto server = Tls13RecordLayer::Create(Key('s', server_sequence, key_size),
                                         Key('c', client_sequence, key_size));
  EXPECT_TRUE(client.ok() && server.ok());
  return Pair{*std::move(client), *std::move(server)};
}

// Opens every whole record in `wire`; returns what the last Open said (or its error).
absl::StatusOr<Opened> OpenAll(Tls13RecordLayer& layer, std::string_view wire, std::string* out) {
  absl::StatusOr<Opened> last = Opened::kNeedMore;
  while (!wire.empty()) {
    size_t consumed = 0;
    last = layer.Open(wire, &consumed, out);
    if (!last.ok() || *last == Opened::kNeedMore) return last;
    wire.remove_prefix(consumed);
  }
  return last;
}

TEST(Tls13RecordLayerTest, RoundTripsInBothDirectionsWithBothKeySizes) {
  for (size_t key_size : {16u, 32u}) {
    Pair pair = MakePair(key_size, 3, 7);
    std::string wire, out;
    ASSERT_TRUE(pair.client.SealApplicationData("a1 NOOP\r\n", &wire).ok());
    EXPECT_EQ(wire.size(), 5u + 9 + 1 + 16);
    EXPECT_EQ(wire.substr(0, 3), std::string("\x17\x03\x03", 3));
    ASSERT_EQ(OpenAll(pair.server, wire, &out).value(), Opened::kApplicationData);
    EXPECT_EQ(out, "a1 NOOP\r\n");
    wire.clear();
    out.clear();
    ASSERT_TRUE(pair.server.SealApplicationData("a1 OK\r\n", &wire).ok());
    ASSERT_EQ(OpenAll(pair.client, wire, &out).value(), Opened::kApplicationData);
    EXPECT_EQ(out, "a1 OK\r\n");
  }
}

TEST(Tls13RecordLayerTest, LargeWritesAreSplitIntoMaximalRecords) {
  Pair pair = MakePair();
  const std::string big(3 * Tls13RecordLayer::kMaxPlaintext + 10, 'x');
  std::string wire, out;
  ASSERT_TRUE(pair.client.SealApplicationData(big, &wire).ok());
  EXPECT_EQ(wire.size(), big.size() + 4 * (5 + 1 + 16));
  ASSERT_EQ(OpenAll(pair.server, wire, &out).value(), Opened::kApplicationData);
  EXPECT_EQ(out, big);
  EXPECT_EQ(Tls13RecordLayerRecordCounts().sealed >= 4, true);
}

TEST(Tls13RecordLayerTest, APartialRecordNeedsMoreAndConsumesNothing) {
  Pair pair = MakePair();
  std::string wire, out;
  ASSERT_TRUE(pair.client.SealApplicationData("hello", &wire).ok());
  for (size_t cut : {0u, 3u, 5u, 20u}) {
    size_t consumed = 99;
    auto opened = pair.server.Open(std::string_view(wire).substr(0, cut), &consumed, &out);
    ASSERT_TRUE(opened.ok());
    EXPECT_EQ(*opened, Opened::kNeedMore);
    EXPECT_EQ(consumed, 0u);
    EXPECT_TRUE(out.empty());
  }
  size_t consumed = 0;
  EXPECT_EQ(pair.server.Open(wire, &consumed, &out).value(), Opened::kApplicationData);
  EXPECT_EQ(consumed, wire.size());
}

TEST(Tls13RecordLayerTest, AFlippedBitAnywhereFailsTheIntegrityCheckAndLeavesNoPlaintext) {
  std::string wire;
  {
    Pair pair = MakePair();
    ASSERT_TRUE(pair.client.SealApplicationData("secret text", &wire).ok());
  }
  for (size_t at : {3u, 5u, 10u, 16u, 27u}) {  // header (AAD), body, content type, tag
    if (at == 3) continue;  // the length byte: checked as a length, below
    Pair pair = MakePair();
    std::string damaged = wire, out;
    damaged[at] ^= 0x20;
    size_t consumed = 0;
    auto opened = pair.server.Open(damaged, &consumed, &out);
    ASSERT_FALSE(opened.ok()) << "byte " << at;
    EXPECT_NE(opened.status().message().find("integrity"), std::string::npos);
    EXPECT_TRUE(out.empty());
  }
}

TEST(Tls13RecordLayerTest, OutOfOrderSequenceFailsTheIntegrityCheck) {
  Pair pair = MakePair();
  std::string first, second, out;
  ASSERT_TRUE(pair.client.SealApplicationData("one", &first).ok());
  ASSERT_TRUE(pair.client.SealApplicationData("two", &second).ok());
  size_t consumed = 0;
  EXPECT_FALSE(pair.server.Open(second, &consumed, &out).ok()) << "a dropped record is noticed";
}

TEST(Tls13RecordLayerTest, MalformedOuterRecordsAreRejectedWithAReason) {
  Pair pair = MakePair();
  std::string out;
  size_t consumed = 0;
  const std::string plaintext_alert("\x15\x03\x03\x00\x02\x02\x28", 7);
  auto opened = pair.server.Open(plaintext_alert, &consumed, &out);
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.status().message().find("unprotected record of type 21"), std::string::npos);
  const std::string wrong_version("\x17\x03\x01\x00\x20", 5);
  EXPECT_NE(pair.server.Open(wrong_version, &consumed, &out).status().message().find("version"),
            std::string::npos);
  const std::string too_long("\x17\x03\x03\x41\x01", 5);
  EXPECT_NE(pair.server.Open(too_long, &consumed, &out).status().message().find("length"),
            std::string::npos);
  const std::string too_short("\x17\x03\x03\x00\x10", 5);
  EXPECT_NE(pair.server.Open(too_short, &consumed, &out).status().message().find("length"),
            std::string::npos);
}

TEST(Tls13RecordLayerTest, CloseNotifyCloses) {
  Pair pair = MakePair();
  std::string wire, out;
  ASSERT_TRUE(pair.client.SealApplicationData("bye", &wire).ok());
  ASSERT_TRUE(pair.client.SealCloseNotify(&wire).ok());
  EXPECT_EQ(OpenAll(pair.server, wire, &out).value(), Opened::kCloseNotify);
  EXPECT_EQ(out, "bye");
}

TEST(Tls13RecordLayerTest, SequenceNumbersCarryOverFromTheHandover) {
  // The layer continues the numbering wolfSSL left off at: sealing with sequence 5 opens only
  // with a reader expecting 5.
  Pair pair = MakePair(16, 5, 0);
  std::string wire, out;
  ASSERT_TRUE(pair.client.SealApplicationData("x", &wire).ok());
  auto wrong = Tls13RecordLayer::Create(Key('s', 0), Key('c', 4));
  ASSERT_TRUE(wrong.ok());
  size_t consumed = 0;
  EXPECT_FALSE(wrong->Open(wire, &consumed, &out).ok());
  EXPECT_EQ(pair.server.Open(wire, &consumed, &out).value(), Opened::kApplicationData);
}

TEST(Tls13RecordLayerTest, OpenInPlaceLeavesThePlaintextInsideTheRecord) {
  Pair pair = MakePair();
  std::string wire;
  ASSERT_TRUE(pair.client.SealApplicationData("a1 FETCH 1 BODY[]\r\n", &wire).ok());
  ASSERT_TRUE(pair.client.SealApplicationData("a2 LOGOUT\r\n", &wire).ok());
  std::span<char> in(wire);
  size_t consumed = 0;
  std::string_view plaintext;
  ASSERT_EQ(pair.server.OpenInPlace(in, &consumed, &plaintext).value(), Opened::kApplicationData);
  EXPECT_EQ(plaintext, "a1 FETCH 1 BODY[]\r\n");
  EXPECT_EQ(plaintext.data(), wire.data() + 5) << "the plaintext is where the ciphertext was";
  EXPECT_EQ(consumed, 5u + 19 + 1 + 16);
  in = in.subspan(consumed);
  ASSERT_EQ(pair.server.OpenInPlace(in.first(20), &consumed, &plaintext).value(),
            Opened::kNeedMore);
  EXPECT_EQ(consumed, 0u);
  EXPECT_TRUE(plaintext.empty());
  ASSERT_EQ(pair.server.OpenInPlace(in, &consumed, &plaintext).value(), Opened::kApplicationData);
  EXPECT_EQ(plaintext, "a2 LOGOUT\r\n");
}

TEST(Tls13RecordLayerTest, OpenInPlaceGivesNoPlaintextForControlRecordsOrForgeries) {
  Pair pair = MakePair();
  std::string close_notify;
  ASSERT_TRUE(pair.client.SealCloseNotify(&close_notify).ok());
  size_t consumed = 0;
  std::string_view plaintext = "stale";
  EXPECT_EQ(pair.server.OpenInPlace(std::span<char>(close_notify), &consumed, &plaintext).value(),
            Opened::kCloseNotify);
  EXPECT_TRUE(plaintext.empty());
  EXPECT_EQ(consumed, close_notify.size());

  std::string forged;
  ASSERT_TRUE(pair.client.SealApplicationData("secret text", &forged).ok());
  forged[10] ^= 0x20;
  auto opened = pair.server.OpenInPlace(std::span<char>(forged), &consumed, &plaintext);
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.status().message().find("integrity"), std::string::npos);
  EXPECT_EQ(consumed, 0u);
  EXPECT_TRUE(plaintext.empty());
}

TEST(Tls13RecordLayerTest, KeysOfOtherSizesAreRefused) {
  auto layer = Tls13RecordLayer::Create(Key('a', 0, 24), Key('b', 0, 16));
  ASSERT_FALSE(layer.ok());
  EXPECT_EQ(layer.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace mailring::core
