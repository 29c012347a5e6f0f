// DynamoFaultProxy: tests/dynamodb/fault_proxy.js under node, on a free loopback port, in
// front of a DynamoDB (dynalite) on another: forwards every call, and on command answers the
// next ones with throttling or 5xx, splits batches into a processed half and an unprocessed
// rest, or delays them; counts what went through. See fault_proxy.js for the control API.
#pragma once

#include <sys/types.h>

#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "tests/support/test_util.h"

namespace heartbeatd::test {

struct FaultProxyStats {
  std::map<std::string, std::int64_t> requests;  // by operation (X-Amz-Target's second part)
  std::int64_t total_requests = 0;
  std::int64_t items_written = 0;  // PutItem, UpdateItem, BatchWriteItem puts the upstream took
  std::int64_t items_deleted = 0;  // DeleteItem, BatchWriteItem deletes the upstream took
  std::int64_t items_read = 0;     // items GetItem and BatchGetItem returned
  std::int64_t throttled = 0;
  std::int64_t failed_500 = 0;
  std::int64_t failed_503 = 0;
  std::int64_t failed_other = 0;
  std::int64_t unprocessed = 0;  // batches split
  std::int64_t delayed = 0;
  boost::json::object raw;  // GET /__stats as it came
  std::int64_t operation(const std::string& name) const {
    auto it = requests.find(name);
    return it == requests.end() ? 0 : it->second;
  }
};

class DynamoFaultProxy {
 public:
  static std::string script();  // tests/dynamodb/fault_proxy.js
  // Empty when the proxy can run; else why not.
  static std::string problem();

  explicit DynamoFaultProxy(std::uint16_t upstream_port);
  ~DynamoFaultProxy();
  DynamoFaultProxy(const DynamoFaultProxy&) = delete;
  DynamoFaultProxy& operator=(const DynamoFaultProxy&) = delete;

  bool start(std::chrono::milliseconds deadline = std::chrono::seconds(15));
  void stop();  // SIGKILL, then reaped
  std::uint16_t port() const { return port_; }
  std::string endpoint() const;  // "http://127.0.0.1:PORT"
  std::string log() const;

  // The next n requests: 400 ProvisionedThroughputExceededException.
  bool throttle(int n);
  // The next n requests: `status` (500 InternalServerError, 503 ServiceUnavailableException).
  bool fail(int status, int n);
  // The next n BatchWriteItem / BatchGetItem: half forwarded, the rest unprocessed.
  bool unprocessed(int n);
  // The next n requests wait `by` first.
  bool delay(std::chrono::milliseconds by, int n);
  // No more pending faults (the counts stay).
  bool reset();
  std::optional<FaultProxyStats> stats() const;
  bool reset_stats();

 private:
  bool control(const std::string& json);
  TempDir dir_;
  std::uint16_t upstream_;
  std::uint16_t port_;
  pid_t pid_ = -1;
};

}  // namespace heartbeatd::test
