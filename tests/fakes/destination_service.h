// FakeDestinationService: SAP BTP's Destination service ("find destination" API) and the
// XSUAA token endpoint of its service instance, for tests, on 127.0.0.1 port 0.
//
// Two listeners (HTTP/1.1, Content-Length bodies, keep-alive):
//   token_port()  the instance's XSUAA: POST /oauth/token, grant_type=client_credentials with
//                 the instance's clientid/clientsecret in the body or as HTTP Basic
//                 (form-urlencoded, then base64). 401 {"error":"invalid_client"} for wrong
//                 credentials, 400 {"error":"unsupported_grant_type"} for other grants. The
//                 TENANT is the first DNS label of the request's Host, as with XSUAA's
//                 per-subaccount subdomains: "t1.localhost:<port>" issues tokens for tenant "t1";
//                 the provider subdomain (default "provider"), "localhost" and IP literals issue
//                 provider tokens (tenant ""). libcurl resolves every *.localhost name to the
//                 loopback address itself (RFC 6761), so no resolver setup is needed.
//   port()        the Destination service:
//                 GET /destination-configuration/v1/destinations/{name}
//                 "Authorization: Bearer <token issued above, not expired or revoked>" else 401;
//                 the token's tenant selects the destination set, so two tenants never see each
//                 other's destinations. 404 {"ErrorMessage": ...} for an unknown name. 200:
//                   {"owner": {"SubaccountId": <tenant's subaccount id>, "InstanceId": ...},
//                    "destinationConfiguration": {<the destination as added, all strings>},
//                    "authTokens": [{"type": "Bearer", "value": ..., "http_header":
//                                    {"key": "Authorization", "value": "Bearer ..."},
//                                    "expires_in": "3599"}]}
//                 authTokens for OAuth2ClientCredentials always, for OAuth2RefreshToken with
//                 X-refresh-token, for OAuth2AuthorizationCode with X-code (+ X-redirect-uri,
//                 else the destination's redirectUri): in TokenMode::kExchange the fake posts the
//                 grant to the destination's tokenServiceURL (per tenant when
//                 tokenServiceURLType is Common: placeholder or prepended label; http:// to
//                 localhost, *.localhost or an IPv4 literal only), in kMint it invents a token. A
//                 failed exchange, or a missing X-refresh-token / X-code, gives an entry with
//                 "error" and no "value", as SAP does. No authTokens for other types.
//
// Test controls: AddDestination / RemoveDestination per tenant, Stop()/Start() of the
// Destination service listener (connections refused meanwhile; the token listener stays),
// FailNextRequests (a status and body for the next N destination requests), counters, and the
// headers of every destination request received.
//
// HTTP: tests/fakes/http_server, one server per listener. Every public method is thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "tests/fakes/http_server.h"

namespace mailring::fakes {

class FakeDestinationService {
 public:
  // How authTokens of OAuth2* destinations are obtained.
  enum class TokenMode {
    kExchange,  // a real token request at the destination's tokenServiceURL
    kMint,      // a random token, expires_in = SetMintedTokenExpiresIn
  };

  // A destination request as received (header names lower-case).
  struct Request {
    std::string tenant;  // of the bearer token; "" for the provider or an invalid token
    std::string name;    // decoded
    std::map<std::string, std::string> headers;
    int status = 0;  // what it was answered
  };

  FakeDestinationService();
  ~FakeDestinationService();
  FakeDestinationService(const FakeDestinationService&) = delete;
  FakeDestinationService& operator=(const FakeDestinationService&) = delete;

  // First call: binds both listeners on 127.0.0.1 port 0. Later calls bring the Destination
  // service listener back on the same port after Stop().
  absl::Status Start();
  // Closes the Destination service listener and its connections, joins their threads;
  // idempotent. The token listener keeps running.
  void Stop();
  bool running() const;

  uint16_t port() const { return api_->port(); }
  uint16_t token_port() const { return token_->port(); }
  // A service key for this instance, as a Secret mounted from Kubernetes holds it: clientid,
  // clientsecret, url = http://<provider subdomain>.localhost:<token_port>,
  // uri = http://127.0.0.1:<port>.
  std::string ServiceKeyJson() const;
  std::string client_id() const;
  std::string client_secret() const;

  // Destinations. `tenant` "" is the provider subaccount. `json` is one destination object with
  // a string "Name" (every value should be a string, as the real service stores them); an
  // existing destination of that name in that tenant is replaced. InvalidArgument otherwise.
  absl::Status AddDestination(const std::string& tenant, const std::string& json);
  bool RemoveDestination(const std::string& tenant, const std::string& name);

  void SetProviderSubdomain(const std::string& subdomain);  // default "provider"
  void SetTokenMode(TokenMode mode);                        // default kExchange
  void SetMintedTokenExpiresIn(int seconds);                // default 3600
  // Lifetime of instance tokens issued from now on (seconds; default 43199, as XSUAA's).
  void SetInstanceTokenExpiresIn(int seconds);
  // Instance tokens issued so far stop being accepted (401).
  void RevokeInstanceTokens();
  // The next `count` destination requests are answered `status` with `body` (before the token
  // is checked, as an overloaded front end would).
  void FailNextRequests(int count, int status,
                        const std::string& body = R"({"ErrorMessage":"injected failure"})");
  // The next `count` token requests are answered `status` {"error":"server_error"}.
  void FailNextTokenRequests(int count, int status);

  // Counters since construction.
  int destination_requests() const;  // every GET on port()
  int token_requests() const;        // every POST /oauth/token on token_port()
  int instance_tokens_issued() const;
  int instance_tokens_issued(const std::string& tenant) const;
  int token_exchanges() const;  // authTokens obtained (either mode), failures excluded
  std::vector<Request> requests() const;
  // Every instance token and authTokens value handed out, for "never logged" checks.
  std::vector<std::string> IssuedTokens() const;

 private:
  // What a handler answers (turned into an HttpResponse, Content-Type application/json unless
  // `headers` name one).
  struct Answer {
    int status = 200;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
  };
  struct InstanceToken {
    std::string tenant;
    int64_t expires_at_ms = 0;
    bool revoked = false;
  };

  static HttpResponse ToHttp(Answer answer);
  Answer HandleTokenListener(const HttpRequest& request);
  Answer HandleApiListener(const HttpRequest& request);
  Answer HandleToken(const HttpRequest& request);
  Answer HandleFind(const HttpRequest& request);
  // The authTokens[] entry for `destination` (a JSON object); "" when the type has none.
  std::string AuthTokenJson(const std::string& destination_json, const std::string& tenant,
                            const HttpRequest& request);
  std::string TenantOfHost(const std::string& host) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  std::string RandomHex(int bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  std::unique_ptr<HttpServer> api_;
  std::unique_ptr<HttpServer> token_;
  absl::Mutex start_mutex_;  // serializes Start() and Stop()
  std::string client_id_;
  std::string client_secret_;
  std::string instance_id_;

  mutable absl::Mutex mutex_;
  std::mt19937_64 random_ ABSL_GUARDED_BY(mutex_);
  std::string provider_subdomain_ ABSL_GUARDED_BY(mutex_) = "provider";
  TokenMode token_mode_ ABSL_GUARDED_BY(mutex_) = TokenMode::kExchange;
  int minted_expires_in_ ABSL_GUARDED_BY(mutex_) = 3600;
  int instance_expires_in_ ABSL_GUARDED_BY(mutex_) = 43199;
  // tenant → name → the destination's JSON object text.
  std::map<std::string, std::map<std::string, std::string>> destinations_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, InstanceToken> instance_tokens_ ABSL_GUARDED_BY(mutex_);
  int fail_count_ ABSL_GUARDED_BY(mutex_) = 0;
  int fail_status_ ABSL_GUARDED_BY(mutex_) = 500;
  std::string fail_body_ ABSL_GUARDED_BY(mutex_);
  int fail_token_count_ ABSL_GUARDED_BY(mutex_) = 0;
  int fail_token_status_ ABSL_GUARDED_BY(mutex_) = 500;
  int destination_requests_ ABSL_GUARDED_BY(mutex_) = 0;
  int token_requests_ ABSL_GUARDED_BY(mutex_) = 0;
  std::map<std::string, int> instance_tokens_issued_ ABSL_GUARDED_BY(mutex_);
  int token_exchanges_ ABSL_GUARDED_BY(mutex_) = 0;
  std::vector<Request> requests_ ABSL_GUARDED_BY(mutex_);
  std::vector<std::string> issued_tokens_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace mailring::fakes
