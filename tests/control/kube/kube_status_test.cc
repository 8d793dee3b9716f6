#include "control/kube/kube_status.h"

#include <string>

#include "gtest/gtest.h"

namespace mailring::control {
namespace {

std::string StatusBody(int code, const std::string& reason, const std::string& message) {
  return R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":")" +
         message + R"(","reason":")" + reason + R"(","code":)" + std::to_string(code) + "}";
}

TEST(KubeApiStatusTest, CodesAreMapped) {
  const struct {
    long http;
    std::string reason;
    absl::StatusCode code;
  } cases[] = {
      {400, "BadRequest", absl::StatusCode::kInvalidArgument},
      {401, "Unauthorized", absl::StatusCode::kUnauthenticated},
      {403, "Forbidden", absl::StatusCode::kPermissionDenied},
      {404, "NotFound", absl::StatusCode::kNotFound},
      {409, "AlreadyExists", absl::StatusCode::kAlreadyExists},
      {409, "Conflict", absl::StatusCode::kAborted},
      {410, "Expired", absl::StatusCode::kOutOfRange},
      {412, "", absl::StatusCode::kFailedPrecondition},
      {422, "Invalid", absl::StatusCode::kInvalidArgument},
      {429, "TooManyRequests", absl::StatusCode::kResourceExhausted},
      {500, "InternalError", absl::StatusCode::kUnavailable},
      {503, "ServiceUnavailable", absl::StatusCode::kUnavailable},
      {504, "Timeout", absl::StatusCode::kUnavailable},
      {302, "", absl::StatusCode::kUnknown},
  };
  for (const auto& c : cases) {
    const absl::Status status = KubeApiStatus(c.http, StatusBody(c.http, c.reason, "m"));
    EXPECT_EQ(status.code(), c.code) << c.http << " " << c.reason << ": " << status;
  }
}

TEST(KubeApiStatusTest, ConflictWithoutAStatusObjectIsAborted) {
  EXPECT_TRUE(absl::IsAborted(KubeApiStatus(409, "")));
  EXPECT_TRUE(absl::IsAborted(KubeApiStatus(409, "<html>conflict</html>")));
}

TEST(KubeApiStatusTest, MessageIsTheStatusObjectsMessage) {
  const absl::Status status =
      KubeApiStatus(404, StatusBody(404, "NotFound", R"(services \"imap\" not found)"));
  EXPECT_EQ(status.message(), R"(HTTP 404: services "imap" not found)");
}

TEST(KubeApiStatusTest, OtherBodiesAreQuotedShort) {
  EXPECT_EQ(KubeApiStatus(502, "Bad Gateway").message(), "HTTP 502: Bad Gateway");
  EXPECT_EQ(KubeApiStatus(503, "").message(), "HTTP 503");
  const absl::Status big = KubeApiStatus(500, std::string(10'000, 'x'));
  EXPECT_EQ(big.message(), "HTTP 500: " + std::string(300, 'x'));
}

TEST(KubeApiStatusTest, DescribeMatchesTheStatusMessage) {
  const std::string body = StatusBody(410, "Expired", "too old resource version: 1 (42)");
  EXPECT_EQ(DescribeKubeResponse(410, body), KubeApiStatus(410, body).message());
  EXPECT_EQ(DescribeKubeResponse(410, body), "HTTP 410: too old resource version: 1 (42)");
}

}  // namespace
}  // namespace mailring::control
