#include "proto/smtp_reply.h"

#include <utility>

namespace mailring::proto {

absl::StatusOr<std::optional<SmtpReply>> SmtpReplyAssembler::OnLine(std::string_view line) {
  const bool digits = line.size() >= 3 && line[0] >= '2' && line[0] <= '5' && line[1] >= '0' &&
                      line[1] <= '9' && line[2] >= '0' && line[2] <= '9';
  if (!digits || (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
    pending_ = SmtpReply();
    return absl::InvalidArgumentError("malformed SMTP reply line (no reply code)");
  }
  const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  if (!pending_.lines.empty() && pending_.code != code) {
    pending_ = SmtpReply();
    return absl::InvalidArgumentError("malformed SMTP reply (the code changes within a reply)");
  }
  if (pending_.lines.size() >= kMaxLines) {
    pending_ = SmtpReply();
    return absl::InvalidArgumentError("SMTP reply with too many lines");
  }
  pending_.code = code;
  pending_.lines.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view());
  if (line.size() > 3 && line[3] == '-') return std::optional<SmtpReply>();
  SmtpReply reply = std::move(pending_);
  pending_ = SmtpReply();
  return std::optional<SmtpReply>(std::move(reply));
}

}  // namespace mailring::proto
