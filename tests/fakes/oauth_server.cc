#include "tests/fakes/oauth_server.h"

#include <chrono>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "proto/json_quote.h"
#include "proto/percent_encoding.h"

namespace mailring::fakes {
namespace {

// Requests larger than this are answered 413 and the connection is closed.
constexpr size_t kMaxRequestBytes = 64 * 1024;

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string JsonQuote(absl::string_view s) {
  return proto::JsonQuote(std::string_view(s.data(), s.size()));
}

HttpResponse Reply(int status, std::string body,
                   std::vector<std::pair<std::string, std::string>> headers = {}) {
  HttpResponse response;
  response.status = status;
  response.headers = std::move(headers);
  response.body = std::move(body);
  return response;
}

// application/x-www-form-urlencoded decoding of one name or value; false on a bad escape.
bool FormDecode(absl::string_view in, std::string* out) {
  std::optional<std::string> decoded = mailring::proto::PercentDecode(
      std::string_view(in.data(), in.size()), mailring::proto::PercentStyle::kForm);
  if (!decoded.has_value()) return false;
  *out = *std::move(decoded);
  return true;
}

// Parses a form body; false on a bad escape or a repeated parameter (RFC 6749 section 3.2:
// parameters MUST NOT be included more than once).
bool ParseForm(absl::string_view body, std::map<std::string, std::string>* form) {
  for (absl::string_view pair : absl::StrSplit(body, '&', absl::SkipEmpty())) {
    size_t eq = pair.find('=');
    std::string name, value;
    if (!FormDecode(pair.substr(0, eq), &name)) return false;
    if (eq != absl::string_view::npos && !FormDecode(pair.substr(eq + 1), &value)) return false;
    if (!form->emplace(std::move(name), std::move(value)).second) return false;
  }
  return true;
}

std::string Get(const std::map<std::string, std::string>& map, const std::string& key) {
  auto it = map.find(key);
  return it == map.end() ? "" : it->second;
}

}  // namespace

FakeOAuthServer::FakeOAuthServer() : random_(std::random_device{}()) {
  HttpServer::Options options;
  options.max_request_bytes = kMaxRequestBytes;
  auto handler = [this](const HttpRequest& request) { return Handle(request); };
  token_server_ = std::make_unique<HttpServer>(handler, options);
  introspection_server_ = std::make_unique<HttpServer>(handler, options);
}

FakeOAuthServer::~FakeOAuthServer() {
  token_server_->Stop();
  introspection_server_->Stop();
}

absl::Status FakeOAuthServer::Start() {
  absl::MutexLock lock(&start_mutex_);
  if (!introspection_server_->running()) {
    if (absl::Status status = introspection_server_->Start(); !status.ok()) return status;
  }
  if (token_server_->running()) return absl::OkStatus();
  // Port 0 the first time, the same port afterwards.
  return token_server_->Start(token_server_->port());
}

void FakeOAuthServer::Stop() {
  absl::MutexLock lock(&start_mutex_);
  token_server_->Stop();
}

bool FakeOAuthServer::running() const { return token_server_->running(); }

std::string FakeOAuthServer::TokenUrl() const {
  return absl::StrCat("http://127.0.0.1:", token_port(), "/oauth/token");
}

std::string FakeOAuthServer::IntrospectionUrl() const {
  return absl::StrCat("http://127.0.0.1:", introspection_port(), "/introspect");
}

HttpResponse FakeOAuthServer::Handle(const HttpRequest& request) {
  if (request.path != "/oauth/token" && request.path != "/introspect") return Reply(404, "");
  if (request.method != "POST") return Reply(405, "", {{"Allow", "POST"}});
  if (request.path == "/oauth/token") return HandleToken(request);
  return HandleIntrospect(request.body);
}

namespace {

std::string OAuthError(absl::string_view error, absl::string_view description) {
  return absl::StrCat("{\"error\":", JsonQuote(error),
                      ",\"error_description\":", JsonQuote(description), "}");
}

}  // namespace

HttpResponse FakeOAuthServer::HandleToken(const HttpRequest& request) {
  const std::map<std::string, std::string>& headers = request.headers;
  const std::string& body = request.body;
  const std::vector<std::pair<std::string, std::string>> json_headers = {
      {"Content-Type", "application/json;charset=UTF-8"},
      {"Cache-Control", "no-store"},
      {"Pragma", "no-cache"}};
  absl::MutexLock lock(&mutex_);
  ++token_requests_;
  auto error = [&](int status, absl::string_view code, absl::string_view description) {
    ++failed_token_requests_;
    return Reply(status, OAuthError(code, description), json_headers);
  };

  std::string content_type = absl::AsciiStrToLower(Get(headers, "content-type"));
  if (!absl::StartsWith(content_type, "application/x-www-form-urlencoded")) {
    return error(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded");
  }
  std::map<std::string, std::string> form;
  if (!ParseForm(body, &form)) {
    return error(400, "invalid_request", "malformed form body or a repeated parameter");
  }

  // Client authentication (RFC 6749 section 2.3.1): HTTP Basic or the body, never both.
  std::string client_id, client_secret;
  bool basic = false;
  std::string authorization = Get(headers, "authorization");
  if (!authorization.empty()) {
    if (!absl::StartsWithIgnoreCase(authorization, "Basic ")) {
      return error(400, "invalid_request", "unsupported Authorization scheme");
    }
    basic = true;
    std::string decoded;
    if (!absl::Base64Unescape(absl::StripAsciiWhitespace(authorization.substr(6)), &decoded)) {
      return error(401, "invalid_client", "Authorization header is not base64");
    }
    size_t colon = decoded.find(':');
    if (colon == std::string::npos || !FormDecode(decoded.substr(0, colon), &client_id) ||
        !FormDecode(decoded.substr(colon + 1), &client_secret)) {
      return error(401, "invalid_client", "Authorization header is not id:secret");
    }
    if (form.contains("client_secret")) {
      return error(400, "invalid_request", "more than one client authentication method");
    }
    if (form.contains("client_id") && form["client_id"] != client_id) {
      return error(400, "invalid_request", "client_id in the body differs from Basic");
    }
  } else {
    client_id = Get(form, "client_id");
    client_secret = Get(form, "client_secret");
  }

  if (fault_count_ > 0) {
    --fault_count_;
    ++failed_token_requests_;
    switch (fault_) {
      case Fault::kHttp500:
        return Reply(500, OAuthError("server_error", "injected failure"), json_headers);
      case Fault::kBadJson:
        return Reply(200, "{\"access_token\": \"unterminated", json_headers);
      case Fault::kMissingAccessToken:
        return Reply(200,
                     absl::StrCat("{\"token_type\":\"bearer\",\"expires_in\":", expires_in_, "}"),
                     json_headers);
      case Fault::kInvalidGrant:
        return Reply(400, OAuthError("invalid_grant", "injected failure"), json_headers);
    }
  }

  auto client = clients_.find(client_id);
  if (client_id.empty() || client == clients_.end() || client->second.secret != client_secret) {
    HttpResponse response = error(401, "invalid_client", "client authentication failed");
    if (basic) response.headers.push_back({"WWW-Authenticate", "Basic realm=\"fake-oauth\""});
    return response;
  }

  const std::string grant_type = Get(form, "grant_type");
  const std::string scope = Get(form, "scope");
  std::string user;
  std::string refresh_token;  // issued with this response
  int* counter = nullptr;
  if (grant_type == "client_credentials") {
    user = client->second.user;
    counter = &client_credentials_grants_;
  } else if (grant_type == "refresh_token") {
    const std::string presented = Get(form, "refresh_token");
    if (presented.empty()) return error(400, "invalid_request", "refresh_token is missing");
    auto grant = refresh_tokens_.find(presented);
    if (grant == refresh_tokens_.end() || grant->second.revoked) {
      return error(400, "invalid_grant", "unknown or revoked refresh token");
    }
    if (!grant->second.client_id.empty() && grant->second.client_id != client_id) {
      return error(400, "invalid_grant", "refresh token was issued to another client");
    }
    user = grant->second.user;
    if (rotate_refresh_tokens_) {
      grant->second.revoked = true;
      refresh_token = RandomToken();
      refresh_tokens_[refresh_token] = Grant{user, client_id, "", false, false};
      issued_refresh_order_.push_back(refresh_token);
    }
    counter = &refresh_token_grants_;
  } else if (grant_type == "authorization_code") {
    const std::string code = Get(form, "code");
    if (code.empty()) return error(400, "invalid_request", "code is missing");
    auto grant = codes_.find(code);
    if (grant == codes_.end() || grant->second.revoked) {
      return error(400, "invalid_grant", "unknown or revoked authorization code");
    }
    if (grant->second.used) return error(400, "invalid_grant", "authorization code already used");
    if (!grant->second.client_id.empty() && grant->second.client_id != client_id) {
      return error(400, "invalid_grant", "authorization code was issued to another client");
    }
    if (!grant->second.redirect_uri.empty() &&
        Get(form, "redirect_uri") != grant->second.redirect_uri) {
      return error(400, "invalid_grant", "redirect_uri does not match the authorization request");
    }
    grant->second.used = true;
    user = grant->second.user;
    refresh_token = RandomToken();
    refresh_tokens_[refresh_token] = Grant{user, client_id, "", false, false};
    issued_refresh_order_.push_back(refresh_token);
    counter = &authorization_code_grants_;
  } else if (grant_type.empty()) {
    return error(400, "invalid_request", "grant_type is missing");
  } else {
    return error(400, "unsupported_grant_type", grant_type);
  }

  std::string access_token = MintLocked(user, client_id, scope);
  ++*counter;
  std::string json = absl::StrCat("{\"access_token\":", JsonQuote(access_token),
                                  ",\"token_type\":\"bearer\",\"expires_in\":", expires_in_);
  if (!refresh_token.empty())
    absl::StrAppend(&json, ",\"refresh_token\":", JsonQuote(refresh_token));
  if (!scope.empty()) absl::StrAppend(&json, ",\"scope\":", JsonQuote(scope));
  json += "}";
  return Reply(200, json, json_headers);
}

HttpResponse FakeOAuthServer::HandleIntrospect(const std::string& body) {
  const std::vector<std::pair<std::string, std::string>> json_headers = {
      {"Content-Type", "application/json;charset=UTF-8"}, {"Cache-Control", "no-store"}};
  std::map<std::string, std::string> form;
  absl::MutexLock lock(&mutex_);
  ++introspections_;
  if (!ParseForm(body, &form) || !form.contains("token")) {
    return Reply(400, OAuthError("invalid_request", "token is missing"), json_headers);
  }
  // Only access tokens are good for resource access: a refresh token or code presented as a
  // bearer token is inactive, so a client that sends the wrong secret upstream is caught.
  auto it = access_tokens_.find(form["token"]);
  if (it == access_tokens_.end() || it->second.revoked || NowUnixMs() >= it->second.expires_at_ms) {
    return Reply(200, "{\"active\":false}", json_headers);
  }
  ++active_introspections_;
  const AccessToken& token = it->second;
  std::string json = absl::StrCat("{\"active\":true,\"username\":", JsonQuote(token.user),
                                  ",\"client_id\":", JsonQuote(token.client_id),
                                  ",\"token_type\":\"bearer\",\"exp\":", token.expires_at_ms / 1000,
                                  ",\"iat\":", token.issued_at);
  if (!token.scope.empty()) absl::StrAppend(&json, ",\"scope\":", JsonQuote(token.scope));
  json += "}";
  return Reply(200, json, json_headers);
}

std::string FakeOAuthServer::RandomToken() {
  return absl::StrCat(
      absl::Hex(random_(), absl::kZeroPad16), absl::Hex(random_(), absl::kZeroPad16),
      absl::Hex(random_(), absl::kZeroPad16), absl::Hex(random_(), absl::kZeroPad16));
}

std::string FakeOAuthServer::MintLocked(const std::string& user, const std::string& client_id,
                                        const std::string& scope) {
  std::string token = RandomToken();
  const int64_t now_ms = NowUnixMs();
  access_tokens_[token] = AccessToken{
      user, client_id, scope, now_ms / 1000, now_ms + int64_t{expires_in_} * 1000, false};
  issued_access_order_.push_back(token);
  return token;
}

void FakeOAuthServer::RegisterClient(const std::string& client_id, const std::string& client_secret,
                                     const std::string& user) {
  absl::MutexLock lock(&mutex_);
  clients_[client_id] = Client{client_secret, user};
}

void FakeOAuthServer::RegisterRefreshToken(const std::string& refresh_token,
                                           const std::string& user, const std::string& client_id) {
  absl::MutexLock lock(&mutex_);
  refresh_tokens_[refresh_token] = Grant{user, client_id, "", false, false};
}

void FakeOAuthServer::RegisterCode(const std::string& code, const std::string& user,
                                   const std::string& redirect_uri, const std::string& client_id) {
  absl::MutexLock lock(&mutex_);
  codes_[code] = Grant{user, client_id, redirect_uri, false, false};
}

std::string FakeOAuthServer::IssueAccessToken(const std::string& user,
                                              const std::string& client_id) {
  absl::MutexLock lock(&mutex_);
  return MintLocked(user, client_id, "");
}

void FakeOAuthServer::SetExpiresIn(int seconds) {
  absl::MutexLock lock(&mutex_);
  expires_in_ = seconds;
}

void FakeOAuthServer::SetRotateRefreshTokens(bool rotate) {
  absl::MutexLock lock(&mutex_);
  rotate_refresh_tokens_ = rotate;
}

void FakeOAuthServer::FailNextTokenRequests(int count, Fault fault) {
  absl::MutexLock lock(&mutex_);
  fault_count_ = count;
  fault_ = fault;
}

void FakeOAuthServer::Revoke(const std::string& token) {
  absl::MutexLock lock(&mutex_);
  if (auto it = access_tokens_.find(token); it != access_tokens_.end()) it->second.revoked = true;
  if (auto it = refresh_tokens_.find(token); it != refresh_tokens_.end()) it->second.revoked = true;
  if (auto it = codes_.find(token); it != codes_.end()) it->second.revoked = true;
}

void FakeOAuthServer::RevokeAllAccessTokens() {
  absl::MutexLock lock(&mutex_);
  for (auto& [token, record] : access_tokens_) record.revoked = true;
}

absl::Status FakeOAuthServer::Reset() {
  {
    absl::MutexLock lock(&mutex_);
    clients_.clear();
    refresh_tokens_.clear();
    codes_.clear();
    access_tokens_.clear();
    issued_access_order_.clear();
    issued_refresh_order_.clear();
    expires_in_ = 3600;
    rotate_refresh_tokens_ = false;
    fault_count_ = 0;
    client_credentials_grants_ = 0;
    refresh_token_grants_ = 0;
    authorization_code_grants_ = 0;
    token_requests_ = 0;
    failed_token_requests_ = 0;
    introspections_ = 0;
    active_introspections_ = 0;
  }
  if (!running()) return Start();
  return absl::OkStatus();
}

int FakeOAuthServer::client_credentials_grants() const {
  absl::MutexLock lock(&mutex_);
  return client_credentials_grants_;
}
int FakeOAuthServer::refresh_token_grants() const {
  absl::MutexLock lock(&mutex_);
  return refresh_token_grants_;
}
int FakeOAuthServer::authorization_code_grants() const {
  absl::MutexLock lock(&mutex_);
  return authorization_code_grants_;
}
int FakeOAuthServer::token_requests() const {
  absl::MutexLock lock(&mutex_);
  return token_requests_;
}
int FakeOAuthServer::failed_token_requests() const {
  absl::MutexLock lock(&mutex_);
  return failed_token_requests_;
}
int FakeOAuthServer::introspections() const {
  absl::MutexLock lock(&mutex_);
  return introspections_;
}
int FakeOAuthServer::active_introspections() const {
  absl::MutexLock lock(&mutex_);
  return active_introspections_;
}
std::vector<std::string> FakeOAuthServer::IssuedAccessTokens() const {
  absl::MutexLock lock(&mutex_);
  return issued_access_order_;
}
std::vector<std::string> FakeOAuthServer::IssuedRefreshTokens() const {
  absl::MutexLock lock(&mutex_);
  return issued_refresh_order_;
}

}  // namespace mailring::fakes
