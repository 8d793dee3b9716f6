#include "proto/sasl.h"

#include <string>
#include <string_view>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "proto/absl_string_view.h"

namespace mailring::proto {
namespace {

// "\x01" is kept apart from the letter after it: "\x01auth" would be one hex escape.
constexpr std::string_view kSeedXoauth2 =
    "user=bob@example.com\x01"
    "auth=Bearer 1//0refresh-Token_value.x~y+z/w=\x01\x01";

void ExpectBase64Error(std::string_view text) {
  absl::StatusOr<std::string> decoded = Base64DecodeStrict(text);
  ASSERT_FALSE(decoded.ok()) << "accepted \"" << text << "\"";
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  if (text.size() >= 4) {
    EXPECT_FALSE(absl::StrContains(decoded.status().message(), AsAbsl(text))) << decoded.status();
  }
}

std::string DecodeOk(std::string_view text) {
  absl::StatusOr<std::string> decoded = Base64DecodeStrict(text);
  EXPECT_TRUE(decoded.ok()) << "\"" << text << "\": " << decoded.status();
  return decoded.ok() ? *decoded : std::string("<error>");
}

TEST(Base64Test, EncodesRfc4648Vectors) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("foob"), "Zm9vYg==");
  EXPECT_EQ(Base64Encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode(std::string_view("\xff\xfe\x00", 3)), "//4A");
}

TEST(Base64Test, DecodesRfc4648Vectors) {
  EXPECT_EQ(DecodeOk(""), "");
  EXPECT_EQ(DecodeOk("Zg=="), "f");
  EXPECT_EQ(DecodeOk("Zm8="), "fo");
  EXPECT_EQ(DecodeOk("Zm9v"), "foo");
  EXPECT_EQ(DecodeOk("Zm9vYg=="), "foob");
  EXPECT_EQ(DecodeOk("Zm9vYmE="), "fooba");
  EXPECT_EQ(DecodeOk("Zm9vYmFy"), "foobar");
  EXPECT_EQ(DecodeOk("//4A"), std::string("\xff\xfe\x00", 3));
}

TEST(Base64Test, AcceptsMissingPadding) {
  EXPECT_EQ(DecodeOk("Zg"), "f");
  EXPECT_EQ(DecodeOk("Zm8"), "fo");
  EXPECT_EQ(DecodeOk("Zm9vYg"), "foob");
}

TEST(Base64Test, RejectsWrongPadding) {
  ExpectBase64Error("Zg=");    // one '=' where two are due
  ExpectBase64Error("Zm8==");  // two where one is due
  ExpectBase64Error("Zm9v=");  // padding after a full group
  ExpectBase64Error("Zm9v====");
  ExpectBase64Error("Zg===");
  ExpectBase64Error("=");
  ExpectBase64Error("====");
  ExpectBase64Error("Zg==Zg==");  // padding in the middle
  ExpectBase64Error("Z===");
}

TEST(Base64Test, RejectsLoneTrailingCharacter) {
  ExpectBase64Error("Z");
  ExpectBase64Error("Zm9vY");
}

TEST(Base64Test, RejectsWhitespace) {
  ExpectBase64Error("Zm9v Yg==");
  ExpectBase64Error("Zm9vYg==\r\n");
  ExpectBase64Error("\tZm9v");
  ExpectBase64Error("Zm9v\n");
}

TEST(Base64Test, RejectsCharactersOutsideTheStandardAlphabet) {
  ExpectBase64Error("Zm9-");  // base64url
  ExpectBase64Error("Zm9_");
  ExpectBase64Error("Zm9!");
  ExpectBase64Error(std::string_view("Zm9\0", 4));
  ExpectBase64Error("Zm9\xc3\xa9");
}

TEST(Base64Test, RejectsNonZeroTrailingBits) {
  ExpectBase64Error("Zh==");  // "Zg==" with a low bit set
  ExpectBase64Error("Zh");
  ExpectBase64Error("Zm9=");  // "Zm8=" with a low bit set
  ExpectBase64Error("Zm9");
}

TEST(Base64Test, RoundTripsEveryByteValue) {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  for (size_t length = 0; length <= bytes.size(); length += 37) {
    const std::string_view prefix = std::string_view(bytes).substr(0, length);
    EXPECT_EQ(DecodeOk(Base64Encode(prefix)), prefix);
  }
}

TEST(Xoauth2Test, DecodesSeedFormat) {
  absl::StatusOr<BearerResponse> response = DecodeXoauth2(kSeedXoauth2);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->user, "bob@example.com");
  EXPECT_EQ(response->bearer_token.Reveal(), "1//0refresh-Token_value.x~y+z/w=");
}

TEST(Xoauth2Test, DecodesWhatEncodeXoauth2Produces) {
  absl::StatusOr<BearerResponse> response =
      DecodeXoauth2(EncodeXoauth2("alice@example.com", "ya29.a0Af-token"));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->user, "alice@example.com");
  EXPECT_EQ(response->bearer_token.Reveal(), "ya29.a0Af-token");
}

TEST(Xoauth2Test, EncodesTheWireFormat) {
  EXPECT_EQ(EncodeXoauth2("u@x", "tok"),
            "user=u@x\x01"
            "auth=Bearer tok\x01\x01");
  // The example from Google's XOAUTH2 documentation.
  EXPECT_EQ(Base64Encode(EncodeXoauth2("someuser@example.com",
                                       "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")),
            "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQm"
            "hkSFJoZG1semRHRXVZMjl0Q2cBAQ==");
}

TEST(Xoauth2Test, AcceptsSchemeWordInAnyCase) {
  for (std::string_view scheme : {"bearer", "BEARER", "BeArEr"}) {
    const std::string raw =
        std::string("user=u\x01") + "auth=" + std::string(scheme) + " tok\x01\x01";
    absl::StatusOr<BearerResponse> response = DecodeXoauth2(raw);
    ASSERT_TRUE(response.ok()) << scheme << ": " << response.status();
    EXPECT_EQ(response->bearer_token.Reveal(), "tok");
  }
}

TEST(Xoauth2Test, AcceptsFieldsInAnyOrderAndIgnoresUnknownOnes) {
  absl::StatusOr<BearerResponse> response = DecodeXoauth2(
      "host=imap.example.com\x01"
      "auth=Bearer tok\x01"
      "user=u\x01\x01");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->user, "u");
  EXPECT_EQ(response->bearer_token.Reveal(), "tok");
}

void ExpectXoauth2Error(std::string_view raw, std::string_view expected_words) {
  absl::StatusOr<BearerResponse> response = DecodeXoauth2(raw);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(response.status().message(), AsAbsl(expected_words)))
      << response.status();
  EXPECT_FALSE(absl::StrContains(response.status().message(), "SECRETTOKEN")) << response.status();
}

TEST(Xoauth2Test, RejectsMissingUser) {
  ExpectXoauth2Error("auth=Bearer SECRETTOKEN\x01\x01", "no user");
  ExpectXoauth2Error(
      "user=\x01"
      "auth=Bearer SECRETTOKEN\x01\x01",
      "empty user");
}

TEST(Xoauth2Test, RejectsMissingAuth) { ExpectXoauth2Error("user=u\x01\x01", "no auth=Bearer"); }

TEST(Xoauth2Test, RejectsEmptyToken) {
  ExpectXoauth2Error(
      "user=u\x01"
      "auth=Bearer \x01\x01",
      "empty bearer token");
  ExpectXoauth2Error(
      "user=u\x01"
      "auth=Bearer\x01\x01",
      "Bearer <token>");
}

TEST(Xoauth2Test, RejectsOtherSchemes) {
  ExpectXoauth2Error(
      "user=u\x01"
      "auth=Basic SECRETTOKEN\x01\x01",
      "Bearer <token>");
  ExpectXoauth2Error(
      "user=u\x01"
      "auth=BearerSECRETTOKEN\x01\x01",
      "Bearer <token>");
}

TEST(Xoauth2Test, RejectsMissingFinalSeparators) {
  ExpectXoauth2Error(
      "user=u\x01"
      "auth=Bearer SECRETTOKEN\x01",
      "missing final");
  ExpectXoauth2Error(
      "user=u\x01"
      "auth=Bearer SECRETTOKEN",
      "missing final");
  ExpectXoauth2Error("", "missing final");
}

TEST(Xoauth2Test, RejectsEarlyEndAndMalformedFields) {
  ExpectXoauth2Error(
      "user=u\x01\x01"
      "auth=Bearer SECRETTOKEN\x01\x01",
      "before the end");
  ExpectXoauth2Error(
      "user=u\x01"
      "junk\x01"
      "auth=Bearer SECRETTOKEN\x01\x01",
      "without '='");
  ExpectXoauth2Error(
      "user=u\x01"
      "user=v\x01"
      "auth=Bearer SECRETTOKEN\x01\x01",
      "appears twice");
}

TEST(Xoauth2Test, RejectsTokenWithSpacesOrControlBytes) {
  ExpectXoauth2Error(
      "user=u\x01"
      "auth=Bearer SECRETTOKEN more\x01\x01",
      "b64token");
  ExpectXoauth2Error(
      "user=u\x01"
      "auth=Bearer SECRETTOKEN\r\n\x01\x01",
      "b64token");
}

TEST(Xoauth2Test, RejectsUserWithControlBytes) {
  ExpectXoauth2Error(
      "user=u\r\nX\x01"
      "auth=Bearer SECRETTOKEN\x01\x01",
      "control");
}

TEST(OauthBearerTest, DecodesRfc7628Example) {
  // RFC 7628 section 4.1, without the base64.
  absl::StatusOr<BearerResponse> response = DecodeOauthBearer(
      "n,a=user@example.com,\x01"
      "host=server.example.com\x01"
      "port=143\x01"
      "auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->user, "user@example.com");
  EXPECT_EQ(response->bearer_token.Reveal(), "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==");
}

TEST(OauthBearerTest, EncodesTheRfc7628Example) {
  EXPECT_EQ(
      Base64Encode(EncodeOauthBearer(
          "user@example.com", "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==", "server.example.com",
          143)),
      "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyI"
      "HZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB");
}

TEST(OauthBearerTest, UnescapesCommaAndEqualsInTheUserName) {
  const std::string raw = EncodeOauthBearer("a,b=c", "tok", "h", 993);
  EXPECT_TRUE(absl::StartsWith(raw, "n,a=a=2Cb=3Dc,\x01")) << raw;
  absl::StatusOr<BearerResponse> response = DecodeOauthBearer(raw);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->user, "a,b=c");
  EXPECT_EQ(response->bearer_token.Reveal(), "tok");
}

TEST(OauthBearerTest, EncodesEmptyUserWithoutAuthzid) {
  EXPECT_EQ(EncodeOauthBearer("", "tok", "h", 143),
            "n,,\x01"
            "host=h\x01"
            "port=143\x01"
            "auth=Bearer tok\x01\x01");
}

TEST(OauthBearerTest, AcceptsMissingAuthzidAsEmptyUser) {
  absl::StatusOr<BearerResponse> response = DecodeOauthBearer(
      "n,,\x01"
      "auth=bearer tok\x01\x01");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->user, "");
  EXPECT_EQ(response->bearer_token.Reveal(), "tok");
}

void ExpectOauthBearerError(std::string_view raw, std::string_view expected_words) {
  absl::StatusOr<BearerResponse> response = DecodeOauthBearer(raw);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(response.status().message(), AsAbsl(expected_words)))
      << response.status();
  EXPECT_FALSE(absl::StrContains(response.status().message(), "SECRETTOKEN")) << response.status();
}

TEST(OauthBearerTest, RejectsBadGs2Header) {
  ExpectOauthBearerError("auth=Bearer SECRETTOKEN\x01\x01", "GS2");
  ExpectOauthBearerError(
      "p=tls-unique,,\x01"
      "auth=Bearer SECRETTOKEN\x01\x01",
      "channel binding");
  ExpectOauthBearerError(
      "n,a=u\x01"
      "auth=Bearer SECRETTOKEN\x01\x01",
      "GS2");
  ExpectOauthBearerError(
      "n,b=u,\x01"
      "auth=Bearer SECRETTOKEN\x01\x01",
      "authzid");
  ExpectOauthBearerError(
      "n,a=u=2Dv,\x01"
      "auth=Bearer SECRETTOKEN\x01\x01",
      "escape");
  ExpectOauthBearerError(
      "n,a=u,"
      "auth=Bearer SECRETTOKEN\x01\x01",
      "after the GS2 header");
}

TEST(OauthBearerTest, RejectsMissingAuthAndFinalSeparators) {
  ExpectOauthBearerError(
      "n,a=u,\x01"
      "host=h\x01\x01",
      "no auth=Bearer");
  ExpectOauthBearerError("n,a=u,\x01\x01", "no auth=Bearer");
  ExpectOauthBearerError(
      "n,a=u,\x01"
      "auth=Bearer SECRETTOKEN\x01",
      "missing final");
}

// Regression (issue 15, defect 3): a repeated key used to come back verbatim in
// `field "<key>" repeated`, so a client got its 125-letter key echoed in a NO line. The crash input
// is kept as tests/fuzz/seeds/sasl/repeated_long_key.
TEST(SaslErrorTextTest, RepeatedLongKeyIsNeitherQuotedNorLong) {
  const std::string key(125, 'K');
  const std::string fields = "user=u\x01" + key + "=a\x01" + key + "=b\x01" +
                             "auth=Bearer SECRETTOKEN\x01\x01";
  for (const absl::Status& status :
       {DecodeXoauth2(fields).status(), DecodeOauthBearer("n,," "\x01" + fields).status()}) {
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(status.message(), "appears twice")) << status;
    EXPECT_FALSE(absl::StrContains(status.message(), "KKKK")) << status;
    EXPECT_LE(status.message().size(), 120u) << status;
  }
}

// The fuzz target's rule, on hand-made worst cases for every error path that sees client bytes:
// each text is at most 120 characters and carries none of the input's distinctive bytes.
TEST(SaslErrorTextTest, EveryErrorIsShortAndQuotesNoInput) {
  const std::string long_word(300, 'Q');
  const std::string inputs[] = {
      long_word,
      "user=" + long_word + "\x01" + long_word + "\x01\x01",
      "user=" + long_word + "\x01" + "=" + long_word + "\x01\x01",
      "user=" + long_word + "\x01" + long_word + "9=x\x01\x01",
      "user=" + long_word + "\x01" + "auth=Basic " + long_word + "\x01\x01",
      "user=" + long_word + "\x01" + "auth=Bearer " + long_word + " " + long_word + "\x01\x01",
      "user=" + long_word + "\r\n\x01" + "auth=Bearer QQ\x01\x01",
      "n,a=" + long_word + "\x01\x01",
      "y,a=" + long_word + "=QQ," + "\x01" + "auth=Bearer QQ\x01\x01",
      "p=" + long_word + ",," + "\x01" + "auth=Bearer QQ\x01\x01",
  };
  for (const std::string& input : inputs) {
    EXPECT_FALSE(DecodeXoauth2(input).ok() && DecodeOauthBearer(input).ok()) << input;
    for (const absl::Status& status :
         {DecodeXoauth2(input).status(), DecodeOauthBearer(input).status(),
          Base64DecodeStrict(input).status()}) {
      if (status.ok()) continue;  // "QQQ..." is valid base64
      EXPECT_LE(status.message().size(), 120u) << status;
      EXPECT_FALSE(absl::StrContains(status.message(), "QQ")) << status;
    }
  }
}

}  // namespace
}  // namespace mailring::proto
