// ImapTestClient: a blocking IMAP client over one loopback TCP connection, for integration tests.
//
// Every read and write is bounded by the timeout given to Connect() (SO_RCVTIMEO/SO_SNDTIMEO), so
// a proxy that hangs fails the test instead of hanging it. It understands exactly as much IMAP as
// a test needs: responses are split into lines, and a line that ends with a literal announcement
// ("{N}", "{N+}", "~{N}") continues after the N octets, which are collected separately so that a
// 20 MiB body never has to be scanned for line ends. It deliberately shares no code with proto/:
// the tests must not inherit the parser bugs they are meant to find.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace mailring::integration {

// One response (or continuation request) as the server sent it.
struct ImapResponse {
  // The response without its final CRLF, with each literal's octets cut out but the announcement
  // kept: "* 1 FETCH (BODY[TEXT] {39})".
  std::string text;
  // The literals' octets, in order.
  std::vector<std::string> literals;

  bool IsTagged(absl::string_view tag) const;
  // For a tagged response "<tag> OK ...": "OK", "NO" or "BAD"; empty for anything else.
  absl::string_view Status() const;
};

class ImapTestClient {
 public:
  static constexpr absl::Duration kDefaultTimeout = absl::Seconds(10);

  // Connects to 127.0.0.1:port. Does not read the greeting.
  static absl::StatusOr<std::unique_ptr<ImapTestClient>> Connect(
      uint16_t port, absl::Duration timeout = kDefaultTimeout);

  ImapTestClient(const ImapTestClient&) = delete;
  ImapTestClient& operator=(const ImapTestClient&) = delete;
  ~ImapTestClient();

  // Writes all of `bytes`.
  absl::Status Send(absl::string_view bytes);

  // Reads the next response; DeadlineExceeded when nothing complete arrives within the timeout,
  // Unavailable("EOF ...") when the server closed before a complete response.
  absl::StatusOr<ImapResponse> ReadResponse();

  // Sends "<tag> <command>\r\n" and reads responses up to and including the tagged one.
  absl::StatusOr<std::vector<ImapResponse>> Command(absl::string_view tag,
                                                    absl::string_view command);

  // Reads responses up to and including the one tagged `tag`.
  absl::StatusOr<std::vector<ImapResponse>> ReadUntilTagged(absl::string_view tag);

  // OK once the server has closed the connection (orderly EOF or reset) with nothing more to
  // read; FailedPrecondition if more bytes arrive, DeadlineExceeded if it stays open.
  absl::Status ExpectClosed();

  // shutdown(SHUT_WR): tells the server we will send nothing more.
  void HalfClose();

  int fd() const { return fd_; }

 private:
  explicit ImapTestClient(int fd) : fd_(fd) {}

  // Ensures at least `n` unread bytes are buffered.
  absl::Status Fill(size_t n);
  absl::StatusOr<std::string> ReadLine();

  int fd_;
  std::string buffer_;
  size_t read_pos_ = 0;
};

// Joins the text of every response, one per line: for assertion messages.
std::string Transcript(const std::vector<ImapResponse>& responses);

}  // namespace mailring::integration
