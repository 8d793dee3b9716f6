// RejectedTokens: access tokens a mail server refused, remembered per credential-cache key so
// that no session of the worker offers one of them again.
//
// Why: when a server refuses a token, the session asks the control thread to drop it
// (CredentialRequest::kInvalidate), but the cache keeps serving the old entry until the control
// thread has published a new one; a client that retries at once would get the same refused token.
// A token is forgotten as soon as the cache holds another one for its key (Contains() sees a
// different token), so the memory never outlives the rejection.
//
// Contract: single-threaded (one per worker). Only a hash of each token is kept, never the token.
// A hint, not a security boundary: a hash collision merely makes a session wait for the next
// token, and the table is cleared wholesale past kMaxKeys so it cannot grow without bound.
#pragma once

#include <cstddef>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "proto/secret.h"

namespace mailring::core {

class RejectedTokens {
 public:
  static constexpr size_t kMaxKeys = 10'000;

  // The server refused `token`, taken from the cache under `key`.
  void Remember(const std::string& key, const proto::Secret& token);
  // True when `token` is the one refused under `key`. A different token means the cache moved
  // on: the remembered one is forgotten.
  bool Contains(const std::string& key, const proto::Secret& token);

  size_t size() const { return hashes_.size(); }

 private:
  absl::flat_hash_map<std::string, size_t> hashes_;  // key → hash of the refused token
};

}  // namespace mailring::core
