// AWS credentials from the standard places, in the standard order (the AWS SDKs' default
// chain, docs.aws.amazon.com/sdkref/latest/guide/standardized-credentials.html):
//
//   1. environment: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN);
//   2. the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials),
//      profile `profile` (else AWS_PROFILE, else "default"), and the config file
//      (AWS_CONFIG_FILE, else ~/.aws/config, section "[profile NAME]" or "[default]") for
//      keys written there;
//   3. a container endpoint: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (on
//      http://169.254.170.2) or AWS_CONTAINER_CREDENTIALS_FULL_URI (loopback or the ECS/EKS
//      addresses only), with AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE) as Authorization;
//   4. the EC2 instance metadata service, IMDSv2 (PUT /latest/api/token, then the role's
//      credentials), at AWS_EC2_METADATA_SERVICE_ENDPOINT or http://169.254.169.254;
//      skipped when AWS_EC2_METADATA_DISABLED=true.
//
// The first source that has credentials wins; a source that is configured but broken (a
// profile without a secret, a container endpoint answering 403) is an error naming it, not
// a silent fall-through. Steps 3 and 4 are blocking HTTP GETs bounded by `http_timeout`:
// call resolve() off the daemon's event loop (at start, or on a refresh thread).
//
// Thread safety: resolve() is reentrant (it reads the environment through `env`).
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "transport/aws/sigv4.h"

namespace heartbeatd::transport::aws {

struct CredentialOptions {
  std::string profile;  // empty: AWS_PROFILE, else "default"
  std::chrono::milliseconds http_timeout{1000};
  // The environment; tests inject their own. Default: ::getenv.
  std::function<std::optional<std::string>(const std::string&)> env;
  // Unix seconds; tests inject. Default: the system clock.
  std::function<std::int64_t()> now;
};

// Credentials, or nullopt with *why saying what was tried and what failed, e.g.
// "no AWS credentials found: environment: AWS_ACCESS_KEY_ID not set; shared files:
// /root/.aws/credentials not found, ...; container: ...; instance metadata: ...", or, when a
// configured source is broken, "AWS credentials: shared files: profile prod not found (...)".
// Credentials::source is "environment", "profile NAME in FILE", "container endpoint URL" or
// "instance metadata role ROLE". AWS_CONTAINER_CREDENTIALS_FULL_URI's host must be an IP
// literal of those allowed (or "localhost"): names are not resolved to check them.
// Credentials that carry an Expiration already past (by `now`) are an error.
std::optional<Credentials> resolve_credentials(const CredentialOptions& options, std::string* why);

}  // namespace heartbeatd::transport::aws
