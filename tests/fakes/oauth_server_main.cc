// mailring_fake_oauth_server: the test OAuth 2.0 authorization server as a program, for trying
// mailring or Dovecot by hand. Prints its URLs, then serves until SIGINT/SIGTERM.
//
//   mailring_fake_oauth_server [--client ID:SECRET:USER]... [--refresh-token TOKEN:USER]...
//                              [--code CODE:USER[:REDIRECT_URI]]... [--issue USER]...
//                              [--expires-in SECONDS]
//
// --issue mints an access token for USER at start and prints it (for a direct AUTHENTICATE
// XOAUTH2 against Dovecot).
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "tests/fakes/oauth_server.h"

namespace {

[[noreturn]] void Usage() {
  std::fprintf(stderr,
               "usage: mailring_fake_oauth_server [--client ID:SECRET:USER]... "
               "[--refresh-token TOKEN:USER]... [--code CODE:USER[:REDIRECT_URI]]... "
               "[--issue USER]... [--expires-in SECONDS]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  mailring::fakes::FakeOAuthServer server;
  std::vector<std::string> issue_for;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) Usage();
    std::string value = argv[++i];
    // Split on the first two colons only: a redirect URI contains colons itself.
    std::vector<std::string> parts = absl::StrSplit(value, absl::MaxSplits(':', 2));
    if (flag == "--client" && parts.size() == 3) {
      server.RegisterClient(parts[0], parts[1], parts[2]);
    } else if (flag == "--refresh-token" && parts.size() == 2) {
      server.RegisterRefreshToken(parts[0], parts[1]);
    } else if (flag == "--code" && (parts.size() == 2 || parts.size() == 3)) {
      server.RegisterCode(parts[0], parts[1], parts.size() == 3 ? parts[2] : "");
    } else if (flag == "--issue") {
      issue_for.push_back(value);
    } else if (flag == "--expires-in") {
      int seconds = 0;
      if (!absl::SimpleAtoi(value, &seconds) || seconds <= 0) Usage();
      server.SetExpiresIn(seconds);
    } else {
      Usage();
    }
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // before the serving thread starts

  if (absl::Status status = server.Start(); !status.ok()) {
    std::fprintf(stderr, "mailring_fake_oauth_server: %s\n", status.ToString().c_str());
    return 1;
  }
  std::printf("token_url %s\nintrospection_url %s\n", server.TokenUrl().c_str(),
              server.IntrospectionUrl().c_str());
  for (const std::string& user : issue_for) {
    std::printf("access_token %s %s\n", user.c_str(), server.IssueAccessToken(user, "").c_str());
  }
  std::fflush(stdout);
  int signo = 0;
  sigwait(&signals, &signo);
  return 0;
}
