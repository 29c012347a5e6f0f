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
//   counts      3 ZCOUNTs per shard (online, tracked): O(log n) each, nothing scanned
//   forgetting  ZREMRANGEBYSCORE per shard, every sweep_interval, by every node (idempotent)
//
// User changes (issue #16): with one timeout for all, the set is also the deadline index
// (deadline = last-seen + timeout). In a shard some node watches (flag
// "<prefix>:{<shard>}:watched", set every second by the watchers), heartbeats and logouts are
// scripts that publish the shard's online/offline transitions on "<prefix>:{<shard>}:changes"
// (transport/presence/redis_changes.h has the format), and an expiry sweep, every expiry_interval,
// walks the set from its swept edge "<prefix>:{<shard>}:swept" to now - timeout and publishes what
// it passes as offline. Every node runs it, but only the holder of the shard's lease
// "<prefix>:{<shard>}:sweeper" (SET PX sweeper_lease, renewed by each sweep) does the work, so
// a node's death hands the shard over within the lease. Each script is atomic on its shard,
// so a transition is published once, whichever nodes race. Unwatched shards pay nothing: a
// heartbeat there stays one ZADD GT. Watching a user subscribes to its shard's channel on one
// pub/sub connection (transport/redis/subscriber.h).
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
#include <span>
#include <string>
#include <vector>

#include "base/metrics.h"
#include "transport/presence/redis_changes.h"
#include "transport/redis/client.h"
#include "transport/redis/cluster.h"

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
  // Passed deadlines are published as offline this often by the shard's lease holder: a
  // watcher sees a user go offline within timeout + expiry_interval (+ one round trip).
  std::chrono::milliseconds expiry_interval{200};
  // A node that stops renewing its shards' leases (it died) hands them over after this: the
  // bound becomes timeout + sweeper_lease + expiry_interval. Three renewals fit in it.
  std::chrono::milliseconds sweeper_lease{600};
  // In each lease's value ("<node_name>/<random>"), so that an operator sees who sweeps.
  std::string node_name;
  // The pub/sub connection's PING interval: a dead one is replaced within twice this.
  std::chrono::milliseconds subscriber_ping_interval{2000};
};

// The presence store's vocabulary (transport/presence/store.h).
using transport::UserStatus;
using PresenceCounts = transport::UserCounts;

// Why a request could not be answered: for the API's 503 message.
struct Failure {
  boost::system::error_code code;  // pool errors, connection errors
  std::string message;             // what to tell the client
  bool pool_exhausted = false;     // pool_timeout or pool_full: Retry-After
  explicit operator bool() const { return !message.empty(); }
};

struct PresenceHealth {
  bool ok = false;                   // the slot map is known and every master's pool reaches it
  std::string problem;               // why not, when !ok
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

  // Receives every online/offline transition of users in the watched users' shards, whichever
  // node caused it, in the order Redis published them (per shard). It also gets users' current
  // state (read with status(), as changes; possibly a state the caller already has): of newly
  // watched users once every node publishes their shards' transitions (about 3 s after
  // watch(); transitions before may or may not come), and of every watched user after the
  // pub/sub connection was broken and restored (changes published meanwhile are lost). Never
  // called concurrently (on the subscriber's strand or a pool thread); must not block. Set
  // before start().
  void set_change_listener(std::function<void(const std::vector<UserChange>&)> listener);
  // Reference-counted interest in users: the first watched user of a shard subscribes to that
  // shard's channel and flags the shard as watched in Redis (so that every node's heartbeats
  // there publish transitions), the last unwatch unsubscribes (the flag lapses within 3 s).
  // The listener may also get changes of other users of the same shards (the caller filters).
  void watch(std::span<const std::uint64_t> ids);
  void unwatch(std::span<const std::uint64_t> ids);

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
