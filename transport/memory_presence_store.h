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
// not call back into the store.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "membership/presence_table.h"
#include "membership/user_watch.h"
#include "transport/presence_store.h"

namespace heartbeatd::transport {

class MemoryPresenceStore final : public PresenceStore {
 public:
  // The table's epoch lies forget_after (and a minute) before clock.now(), so that users
  // restored from a snapshot keep last-seen times from before the restart.
  MemoryPresenceStore(boost::asio::io_context& io, membership::PresenceOptions options,
                      const membership::Clock& clock,
                      std::shared_ptr<std::atomic<std::int64_t>> wall_anchor);
  ~MemoryPresenceStore() override;

  void start() override;
  void stop() override;
  void heartbeat(std::span<const UserId> ids, Done done) override;
  void logout(UserId id, Done done) override;
  void status(std::span<const UserId> ids, StatusDone done) override;
  void counts(CountsDone done) override;
  void set_timeout(membership::Duration timeout) override;
  void set_listener(ChangeListener listener) override;
  void watch(std::span<const UserId> ids) override;
  void unwatch(std::span<const UserId> ids) override;
  StoreHealth health() const override;
  void write_metrics(MetricsWriter& w) const override;
  membership::PresenceTable* local_table() override { return &table_; }

  // Reports the watched users whose deadline passed by the clock's now. The store's timer
  // calls it; tests on a manual clock call it after moving the clock.
  void expire_watched();

 private:
  std::int64_t unix_ms(membership::TimePoint t) const;
  // With watch_mu_ held: hands `changes_` to the listener, and makes sure the deadline timer
  // fires no later than the watch's earliest deadline.
  void publish_locked();
  void do_arm_deadline();
  void do_tick();

  boost::asio::io_context& io_;
  const membership::PresenceOptions options_;
  const membership::Clock& clock_;
  const std::shared_ptr<std::atomic<std::int64_t>> wall_anchor_;
  mutable membership::PresenceTable table_;  // mutable: counts() brings its ring up to date
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::steady_timer tick_timer_;      // on strand_
  boost::asio::steady_timer deadline_timer_;  // on strand_

  std::atomic<bool> any_watched_{false};
  std::mutex watch_mu_;
  membership::UserWatch watch_;                                 // guarded by watch_mu_
  ChangeListener listener_;                                     // set before start()
  std::vector<membership::UserWatch::Transition> transitions_;  // guarded by watch_mu_
  std::vector<UserChange> changes_;                             // guarded by watch_mu_
  std::optional<membership::TimePoint> armed_;  // guarded by watch_mu_: the timer's expiry
  bool stopped_ = false;                        // guarded by watch_mu_
};

}  // namespace heartbeatd::transport
