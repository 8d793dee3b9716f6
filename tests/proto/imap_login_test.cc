#include "proto/imap_login.h"

#include <string>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace mailring::proto {
namespace {

using namespace std::literals;  // NOLINT: values below contain NUL bytes
using Segments = std::vector<std::string>;

TEST(ImapLoginTest, AuthenticatePlainEncodesNulSeparatedCredentials) {
  const std::string command = EncodeAuthenticatePlain("A1", "user", "pass");
  EXPECT_EQ(command, "A1 AUTHENTICATE PLAIN AHVzZXIAcGFzcw==\r\n");
  std::string decoded;
  ASSERT_TRUE(absl::Base64Unescape("AHVzZXIAcGFzcw==", &decoded));
  EXPECT_EQ(decoded, "\0user\0pass"s);
}

TEST(ImapLoginTest, AuthenticatePlainKeepsEightBitCredentials) {
  std::string decoded;
  const std::string command = EncodeAuthenticatePlain("t", "j\xc3\xb6rg", "p w\"");
  ASSERT_TRUE(absl::Base64Unescape(command.substr(21, command.size() - 23), &decoded));
  EXPECT_EQ(decoded, "\0j\xc3\xb6rg\0p w\""s);
}

TEST(ImapLoginTest, ChoosesAtomForPlainValues) {
  EXPECT_EQ(ChooseAstringForm("user@example.com"), AstringForm::kAtom);
  EXPECT_EQ(ChooseAstringForm("Pa$$w0rd!#&'+,-./:;<=>?@[^_`|}~"), AstringForm::kAtom);
}

TEST(ImapLoginTest, ChoosesQuotedForAtomSpecials) {
  for (std::string_view value :
       {"", "a b", "a(b", "a)b", "a{b", "a%b", "a*b", "a\"b", "a\\b", "a]b", "a\tb",
        "a\x7f"
        "b"}) {
    EXPECT_EQ(ChooseAstringForm(value), AstringForm::kQuoted) << value;
  }
}

TEST(ImapLoginTest, ChoosesLiteralForCrLfNulAndEightBit) {
  for (std::string_view value : {"a\rb"sv, "a\nb"sv, "a\0b"sv, "j\xc3\xb6rg"sv}) {
    EXPECT_EQ(ChooseAstringForm(value), AstringForm::kLiteral);
  }
}

TEST(ImapLoginTest, LoginWithAtomsIsOneSegment) {
  EXPECT_EQ(EncodeLogin("A1", "user", "secret", false), (Segments{"A1 LOGIN user secret\r\n"}));
}

TEST(ImapLoginTest, QuotedStringsEscapeQuoteAndBackslash) {
  EXPECT_EQ(EncodeLogin("A1", "first last", "p\"w\\d", false),
            (Segments{"A1 LOGIN \"first last\" \"p\\\"w\\\\d\"\r\n"}));
}

TEST(ImapLoginTest, EmptyValuesAreQuoted) {
  EXPECT_EQ(EncodeLogin("A1", "", "", true), (Segments{"A1 LOGIN \"\" \"\"\r\n"}));
}

TEST(ImapLoginTest, SynchronizingLiteralsSplitIntoSegments) {
  EXPECT_EQ(EncodeLogin("A1", "j\xc3\xb6rg", "pa\r\nss", false),
            (Segments{"A1 LOGIN {5}\r\n", "j\xc3\xb6rg {6}\r\n", "pa\r\nss\r\n"}));
}

TEST(ImapLoginTest, SynchronizingLiteralForPasswordOnly) {
  EXPECT_EQ(EncodeLogin("A1", "user", "p\xe4ss", false),
            (Segments{"A1 LOGIN user {4}\r\n", "p\xe4ss\r\n"}));
}

TEST(ImapLoginTest, NonSynchronizingLiteralsStayInOneSegment) {
  EXPECT_EQ(EncodeLogin("A1", "j\xc3\xb6rg", "pa\0ss"s, true),
            (Segments{"A1 LOGIN {5+}\r\nj\xc3\xb6rg {5+}\r\npa\0ss\r\n"s}));
}

}  // namespace
}  // namespace mailring::proto
