// UpstreamLogin: the IMAP conversation mailring holds with the mail server before relaying,
// as a pure state machine (lines in, bytes to send out), so it is tested without sockets.
//
//   greeting ─► [CAPABILITY] ─► AUTHENTICATE PLAIN (SASL-IR) | LOGIN (atoms, quoted, literals)
//            ─► [CAPABILITY, when the login response carried none] ─► done
//
// The login method: AUTHENTICATE PLAIN with an initial response when the server offers both
// AUTH=PLAIN and SASL-IR (one round trip, any byte in the password), else LOGIN, unless the
// server announces LOGINDISABLED. A PREAUTH greeting skips the login.
//
// Contract: OnLine() takes each complete logical line from the server (see
// proto::ImapLineAssembler) and says what to do next. Bytes in Step::send carry credentials:
// write them to the socket, never to a log. Reasons in Step::failure are safe to show to the
// client and to log: they quote the server, never the credentials.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proto/imap_capabilities.h"
#include "proto/secret.h"

namespace mailring::core {

class UpstreamLogin {
 public:
  enum class Outcome : uint8_t { kNeedMore, kSend, kLoggedIn, kFailed };
  struct Step {
    Outcome outcome = Outcome::kNeedMore;
    std::string send;     // kSend: bytes for the server
    std::string failure;  // kFailed: why, for the client's BYE and the log
  };

  UpstreamLogin(std::string_view user, const proto::Secret& password);

  Step OnLine(std::string_view line);

  // What the conversation is doing, for log lines and BYE reasons ("reading the upstream
  // greeting", "sending LOGIN to upstream", ...).
  std::string_view action() const;

  // The capabilities after login (valid once OnLine returned kLoggedIn).
  const proto::CapabilitySet& capabilities() const { return capabilities_; }

 private:
  enum class State : uint8_t {
    kGreeting,
    kCapabilityBeforeLogin,
    kAuthenticatePlain,
    kLogin,
    kCapabilityAfterLogin,
    kDone,
    kFailed,
  };

  Step StartLogin();
  Step Fail(std::string reason);

  State state_ = State::kGreeting;
  std::string user_;
  proto::Secret password_;
  proto::CapabilitySet capabilities_;
  bool capabilities_fresh_ = false;  // capabilities seen since the login command was sent
  std::vector<std::string> login_segments_;  // LOGIN with synchronizing literals
  size_t next_segment_ = 0;
};

}  // namespace mailring::core
