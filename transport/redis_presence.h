// Presence on Redis (presence.backend: redis): the same semantics as the embedded table
// (membership/presence_table.h), kept in Redis so that several heartbeatd nodes share one
// presence space. docs/REDIS.md describes the data model and the failure behaviour; in short:
//
//   key "<prefix>:{<shard>}" (a sorted set per shard, `shards` of them, spread over the
//   cluster's slots by their hash tag): member = decimal user id, score = last-seen Unix ms,
//   negated once the user logged out.
//   heartbeat   ZADD key GT now id        (GT: a late or skewed write never moves time back)
//   logout      a 1-line script that negates a positive score
//   status      ZMSCORE per shard         online: score > now - timeout
//   counts      ZCOUNT per shard          online, and tracked (younger than forget_after)
//   forgetting  ZREMRANGEBYSCORE per shard, every sweep_interval, by every node (idempotent)
//
// Everything runs on the daemon's io_context through a connection pool per Redis master;
// results come back through callbacks on pool threads. Redis Cluster: the slot map is read
// with CLUSTER SLOTS from the configured nodes, MOVED updates it (and triggers a re-read),
// ASK is followed for the one command, and a connection failure re-reads the map, so that a
// failover is followed within the cluster's own failover time plus one refresh.
//
// Thread safety: every public function from any thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/system/error_code.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "transport/metrics.h"
#include "transport/redis_client.h"
#include "transport/redis_cluster.h"

namespace heartbeatd::transport::redis {

struct PresenceOptions {
  std::vector<NodeAddress> nodes;  // cluster: seeds; standalone: the one server
  bool cluster = false;
  std::string username;  // empty: AUTH with the password only (or no AUTH at all)
  std::string password;  // empty: no AUTH
  std::string key_prefix = "hb";
  unsigned shards = 64;
  PoolOptions pool;  // host and port are set per node
  std::chrono::milliseconds command_timeout{1000};
  // No new attempt (redirection, reconnect) starts after this much time: a request is
  // answered within about request_deadline + pool.wait + command_timeout.
  std::chrono::milliseconds request_deadline{1000};
  // A user's heartbeats within this window of the one written are answered without a write.
  std::chrono::milliseconds dedup_window{1000};
  std::chrono::milliseconds sweep_interval{60'000};
  std::chrono::milliseconds timeout{30'000};
  std::chrono::milliseconds forget_after{24LL * 3600 * 1000};
};

struct UserStatus {
  bool online = false;
  std::optional<std::int64_t> last_seen_ms;  // Unix ms; nullopt: unknown or forgotten
};

struct PresenceCounts {
  std::uint64_t online = 0;
  std::uint64_t tracked = 0;
};

// Why a request could not be answered: for the API's 503 message.
struct Failure {
  boost::system::error_code code;  // pool errors, connection errors
  std::string message;             // what to tell the client
  bool pool_exhausted = false;     // pool_timeout or pool_full: Retry-After
  explicit operator bool() const { return !message.empty(); }
};

struct PresenceHealth {
  bool ok = false;              // the slot map is known and every master's pool reaches it
  std::string problem;          // why not, when !ok
  std::vector<std::string> masters;  // "host:port"
};

class Presence {
 public:
  // Unix microseconds; the system clock in the daemon. A heartbeat's time is rounded up to
  // the millisecond and the time it is judged at rounded down, so that a user is never
  // reported offline before a whole timeout has passed.
  using Clock = std::function<std::int64_t()>;
  Presence(boost::asio::io_context& io, PresenceOptions options, Clock wall_ms);
  ~Presence();
  Presence(const Presence&) = delete;
  Presence& operator=(const Presence&) = delete;

  // Opens the pools (and, for a cluster, starts reading the slot map); never blocks.
  void start();
  void stop();

  // presence.timeout changes on SIGHUP.
  void set_timeout(std::chrono::milliseconds timeout);

  void heartbeat(std::vector<std::uint64_t> ids, std::function<void(Failure)> done);
  void logout(std::uint64_t id, std::function<void(Failure)> done);
  void status(std::vector<std::uint64_t> ids,
              std::function<void(Failure, std::vector<UserStatus>)> done);
  void counts(std::function<void(Failure, PresenceCounts)> done);

  PresenceHealth health() const;
  // heartbeatd_redis_* families.
  void write_metrics(MetricsWriter& w) const;

  // The key of a user's shard, for tests and tools.
  std::string key_of(std::uint64_t id) const;

  struct State;  // defined in redis_presence.cpp

 private:
  std::shared_ptr<State> state_;
};

}  // namespace heartbeatd::transport::redis
