#include "proto/percent_encoding.h"

#include "gtest/gtest.h"

namespace mailring::proto {
namespace {

TEST(PercentEncodingTest, FormKeepsItsSetAndEncodesSpaceAsPlus) {
  EXPECT_EQ(PercentEncode("AZaz09-._*", PercentStyle::kForm), "AZaz09-._*");
  EXPECT_EQ(PercentEncode("a b", PercentStyle::kForm), "a+b");
  EXPECT_EQ(PercentEncode("a+b&c=d/e:f%~", PercentStyle::kForm), "a%2Bb%26c%3Dd%2Fe%3Af%25%7E");
  EXPECT_EQ(PercentEncode("\xc3\xa9\n", PercentStyle::kForm), "%C3%A9%0A");
  EXPECT_EQ(PercentEncode("", PercentStyle::kForm), "");
}

TEST(PercentEncodingTest, UriComponentKeepsOnlyUnreserved) {
  EXPECT_EQ(PercentEncode("AZaz09-._~", PercentStyle::kUriComponent), "AZaz09-._~");
  EXPECT_EQ(PercentEncode("a b*+/=", PercentStyle::kUriComponent), "a%20b%2A%2B%2F%3D");
}

TEST(PercentEncodingTest, DecodeRoundTripsAndRejectsBadEscapes) {
  for (const PercentStyle style : {PercentStyle::kForm, PercentStyle::kUriComponent}) {
    const std::string raw = "tok+en/ with=all&sorts%\x01\xff";
    EXPECT_EQ(PercentDecode(PercentEncode(raw, style), style), raw);
  }
  EXPECT_EQ(PercentDecode("a+b%2B", PercentStyle::kForm), "a b+");
  EXPECT_EQ(PercentDecode("a+b", PercentStyle::kUriComponent), "a+b");
  EXPECT_EQ(PercentDecode("%zz", PercentStyle::kForm), std::nullopt);
  EXPECT_EQ(PercentDecode("%4", PercentStyle::kForm), std::nullopt);
  EXPECT_EQ(PercentDecode("%", PercentStyle::kForm), std::nullopt);
}

}  // namespace
}  // namespace mailring::proto
