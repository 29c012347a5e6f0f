// AWS Signature Version 4 (docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv.html):
// the canonical request, the string to sign, the derived signing key and the Authorization
// header, for a request heartbeatd sends to an AWS service (DynamoDB). HMAC-SHA256 and
// SHA-256 come from OpenSSL. Pure functions: the time is an argument, so the published test
// vectors (tests/sigv4_test.cpp) check it byte for byte.
//
// Thread safety: free functions on values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace heartbeatd::transport::aws {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;            // empty: long-term keys
  std::optional<std::int64_t> expires;  // Unix seconds; nullopt: does not expire
  std::string source;                   // where they came from, for logs: "environment", ...
};

struct RequestToSign {
  std::string method = "POST";
  std::string path = "/";  // as sent, before SigV4's own URI encoding of each segment
  std::string query;       // as sent, without '?': "a=1&b=2"
  // Every header sent that is to be signed, names in any case; must include "host" (and
  // "x-amz-date", and "x-amz-security-token" when the credentials have a session token).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string_view payload;
};

struct Signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;      // lower-case hex
  std::string authorization;  // the Authorization header's value
};

// `amz_date`: the request's x-amz-date, "YYYYMMDDTHHMMSSZ"; the scope's date is its first 8.
Signature sign_v4(const RequestToSign& request, const Credentials& credentials,
                  std::string_view region, std::string_view service, std::string_view amz_date);

// "YYYYMMDDTHHMMSSZ" for a Unix time in seconds (UTC).
std::string amz_date(std::int64_t unix_seconds);

// Lower-case hex SHA-256 (the x-amz-content-sha256 / payload hash).
std::string sha256_hex(std::string_view data);

}  // namespace heartbeatd::transport::aws
