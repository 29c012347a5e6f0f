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
  // As sent, before SigV4's own URI encoding of each segment. Each segment is encoded once
  // more, so a path sent as "/a%20b" is signed as "/a%2520b": the double encoding AWS wants
  // for every service but S3. Non-S3 paths are also normalised ("//a/./b/.." -> "/a/").
  std::string path = "/";
  // As sent, without '?': "a=1&b=2". Names and values are percent-decoded, then encoded the
  // SigV4 way, so "%e1%88%b4", "%E1%88%B4" and the raw UTF-8 sign alike; '+' is a literal
  // plus (send a space as %20).
  std::string query;
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
