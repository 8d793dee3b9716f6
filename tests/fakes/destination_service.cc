#include "tests/fakes/destination_service.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "proto/json_quote.h"
#include "proto/percent_encoding.h"
#include "simdjson.h"

namespace mailring::fakes {
namespace {

using proto::JsonQuote;

constexpr size_t kMaxRequestBytes = 64 * 1024;
// How long the fake's own token exchange waits for its token service at a time.
constexpr int kPollMs = 100;
constexpr char kFindPrefix[] = "/destination-configuration/v1/destinations/";

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// %XX decoding; `plus_is_space` for form bodies. False on a bad escape.
bool PercentDecode(absl::string_view in, bool plus_is_space, std::string* out) {
  std::optional<std::string> decoded =
      mailring::proto::PercentDecode(std::string_view(in.data(), in.size()),
                                     plus_is_space ? mailring::proto::PercentStyle::kForm
                                                   : mailring::proto::PercentStyle::kUriComponent);
  if (!decoded.has_value()) return false;
  *out = *std::move(decoded);
  return true;
}

std::string FormEncode(absl::string_view value) {
  return mailring::proto::PercentEncode(std::string_view(value.data(), value.size()),
                                        mailring::proto::PercentStyle::kForm);
}

bool ParseForm(absl::string_view body, std::map<std::string, std::string>* form) {
  for (absl::string_view pair : absl::StrSplit(body, '&', absl::SkipEmpty())) {
    const size_t eq = pair.find('=');
    std::string name, value;
    if (!PercentDecode(pair.substr(0, eq), true, &name)) return false;
    if (eq != absl::string_view::npos && !PercentDecode(pair.substr(eq + 1), true, &value)) {
      return false;
    }
    if (!form->emplace(std::move(name), std::move(value)).second) return false;
  }
  return true;
}

std::string Get(const std::map<std::string, std::string>& map, const std::string& key) {
  auto it = map.find(key);
  return it == map.end() ? "" : it->second;
}

bool SendAll(int fd, absl::string_view bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// Reads from `fd` into `buffer` until poll() says nothing comes within `wait_ms` or the peer
// closed: -1 error/closed, 0 timeout, 1 data appended.
int ReadSome(int fd, std::string* buffer, int wait_ms) {
  pollfd p{fd, POLLIN, 0};
  const int ready = poll(&p, 1, wait_ms);
  if (ready < 0) return errno == EINTR ? 0 : -1;
  if (ready == 0) return 0;
  char chunk[16384];
  const ssize_t n = recv(fd, chunk, sizeof chunk, 0);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return 0;
  if (n <= 0) return -1;
  buffer->append(chunk, static_cast<size_t>(n));
  return 1;
}

// One string member of a JSON object, "" when absent or not a string.
std::string StringMember(simdjson::dom::object object, std::string_view name) {
  std::string_view value;
  if (object[name].get_string().get(value) != simdjson::SUCCESS) return "";
  return std::string(value);
}

// A minimal blocking HTTP/1.1 POST for the fake's own token exchanges: http:// URLs whose host is
// localhost, *.localhost or an IPv4 literal (all on this machine's loopback in tests). Returns
// the status and body, or an error text.
struct PostResult {
  int status = 0;
  std::string body;
  std::string error;
};

PostResult PostForm(const std::string& url, const std::string& body) {
  PostResult result;
  absl::string_view rest(url);
  if (!absl::ConsumePrefix(&rest, "http://")) {
    result.error = "only http:// token service URLs are supported by the fake";
    return result;
  }
  const size_t path_begin = std::min(rest.find('/'), rest.size());
  const std::string authority(rest.substr(0, path_begin));
  const std::string path = path_begin < rest.size() ? std::string(rest.substr(path_begin)) : "/";
  std::string host = authority;
  uint32_t port = 80;
  if (const size_t colon = authority.rfind(':'); colon != std::string::npos) {
    host = authority.substr(0, colon);
    if (!absl::SimpleAtoi(authority.substr(colon + 1), &port) || port == 0 || port > 65535) {
      result.error = "bad port in token service URL";
      return result;
    }
  }
  in_addr address{};
  const std::string lower = absl::AsciiStrToLower(host);
  if (lower == "localhost" || absl::EndsWith(lower, ".localhost")) {
    address.s_addr = htonl(INADDR_LOOPBACK);
  } else if (inet_pton(AF_INET, host.c_str(), &address) != 1) {
    result.error = absl::StrCat("cannot resolve ", host, " (the fake reaches loopback only)");
    return result;
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    result.error = "socket failed";
    return result;
  }
  timeval timeout{3, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  sockaddr_in peer{};
  peer.sin_family = AF_INET;
  peer.sin_addr = address;
  peer.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&peer), sizeof peer) != 0) {
    result.error = absl::StrCat("connect to ", authority, ": ", std::strerror(errno));
    close(fd);
    return result;
  }
  const std::string request = absl::StrCat(
      "POST ", path, " HTTP/1.1\r\nHost: ", authority,
      "\r\nContent-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\n"
      "Connection: close\r\nContent-Length: ",
      body.size(), "\r\n\r\n", body);
  if (!SendAll(fd, request)) {
    result.error = "send failed";
    close(fd);
    return result;
  }
  std::string in;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  size_t header_end = std::string::npos;
  size_t content_length = std::string::npos;
  while (std::chrono::steady_clock::now() < deadline) {
    if (header_end == std::string::npos) {
      header_end = in.find("\r\n\r\n");
      if (header_end != std::string::npos) {
        for (absl::string_view line :
             absl::StrSplit(absl::string_view(in).substr(0, header_end), "\r\n")) {
          const size_t colon = line.find(':');
          if (colon == absl::string_view::npos) continue;
          if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(line.substr(0, colon)),
                                     "content-length")) {
            size_t length = 0;
            if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(colon + 1)), &length)) {
              content_length = length;
            }
          }
        }
      }
    }
    if (header_end != std::string::npos && content_length != std::string::npos &&
        in.size() >= header_end + 4 + content_length) {
      break;
    }
    const int read = ReadSome(fd, &in, kPollMs);
    if (read < 0) break;  // closed: with Connection: close that ends the body
  }
  close(fd);
  if (header_end == std::string::npos) {
    result.error = "no HTTP response from the token service";
    return result;
  }
  int status = 0;
  const std::vector<absl::string_view> status_line =
      absl::StrSplit(absl::string_view(in).substr(0, in.find("\r\n")), ' ');
  if (status_line.size() < 2 || !absl::SimpleAtoi(status_line[1], &status)) {
    result.error = "bad HTTP status line from the token service";
    return result;
  }
  result.status = status;
  result.body = in.substr(header_end + 4, content_length);
  return result;
}

// tokenServiceURLType Common, as SAP's Destination service applies it: the "{tenant}"
// placeholder becomes the tenant's subdomain; without one the subdomain is prepended to the host.
std::string TenantTokenUrl(const std::string& url, const std::string& type,
                           const std::string& tenant) {
  if (tenant.empty() || !absl::EqualsIgnoreCase(type, "Common")) return url;
  if (url.find("{tenant}") != std::string::npos) {
    return absl::StrReplaceAll(url, {{"{tenant}", tenant}});
  }
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return url;
  return absl::StrCat(url.substr(0, scheme_end + 3), tenant, ".", url.substr(scheme_end + 3));
}

}  // namespace

FakeDestinationService::FakeDestinationService() : random_(std::random_device{}()) {
  HttpServer::Options options;
  options.max_request_bytes = kMaxRequestBytes;
  api_ = std::make_unique<HttpServer>(
      [this](const HttpRequest& request) { return ToHttp(HandleApiListener(request)); }, options);
  token_ = std::make_unique<HttpServer>(
      [this](const HttpRequest& request) { return ToHttp(HandleTokenListener(request)); }, options);
  absl::MutexLock lock(&mutex_);
  client_id_ = "sb-clone-" + RandomHex(4) + "!b1|destination-xsappname!b404";
  client_secret_ = RandomHex(16);
  instance_id_ = "instance-" + RandomHex(8);
}

FakeDestinationService::~FakeDestinationService() {
  api_->Stop();
  token_->Stop();
}

absl::Status FakeDestinationService::Start() {
  absl::MutexLock lock(&start_mutex_);
  // Port 0 the first time, the same ports afterwards.
  if (!token_->running()) {
    if (absl::Status status = token_->Start(token_->port()); !status.ok()) return status;
  }
  if (!api_->running()) return api_->Start(api_->port());
  return absl::OkStatus();
}

void FakeDestinationService::Stop() {
  absl::MutexLock lock(&start_mutex_);
  api_->Stop();
}

bool FakeDestinationService::running() const { return api_->running(); }

HttpResponse FakeDestinationService::ToHttp(Answer answer) {
  HttpResponse response;
  response.status = answer.status;
  response.body = std::move(answer.body);
  response.headers = std::move(answer.headers);
  const bool has_content_type = std::any_of(
      response.headers.begin(), response.headers.end(),
      [](const auto& header) { return absl::EqualsIgnoreCase(header.first, "content-type"); });
  if (!has_content_type) response.headers.push_back({"Content-Type", "application/json"});
  return response;
}

FakeDestinationService::Answer FakeDestinationService::HandleTokenListener(
    const HttpRequest& request) {
  if (request.path == "/oauth/token") {
    if (request.method != "POST") return {405, R"({"error":"invalid_request"})", {}};
    return HandleToken(request);
  }
  return {404, R"({"error":"not_found"})", {}};
}

FakeDestinationService::Answer FakeDestinationService::HandleApiListener(
    const HttpRequest& request) {
  if (absl::StartsWith(request.target, kFindPrefix)) {
    if (request.method != "GET") return {405, R"({"ErrorMessage":"Method not allowed"})", {}};
    return HandleFind(request);
  }
  return {404, R"({"ErrorMessage":"Not found"})", {}};
}

std::string FakeDestinationService::TenantOfHost(const std::string& host_header) const {
  std::string host = absl::AsciiStrToLower(host_header);
  if (const size_t colon = host.rfind(':'); colon != std::string::npos) host.resize(colon);
  in_addr ignored{};
  if (host.empty() || inet_pton(AF_INET, host.c_str(), &ignored) == 1) return "";
  const size_t dot = host.find('.');
  if (dot == std::string::npos) return "";  // "localhost"
  const std::string label = host.substr(0, dot);
  mutex_.AssertHeld();
  return label == provider_subdomain_ ? "" : label;
}

FakeDestinationService::Answer FakeDestinationService::HandleToken(const HttpRequest& request) {
  absl::MutexLock lock(&mutex_);
  ++token_requests_;
  if (fail_token_count_ > 0) {
    --fail_token_count_;
    return {fail_token_status_, R"({"error":"server_error"})", {}};
  }
  std::map<std::string, std::string> form;
  if (!ParseForm(request.body, &form)) {
    return {400, R"({"error":"invalid_request","error_description":"bad form body"})", {}};
  }
  std::string id = Get(form, "client_id");
  std::string secret = Get(form, "client_secret");
  const std::string authorization = Get(request.headers, "authorization");
  absl::string_view basic(authorization);
  if (absl::ConsumePrefix(&basic, "Basic ")) {
    std::string decoded;
    if (!absl::Base64Unescape(basic, &decoded) || decoded.find(':') == std::string::npos) {
      return {401, R"({"error":"invalid_client"})", {{"WWW-Authenticate", "Basic"}}};
    }
    const size_t colon = decoded.find(':');
    if (!PercentDecode(decoded.substr(0, colon), true, &id) ||
        !PercentDecode(decoded.substr(colon + 1), true, &secret)) {
      return {401, R"({"error":"invalid_client"})", {{"WWW-Authenticate", "Basic"}}};
    }
  }
  if (id != client_id_ || secret != client_secret_) {
    return {401, R"({"error":"invalid_client","error_description":"Bad credentials"})", {}};
  }
  if (Get(form, "grant_type") != "client_credentials") {
    return {400, R"({"error":"unsupported_grant_type"})", {}};
  }
  const std::string tenant = TenantOfHost(Get(request.headers, "host"));
  const std::string token = "inst-" + RandomHex(24);
  instance_tokens_[token] = {tenant, NowUnixMs() + int64_t{instance_expires_in_} * 1000, false};
  ++instance_tokens_issued_[tenant];
  issued_tokens_.push_back(token);
  return {200,
          absl::StrCat(R"({"access_token":)", JsonQuote(token),
                       R"(,"token_type":"bearer","expires_in":)", instance_expires_in_,
                       R"(,"scope":"uaa.resource","jti":)", JsonQuote(RandomHex(8)), "}"),
          {}};
}

FakeDestinationService::Answer FakeDestinationService::HandleFind(const HttpRequest& request) {
  Request record;
  record.headers = request.headers;
  std::string raw_name = request.target.substr(sizeof(kFindPrefix) - 1);
  raw_name = raw_name.substr(0, raw_name.find('?'));
  std::string name;
  const bool name_ok = PercentDecode(raw_name, false, &name);
  record.name = name;

  std::string destination_json;
  std::string tenant;
  {
    absl::MutexLock lock(&mutex_);
    ++destination_requests_;
    auto answer = [&](Answer response) {
      record.status = response.status;
      requests_.push_back(record);
      return response;
    };
    if (fail_count_ > 0) {
      --fail_count_;
      return answer({fail_status_, fail_body_, {}});
    }
    const std::string authorization = Get(request.headers, "authorization");
    absl::string_view bearer(authorization);
    auto token = instance_tokens_.end();
    if (absl::ConsumePrefix(&bearer, "Bearer ")) token = instance_tokens_.find(std::string(bearer));
    if (token == instance_tokens_.end() || token->second.revoked ||
        token->second.expires_at_ms <= NowUnixMs()) {
      return answer({401,
                     R"({"ErrorMessage":"Unauthorized"})",
                     {{"WWW-Authenticate", "Bearer error=\"invalid_token\""}}});
    }
    tenant = token->second.tenant;
    record.tenant = tenant;
    if (!name_ok || name.empty()) {
      return answer({400, R"({"ErrorMessage":"Invalid destination name"})", {}});
    }
    auto set = destinations_.find(tenant);
    if (set == destinations_.end() || set->second.find(name) == set->second.end()) {
      return answer(
          {404, R"({"ErrorMessage":"Configuration with the specified name was not found"})", {}});
    }
    destination_json = set->second.at(name);
    record.status = 200;
    requests_.push_back(record);
  }
  // Outside the lock: an exchange may wait for a token service.
  const std::string auth_token = AuthTokenJson(destination_json, tenant, request);
  std::string subaccount;
  std::string instance;
  {
    absl::MutexLock lock(&mutex_);
    subaccount = tenant.empty() ? "subaccount-provider" : absl::StrCat("subaccount-", tenant);
    instance = instance_id_;
  }
  std::string body =
      absl::StrCat(R"({"owner":{"SubaccountId":)", JsonQuote(subaccount), R"(,"InstanceId":)",
                   JsonQuote(instance), R"(},"destinationConfiguration":)", destination_json);
  if (!auth_token.empty()) absl::StrAppend(&body, R"(,"authTokens":[)", auth_token, "]");
  body += "}";
  return {200, std::move(body), {}};
}

std::string FakeDestinationService::AuthTokenJson(const std::string& destination_json,
                                                  const std::string& tenant,
                                                  const HttpRequest& request) {
  simdjson::dom::parser parser;
  simdjson::dom::object destination;
  if (parser.parse(destination_json).get_object().get(destination) != simdjson::SUCCESS) {
    return "";
  }
  const std::string authentication = StringMember(destination, "Authentication");
  std::map<std::string, std::string> form;
  std::string missing;
  if (authentication == "OAuth2ClientCredentials") {
    form["grant_type"] = "client_credentials";
  } else if (authentication == "OAuth2RefreshToken") {
    form["grant_type"] = "refresh_token";
    form["refresh_token"] = Get(request.headers, "x-refresh-token");
    if (form["refresh_token"].empty()) missing = "X-refresh-token";
  } else if (authentication == "OAuth2AuthorizationCode") {
    form["grant_type"] = "authorization_code";
    form["code"] = Get(request.headers, "x-code");
    std::string redirect = Get(request.headers, "x-redirect-uri");
    if (redirect.empty()) redirect = StringMember(destination, "redirectUri");
    if (!redirect.empty()) form["redirect_uri"] = redirect;
    if (form["code"].empty()) missing = "X-code";
  } else {
    return "";
  }
  auto error_entry = [](const std::string& error) {
    return absl::StrCat(R"({"type":"","value":"","error":)", JsonQuote(error),
                        R"(,"expires_in":"0"})");
  };
  if (!missing.empty()) {
    return error_entry(absl::StrCat("Retrieval of OAuth token failed: header ", missing,
                                    " is required for ", authentication, " destinations"));
  }
  form["client_id"] = StringMember(destination, "clientId");
  form["client_secret"] = StringMember(destination, "clientSecret");
  if (const std::string scope = StringMember(destination, "scope"); !scope.empty()) {
    form["scope"] = scope;
  }

  TokenMode mode;
  int minted_expires_in;
  {
    absl::MutexLock lock(&mutex_);
    mode = token_mode_;
    minted_expires_in = minted_expires_in_;
  }
  std::string access_token;
  int64_t expires_in = 0;
  if (mode == TokenMode::kMint) {
    absl::MutexLock lock(&mutex_);
    access_token = "minted-" + RandomHex(24);
    expires_in = minted_expires_in;
  } else {
    const std::string url =
        TenantTokenUrl(StringMember(destination, "tokenServiceURL"),
                       StringMember(destination, "tokenServiceURLType"), tenant);
    std::string body;
    for (const auto& [name, value] : form) {
      absl::StrAppend(&body, body.empty() ? "" : "&", FormEncode(name), "=", FormEncode(value));
    }
    const PostResult posted = PostForm(url, body);
    if (!posted.error.empty()) {
      return error_entry(absl::StrCat("Retrieval of OAuth token failed: ", posted.error));
    }
    simdjson::dom::parser token_parser;
    simdjson::dom::object token_object;
    const bool json =
        token_parser.parse(posted.body).get_object().get(token_object) == simdjson::SUCCESS;
    if (posted.status != 200 || !json) {
      const std::string oauth_error = json ? StringMember(token_object, "error") : "";
      return error_entry(absl::StrCat("Retrieval of OAuth token failed: token service answered ",
                                      posted.status,
                                      oauth_error.empty() ? "" : absl::StrCat(" ", oauth_error)));
    }
    access_token = StringMember(token_object, "access_token");
    if (access_token.empty()) {
      return error_entry("Retrieval of OAuth token failed: no access_token in the response");
    }
    int64_t seconds = 0;
    if (token_object["expires_in"].get_int64().get(seconds) == simdjson::SUCCESS) {
      expires_in = seconds;
    }
  }
  {
    absl::MutexLock lock(&mutex_);
    ++token_exchanges_;
    issued_tokens_.push_back(access_token);
  }
  // SAP subtracts a second for the time the exchange took.
  const int64_t reported = expires_in > 0 ? expires_in - 1 : 0;
  return absl::StrCat(R"({"type":"Bearer","value":)", JsonQuote(access_token),
                      R"(,"http_header":{"key":"Authorization","value":)",
                      JsonQuote("Bearer " + access_token), R"(},"expires_in":")", reported, "\"}");
}

namespace {
constexpr char kUaaDomain[] = "authentication.localhost";
}  // namespace

std::string FakeDestinationService::ServiceKeyJson() const {
  absl::MutexLock lock(&mutex_);
  return absl::StrCat(
      R"({"clientid":)", JsonQuote(client_id_), R"(,"clientsecret":)", JsonQuote(client_secret_),
      // Shaped like SAP's: url = https://<provider subdomain>.<uaadomain> (here on loopback:
      // curl resolves every *.localhost name to 127.0.0.1), uri = the service's own base.
      R"(,"url":)",
      JsonQuote(absl::StrCat("http://", provider_subdomain_, ".", kUaaDomain, ":", token_port())),
      R"(,"uaadomain":)", JsonQuote(kUaaDomain), R"(,"uri":)",
      JsonQuote(absl::StrCat("http://127.0.0.1:", port())), R"(,"identityzone":)",
      JsonQuote(provider_subdomain_), R"(,"instanceid":)", JsonQuote(instance_id_), "}");
}

std::string FakeDestinationService::client_id() const {
  absl::MutexLock lock(&mutex_);
  return client_id_;
}

std::string FakeDestinationService::client_secret() const {
  absl::MutexLock lock(&mutex_);
  return client_secret_;
}

absl::Status FakeDestinationService::AddDestination(const std::string& tenant,
                                                    const std::string& json) {
  simdjson::dom::parser parser;
  simdjson::dom::object object;
  if (parser.parse(json).get_object().get(object) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError("destination is not a JSON object");
  }
  const std::string name = StringMember(object, "Name");
  if (name.empty()) return absl::InvalidArgumentError("destination has no string \"Name\"");
  const std::string minified = simdjson::minify(object);
  absl::MutexLock lock(&mutex_);
  destinations_[tenant][name] = minified;
  return absl::OkStatus();
}

bool FakeDestinationService::RemoveDestination(const std::string& tenant, const std::string& name) {
  absl::MutexLock lock(&mutex_);
  auto set = destinations_.find(tenant);
  return set != destinations_.end() && set->second.erase(name) > 0;
}

void FakeDestinationService::SetProviderSubdomain(const std::string& subdomain) {
  absl::MutexLock lock(&mutex_);
  provider_subdomain_ = absl::AsciiStrToLower(subdomain);
}

void FakeDestinationService::SetTokenMode(TokenMode mode) {
  absl::MutexLock lock(&mutex_);
  token_mode_ = mode;
}

void FakeDestinationService::SetMintedTokenExpiresIn(int seconds) {
  absl::MutexLock lock(&mutex_);
  minted_expires_in_ = seconds;
}

void FakeDestinationService::SetInstanceTokenExpiresIn(int seconds) {
  absl::MutexLock lock(&mutex_);
  instance_expires_in_ = seconds;
}

void FakeDestinationService::RevokeInstanceTokens() {
  absl::MutexLock lock(&mutex_);
  for (auto& [token, info] : instance_tokens_) info.revoked = true;
}

void FakeDestinationService::FailNextRequests(int count, int status, const std::string& body) {
  absl::MutexLock lock(&mutex_);
  fail_count_ = count;
  fail_status_ = status;
  fail_body_ = body;
}

void FakeDestinationService::FailNextTokenRequests(int count, int status) {
  absl::MutexLock lock(&mutex_);
  fail_token_count_ = count;
  fail_token_status_ = status;
}

int FakeDestinationService::destination_requests() const {
  absl::MutexLock lock(&mutex_);
  return destination_requests_;
}

int FakeDestinationService::token_requests() const {
  absl::MutexLock lock(&mutex_);
  return token_requests_;
}

int FakeDestinationService::instance_tokens_issued() const {
  absl::MutexLock lock(&mutex_);
  int total = 0;
  for (const auto& [tenant, count] : instance_tokens_issued_) total += count;
  return total;
}

int FakeDestinationService::instance_tokens_issued(const std::string& tenant) const {
  absl::MutexLock lock(&mutex_);
  auto it = instance_tokens_issued_.find(tenant);
  return it == instance_tokens_issued_.end() ? 0 : it->second;
}

int FakeDestinationService::token_exchanges() const {
  absl::MutexLock lock(&mutex_);
  return token_exchanges_;
}

std::vector<FakeDestinationService::Request> FakeDestinationService::requests() const {
  absl::MutexLock lock(&mutex_);
  return requests_;
}

std::vector<std::string> FakeDestinationService::IssuedTokens() const {
  absl::MutexLock lock(&mutex_);
  return issued_tokens_;
}

std::string FakeDestinationService::RandomHex(int bytes) {
  mutex_.AssertHeld();
  std::string out;
  for (int i = 0; i < bytes; ++i) {
    absl::StrAppend(&out, absl::Hex(random_() & 0xff, absl::kZeroPad2));
  }
  return out;
}

}  // namespace mailring::fakes
