// RedisServer: a real redis-server (Debian's) for tests, on a free loopback port, with no
// persistence, in a scratch directory. start() waits for it to answer PING (deadline);
// stop() kills it; start() again brings it back on the same port.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "tests/support/test_util.h"

namespace heartbeatd::test {

class RedisServer {
 public:
  // Empty when redis-server is not installed (scripts/setup installs it).
  static std::string binary();
  explicit RedisServer(std::vector<std::string> extra_args = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  bool start(std::chrono::milliseconds deadline = std::chrono::seconds(10));
  void stop();  // SIGKILL, then reaped
  std::uint16_t port() const { return port_; }
  // One command in RESP over a fresh connection; the raw reply ("" on failure).
  std::string command(const std::string& resp) const;

 private:
  TempDir dir_;
  std::vector<std::string> extra_;
  std::uint16_t port_;
  pid_t pid_ = -1;
};

}  // namespace heartbeatd::test
