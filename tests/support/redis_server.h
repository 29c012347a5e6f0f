// RedisServer: a real redis-server (Debian's) for tests, on a free loopback port, with no
// persistence, in a scratch directory. start() waits for it to answer PING (deadline);
// stop() kills it; start() again brings it back on the same port.
#pragma once

#include <sys/types.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
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

  // Starts redis-server and waits for PING. A server that exits at once on its first start
  // lost its port to another process between free_tcp_port() and its bind (tests run in
  // parallel): it is started again on a fresh port, so read port() after start(). A restart
  // keeps the port. exited() says whether the last failure was such an exit.
  bool start(std::chrono::milliseconds deadline = std::chrono::seconds(10));
  bool exited() const { return exited_; }
  void stop();  // SIGKILL, then reaped
  std::uint16_t port() const { return port_; }
  // Commands in RESP over a fresh connection: the raw replies, `replies` of them whole ("" on
  // failure or when they are not all complete within two seconds).
  std::string command(const std::string& resp, int replies = 1) const;

 private:
  TempDir dir_;
  std::vector<std::string> extra_;
  std::uint16_t port_;
  pid_t pid_ = -1;
  bool started_ = false;  // answered PING once: the port is its own from then on
  bool exited_ = false;
};

// An io_context run by two threads, as the daemon's API threads run theirs, until the object
// goes away. Declare it before whatever uses `io`, so that goes away first.
class IoThreads {
 public:
  IoThreads();
  ~IoThreads();
  IoThreads(const IoThreads&) = delete;
  IoThreads& operator=(const IoThreads&) = delete;
  boost::asio::io_context io;

 private:
  using WorkGuard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
  std::unique_ptr<WorkGuard> work_ = std::make_unique<WorkGuard>(boost::asio::make_work_guard(io));
  std::vector<std::thread> threads_;
};

}  // namespace heartbeatd::test
