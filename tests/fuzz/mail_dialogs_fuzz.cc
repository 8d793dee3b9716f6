// The SMTP and POP3 dialogs against arbitrary peers: an upstream login fed arbitrary server
// lines (with STARTTLS and tokens provided whenever asked) and a client dialog fed arbitrary
// client lines. Nothing may crash; every failure text and every reply is bounded and printable
// where it quotes a peer, and neither ever carries the destination's password or token.
// Input layout (FuzzedDataProvider takes integers from the end): lines separated by '\n' |
// selector (1).
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "core/dialog/pop3_client_dialog.h"
#include "core/dialog/pop3_upstream_login.h"
#include "core/dialog/smtp_client_dialog.h"
#include "core/dialog/smtp_upstream_login.h"

namespace {

using mailring::core::ClientDialog;
using mailring::core::ClientDialogOptions;
using mailring::core::UpstreamCredentials;
using mailring::core::UpstreamLogin;

constexpr std::string_view kPassword = "PASSWORD-must-not-leak";
constexpr std::string_view kToken = "TOKEN-must-not-leak";

void Check(bool condition) {
  if (!condition) std::abort();
}

// Set per input: a peer that itself sends the secret may see it quoted back.
bool g_script_names_a_secret = false;

void CheckText(std::string_view text) {
  Check(text.size() <= 600);
  if (g_script_names_a_secret) return;
  Check(text.find(kPassword) == std::string_view::npos);
  Check(text.find(kToken) == std::string_view::npos);
}

void RunLogin(UpstreamLogin& login, std::string_view script) {
  size_t pos = 0;
  for (int steps = 0; pos <= script.size() && steps < 200; ++steps) {
    const size_t end = std::min(script.find('\n', pos), script.size());
    UpstreamLogin::Step step = login.OnLine(script.substr(pos, end - pos));
    pos = end + 1;
    for (int follow = 0; follow < 3; ++follow) {
      if (step.outcome == UpstreamLogin::Outcome::kStartTls) {
        step = login.OnTlsEstablished();
      } else if (step.outcome == UpstreamLogin::Outcome::kNeedToken) {
        step = login.ProvideToken(mailring::proto::Secret(std::string(kToken)), "user");
      } else if (step.outcome == UpstreamLogin::Outcome::kFailed && login.can_retry()) {
        CheckText(step.failure);
        login.PrepareRetry();
        step = login.ProvideToken(mailring::proto::Secret(std::string(kToken)), "user");
      } else {
        break;
      }
    }
    if (step.outcome == UpstreamLogin::Outcome::kFailed) CheckText(step.failure);
    if (step.outcome == UpstreamLogin::Outcome::kFailed && !login.can_retry()) return;
    if (step.outcome == UpstreamLogin::Outcome::kLoggedIn) return;
    CheckText(login.action());
  }
}

void RunClient(ClientDialog& dialog, std::string_view script) {
  CheckText(dialog.Greet({"8BITMIME", "AUTH PLAIN", "STARTTLS", "SASL PLAIN", "UIDL"}).reply);
  size_t pos = 0;
  for (int steps = 0; pos <= script.size() && steps < 200; ++steps) {
    const size_t end = std::min(script.find('\n', pos), script.size());
    ClientDialog::Step step = dialog.OnLine(script.substr(pos, end - pos));
    pos = end + 1;
    if (step.outcome == ClientDialog::Outcome::kAuthenticate) {
      step = (steps & 1) ? dialog.Authenticated({"SIZE"}) : dialog.Rejected("refused\r\n+OK");
    }
    Check(step.reply.find("\r\n+OK") == std::string::npos);
    Check(step.reply.size() <= 4096);
    if (step.outcome == ClientDialog::Outcome::kRelay ||
        step.outcome == ClientDialog::Outcome::kReplyAndClose) {
      return;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider provider(data, size);
  const uint8_t selector = provider.ConsumeIntegral<uint8_t>();
  const std::string script = provider.ConsumeRemainingBytesAsString();
  g_script_names_a_secret = script.find(kPassword) != std::string::npos ||
                            script.find(kToken) != std::string::npos;
  UpstreamCredentials credentials;
  credentials.user = "user";
  credentials.password = mailring::proto::Secret(std::string(kPassword));
  credentials.kind = (selector & 2) ? UpstreamCredentials::Kind::kBearerToken
                                    : UpstreamCredentials::Kind::kPassword;
  credentials.starttls = static_cast<UpstreamCredentials::StartTls>((selector >> 2) % 3);
  ClientDialogOptions options;
  options.destination_name = "dest";
  options.client_authenticates = (selector & 16) != 0;
  options.credential_name = "refresh token";
  switch ((selector & 1) | ((selector >> 4) & 2)) {
    case 0: {
      mailring::core::SmtpUpstreamLogin login(credentials);
      RunLogin(login, script);
      break;
    }
    case 1: {
      mailring::core::Pop3UpstreamLogin login(credentials);
      RunLogin(login, script);
      break;
    }
    case 2: {
      mailring::core::SmtpClientDialog dialog(options);
      RunClient(dialog, script);
      break;
    }
    default: {
      mailring::core::Pop3ClientDialog dialog(options);
      RunClient(dialog, script);
      break;
    }
  }
  return 0;
}
