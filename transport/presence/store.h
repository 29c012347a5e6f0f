// PresenceStore: where end users' last heartbeats live, behind one interface that the
// presence routes, the event hub, the metrics and the daemon use without knowing which store
// it is. Two stores implement it today: the embedded table (transport/presence/memory_store.h,
// over membership::PresenceTable) and Redis (transport/presence/redis_store.h); a remote
// store such as DynamoDB is a third implementation of the same calls.
//
// Every store judges with the one verdict of membership/presence_rule.h. Every call is
// batch-first and asynchronous: it answers through its completion exactly once, possibly
// before the call returns (the embedded table always does) or later from another thread (a
// remote store). A store that cannot answer (unreachable, overloaded) says so as a
// StoreFailure with kind `unavailable`, which the API answers 503 with Retry-After: never a
// guessed "offline". Times a store hands out are wall-clock Unix milliseconds.
//
// Online bits: online_bits() answers one bit per id (the shape of the API's ?format=bits,
// docs/API.md) for callers that need no last-seen times. Its default packs status(); a store
// that can judge online without making last-seen times (the embedded table) overrides it.
//
// User events: the event hub watches users (reference-counted by the hub; the store sees
// one watch() per user that becomes watched and one unwatch() when it stops being). The
// store reports the watched users' online/offline transitions to its listener, whichever
// node caused them; it may report other users too (the hub filters) and may repeat a state
// (the hub reports only changes).
//
// Thread safety: every call from any thread. set_listener() before start().
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/metrics.h"
#include "membership/clock.h"

namespace heartbeatd::membership {
class PresenceTable;
}  // namespace heartbeatd::membership

namespace heartbeatd::transport {

using UserId = std::uint64_t;

struct UserStatus {
  bool online = false;
  std::optional<std::int64_t> last_seen_ms;  // Unix ms; nullopt: never seen, or forgotten
};

struct UserCounts {
  std::uint64_t online = 0;
  std::uint64_t tracked = 0;  // online, or offline and seen within forget_after
};

struct UserChange {
  UserId user = 0;
  bool online = false;
  std::optional<std::int64_t> last_seen_ms;  // Unix ms of the last heartbeat
  bool operator==(const UserChange&) const = default;
};

struct StoreFailure {
  enum class Kind {
    none,
    unavailable,  // the store could not answer: 503 with Retry-After
    full,         // heartbeats: new users refused (presence.max_users): 507
  };
  Kind kind = Kind::none;
  std::string message;  // what to tell the client
  // kind full: heartbeats that were applied, and new users refused.
  std::size_t accepted = 0;
  std::size_t refused = 0;
  explicit operator bool() const { return kind != Kind::none; }
  static StoreFailure unavailable(std::string why) { return {Kind::unavailable, std::move(why)}; }
};

struct StoreHealth {
  std::string backend;  // "memory", "redis"
  bool ok = true;
  std::string problem;               // why not, when !ok
  std::vector<std::string> servers;  // a remote store's servers ("host:port")
};

// Bit i%8 of byte i/8 (least significant first) is 1 when statuses[i] is online; exactly
// ceil(n/8) bytes, the unused high bits of the last byte 0.
inline std::string pack_online_bits(std::span<const UserStatus> statuses) {
  std::string bits((statuses.size() + 7) / 8, '\0');
  for (std::size_t i = 0; i < statuses.size(); ++i) {
    if (statuses[i].online) bits[i / 8] = static_cast<char>(bits[i / 8] | 1 << (i % 8));
  }
  return bits;
}

class PresenceStore {
 public:
  using Done = std::function<void(StoreFailure)>;
  using StatusDone = std::function<void(StoreFailure, std::span<const UserStatus>)>;
  using OnlineBitsDone = std::function<void(StoreFailure, std::string bits)>;
  using CountsDone = std::function<void(StoreFailure, UserCounts)>;
  using ChangeListener = std::function<void(std::span<const UserChange>)>;

  virtual ~PresenceStore() = default;

  // Starts background work (expiry, forgetting, subscriptions); never blocks. stop() ends it
  // and answers what is pending with a failure. Both idempotent.
  virtual void start() = 0;
  virtual void stop() = 0;

  // A heartbeat for each id (duplicates allowed). The ids are read before the call returns.
  virtual void heartbeat(std::span<const UserId> ids, Done done) = 0;
  // Explicit offline: at once, last-seen kept. An unknown user is no error.
  virtual void logout(UserId id, Done done) = 0;
  // statuses[i] for ids[i]. The ids are read before the call returns.
  virtual void status(std::span<const UserId> ids, StatusDone done) = 0;
  // status() reduced to pack_online_bits(): ceil(n/8) bytes, bit i for ids[i]. The ids are
  // read before the call returns.
  virtual void online_bits(std::span<const UserId> ids, OnlineBitsDone done) {
    status(ids, [done = std::move(done)](StoreFailure f, std::span<const UserStatus> st) {
      if (f) return done(std::move(f), {});
      done({}, pack_online_bits(st));
    });
  }
  virtual void counts(CountsDone done) = 0;

  // presence.timeout changed (SIGHUP): applies to every user at once.
  virtual void set_timeout(membership::Duration timeout) = 0;

  virtual void set_listener(ChangeListener listener) = 0;
  virtual void watch(std::span<const UserId> ids) = 0;
  virtual void unwatch(std::span<const UserId> ids) = 0;

  virtual StoreHealth health() const = 0;
  // The store's own metric families (heartbeatd_users_* and backend-specific ones).
  virtual void write_metrics(MetricsWriter& w) const = 0;

  // The table a local store keeps, for snapshots and restore (persist/); nullptr when the
  // state lives elsewhere and is not this node's to persist.
  virtual membership::PresenceTable* local_table() { return nullptr; }
};

}  // namespace heartbeatd::transport
