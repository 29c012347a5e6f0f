// Redis client for the presence backend (issue #7): connections that speak RESP through
// hiredis's encoder and reply parser, with the I/O on the daemon's own Asio loop (no
// thread per request, no blocking call), and a pool per Redis node with a minimum and a
// maximum size.
//
// Connection: one pipeline at a time (a pool lease is exclusive). exec() writes every
// command of the pipeline at once and hands back one reply per command, in order. A
// timeout, a broken connection or an unparsable reply closes the connection and fails the
// pipeline; the pool then replaces it.
//
// Pool: keeps `min` connections open (reconnecting with exponential backoff, 100 ms up to
// 5 s), opens more on demand up to `max`, closes idle ones beyond `min` after
// `idle_timeout`, and checks idle ones with PING every `health_interval`. A request that
// finds every connection busy waits in a bounded queue (`max_waiters`) for at most `wait`;
// then it fails with pool_timeout (or pool_full at once when the queue is full) — never
// unbounded memory, never a hang.
//
// Thread safety: Pool::acquire() and stats() from any thread; callbacks run on the pool's
// executor (never inside acquire()). A Lease is used by one thread at a time.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace heartbeatd::transport::redis {

// A reply, copied out of hiredis's structures.
struct Value {
  enum class Type { string, array, integer, nil, status, error };
  Type type = Type::nil;
  std::string str;            // string, status, error
  long long integer = 0;      // integer
  std::vector<Value> elements;  // array
  bool is_error() const { return type == Type::error; }
};

using Command = std::vector<std::string>;

enum class Errc {
  pool_timeout = 1,  // every connection stayed busy for `wait`
  pool_full,         // max_waiters requests are waiting already
  protocol,          // the server sent something that is not RESP
  closed,            // the connection or the pool was closed
  stopped,           // the pool is stopping
  rejected,          // Redis answered a connection's setup (AUTH) with an error
};
const boost::system::error_category& category();
boost::system::error_code make_error(Errc e);

class Connection;

class Lease {
 public:
  Lease() = default;
  Lease(Lease&&) noexcept = default;
  Lease& operator=(Lease&&) noexcept;
  ~Lease();
  explicit operator bool() const { return conn_ != nullptr; }
  // Runs a pipeline; `done` gets one reply per command, or the error that closed the
  // connection (the lease then returns nothing to the pool).
  void exec(std::vector<Command> commands, std::chrono::milliseconds timeout,
            std::function<void(boost::system::error_code, std::vector<Value>)> done);

 private:
  friend class Pool;
  struct Home;
  Lease(std::shared_ptr<Connection> conn, std::weak_ptr<Home> home)
      : conn_(std::move(conn)), home_(std::move(home)) {}
  std::shared_ptr<Connection> conn_;
  std::weak_ptr<Home> home_;
};

struct PoolOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 6379;
  std::size_t min = 1;
  std::size_t max = 8;
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds wait{100};
  std::size_t max_waiters = 1024;
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds health_interval{5000};
  // Sent on every new connection before it is used (AUTH); an error reply fails the connect.
  std::vector<Command> on_connect;
};

struct PoolStats {
  std::size_t open = 0;     // connected
  std::size_t idle = 0;     // open and not leased
  std::size_t waiting = 0;  // requests in the queue
  std::uint64_t connects = 0;
  std::uint64_t connect_failures = 0;
  std::uint64_t timeouts = 0;  // pool_timeout answers
  std::uint64_t rejected = 0;  // pool_full answers
  bool reachable = false;      // the last connect or health check succeeded
  std::string last_error;      // of the last failed connect, "" after a success
};

class Pool {
 public:
  Pool(boost::asio::io_context& io, PoolOptions options);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  void start();
  // Closes every connection and fails waiting requests with `stopped`. Idempotent.
  void stop();
  void acquire(std::function<void(boost::system::error_code, Lease)> done);
  PoolStats stats() const;

 private:
  std::shared_ptr<Lease::Home> home_;
};

}  // namespace heartbeatd::transport::redis
