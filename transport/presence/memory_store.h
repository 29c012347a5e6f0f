// MemoryPresenceStore: presence.backend memory, the PresenceStore over the embedded
// membership::PresenceTable of this node. Every call answers before it returns. Monotonic
// times of the table become Unix milliseconds through one shared wall anchor
// (base/wall_time.h), the same one the snapshots use, so that a last-seen time reads the
// same before and after a restart.
//
// Background work, on timers of its own strand once start()ed: every 100 ms the table's
// online count follows users across the timeout and one shard of users past forget_after is
// forgotten (all 256 shards every 25.6 s); and one timer, armed for the earliest deadline of
// a watched user (membership::UserWatch), reports offline transitions as they happen.
// Heartbeats and logouts of watched users report theirs at once; with no watched user, the
// heartbeat path pays one relaxed atomic load for all this.
//
// Thread safety: every call from any thread. The listener runs under the watch's lock, on the
// caller's thread (a heartbeat) or on the strand (an expiry): in order per user, and it must
// not call back into the store. The timers' handlers share the store's state, so the store
// may go before its io_context (not after: its timers belong to it).
#pragma once

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <memory>

#include "base/wall_clock.h"
#include "membership/presence_table.h"
#include "transport/presence/store.h"

namespace heartbeatd::transport {

class MemoryPresenceStore final : public PresenceStore {
 public:
  // The table's epoch lies forget_after (and a minute) before clock.now(), so that users
  // restored from a snapshot keep last-seen times from before the restart.
  MemoryPresenceStore(boost::asio::io_context& io, membership::PresenceOptions options,
                      const membership::Clock& clock,
                      std::shared_ptr<std::atomic<std::int64_t>> wall_anchor,
                      const WallClock& wall_clock = SystemWallClock::instance());
  ~MemoryPresenceStore() override;

  void start() override;
  void stop() override;
  void heartbeat(std::span<const UserId> ids, Done done) override;
  void logout(UserId id, Done done) override;
  void status(std::span<const UserId> ids, StatusDone done) override;
  // Straight from the table: no last-seen times are made.
  void online_bits(std::span<const UserId> ids, OnlineBitsDone done) override;
  void counts(CountsDone done) override;
  void set_timeout(membership::Duration timeout) override;
  void set_listener(ChangeListener listener) override;
  void watch(std::span<const UserId> ids) override;
  void unwatch(std::span<const UserId> ids) override;
  StoreHealth health() const override;
  void write_metrics(MetricsWriter& w) const override;
  membership::PresenceTable* local_table() override;

  // Reports the watched users whose deadline passed by the clock's now. The store's timer
  // calls it; tests on a manual clock call it after moving the clock.
  void expire_watched();

 private:
  struct Core;  // what the timers' handlers share with the store; memory_presence_store.cpp
  std::shared_ptr<Core> core_;
};

}  // namespace heartbeatd::transport
