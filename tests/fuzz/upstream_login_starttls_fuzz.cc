// core::UpstreamLogin with STARTTLS wanted, against an arbitrary mail server.
//
// Input: byte 0 picks the configuration (bit 0: STARTTLS required or only if offered; bit 1:
// password or bearer token; bit 2: whether the TLS handshake "succeeds", i.e. OnTlsEstablished()
// is called after kStartTls, or the session would close), the rest is what the server sends,
// split into lines on '\n' (a trailing '\r' is dropped, as the line assembler strips CRLF). The
// session is simulated as core/session.cc drives it: kSend goes to the server, kStartTls runs the
// handshake and calls OnTlsEstablished(), kNeedToken gets ProvideToken(), kFailed and kLoggedIn
// end the conversation.
//
// Properties: with STARTTLS required, nothing sent before the TLS handshake carries credentials
// (no AUTHENTICATE, no LOGIN, no password or token, no PLAIN/XOAUTH2 initial response) and the
// conversation never asks for a token before TLS; kStartTls only follows "M0 STARTTLS" and is
// followed by exactly "M1 CAPABILITY"; in either mode nothing carries credentials between
// "M0 STARTTLS" and the end of the handshake, and STARTTLS is never sent twice or after
// credentials; failures are single-line and never quote a credential (unless the server's own
// text, which reasons may quote, contained it); nothing crashes;
// action() is never empty. (Base64 SASL responses are caught by their AUTHENTICATE command;
// LOGIN literals by the password itself.)
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/dialog/imap_upstream_login.h"
#include "proto/secret.h"

namespace {

using mailring::core::UpstreamCredentials;
using mailring::core::ImapUpstreamLogin;
using mailring::core::UpstreamLogin;
using Outcome = UpstreamLogin::Outcome;

constexpr std::string_view kPassword = "pw-Fz7q-secret";
constexpr std::string_view kToken = "tok-Xk9w-secret";

void Check(bool condition) {
  if (!condition) std::abort();
}

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// True when `bytes` (something mailring would send) could carry a credential.
bool CarriesCredentials(std::string_view bytes) {
  return Contains(bytes, "AUTHENTICATE") || Contains(bytes, "LOGIN") ||
         Contains(bytes, kPassword) || Contains(bytes, kToken) || Contains(bytes, "secret");
}

// `server_said_secret`: the server's own text contains a credential (a reason may quote it).
void CheckFailure(const UpstreamLogin::Step& step, bool server_said_secret) {
  Check(!step.failure.empty());
  Check(step.send.empty());
  if (!server_said_secret) {
    Check(!Contains(step.failure, kPassword));
    Check(!Contains(step.failure, kToken));
  }
  for (char c : step.failure) Check(c != '\r' && c != '\n' && c != '\0');
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t config = data[0];
  const bool required = (config & 1) != 0;
  const bool bearer = (config & 2) != 0;
  const bool handshake_succeeds = (config & 4) == 0;
  std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);
  const bool server_said_secret = Contains(stream, kPassword) || Contains(stream, kToken);

  UpstreamCredentials credentials;
  credentials.kind =
      bearer ? UpstreamCredentials::Kind::kBearerToken : UpstreamCredentials::Kind::kPassword;
  credentials.starttls = required ? UpstreamCredentials::StartTls::kRequired
                                  : UpstreamCredentials::StartTls::kIfOffered;
  credentials.user = "alice";
  if (!bearer) credentials.password = mailring::proto::Secret(std::string(kPassword));
  credentials.host = "imap.example.org";
  credentials.port = 143;
  ImapUpstreamLogin login(std::move(credentials));

  bool tls = false;
  bool starttls_sent = false;
  bool credentials_sent = false;
  std::string last_send;

  // Simulates the session's reaction to one step; false when the conversation is over.
  auto handle = [&](UpstreamLogin::Step step) -> bool {
    // At most a few chained steps per line (kStartTls → OnTlsEstablished, kNeedToken → token).
    for (int chain = 0; chain < 4; ++chain) {
      Check(!login.action().empty());
      switch (step.outcome) {
        case Outcome::kNeedMore:
          Check(step.send.empty() && step.failure.empty());
          return true;
        case Outcome::kSend: {
          Check(!step.send.empty());
          Check(step.failure.empty());
          const bool carries = CarriesCredentials(step.send);
          if (!tls) {
            if (required) Check(!carries);
            if (starttls_sent) Check(!carries);
          }
          if (step.send == "M0 STARTTLS\r\n") {
            Check(!tls && !starttls_sent && !credentials_sent);
            starttls_sent = true;
          }
          if (carries) credentials_sent = true;
          last_send = step.send;
          return true;
        }
        case Outcome::kStartTls: {
          Check(starttls_sent && !tls);
          Check(last_send == "M0 STARTTLS\r\n");
          Check(step.send.empty() && step.failure.empty());
          if (!handshake_succeeds) return false;  // the session closes with the TLS failure
          tls = true;
          step = login.OnTlsEstablished();
          Check(step.outcome == Outcome::kSend);
          Check(step.send == "M1 CAPABILITY\r\n");
          continue;
        }
        case Outcome::kNeedToken:
          Check(bearer);
          if (required || starttls_sent) Check(tls);
          step = login.ProvideToken(mailring::proto::Secret(std::string(kToken)), "");
          Check(step.outcome == Outcome::kSend || step.outcome == Outcome::kFailed);
          continue;
        case Outcome::kLoggedIn:
          Check(step.send.empty() && step.failure.empty());
          return false;
        case Outcome::kFailed:
          CheckFailure(step, server_said_secret);
          if (login.can_retry()) {
            // A rejected bearer token: the session may try another one (bounded by the loop).
            login.PrepareRetry();
            step = login.ProvideToken(mailring::proto::Secret(std::string(kToken)), "");
            continue;
          }
          return false;
      }
    }
    return true;
  };

  // Every iteration consumes at least one byte (the '\n') or ends the loop.
  while (!stream.empty()) {
    const size_t end = stream.find('\n');
    std::string_view line = stream.substr(0, end);
    stream = end == std::string_view::npos ? std::string_view() : stream.substr(end + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!handle(login.OnLine(line))) break;
  }
  return 0;
}
