// DynamoDB's wire protocol (JSON 1.0 over HTTP POST, X-Amz-Target "DynamoDB_20120810.<Op>"),
// signed with SigV4, sent through one keep-alive pool (http_pool.h). Knows DynamoDB's
// requests and errors, not presence.
//
// call() retries what DynamoDB says to retry — throttling (ProvisionedThroughputExceeded,
// ThrottlingException, RequestLimitExceeded), 5xx, a broken connection or a pool without a
// free connection — with jittered exponential backoff (25 ms doubling to 400 ms, "full
// jitter"), but never starts an attempt after the call's deadline: a call is answered
// within about deadline + one attempt's timeout, and an error that survives the deadline
// is the caller's 503. Everything else (validation, a failed condition, a missing table,
// refused credentials) comes back at once.
//
// Thread safety: every call from any thread; completions run on the pool's threads.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/json/value.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>

#include "transport/aws/http_pool.h"
#include "transport/aws/sigv4.h"

namespace heartbeatd::transport::aws {

struct DynamoError {
  enum class Kind {
    none,
    throttled,    // DynamoDB asked to slow down (retried until the deadline)
    server,       // 5xx (retried until the deadline)
    network,      // no answer: connect, timeout, pool (retried until the deadline)
    credentials,  // signature or credentials refused (UnrecognizedClient, ExpiredToken, ...)
    not_found,    // ResourceNotFoundException: the table
    condition,    // ConditionalCheckFailedException
    invalid,      // any other 4xx: our request was wrong
  };
  Kind kind = Kind::none;
  std::string type;     // DynamoDB's __type after '#', or the transport error's name
  std::string message;  // one line, for logs and 503 bodies
  unsigned status = 0;  // HTTP status; 0 when there was no answer
  int attempts = 0;
  explicit operator bool() const { return kind != Kind::none; }
  bool retryable() const {
    return kind == Kind::throttled || kind == Kind::server || kind == Kind::network;
  }
};

// The pause before retry number `attempt` (1, 2, ...): "full jitter", uniform in
// [0, min(400 ms, 25 ms x 2^attempt)], so that clients throttled together do not retry
// together. For throttled calls and for UnprocessedItems/Keys alike.
std::chrono::milliseconds backoff_pause(int attempt);
// The same, drawing from `rng` (tests pass a seeded one, so that CI is deterministic).
std::chrono::milliseconds backoff_pause(int attempt, std::mt19937_64& rng);

// Classifies one answer (status and JSON body) as DynamoDB documents its errors.
DynamoError classify(unsigned status, const std::string& body);

struct DynamoClientOptions {
  std::string region;
  HttpPoolOptions pool;                              // the endpoint and its connections
  std::chrono::milliseconds attempt_timeout{1000};   // one HTTP exchange
  // The credentials to sign with, read at every request (they are refreshed in place).
  std::function<std::shared_ptr<const Credentials>()> credentials;
  std::function<std::int64_t()> unix_seconds;  // x-amz-date; default: the system clock
};

struct DynamoStats {
  std::uint64_t requests = 0;  // HTTP exchanges, retries included
  std::uint64_t retries = 0;
  std::uint64_t throttled = 0;
  std::uint64_t server_errors = 0;
  std::uint64_t network_errors = 0;
  std::uint64_t failed = 0;  // calls answered with an error
  double read_units = 0;     // ConsumedCapacity reported by DynamoDB
  double write_units = 0;
};

// Made with std::make_shared: answers in flight keep it alive.
class DynamoClient : public std::enable_shared_from_this<DynamoClient> {
 public:
  using Done = std::function<void(DynamoError, boost::json::value)>;
  DynamoClient(boost::asio::io_context& io, DynamoClientOptions options);
  ~DynamoClient();
  DynamoClient(const DynamoClient&) = delete;
  DynamoClient& operator=(const DynamoClient&) = delete;

  void start();
  void stop();

  // `op`: "GetItem", "BatchWriteItem", ... The body is sent as given (add
  // "ReturnConsumedCapacity":"TOTAL" to have the units counted in stats()).
  void call(std::string op, boost::json::object body,
            std::chrono::steady_clock::time_point deadline, Done done);

  DynamoStats stats() const;
  HttpPoolStats pool_stats() const;
  const Endpoint& endpoint() const { return options_.pool.endpoint; }

 private:
  struct Call;
  void attempt(std::shared_ptr<Call> c);
  void count_capacity(const boost::json::value& answer, std::string_view op);

  boost::asio::io_context& io_;
  const DynamoClientOptions options_;
  HttpPool pool_;
  mutable std::mutex mu_;
  DynamoStats stats_;  // guarded by mu_
  std::shared_ptr<std::atomic<bool>> stopped_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace heartbeatd::transport::aws
