#include "proto/imap_capabilities.h"

#include "gtest/gtest.h"

namespace mailring::proto {
namespace {

TEST(CapabilitySetTest, ParsesSpaceSeparatedAtoms) {
  const CapabilitySet set = CapabilitySet::Parse("  IMAP4rev1  SASL-IR AUTH=PLAIN ");
  EXPECT_EQ(set.atoms(), (std::vector<std::string>{"IMAP4rev1", "SASL-IR", "AUTH=PLAIN"}));
  EXPECT_FALSE(set.empty());
  EXPECT_TRUE(CapabilitySet::Parse("").empty());
}

TEST(CapabilitySetTest, HasIsCaseInsensitiveAndExact) {
  const CapabilitySet set = CapabilitySet::Parse("IMAP4rev1 LITERAL+ AUTH=PLAIN");
  EXPECT_TRUE(set.Has("imap4REV1"));
  EXPECT_TRUE(set.Has("literal+"));
  EXPECT_FALSE(set.Has("LITERAL"));
  EXPECT_FALSE(set.Has("IMAP4"));
  EXPECT_TRUE(set.HasAuth("plain"));
  EXPECT_FALSE(set.HasAuth("XOAUTH2"));
}

TEST(CapabilitySetTest, PreauthenticatedClientLosesLoginCapabilities) {
  const CapabilitySet set = CapabilitySet::Parse(
      "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN "
      "AUTH=XOAUTH2 LOGINDISABLED COMPRESS=DEFLATE");
  EXPECT_EQ(set.ForPreauthenticatedClient(), "IMAP4rev1 ID ENABLE IDLE LITERAL+ COMPRESS=DEFLATE");
}

TEST(CapabilitySetTest, PreauthenticatedFilterIsCaseInsensitive) {
  const CapabilitySet set =
      CapabilitySet::Parse("imap4rev1 auth=plain sasl-ir StartTLS logindisabled login-referrals");
  EXPECT_EQ(set.ForPreauthenticatedClient(), "imap4rev1");
}

TEST(CapabilitySetTest, PreauthenticatedFilterKeepsLookalikes) {
  // Only exact atoms (or the AUTH= prefix) are removed.
  const CapabilitySet set = CapabilitySet::Parse("STARTTLSX AUTHX SASL-IR2");
  EXPECT_EQ(set.ForPreauthenticatedClient(), "STARTTLSX AUTHX SASL-IR2");
}

}  // namespace
}  // namespace mailring::proto
