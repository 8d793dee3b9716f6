#include "proto/imap_capabilities.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "proto/absl_string_view.h"

namespace mailring::proto {
namespace {

// Capabilities that describe the login step. Once mailring has logged in upstream the client
// never performs that step, and advertising them would invite it to (or make it refuse to talk).
bool DescribesLogin(std::string_view atom) {
  if (absl::StartsWithIgnoreCase(AsAbsl(atom), "AUTH=")) return true;
  for (std::string_view login_only : {"SASL-IR", "LOGINDISABLED", "STARTTLS", "LOGIN-REFERRALS"}) {
    if (absl::EqualsIgnoreCase(AsAbsl(atom), AsAbsl(login_only))) return true;
  }
  return false;
}

}  // namespace

CapabilitySet CapabilitySet::Parse(std::string_view list) {
  CapabilitySet set;
  for (absl::string_view atom :
       absl::StrSplit(AsAbsl(list), absl::ByAnyChar(" \t"), absl::SkipEmpty())) {
    set.atoms_.emplace_back(atom);
  }
  return set;
}

bool CapabilitySet::Has(std::string_view capability) const {
  for (const std::string& atom : atoms_) {
    if (absl::EqualsIgnoreCase(atom, AsAbsl(capability))) return true;
  }
  return false;
}

std::string CapabilitySet::ForPreauthenticatedClient() const {
  std::vector<absl::string_view> kept;
  kept.reserve(atoms_.size());
  for (const std::string& atom : atoms_) {
    if (!DescribesLogin(atom)) kept.push_back(atom);
  }
  return absl::StrJoin(kept, " ");
}

}  // namespace mailring::proto
