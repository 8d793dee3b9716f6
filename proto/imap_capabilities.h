// CapabilitySet: the capability atoms a server announced, compared case-insensitively.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mailring::proto {

class CapabilitySet {
 public:
  CapabilitySet() = default;
  // Splits a space-separated capability list ("IMAP4rev1 SASL-IR AUTH=PLAIN ...").
  static CapabilitySet Parse(std::string_view list);

  bool empty() const { return atoms_.empty(); }
  bool Has(std::string_view capability) const;  // case-insensitive, exact atom
  bool HasAuth(std::string_view mechanism) const { return Has(std::string("AUTH=") += mechanism); }

  // The list a client of mailring sees after the proxy logged in for it: everything the server
  // announced except AUTH=*, SASL-IR, LOGINDISABLED, STARTTLS, LOGIN-REFERRALS (they describe a
  // login the client no longer performs). Order preserved, space-separated.
  std::string ForPreauthenticatedClient() const;

  const std::vector<std::string>& atoms() const { return atoms_; }

 private:
  std::vector<std::string> atoms_;
};

}  // namespace mailring::proto
