// LineClient: a line-oriented test client for SMTP and POP3 (ImapTestClient speaks IMAP's framing
// only). Every read and write is bounded by SO_RCVTIMEO / SO_SNDTIMEO (10 s).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace mailring::integration {

class LineClient {
 public:
  static absl::StatusOr<std::unique_ptr<LineClient>> Connect(uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval timeout{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      ::close(fd);
      return absl::UnavailableError(absl::StrCat("cannot connect to 127.0.0.1:", port));
    }
    return std::unique_ptr<LineClient>(new LineClient(fd));
  }
  ~LineClient() { ::close(fd_); }

  absl::Status Send(absl::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return absl::UnavailableError("send failed");
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return absl::OkStatus();
  }

  // One line without its CRLF; Unavailable at EOF, DeadlineExceeded after 10 s of silence.
  absl::StatusOr<std::string> ReadLine() {
    while (true) {
      const size_t end = buffer_.find("\r\n");
      if (end != std::string::npos) {
        std::string line = buffer_.substr(0, end);
        buffer_.erase(0, end + 2);
        return line;
      }
      char chunk[65536];
      const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (n == 0) return absl::UnavailableError(absl::StrCat("EOF after '", buffer_, "'"));
      if (n < 0) return absl::DeadlineExceededError(absl::StrCat("no line; have '", buffer_, "'"));
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

  // An SMTP reply: every line up to the one with a space after the code, joined with "\n".
  absl::StatusOr<std::string> ReadSmtpReply() {
    std::string reply;
    while (true) {
      absl::StatusOr<std::string> line = ReadLine();
      if (!line.ok()) return line.status();
      absl::StrAppend(&reply, reply.empty() ? "" : "\n", *line);
      if (line->size() < 4 || (*line)[3] != '-') return reply;
    }
  }

  // The lines of a POP3 multi-line answer after its +OK line, up to the terminating ".",
  // dot-unstuffed, each with CRLF.
  absl::StatusOr<std::string> ReadPop3Body() {
    std::string body;
    while (true) {
      absl::StatusOr<std::string> line = ReadLine();
      if (!line.ok()) return line.status();
      if (*line == ".") return body;
      absl::StrAppend(&body, absl::StartsWith(*line, "..") ? line->substr(1) : *line, "\r\n");
    }
  }

  // Sends `command` and reads one line (POP3) or one reply (SMTP).
  absl::StatusOr<std::string> Pop3(absl::string_view command) {
    if (absl::Status sent = Send(absl::StrCat(command, "\r\n")); !sent.ok()) return sent;
    return ReadLine();
  }
  absl::StatusOr<std::string> Smtp(absl::string_view command) {
    if (absl::Status sent = Send(absl::StrCat(command, "\r\n")); !sent.ok()) return sent;
    return ReadSmtpReply();
  }

 private:
  explicit LineClient(int fd) : fd_(fd) {}
  int fd_;
  std::string buffer_;
};

}  // namespace mailring::integration
