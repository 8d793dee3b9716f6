// Strict base64 and the XOAUTH2 / OAUTHBEARER decoders on arbitrary bytes.
//
// Properties: a successful base64 decode re-encodes to the input (padding aside), so no two
// texts decode alike; a successful SASL decode round-trips through the encoder; every error is
// InvalidArgument with a short fixed text that does not quote the input.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proto/sasl.h"

namespace {

using mailring::proto::BearerResponse;

void Check(bool condition) {
  if (!condition) std::abort();
}

std::string_view Message(const absl::Status& status) {
  return std::string_view(status.message().data(), status.message().size());
}

// Error texts are fixed; a text with a byte none of them has ("~+/" occur in tokens, and the
// fuzzer can always copy a fixed text into its input) would be quoting the input.
void CheckError(const absl::Status& status) {
  Check(status.code() == absl::StatusCode::kInvalidArgument);
  const std::string_view message = Message(status);
  Check(message.size() <= 120);
  for (char c : message) {
    Check(c >= 0x20 && c < 0x7f);
    Check(std::string_view("~+/%#!$&*").find(c) == std::string_view::npos);
  }
}

std::string_view StripPadding(std::string_view text) {
  while (text.ends_with('=')) text.remove_suffix(1);
  return text;
}

void FuzzBase64(std::string_view text) {
  absl::StatusOr<std::string> decoded = mailring::proto::Base64DecodeStrict(text);
  if (!decoded.ok()) {
    CheckError(decoded.status());
    return;
  }
  Check(decoded->size() <= text.size() * 3 / 4);
  Check(StripPadding(mailring::proto::Base64Encode(*decoded)) == StripPadding(text));
}

void FuzzXoauth2(std::string_view raw) {
  absl::StatusOr<BearerResponse> response = mailring::proto::DecodeXoauth2(raw);
  if (!response.ok()) {
    CheckError(response.status());
    return;
  }
  Check(!response->user.empty());
  Check(!response->bearer_token.empty());
  Check(raw.find(response->bearer_token.Reveal()) != std::string_view::npos);
  absl::StatusOr<BearerResponse> again = mailring::proto::DecodeXoauth2(
      mailring::proto::EncodeXoauth2(response->user, response->bearer_token.Reveal()));
  Check(again.ok());
  Check(again->user == response->user);
  Check(again->bearer_token.Reveal() == response->bearer_token.Reveal());
}

void FuzzOauthBearer(std::string_view raw) {
  absl::StatusOr<BearerResponse> response = mailring::proto::DecodeOauthBearer(raw);
  if (!response.ok()) {
    CheckError(response.status());
    return;
  }
  Check(!response->bearer_token.empty());
  Check(raw.find(response->bearer_token.Reveal()) != std::string_view::npos);
  absl::StatusOr<BearerResponse> again =
      mailring::proto::DecodeOauthBearer(mailring::proto::EncodeOauthBearer(
          response->user, response->bearer_token.Reveal(), "imap.example.com", 993));
  Check(again.ok());
  Check(again->user == response->user);
  Check(again->bearer_token.Reveal() == response->bearer_token.Reveal());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  FuzzBase64(input);
  FuzzXoauth2(input);
  FuzzOauthBearer(input);
  // Clients send both messages base64-encoded: follow that path too.
  absl::StatusOr<std::string> decoded = mailring::proto::Base64DecodeStrict(input);
  if (decoded.ok()) {
    FuzzXoauth2(*decoded);
    FuzzOauthBearer(*decoded);
  }
  return 0;
}
