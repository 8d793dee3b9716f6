// DestinationServiceClient: two caches in front of HttpClient, each with request coalescing.
//
//  - Instance tokens, one slot per (instance, tenant): a valid token is handed out at once;
//    otherwise the first asker starts the client_credentials request and later askers queue on
//    the slot until it answers. A token counts as valid until its expiry minus
//    options.token_margin (at most half its lifetime, so that short-lived tokens are still
//    reused). A 401 from the Destination service drops the slot's token: the service revoked it
//    or it expired early, and the lookup is retried once with a fresh one.
//  - Destinations, one entry per (instance, tenant, name), for lookups without a user secret:
//    fresh for options.destination_ttl (and while every auth token it carries is still valid),
//    one request in flight at a time with the other askers queued on it. When a refresh fails
//    with Unavailable (transport error, timeout, 5xx, 429, token service down) the last good
//    entry is served, logged as such, and the service is not asked again before
//    min(destination_ttl, kStaleRetry). A 404 forgets the entry (the destination was deleted).
//    Lookups carrying X-refresh-token / X-code are never cached nor shared: the answer holds a
//    token obtained with that user's secret.
//
// Callbacks always run inside HttpClient::Poll(), never inside Find(): answers the client has at
// hand (a fresh cache entry, an unknown instance, a malformed lookup) are posted with a zero-delay
// HttpClient timer. A callback may call Find() again or destroy the client: the client checks
// that it is still alive after each callback, and posted answers of a destroyed client are
// dropped, as HttpClient drops the callbacks of requests it aborts.
//
// Secrets: the instance token, the service key's client secret and the user's refresh token or
// code are only ever put into HTTP headers and bodies. Error texts carry HTTP statuses,
// HttpClient's transport errors (URL without query), the OAuth error fields ParseTokenResponse
// lets through, and ParseDestination's field-naming errors.
#include "control/btp/destination_service.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "core/clock.h"
#include "core/log.h"
#include "proto/oauth_token.h"
#include "proto/str_cat.h"
#include "simdjson.h"

namespace mailring::control {
namespace {

// After serving a stale entry, the service is asked again no sooner than this.
constexpr int64_t kStaleRetryMs = 5'000;
// Lifetime assumed for an instance token whose response has no expires_in.
constexpr int64_t kDefaultTokenLifetimeMs = 10 * 60 * 1000;
// Longest destination name accepted (SAP allows 200 characters).
constexpr size_t kMaxNameLength = 200;

// RFC 3986 path-segment encoding: everything but the unreserved characters is %XX.
std::string PathSegmentEncode(std::string_view segment) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(segment.size());
  for (const char c : segment) {
    const unsigned char u = static_cast<unsigned char>(c);
    if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') || u == '-' ||
        u == '.' || u == '_' || u == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xf]);
    }
  }
  return out;
}

// A header value must not end the header line early (CR, LF) or carry other controls: the
// user's refresh token or code comes from an IMAP client and could otherwise inject headers.
bool IsSafeHeaderValue(std::string_view value) {
  return std::none_of(value.begin(), value.end(), [](char c) {
    const unsigned char u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

std::string Describe(std::string_view instance, std::string_view tenant) {
  return mailring::StrCat("instance=", instance, tenant.empty() ? "" : " tenant=", tenant);
}

std::string Describe(std::string_view instance, std::string_view tenant, std::string_view name) {
  return mailring::StrCat(Describe(instance, tenant), " destination=", name);
}

// Timeouts and transport errors are all "the service cannot be reached" to the callers.
absl::Status AsUnavailable(const absl::Status& status) {
  if (absl::IsDeadlineExceeded(status)) return absl::UnavailableError(status.message());
  return status;
}

// "3599" or 3599; anything else is an error.
bool ReadSeconds(simdjson::dom::element element, int64_t* seconds) {
  std::string_view text;
  if (element.get_string().get(text) == simdjson::SUCCESS) {
    if (text.empty() || text.size() > 18) return false;
    int64_t value = 0;
    for (const char c : text) {
      if (c < '0' || c > '9') return false;
      value = value * 10 + (c - '0');
    }
    *seconds = value;
    return true;
  }
  int64_t number = 0;
  if (element.get_int64().get(number) == simdjson::SUCCESS && number >= 0) {
    *seconds = number;
    return true;
  }
  uint64_t unsigned_number = 0;
  if (element.get_uint64().get(unsigned_number) == simdjson::SUCCESS) {
    *seconds = static_cast<int64_t>(std::min<uint64_t>(unsigned_number, INT64_MAX));
    return true;
  }
  return false;
}

// The optional string member `name` of `object`; false when present but not a string.
bool OptionalString(simdjson::dom::object object, std::string_view name, std::string* out) {
  simdjson::dom::element element;
  if (object[name].get(element) != simdjson::SUCCESS || element.is_null()) return true;
  std::string_view value;
  if (element.get_string().get(value) != simdjson::SUCCESS) return false;
  out->assign(value);
  return true;
}

// Parses a 200 answer of the "find destination" API. Errors name the field, never a value.
absl::StatusOr<FoundDestination> ParseFindResponse(std::string_view body) {
  simdjson::dom::parser parser;
  const simdjson::padded_string padded(body);
  simdjson::dom::element document;
  if (const auto error = parser.parse(padded).get(document); error != simdjson::SUCCESS) {
    return absl::InvalidArgumentError(
        mailring::StrCat("response is not valid JSON: ", simdjson::error_message(error)));
  }
  simdjson::dom::object root;
  if (document.get_object().get(root) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError("response is not a JSON object");
  }
  simdjson::dom::object configuration;
  if (root["destinationConfiguration"].get_object().get(configuration) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError("response has no \"destinationConfiguration\" object");
  }
  FoundDestination found;
  absl::StatusOr<proto::Destination> destination =
      proto::ParseDestination(simdjson::minify(configuration));
  if (!destination.ok()) {
    return absl::InvalidArgumentError(
        mailring::StrCat("destinationConfiguration: ", destination.status().message()));
  }
  found.destination = *std::move(destination);

  simdjson::dom::element tokens_element;
  if (root["authTokens"].get(tokens_element) != simdjson::SUCCESS || tokens_element.is_null()) {
    return found;
  }
  simdjson::dom::array tokens;
  if (tokens_element.get_array().get(tokens) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError("\"authTokens\" is not an array");
  }
  size_t index = 0;
  for (simdjson::dom::element token_element : tokens) {
    const std::string where = mailring::StrCat("authTokens[", index++, "]");
    simdjson::dom::object token_object;
    if (token_element.get_object().get(token_object) != simdjson::SUCCESS) {
      return absl::InvalidArgumentError(mailring::StrCat(where, " is not an object"));
    }
    DestinationAuthToken token;
    std::string value;
    if (!OptionalString(token_object, "type", &token.type)) {
      return absl::InvalidArgumentError(mailring::StrCat(where, ".type is not a string"));
    }
    if (!OptionalString(token_object, "value", &value)) {
      return absl::InvalidArgumentError(mailring::StrCat(where, ".value is not a string"));
    }
    token.value = proto::Secret(std::move(value));
    if (!OptionalString(token_object, "error", &token.error)) {
      return absl::InvalidArgumentError(mailring::StrCat(where, ".error is not a string"));
    }
    simdjson::dom::element expires;
    if (token_object["expires_in"].get(expires) == simdjson::SUCCESS && !expires.is_null() &&
        !ReadSeconds(expires, &token.expires_in_seconds)) {
      return absl::InvalidArgumentError(
          mailring::StrCat(where, ".expires_in is not a number of seconds"));
    }
    found.auth_tokens.push_back(std::move(token));
  }
  return found;
}

}  // namespace

struct DestinationServiceClient::Impl {
  // What one GET needs; copied into the continuations.
  struct FetchSpec {
    std::string instance;
    std::string tenant;
    std::string name;
    proto::Secret refresh_token;
    proto::Secret code;
    std::string redirect_uri;
    bool retried_with_new_token = false;
  };
  using TokenCallback = std::function<void(absl::StatusOr<proto::Secret> token, bool cached)>;

  // One per (instance, tenant). `token` is valid while now < usable_until_ms.
  struct TokenSlot {
    proto::Secret token;
    int64_t usable_until_ms = 0;
    bool in_flight = false;
    std::vector<TokenCallback> waiters;
  };

  // One per (instance, tenant, name) of plain lookups.
  struct DestinationEntry {
    std::optional<FoundDestination> last_good;
    int64_t fetched_at_ms = 0;   // when last_good was received
    int64_t fresh_until_ms = 0;  // served without asking the service until then
    bool in_flight = false;
    std::vector<Callback> waiters;
  };

  Impl(HttpClient* http, std::map<std::string, ServiceKey> instances,
       DestinationServiceOptions options)
      : http(http), instances(std::move(instances)), options(std::move(options)) {}

  static std::string TokenKey(std::string_view instance, std::string_view tenant) {
    return mailring::StrCat(instance, std::string_view("\0", 1), tenant);
  }
  static std::string EntryKey(const DestinationLookup& lookup) {
    return mailring::StrCat(TokenKey(lookup.instance, lookup.tenant), std::string_view("\0", 1),
                            lookup.name);
  }

  // A copy of `found` as seen `age_ms` after it was received: auth tokens' expires_in shrink.
  static FoundDestination Aged(const FoundDestination& found, int64_t age_ms) {
    FoundDestination copy = found;
    const int64_t age_seconds = std::max<int64_t>(0, age_ms / 1000);
    for (DestinationAuthToken& token : copy.auth_tokens) {
      if (token.expires_in_seconds > 0) {
        token.expires_in_seconds = std::max<int64_t>(0, token.expires_in_seconds - age_seconds);
      }
    }
    return copy;
  }

  // Fresh: within the TTL and every auth token keeps at least the margin of validity left.
  bool IsFresh(const DestinationEntry& entry, int64_t now_ms) const {
    if (!entry.last_good.has_value() || now_ms >= entry.fresh_until_ms) return false;
    const int64_t margin_s = absl::ToInt64Seconds(options.token_margin);
    const int64_t age_s = (now_ms - entry.fetched_at_ms) / 1000;
    for (const DestinationAuthToken& token : entry.last_good->auth_tokens) {
      if (token.value.empty() || token.expires_in_seconds <= 0) continue;
      const int64_t margin = std::min(margin_s, token.expires_in_seconds / 2);
      if (token.expires_in_seconds - age_s <= margin) return false;
    }
    return true;
  }

  // --- instance tokens ---

  void GetToken(const std::string& instance, const std::string& tenant, TokenCallback done) {
    const std::string key = TokenKey(instance, tenant);
    TokenSlot& slot = tokens[key];
    if (!slot.token.empty() && options.now_ms() < slot.usable_until_ms) {
      done(slot.token, /*cached=*/true);
      return;
    }
    slot.waiters.push_back(std::move(done));
    if (slot.in_flight) return;

    const ServiceKey& service_key = instances.at(instance);
    absl::StatusOr<std::string> url =
        proto::SubscriberUrlOfServiceKey(service_key.token_url, tenant);
    if (!url.ok()) {
      slot.in_flight = true;  // until the posted answer runs: later askers queue behind it
      const absl::Status error = absl::InvalidArgumentError(
          mailring::StrCat("instance token URL: ", url.status().message()));
      http->StartTimer(absl::ZeroDuration(),
                       [this, alive = std::weak_ptr<char>(alive), key, error] {
                         if (!alive.expired()) FinishToken(key, error);
                       });
      return;
    }
    proto::TokenRequest request;
    request.grant = proto::GrantType::kClientCredentials;
    request.token_url = *std::move(url);
    request.client_id = service_key.client_id;
    request.client_secret = service_key.client_secret;
    proto::EncodedTokenRequest encoded = proto::EncodeTokenRequest(request);
    HttpRequest http_request;
    http_request.method = "POST";
    http_request.url = std::move(encoded.url);
    http_request.headers = std::move(encoded.headers);
    http_request.headers.push_back("Accept: application/json");
    http_request.body = std::move(encoded.body);
    http_request.timeout = options.http_timeout;
    http_request.ca_file = options.ca_file;
    slot.in_flight = true;
    MAILRING_LOG(kDebug, "destination service ", Describe(instance, tenant),
                 ": requesting an instance token");
    http->Start(std::move(http_request), [this, alive = std::weak_ptr<char>(alive), key, instance,
                                          tenant](absl::StatusOr<HttpResponse> response) {
      if (alive.expired()) return;
      absl::StatusOr<proto::TokenResponse> token =
          response.ok()
              ? proto::ParseTokenResponse(static_cast<int>(response->status), response->body)
              : absl::StatusOr<proto::TokenResponse>(response.status());
      if (!token.ok()) {
        absl::Status status = AsUnavailable(token.status());
        // The token service refused the key: to the caller that is a permission
        // problem, as a 401 of the Destination service itself would be.
        if (absl::IsUnauthenticated(status)) {
          status = absl::PermissionDeniedError(status.message());
        }
        MAILRING_LOG(kWarning, "destination service ", Describe(instance, tenant),
                     ": instance token request failed: ", status.message());
        FinishToken(key, absl::Status(status.code(),
                                      mailring::StrCat("instance token: ", status.message())));
        return;
      }
      const int64_t lifetime_ms = token->expires_in_seconds > 0 ? token->expires_in_seconds * 1000
                                                                : kDefaultTokenLifetimeMs;
      const int64_t margin_ms =
          std::min(absl::ToInt64Milliseconds(options.token_margin), lifetime_ms / 2);
      TokenSlot& slot = tokens[key];
      slot.token = token->access_token;
      slot.usable_until_ms = options.now_ms() + lifetime_ms - margin_ms;
      MAILRING_LOG(kDebug, "destination service ", Describe(instance, tenant),
                   ": instance token valid for ", lifetime_ms / 1000, "s");
      FinishToken(key, token->access_token);
    });
  }

  void FinishToken(const std::string& key, absl::StatusOr<proto::Secret> result) {
    TokenSlot& slot = tokens[key];
    slot.in_flight = false;
    std::vector<TokenCallback> waiters;
    waiters.swap(slot.waiters);
    const std::weak_ptr<char> still_alive = alive;
    for (TokenCallback& waiter : waiters) {
      waiter(result, /*cached=*/false);
      if (still_alive.expired()) return;
    }
  }

  void DropToken(const std::string& instance, const std::string& tenant,
                 const proto::Secret& rejected) {
    auto it = tokens.find(TokenKey(instance, tenant));
    // Only the token that was rejected: a newer one may have arrived meanwhile.
    if (it != tokens.end() && it->second.token.Reveal() == rejected.Reveal()) {
      it->second.token = proto::Secret();
      it->second.usable_until_ms = 0;
    }
  }

  // --- destination requests ---

  void Fetch(FetchSpec spec, Callback done) {
    const std::string instance = spec.instance;
    const std::string tenant = spec.tenant;
    GetToken(instance, tenant,
             [this, spec = std::move(spec), done = std::move(done)](
                 absl::StatusOr<proto::Secret> token, bool cached) mutable {
               if (!token.ok()) {
                 done(absl::Status(token.status().code(),
                                   mailring::StrCat("cannot look up ",
                                                    Describe(spec.instance, spec.tenant, spec.name),
                                                    ": ", token.status().message())));
                 return;
               }
               SendGet(std::move(spec), *std::move(token), cached, std::move(done));
             });
  }

  void SendGet(FetchSpec spec, proto::Secret token, bool token_was_cached, Callback done) {
    const ServiceKey& service_key = instances.at(spec.instance);
    std::string base = service_key.uri;
    while (!base.empty() && base.back() == '/') base.pop_back();
    HttpRequest request;
    request.method = "GET";
    request.url = mailring::StrCat(base, "/destination-configuration/v1/destinations/",
                                   PathSegmentEncode(spec.name));
    request.headers.push_back(mailring::StrCat("Authorization: Bearer ", token.Reveal()));
    request.headers.push_back("Accept: application/json");
    if (!spec.refresh_token.empty()) {
      request.headers.push_back(mailring::StrCat("X-refresh-token: ", spec.refresh_token.Reveal()));
    }
    if (!spec.code.empty()) {
      request.headers.push_back(mailring::StrCat("X-code: ", spec.code.Reveal()));
    }
    if (!spec.redirect_uri.empty()) {
      request.headers.push_back(mailring::StrCat("X-redirect-uri: ", spec.redirect_uri));
    }
    request.timeout = options.http_timeout;
    request.ca_file = options.ca_file;
    MAILRING_LOG(kDebug, "destination service ", Describe(spec.instance, spec.tenant, spec.name),
                 ": looking up");
    http->Start(
        std::move(request),
        [this, alive = std::weak_ptr<char>(alive), spec = std::move(spec), token = std::move(token),
         token_was_cached, done = std::move(done)](absl::StatusOr<HttpResponse> response) mutable {
          if (alive.expired()) return;
          if (response.ok() && response->status == 401 && token_was_cached &&
              !spec.retried_with_new_token) {
            // The cached token was revoked or expired early: once more with a new one.
            MAILRING_LOG(kInfo, "destination service ",
                         Describe(spec.instance, spec.tenant, spec.name),
                         ": instance token rejected (HTTP 401), fetching a new one");
            DropToken(spec.instance, spec.tenant, token);
            spec.retried_with_new_token = true;
            Fetch(std::move(spec), std::move(done));
            return;
          }
          if (response.ok() && response->status == 401) {
            DropToken(spec.instance, spec.tenant, token);
          }
          done(Interpret(spec, std::move(response)));
        });
  }

  static absl::StatusOr<FoundDestination> Interpret(const FetchSpec& spec,
                                                    absl::StatusOr<HttpResponse> response) {
    const std::string what = Describe(spec.instance, spec.tenant, spec.name);
    if (!response.ok()) {
      const absl::Status status = AsUnavailable(response.status());
      return absl::Status(status.code(), mailring::StrCat("Destination service unreachable for ",
                                                          what, ": ", status.message()));
    }
    const long code = response->status;
    if (code == 200) {
      absl::StatusOr<FoundDestination> found = ParseFindResponse(response->body);
      if (!found.ok()) {
        return absl::InvalidArgumentError(mailring::StrCat("Destination service answer for ", what,
                                                           ": ", found.status().message()));
      }
      return found;
    }
    if (code == 404) {
      return absl::NotFoundError(mailring::StrCat(
          "destination ", spec.name, " not found in instance ", spec.instance,
          spec.tenant.empty() ? "" : mailring::StrCat(" (tenant ", spec.tenant, ")")));
    }
    const std::string status_text =
        mailring::StrCat("Destination service answered HTTP ", code, " for ", what);
    if (code == 401 || code == 403) return absl::PermissionDeniedError(status_text);
    if (code >= 500 || code == 429 || code == 408) return absl::UnavailableError(status_text);
    if (code >= 400) return absl::InvalidArgumentError(status_text);
    return absl::UnavailableError(status_text);  // 1xx, 2xx other than 200, 3xx: not the API
  }

  // Runs `done(result)` inside the next HttpClient::Poll(), unless the client is gone by then.
  void Post(Callback done, absl::StatusOr<FoundDestination> result) {
    http->StartTimer(absl::ZeroDuration(), [alive = std::weak_ptr<char>(alive),
                                            done = std::move(done), result = std::move(result)] {
      if (!alive.expired()) done(result);
    });
  }

  // --- plain lookups ---

  void OnEntryFetched(const std::string& key, const DestinationLookup& lookup,
                      absl::StatusOr<FoundDestination> result) {
    auto it = entries.find(key);
    if (it == entries.end()) return;
    DestinationEntry& entry = it->second;
    entry.in_flight = false;
    const int64_t now_ms = options.now_ms();
    if (result.ok()) {
      entry.last_good = *result;
      entry.fetched_at_ms = now_ms;
      entry.fresh_until_ms = now_ms + absl::ToInt64Milliseconds(options.destination_ttl);
    } else if (absl::IsUnavailable(result.status()) && entry.last_good.has_value()) {
      const std::string what = Describe(lookup.instance, lookup.tenant, lookup.name);
      const int64_t age_ms = now_ms - entry.fetched_at_ms;
      MAILRING_LOG(kWarning, "destination service ", what,
                   ": refresh failed, serving the last good entry (", age_ms / 1000,
                   "s old): ", result.status().message());
      entry.fresh_until_ms =
          now_ms + std::min(absl::ToInt64Milliseconds(options.destination_ttl), kStaleRetryMs);
      result = Aged(*entry.last_good, age_ms);
    } else {
      // Error texts name the instance, tenant and destination themselves.
      MAILRING_LOG(kWarning, "destination service: ", result.status().message());
      if (absl::IsNotFound(result.status())) entry.last_good.reset();
    }
    std::vector<Callback> waiters;
    waiters.swap(entry.waiters);
    // Entries exist for what they remember: names that never resolved leave nothing behind.
    if (!entry.last_good.has_value()) entries.erase(it);
    const std::weak_ptr<char> still_alive = alive;
    for (Callback& waiter : waiters) {
      waiter(result);
      if (still_alive.expired()) return;
    }
  }

  HttpClient* const http;
  const std::map<std::string, ServiceKey> instances;
  const DestinationServiceOptions options;
  absl::flat_hash_map<std::string, TokenSlot> tokens;
  absl::flat_hash_map<std::string, DestinationEntry> entries;
  // Callbacks handed to HttpClient hold a weak_ptr to this: HttpClient may outlive the client
  // (its destructor drops them uncalled, but a Poll() in between would run them).
  std::shared_ptr<char> alive = std::make_shared<char>();
};

DestinationServiceClient::DestinationServiceClient(HttpClient* http,
                                                   std::map<std::string, ServiceKey> instances,
                                                   DestinationServiceOptions options)
    : impl_(std::make_unique<Impl>(http, std::move(instances), std::move(options))) {}

DestinationServiceClient::~DestinationServiceClient() = default;

void DestinationServiceClient::Find(DestinationLookup lookup, Callback done) {
  auto instance = impl_->instances.find(lookup.instance);
  if (instance == impl_->instances.end()) {
    impl_->Post(std::move(done),
                absl::FailedPreconditionError(mailring::StrCat(
                    "no service key for Destination service instance \"", lookup.instance, "\"")));
    return;
  }
  if (instance->second.uri.empty()) {
    impl_->Post(std::move(done), absl::FailedPreconditionError(mailring::StrCat(
                                     "the service key of Destination service instance \"",
                                     lookup.instance, "\" has no \"uri\"")));
    return;
  }
  if (lookup.name.empty() || lookup.name.size() > kMaxNameLength) {
    impl_->Post(std::move(done),
                absl::InvalidArgumentError(mailring::StrCat("destination name must be 1 to ",
                                                            kMaxNameLength, " characters")));
    return;
  }
  if (!IsSafeHeaderValue(lookup.refresh_token.Reveal()) ||
      !IsSafeHeaderValue(lookup.code.Reveal()) || !IsSafeHeaderValue(lookup.redirect_uri)) {
    impl_->Post(std::move(done),
                absl::InvalidArgumentError(mailring::StrCat(
                    "destination ", lookup.name,
                    ": the refresh token, code or redirect URI contains control characters")));
    return;
  }

  Impl::FetchSpec spec;
  spec.instance = lookup.instance;
  spec.tenant = lookup.tenant;
  spec.name = lookup.name;
  spec.redirect_uri = lookup.redirect_uri;
  if (!lookup.refresh_token.empty() || !lookup.code.empty()) {
    spec.refresh_token = std::move(lookup.refresh_token);
    spec.code = std::move(lookup.code);
    impl_->Fetch(std::move(spec), std::move(done));
    return;
  }

  const std::string key = Impl::EntryKey(lookup);
  Impl::DestinationEntry& entry = impl_->entries[key];
  const int64_t now_ms = impl_->options.now_ms();
  if (impl_->IsFresh(entry, now_ms)) {
    impl_->Post(std::move(done), Impl::Aged(*entry.last_good, now_ms - entry.fetched_at_ms));
    return;
  }
  entry.waiters.push_back(std::move(done));
  if (entry.in_flight) return;
  entry.in_flight = true;
  Impl* impl = impl_.get();
  impl_->Fetch(std::move(spec),
               [impl, key, lookup = std::move(lookup)](absl::StatusOr<FoundDestination> result) {
                 impl->OnEntryFetched(key, lookup, std::move(result));
               });
}

}  // namespace mailring::control
