#include "core/tls_relay.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <span>
#include <string_view>

#include "core/send_some.h"

namespace mailring::core {
namespace {

constexpr size_t kReadChunk = 64 * 1024;

}  // namespace

RelayLeg::Wait TlsRelay::Failed(int error) {
  error_ = error;
  return RelayLeg::Wait::kFailed;
}

RelayLeg::Wait TlsRelay::TlsFailed() {
  tls_error_ = tls_->error();
  error_ = EPROTO;
  return RelayLeg::Wait::kFailed;
}

RelayLeg::Wait TlsRelay::WaitReadable() {
  if (cipher_out_.empty()) std::string().swap(cipher_out_);
  if (plain_out_.empty()) std::string().swap(plain_out_);
  if (opened_.empty()) std::vector<std::string_view>().swap(opened_);
  tls_->ReleaseDrainedBuffers();
  return RelayLeg::Wait::kReadable;
}

bool TlsRelay::FlushCipher() {
  if (tls_->has_output()) tls_->AppendOutputTo(&cipher_out_);
  const std::string_view rest = std::string_view(cipher_out_).substr(cipher_out_offset_);
  const ssize_t sent = SendSome(upstream_fd_, rest);
  if (sent < 0) {
    error_ = static_cast<int>(-sent);
    return false;
  }
  cipher_out_offset_ += static_cast<size_t>(sent);
  if (static_cast<size_t>(sent) < rest.size()) return false;
  cipher_out_.clear();
  cipher_out_offset_ = 0;
  return true;
}

RelayLeg::Wait TlsRelay::PumpToUpstream(size_t budget_bytes) {
  if (to_upstream_finished_) return RelayLeg::Wait::kFinished;
  size_t moved = 0;
  char buffer[kReadChunk];
  while (true) {
    if (!FlushCipher()) {
      return error_ != 0 ? RelayLeg::Wait::kFailed : RelayLeg::Wait::kWritable;
    }
    if (client_eof_) {
      ::shutdown(upstream_fd_, SHUT_WR);
      to_upstream_finished_ = true;
      return RelayLeg::Wait::kFinished;
    }
    if (moved >= budget_bytes) return RelayLeg::Wait::kYield;
    const ssize_t n = ::recv(client_fd_, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n > 0) {
      if (tls_->Write(std::string_view(buffer, static_cast<size_t>(n))) !=
          TlsClient::Result::kDone) {
        return TlsFailed();
      }
      bytes_to_upstream_ += static_cast<uint64_t>(n);
      moved += static_cast<size_t>(n);
      continue;
    }
    if (n == 0) {
      client_eof_ = true;
      tls_->Shutdown();  // close_notify, flushed on the next turn
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return WaitReadable();
    return Failed(errno);
  }
}

bool TlsRelay::SendPlaintext() {
  if (plain_out_offset_ < plain_out_.size()) {
    const std::string_view rest = std::string_view(plain_out_).substr(plain_out_offset_);
    const ssize_t sent = SendSome(client_fd_, rest);
    if (sent < 0) {
      error_ = static_cast<int>(-sent);
      return false;
    }
    plain_out_offset_ += static_cast<size_t>(sent);
    bytes_to_client_ += static_cast<uint64_t>(sent);
    if (static_cast<size_t>(sent) < rest.size()) return false;
  }
  plain_out_.clear();
  plain_out_offset_ = 0;
  if (opened_next_ < opened_.size()) {
    const std::span<std::string_view> rest = std::span(opened_).subspan(opened_next_);
    const ssize_t sent = SendSome(client_fd_, rest);
    if (sent < 0) {
      error_ = static_cast<int>(-sent);
      return false;
    }
    bytes_to_client_ += static_cast<uint64_t>(sent);
    // Drop what went from the front of the views.
    for (size_t left = static_cast<size_t>(sent); opened_next_ < opened_.size();) {
      std::string_view& piece = opened_[opened_next_];
      const size_t taken = std::min(left, piece.size());
      piece.remove_prefix(taken);
      left -= taken;
      if (!piece.empty()) return false;  // the client's socket is full
      ++opened_next_;
    }
    opened_.clear();
    opened_next_ = 0;
    tls_->ReleaseOpened();
  }
  return true;
}

RelayLeg::Wait TlsRelay::PumpToClient(size_t budget_bytes) {
  if (to_client_finished_) return RelayLeg::Wait::kFinished;
  size_t moved = 0;
  while (true) {
    if (!SendPlaintext()) return error_ != 0 ? RelayLeg::Wait::kFailed : RelayLeg::Wait::kWritable;
    if (upstream_eof_) {
      ::shutdown(client_fd_, SHUT_WR);
      to_client_finished_ = true;
      return RelayLeg::Wait::kFinished;
    }
    if (moved >= budget_bytes) return RelayLeg::Wait::kYield;
    // After the take-over the records are opened where they were received and their plaintext
    // is sent from there; before it (wolfSSL, TLS 1.2) wolfSSL copies it out.
    const TlsClient::Result result = tls_->took_over_records()
                                         ? tls_->OpenInPlace(kReadChunk, &opened_)
                                         : tls_->Read(&plain_out_, kReadChunk);
    switch (result) {
      case TlsClient::Result::kDone:
        moved += plain_out_.size();  // both were empty before this read
        for (const std::string_view piece : opened_) moved += piece.size();
        // Reading may have produced records for the server (e.g. a TLS 1.3 KeyUpdate answer);
        // send them now if the socket takes them, else the other direction flushes them first.
        FlushCipher();
        continue;
      case TlsClient::Result::kClosed:
        upstream_eof_ = true;
        continue;
      case TlsClient::Result::kError:
        return TlsFailed();
      case TlsClient::Result::kWantInput:
        break;
    }
    // Received straight into the TLS client's input: no copy between the socket and the records.
    const std::span<char> room = tls_->InputRoom(kReadChunk);
    const ssize_t n = ::recv(upstream_fd_, room.data(), room.size(), MSG_DONTWAIT);
    if (n > 0) {
      tls_->InputReceived(static_cast<size_t>(n));
      continue;
    }
    if (n == 0) {
      // TCP EOF without close_notify: IMAP servers often just close after LOGOUT's answer.
      upstream_eof_ = true;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return WaitReadable();
    return Failed(errno);
  }
}

}  // namespace mailring::core
