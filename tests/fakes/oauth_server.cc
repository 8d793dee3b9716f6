#include "tests/fakes/oauth_server.h"
#include "proto/percent_encoding.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

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
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      out += absl::StrCat("\\u00", absl::Hex(c, absl::kZeroPad2));
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
  }
  return "Status";
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

struct FakeOAuthServer::Connection {
  int fd = -1;
  bool on_token_listener = false;
  std::string in;
  bool sent_continue = false;
};

FakeOAuthServer::FakeOAuthServer() : random_(std::random_device{}()) {}

FakeOAuthServer::~FakeOAuthServer() {
  {
    absl::MutexLock lock(&listener_mutex_);
    stop_thread_ = true;
  }
  if (thread_.joinable()) {
    Wake();
    thread_.join();
  }
  absl::MutexLock lock(&listener_mutex_);
  if (token_listen_fd_ >= 0) close(token_listen_fd_);
  if (introspection_listen_fd_ >= 0) close(introspection_listen_fd_);
  for (int fd : wake_fds_) {
    if (fd >= 0) close(fd);
  }
}

namespace {

// A listening socket on 127.0.0.1:port (0 = any free port); its fd and the bound port.
absl::Status Listen(uint16_t port, int* fd_out, uint16_t* port_out) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 128) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int err = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("listen on 127.0.0.1:", port, ": ", std::strerror(err)));
  }
  *fd_out = fd;
  *port_out = ntohs(addr.sin_port);
  return absl::OkStatus();
}

}  // namespace

absl::Status FakeOAuthServer::Start() {
  if (!thread_.joinable()) {
    if (pipe2(wake_fds_, O_CLOEXEC | O_NONBLOCK) != 0) {
      return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(errno)));
    }
    uint16_t port = 0;
    if (absl::Status status = Listen(0, &introspection_listen_fd_, &port); !status.ok()) {
      return status;
    }
    introspection_port_.store(port);
  }
  {
    absl::MutexLock lock(&listener_mutex_);
    // A Stop() not yet carried out by the thread: wait for it, so the port is free again.
    listener_mutex_.Await(absl::Condition(
        +[](FakeOAuthServer* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->listener_mutex_) {
          return !self->stop_token_listener_ || self->token_listen_fd_ < 0;
        },
        this));
    stop_token_listener_ = false;
    if (token_listen_fd_ < 0) {
      uint16_t port = 0;
      if (absl::Status status = Listen(token_port_.load(), &token_listen_fd_, &port);
          !status.ok()) {
        return status;
      }
      token_port_.store(port);
    }
  }
  if (!thread_.joinable()) {
    thread_ = std::thread([this] { Serve(); });
  } else {
    Wake();
  }
  return absl::OkStatus();
}

void FakeOAuthServer::Stop() {
  absl::MutexLock lock(&listener_mutex_);
  if (token_listen_fd_ < 0) return;
  stop_token_listener_ = true;
  if (!thread_.joinable()) {
    close(token_listen_fd_);
    token_listen_fd_ = -1;
    return;
  }
  Wake();
  listener_mutex_.Await(absl::Condition(
      +[](FakeOAuthServer* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->listener_mutex_) {
        return self->token_listen_fd_ < 0;
      },
      this));
}

bool FakeOAuthServer::running() const {
  absl::MutexLock lock(&listener_mutex_);
  return token_listen_fd_ >= 0 && !stop_token_listener_;
}

std::string FakeOAuthServer::TokenUrl() const {
  return absl::StrCat("http://127.0.0.1:", token_port(), "/oauth/token");
}

std::string FakeOAuthServer::IntrospectionUrl() const {
  return absl::StrCat("http://127.0.0.1:", introspection_port(), "/introspect");
}

void FakeOAuthServer::Wake() {
  if (wake_fds_[1] >= 0) {
    char byte = 1;
    (void)!write(wake_fds_[1], &byte, 1);
  }
}

void FakeOAuthServer::Serve() {
  std::vector<Connection> connections;
  while (true) {
    int token_fd = -1;
    {
      absl::MutexLock lock(&listener_mutex_);
      if (stop_thread_) break;
      if (stop_token_listener_ && token_listen_fd_ >= 0) {
        close(token_listen_fd_);
        token_listen_fd_ = -1;
        // The service is down: its open connections go too.
        for (Connection& connection : connections) {
          if (connection.on_token_listener) {
            close(connection.fd);
            connection.fd = -1;
          }
        }
      }
      token_fd = token_listen_fd_;
    }
    std::erase_if(connections, [](const Connection& c) { return c.fd < 0; });

    std::vector<pollfd> fds;
    fds.push_back({wake_fds_[0], POLLIN, 0});
    fds.push_back({introspection_listen_fd_, POLLIN, 0});
    fds.push_back({token_fd, POLLIN, 0});  // a negative fd is ignored by poll
    for (const Connection& connection : connections) fds.push_back({connection.fd, POLLIN, 0});
    if (poll(fds.data(), fds.size(), 1000) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents != 0) {
      char drain[64];
      while (read(wake_fds_[0], drain, sizeof drain) > 0) {
      }
    }
    for (int i = 1; i <= 2; ++i) {
      if ((fds[i].revents & POLLIN) == 0) continue;
      while (true) {
        int fd = accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) break;
        // Blocking writes bounded in time; reads only after poll said so.
        timeval timeout{2, 0};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
        connections.push_back({fd, i == 2, "", false});
      }
    }
    for (size_t i = 3; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      Connection& connection = connections[i - 3];
      char buffer[16384];
      ssize_t n = recv(connection.fd, buffer, sizeof buffer, MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) {
        close(connection.fd);
        connection.fd = -1;
        continue;
      }
      connection.in.append(buffer, static_cast<size_t>(n));
      if (!Process(connection)) {
        close(connection.fd);
        connection.fd = -1;
      }
    }
  }
  for (Connection& connection : connections) {
    if (connection.fd >= 0) close(connection.fd);
  }
}

bool FakeOAuthServer::Process(Connection& connection) {
  auto send_all = [&](const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n = send(connection.fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  };
  auto respond = [&](const HttpResponse& response, bool keep_alive) {
    std::string out = absl::StrCat("HTTP/1.1 ", response.status, " ",
                                   ReasonPhrase(response.status), "\r\n");
    for (const auto& [name, value] : response.headers) absl::StrAppend(&out, name, ": ", value, "\r\n");
    absl::StrAppend(&out, "Content-Length: ", response.body.size(), "\r\n");
    if (!keep_alive) out += "Connection: close\r\n";
    absl::StrAppend(&out, "\r\n", response.body);
    return send_all(out);
  };

  while (true) {
    size_t header_end = connection.in.find("\r\n\r\n");
    if (header_end == std::string::npos) {
      return connection.in.size() <= kMaxRequestBytes;
    }
    std::vector<absl::string_view> lines =
        absl::StrSplit(absl::string_view(connection.in).substr(0, header_end), "\r\n");
    std::vector<absl::string_view> request_line = absl::StrSplit(lines[0], ' ');
    if (request_line.size() != 3 || !absl::StartsWith(request_line[2], "HTTP/1.")) {
      respond({400, "", {}}, false);
      return false;
    }
    std::string method(request_line[0]);
    std::string target(request_line[1]);
    bool keep_alive = request_line[2] == "HTTP/1.1";
    std::map<std::string, std::string> headers;  // lowercase names
    for (size_t i = 1; i < lines.size(); ++i) {
      size_t colon = lines[i].find(':');
      if (colon == absl::string_view::npos) {
        respond({400, "", {}}, false);
        return false;
      }
      headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
          std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
    }
    std::string connection_header = absl::AsciiStrToLower(Get(headers, "connection"));
    if (connection_header == "close") keep_alive = false;
    if (connection_header == "keep-alive") keep_alive = true;
    if (headers.contains("transfer-encoding")) {
      respond({501, "chunked request bodies are not supported by this fake", {}}, false);
      return false;
    }
    size_t content_length = 0;
    if (headers.contains("content-length") &&
        !absl::SimpleAtoi(headers["content-length"], &content_length)) {
      respond({400, "", {}}, false);
      return false;
    }
    if (header_end + 4 + content_length > kMaxRequestBytes) {
      respond({413, "", {}}, false);
      return false;
    }
    if (connection.in.size() < header_end + 4 + content_length) {
      if (!connection.sent_continue &&
          absl::EqualsIgnoreCase(Get(headers, "expect"), "100-continue")) {
        connection.sent_continue = true;
        if (!send_all("HTTP/1.1 100 Continue\r\n\r\n")) return false;
      }
      return true;  // wait for the body
    }
    std::string body = connection.in.substr(header_end + 4, content_length);
    connection.in.erase(0, header_end + 4 + content_length);
    connection.sent_continue = false;

    std::string path = target.substr(0, target.find('?'));
    HttpResponse response;
    if (path == "/oauth/token" || path == "/introspect") {
      if (method != "POST") {
        response = {405, "", {{"Allow", "POST"}}};
      } else if (path == "/oauth/token") {
        response = HandleToken(headers, body);
      } else {
        response = HandleIntrospect(body);
      }
    } else {
      response = {404, "", {}};
    }
    if (!respond(response, keep_alive) || !keep_alive) return false;
  }
}

namespace {

std::string OAuthError(absl::string_view error, absl::string_view description) {
  return absl::StrCat("{\"error\":", JsonQuote(error), ",\"error_description\":",
                      JsonQuote(description), "}");
}

}  // namespace

FakeOAuthServer::HttpResponse FakeOAuthServer::HandleToken(
    const std::map<std::string, std::string>& headers, const std::string& body) {
  const std::vector<std::pair<std::string, std::string>> json_headers = {
      {"Content-Type", "application/json;charset=UTF-8"},
      {"Cache-Control", "no-store"},
      {"Pragma", "no-cache"}};
  absl::MutexLock lock(&mutex_);
  ++token_requests_;
  auto error = [&](int status, absl::string_view code, absl::string_view description) {
    ++failed_token_requests_;
    HttpResponse response{status, OAuthError(code, description), json_headers};
    return response;
  };

  std::string content_type = absl::AsciiStrToLower(Get(headers, "content-type"));
  if (!absl::StartsWith(content_type, "application/x-www-form-urlencoded")) {
    return error(400, "invalid_request",
                 "Content-Type must be application/x-www-form-urlencoded");
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
        return {500, OAuthError("server_error", "injected failure"), json_headers};
      case Fault::kBadJson:
        return {200, "{\"access_token\": \"unterminated", json_headers};
      case Fault::kMissingAccessToken:
        return {200, absl::StrCat("{\"token_type\":\"bearer\",\"expires_in\":", expires_in_, "}"),
                json_headers};
      case Fault::kInvalidGrant:
        return {400, OAuthError("invalid_grant", "injected failure"), json_headers};
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
  if (!refresh_token.empty()) absl::StrAppend(&json, ",\"refresh_token\":", JsonQuote(refresh_token));
  if (!scope.empty()) absl::StrAppend(&json, ",\"scope\":", JsonQuote(scope));
  json += "}";
  return {200, json, json_headers};
}

FakeOAuthServer::HttpResponse FakeOAuthServer::HandleIntrospect(const std::string& body) {
  const std::vector<std::pair<std::string, std::string>> json_headers = {
      {"Content-Type", "application/json;charset=UTF-8"}, {"Cache-Control", "no-store"}};
  std::map<std::string, std::string> form;
  absl::MutexLock lock(&mutex_);
  ++introspections_;
  if (!ParseForm(body, &form) || !form.contains("token")) {
    return {400, OAuthError("invalid_request", "token is missing"), json_headers};
  }
  // Only access tokens are good for resource access: a refresh token or code presented as a
  // bearer token is inactive, so a client that sends the wrong secret upstream is caught.
  auto it = access_tokens_.find(form["token"]);
  if (it == access_tokens_.end() || it->second.revoked || NowUnixMs() >= it->second.expires_at_ms) {
    return {200, "{\"active\":false}", json_headers};
  }
  ++active_introspections_;
  const AccessToken& token = it->second;
  std::string json = absl::StrCat(
      "{\"active\":true,\"username\":", JsonQuote(token.user),
      ",\"client_id\":", JsonQuote(token.client_id), ",\"token_type\":\"bearer\",\"exp\":",
      token.expires_at_ms / 1000, ",\"iat\":", token.issued_at);
  if (!token.scope.empty()) absl::StrAppend(&json, ",\"scope\":", JsonQuote(token.scope));
  json += "}";
  return {200, json, json_headers};
}

std::string FakeOAuthServer::RandomToken() {
  return absl::StrCat(absl::Hex(random_(), absl::kZeroPad16), absl::Hex(random_(), absl::kZeroPad16),
                      absl::Hex(random_(), absl::kZeroPad16), absl::Hex(random_(), absl::kZeroPad16));
}

std::string FakeOAuthServer::MintLocked(const std::string& user, const std::string& client_id,
                                        const std::string& scope) {
  std::string token = RandomToken();
  const int64_t now_ms = NowUnixMs();
  access_tokens_[token] =
      AccessToken{user, client_id, scope, now_ms / 1000, now_ms + int64_t{expires_in_} * 1000, false};
  issued_access_order_.push_back(token);
  return token;
}

void FakeOAuthServer::RegisterClient(const std::string& client_id,
                                     const std::string& client_secret, const std::string& user) {
  absl::MutexLock lock(&mutex_);
  clients_[client_id] = Client{client_secret, user};
}

void FakeOAuthServer::RegisterRefreshToken(const std::string& refresh_token,
                                           const std::string& user,
                                           const std::string& client_id) {
  absl::MutexLock lock(&mutex_);
  refresh_tokens_[refresh_token] = Grant{user, client_id, "", false, false};
}

void FakeOAuthServer::RegisterCode(const std::string& code, const std::string& user,
                                   const std::string& redirect_uri,
                                   const std::string& client_id) {
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
