#include "core/rejected_tokens.h"

#include <functional>
#include <string_view>

namespace mailring::core {

namespace {
size_t HashOf(const proto::Secret& token) { return std::hash<std::string_view>()(token.Reveal()); }
}  // namespace

void RejectedTokens::Remember(const std::string& key, const proto::Secret& token) {
  if (hashes_.size() >= kMaxKeys && !hashes_.contains(key)) hashes_.clear();
  hashes_[key] = HashOf(token);
}

bool RejectedTokens::Contains(const std::string& key, const proto::Secret& token) {
  auto it = hashes_.find(key);
  if (it == hashes_.end()) return false;
  if (it->second == HashOf(token)) return true;
  hashes_.erase(it);
  return false;
}

}  // namespace mailring::core
