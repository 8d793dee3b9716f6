#include "tests/integration/imap_test_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace mailring::integration {
namespace {

constexpr size_t kMaxLineBytes = 1 << 20;  // a sanity bound, far above any real response line

absl::Status ErrnoStatus(const std::string& what) {
  int err = errno;
  if (err == EAGAIN || err == EWOULDBLOCK) {
    return absl::DeadlineExceededError(absl::StrCat(what, ": timed out"));
  }
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(err)));
}

// The literal size announced at the end of `line` ("... {123}", "{123+}", "~{123}"), if any.
std::optional<size_t> TrailingLiteral(absl::string_view line) {
  if (line.empty() || line.back() != '}') return std::nullopt;
  size_t open = line.rfind('{');
  if (open == absl::string_view::npos) return std::nullopt;
  absl::string_view digits = line.substr(open + 1, line.size() - open - 2);
  if (!digits.empty() && digits.back() == '+') digits.remove_suffix(1);
  if (digits.empty() || digits.size() > 12) return std::nullopt;
  for (char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  size_t n = 0;
  if (!absl::SimpleAtoi(absl::string_view(digits.data(), digits.size()), &n)) return std::nullopt;
  return n;
}

}  // namespace

bool ImapResponse::IsTagged(absl::string_view tag) const {
  return text.size() > tag.size() && absl::string_view(text).substr(0, tag.size()) == tag &&
         text[tag.size()] == ' ';
}

absl::string_view ImapResponse::Status() const {
  absl::string_view t = text;
  if (t.empty() || t[0] == '*' || t[0] == '+') return {};
  size_t space = t.find(' ');
  if (space == absl::string_view::npos) return {};
  t.remove_prefix(space + 1);
  for (absl::string_view status : {"OK", "NO", "BAD"}) {
    if (t.substr(0, status.size()) == status &&
        (t.size() == status.size() || t[status.size()] == ' ')) {
      return status;
    }
  }
  return {};
}

absl::StatusOr<std::unique_ptr<ImapTestClient>> ImapTestClient::Connect(uint16_t port,
                                                                        absl::Duration timeout) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus("socket");
  timeval tv = absl::ToTimeval(timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);  // also bounds connect()
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    absl::Status status = ErrnoStatus(absl::StrCat("connect 127.0.0.1:", port));
    close(fd);
    return status;
  }
  return std::unique_ptr<ImapTestClient>(new ImapTestClient(fd));
}

ImapTestClient::~ImapTestClient() { close(fd_); }

absl::Status ImapTestClient::Send(absl::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("send");
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status ImapTestClient::Fill(size_t n) {
  while (buffer_.size() - read_pos_ < n) {
    char chunk[64 * 1024];
    ssize_t got = recv(fd_, chunk, sizeof chunk, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("recv");
    }
    if (got == 0) {
      return absl::UnavailableError(
          absl::StrCat("EOF after ", buffer_.size() - read_pos_, " unterminated bytes: \"",
                       absl::CEscape(buffer_.substr(read_pos_, 200)), "\""));
    }
    buffer_.append(chunk, static_cast<size_t>(got));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ImapTestClient::ReadLine() {
  // Drop consumed bytes here, where no offsets into buffer_ are held (Fill() must not move them).
  if (read_pos_ == buffer_.size() || read_pos_ > (1 << 20)) {
    buffer_.erase(0, read_pos_);
    read_pos_ = 0;
  }
  size_t scanned = read_pos_;
  while (true) {
    size_t lf = buffer_.find('\n', scanned);
    if (lf != std::string::npos) {
      size_t end = lf;
      if (end > read_pos_ && buffer_[end - 1] == '\r') --end;
      std::string line = buffer_.substr(read_pos_, end - read_pos_);
      read_pos_ = lf + 1;
      return line;
    }
    scanned = buffer_.size();
    if (scanned - read_pos_ > kMaxLineBytes) {
      return absl::ResourceExhaustedError("response line longer than 1 MiB");
    }
    absl::Status status = Fill(buffer_.size() - read_pos_ + 1);
    if (!status.ok()) return status;
  }
}

absl::StatusOr<ImapResponse> ImapTestClient::ReadResponse() {
  ImapResponse response;
  while (true) {
    absl::StatusOr<std::string> line = ReadLine();
    if (!line.ok()) return line.status();
    response.text += *line;
    std::optional<size_t> literal = TrailingLiteral(*line);
    if (!literal.has_value()) return response;
    absl::Status status = Fill(*literal);
    if (!status.ok()) return status;
    response.literals.push_back(buffer_.substr(read_pos_, *literal));
    read_pos_ += *literal;
  }
}

absl::StatusOr<std::vector<ImapResponse>> ImapTestClient::ReadUntilTagged(absl::string_view tag) {
  std::vector<ImapResponse> responses;
  while (true) {
    absl::StatusOr<ImapResponse> response = ReadResponse();
    if (!response.ok()) {
      return absl::Status(
          response.status().code(),
          absl::StrCat(response.status().message(), " (waiting for tag ", std::string(tag),
                       "; got so far:\n", Transcript(responses), ")"));
    }
    responses.push_back(*std::move(response));
    if (responses.back().IsTagged(tag)) return responses;
  }
}

absl::StatusOr<std::vector<ImapResponse>> ImapTestClient::Command(absl::string_view tag,
                                                                  absl::string_view command) {
  absl::Status status = Send(absl::StrCat(std::string(tag), " ", std::string(command), "\r\n"));
  if (!status.ok()) return status;
  return ReadUntilTagged(tag);
}

absl::Status ImapTestClient::ExpectClosed() {
  if (read_pos_ < buffer_.size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "unread bytes before close: \"", absl::CEscape(buffer_.substr(read_pos_, 200)), "\""));
  }
  char byte;
  while (true) {
    ssize_t got = recv(fd_, &byte, 1, 0);
    if (got == 0) return absl::OkStatus();
    if (got > 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "expected EOF, got more data starting with '", absl::CEscape({&byte, 1}), "'"));
    }
    if (errno == EINTR) continue;
    if (errno == ECONNRESET) return absl::OkStatus();
    return ErrnoStatus("waiting for EOF");
  }
}

void ImapTestClient::HalfClose() { shutdown(fd_, SHUT_WR); }

std::string Transcript(const std::vector<ImapResponse>& responses) {
  return absl::StrJoin(responses, "\n", [](std::string* out, const ImapResponse& r) {
    out->append(r.text.size() > 300 ? r.text.substr(0, 300) + "..." : r.text);
  });
}

}  // namespace mailring::integration
