// DynamoDB's answers, classified as the store acts on them (transport/aws/dynamodb_client.h):
// what is retried, what is the caller's 503, what is our mistake. The bodies are DynamoDB's
// documented error shapes (docs.aws.amazon.com/amazondynamodb/latest/developerguide/
// Programming.Errors.html).
#include <gtest/gtest.h>

#include <algorithm>

#include "transport/aws/dynamodb_client.h"

namespace heartbeatd::transport::aws {
namespace {

using Kind = DynamoError::Kind;

std::string error_body(const std::string& type, const std::string& message) {
  return R"({"__type":"com.amazonaws.dynamodb.v20120810#)" + type + R"(","message":")" + message +
         "\"}";
}

TEST(DynamoBackoff, FullJitterUnderADoublingCeiling) {
  // attempt n: uniform in [0, min(400, 25 * 2^n)] ms; spread, and never above the ceiling.
  std::mt19937_64 rng(20261205);  // fixed: CI is deterministic
  for (int attempt = 1; attempt <= 8; ++attempt) {
    const auto ceiling = std::min<long>(400, 25L << std::min(attempt, 5));
    long lowest = ceiling, highest = 0;
    for (int i = 0; i < 2000; ++i) {
      const auto p = backoff_pause(attempt, rng).count();
      ASSERT_GE(p, 0);
      ASSERT_LE(p, ceiling) << attempt;
      lowest = std::min(lowest, p);
      highest = std::max(highest, p);
    }
    EXPECT_LT(lowest, ceiling / 4) << "no jitter at attempt " << attempt;
    EXPECT_GT(highest, ceiling * 3 / 4) << "no jitter at attempt " << attempt;
  }
}

TEST(DynamoClassify, SuccessIsNoError) {
  EXPECT_FALSE(classify(200, "{}"));
}

TEST(DynamoClassify, ThrottlingIsRetryable) {
  for (const char* type : {"ProvisionedThroughputExceededException", "ThrottlingException",
                           "RequestLimitExceeded"}) {
    const auto e = classify(400, error_body(type, "slow down"));
    EXPECT_EQ(e.kind, Kind::throttled) << type;
    EXPECT_TRUE(e.retryable()) << type;
    EXPECT_EQ(e.type, type);
    EXPECT_EQ(e.message, "slow down");
  }
}

TEST(DynamoClassify, ServerErrorsAreRetryableWhateverTheBody) {
  EXPECT_EQ(classify(500, error_body("InternalServerError", "x")).kind, Kind::server);
  const auto e = classify(503, "<html>gateway</html>");
  EXPECT_EQ(e.kind, Kind::server);
  EXPECT_TRUE(e.retryable());
  EXPECT_EQ(e.type, "HTTP 503");
  EXPECT_EQ(e.message, "<html>gateway</html>");
}

TEST(DynamoClassify, ARequestTimeoutOrTooManyRequestsIsRetried) {
  // 408 comes, unasked, on a kept-alive connection a server is closing (Node's HTTP server
  // does this after its keep-alive timeout); the request it meets was never processed.
  EXPECT_EQ(classify(408, "").kind, Kind::network);
  EXPECT_TRUE(classify(408, "").retryable());
  EXPECT_EQ(classify(429, "").kind, Kind::throttled);
}

TEST(DynamoClassify, CredentialsConditionsAndMissingTablesAreNotRetried) {
  EXPECT_EQ(classify(400, error_body("UnrecognizedClientException", "bad key")).kind,
            Kind::credentials);
  EXPECT_EQ(classify(400, error_body("ExpiredTokenException", "expired")).kind, Kind::credentials);
  EXPECT_EQ(classify(403, "{}").kind, Kind::credentials);
  EXPECT_EQ(classify(400, error_body("ResourceNotFoundException", "no table")).kind,
            Kind::not_found);
  EXPECT_EQ(classify(400, error_body("ConditionalCheckFailedException", "newer")).kind,
            Kind::condition);
  const auto v = classify(400, error_body("ValidationException", "bad"));
  EXPECT_EQ(v.kind, Kind::invalid);
  EXPECT_FALSE(v.retryable());
}

TEST(DynamoClassify, HostileBodiesNeverCrashAndStayOneShortLine) {
  EXPECT_EQ(classify(400, "").kind, Kind::invalid);
  EXPECT_EQ(classify(400, "[1,2").kind, Kind::invalid);
  EXPECT_EQ(classify(400, R"({"__type":42,"message":{"a":1}})").kind, Kind::invalid);
  const auto e = classify(400, std::string(100'000, 'x') + "\n" + "y");
  EXPECT_LE(e.message.size(), 300u);
  EXPECT_EQ(e.message.find('\n'), std::string::npos);
  // "Message" (capitalised) is used by some of DynamoDB's answers.
  EXPECT_EQ(classify(400, R"({"__type":"x#ValidationException","Message":"M"})").message, "M");
}

}  // namespace
}  // namespace heartbeatd::transport::aws
