// FakeOAuthServer: a small but faithful OAuth 2.0 authorization server for tests, on loopback.
//
// Endpoints (HTTP/1.1 served by tests/fakes/http_server; libcurl and Dovecot are its clients):
//   POST /oauth/token   RFC 6749 token endpoint, application/x-www-form-urlencoded.
//                       grant_type client_credentials | refresh_token | authorization_code.
//                       Client authentication: client_id/client_secret in the body (section
//                       2.3.1) or HTTP Basic (form-urlencoded id and secret, base64). Errors are
//                       section 5.2 JSON: 400 invalid_request / invalid_grant /
//                       unsupported_grant_type / invalid_scope, 401 invalid_client (with
//                       WWW-Authenticate when Basic was used). Success: {"access_token",
//                       "token_type": "bearer", "expires_in", "refresh_token" (authorization_code
//                       grant, and refresh_token grant when rotation is on), "scope" (when the
//                       request named one)}.
//   POST /introspect    RFC 7662: form token=...; {"active": true, "username", "exp", "iat",
//                       "client_id", "token_type", "scope"?} or {"active": false} for an unknown,
//                       expired or revoked token. (Dovecot's oauth2 passdb in introspection_mode
//                       post calls this; it accepts no client authentication check here, as
//                       Dovecot sends none.)
//
// Two listeners share one state:
//   token_port()          the authorization server as mailring sees it. Stop()/Start() take it
//                         down and bring it back on the same port (connections refused meanwhile):
//                         "the token service is down".
//   introspection_port()  the same endpoints on a second port that Stop() leaves alone, for the
//                         resource server (Dovecot), so that a cached token keeps being accepted
//                         while mailring cannot reach the token service.
//
// Tokens are random 32-byte hex strings. Every public method is thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "tests/fakes/http_server.h"

namespace mailring::fakes {

class FakeOAuthServer {
 public:
  // What the next token requests do instead of answering normally (FailNextTokenRequests).
  enum class Fault {
    kHttp500,             // 500 {"error":"server_error"}
    kBadJson,             // 200 with a body that is not JSON
    kMissingAccessToken,  // 200 {"token_type":"bearer","expires_in":...} without access_token
    kInvalidGrant,        // 400 {"error":"invalid_grant"}
  };

  FakeOAuthServer();
  ~FakeOAuthServer();
  FakeOAuthServer(const FakeOAuthServer&) = delete;
  FakeOAuthServer& operator=(const FakeOAuthServer&) = delete;

  // Binds both listeners on 127.0.0.1 (port 0 the first time, the same port afterwards).
  // Start() after Stop() brings only the token listener back.
  absl::Status Start();
  // Closes the token listener and every connection accepted on it, and joins their threads;
  // idempotent.
  void Stop();
  bool running() const;

  uint16_t token_port() const { return token_server_->port(); }
  uint16_t introspection_port() const { return introspection_server_->port(); }
  std::string TokenUrl() const;          // http://127.0.0.1:<token_port>/oauth/token
  std::string IntrospectionUrl() const;  // http://127.0.0.1:<introspection_port>/introspect

  // Registration. A client acts for `user` when it uses the client_credentials grant (the
  // introspection's "username"). Refresh tokens and codes belong to `user`; an empty client_id
  // lets any registered client redeem them. A code registered with a redirect_uri must be
  // redeemed with exactly that redirect_uri. Codes are single-use.
  void RegisterClient(const std::string& client_id, const std::string& client_secret,
                      const std::string& user);
  void RegisterRefreshToken(const std::string& refresh_token, const std::string& user,
                            const std::string& client_id = "");
  void RegisterCode(const std::string& code, const std::string& user,
                    const std::string& redirect_uri = "", const std::string& client_id = "");

  // Mints an access token directly (as if a grant had succeeded), for tests that talk to the
  // resource server without a token request.
  std::string IssueAccessToken(const std::string& user, const std::string& client_id);

  // Lifetime of tokens issued from now on (seconds; default 3600).
  void SetExpiresIn(int seconds);
  // When on, the refresh_token grant also returns a new refresh token and revokes the old one.
  void SetRotateRefreshTokens(bool rotate);
  // The next `count` token requests (any grant, after parsing) answer with `fault`.
  void FailNextTokenRequests(int count, Fault fault);

  // Revokes an access token, refresh token or code; introspection says inactive afterwards.
  void Revoke(const std::string& token);
  // Revokes every access token issued so far (refresh tokens and codes stay valid).
  void RevokeAllAccessTokens();
  // Forgets every registration, token, fault and counter and sets expires_in back to 3600;
  // brings the token listener back if it was stopped.
  absl::Status Reset();

  // Counters since construction or Reset().
  int client_credentials_grants() const;  // successful client_credentials token responses
  int refresh_token_grants() const;       // successful refresh_token token responses
  int authorization_code_grants() const;  // successful authorization_code token responses
  int token_requests() const;             // every POST /oauth/token, successful or not
  int failed_token_requests() const;      // answered with an error (4xx/5xx) or a Fault
  int introspections() const;             // every POST /introspect
  int active_introspections() const;      // ... that answered active: true
  // Every access token issued (oldest first), for log checks.
  std::vector<std::string> IssuedAccessTokens() const;
  // Every refresh token issued by the server (not the registered ones).
  std::vector<std::string> IssuedRefreshTokens() const;

 private:
  struct AccessToken {
    std::string user;
    std::string client_id;
    std::string scope;
    int64_t issued_at = 0;      // unix seconds
    int64_t expires_at_ms = 0;  // unix milliseconds
    bool revoked = false;
  };
  struct Grant {  // a registered refresh token or code
    std::string user;
    std::string client_id;
    std::string redirect_uri;
    bool used = false;  // codes only
    bool revoked = false;
  };

  // Both listeners' requests.
  HttpResponse Handle(const HttpRequest& request);
  HttpResponse HandleToken(const HttpRequest& request);
  HttpResponse HandleIntrospect(const std::string& body);
  std::string MintLocked(const std::string& user, const std::string& client_id,
                         const std::string& scope) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  std::string RandomToken() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  std::unique_ptr<HttpServer> token_server_;
  std::unique_ptr<HttpServer> introspection_server_;
  absl::Mutex start_mutex_;  // serializes Start() and Stop()

  mutable absl::Mutex mutex_;
  struct Client {
    std::string secret;
    std::string user;
  };
  std::map<std::string, Client> clients_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, Grant> refresh_tokens_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, Grant> codes_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, AccessToken> access_tokens_ ABSL_GUARDED_BY(mutex_);
  std::vector<std::string> issued_access_order_ ABSL_GUARDED_BY(mutex_);
  std::vector<std::string> issued_refresh_order_ ABSL_GUARDED_BY(mutex_);
  int expires_in_ ABSL_GUARDED_BY(mutex_) = 3600;
  bool rotate_refresh_tokens_ ABSL_GUARDED_BY(mutex_) = false;
  int fault_count_ ABSL_GUARDED_BY(mutex_) = 0;
  Fault fault_ ABSL_GUARDED_BY(mutex_) = Fault::kHttp500;
  std::mt19937_64 random_ ABSL_GUARDED_BY(mutex_);
  int client_credentials_grants_ ABSL_GUARDED_BY(mutex_) = 0;
  int refresh_token_grants_ ABSL_GUARDED_BY(mutex_) = 0;
  int authorization_code_grants_ ABSL_GUARDED_BY(mutex_) = 0;
  int token_requests_ ABSL_GUARDED_BY(mutex_) = 0;
  int failed_token_requests_ ABSL_GUARDED_BY(mutex_) = 0;
  int introspections_ ABSL_GUARDED_BY(mutex_) = 0;
  int active_introspections_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace mailring::fakes
