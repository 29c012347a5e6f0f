// Snapshotter: writes the daemon's state to the Store on a thread of its own, and puts it back
// at start (docs/PERSISTENCE.md).
//
// Presence is snapshotted every `interval` and by snapshot_on_stop(); each snapshot copies one
// table shard at a time (holding only that shard's lock, for the time of a copy), encodes it off
// every lock, and streams the chunks into one table file that joins the database in one step
// (Store::write_presence), so heartbeats and queries go on while it runs. Membership (this node's
// incarnation and the member list) is written with every snapshot, and at once when this node's
// incarnation changes (request_membership()).
//
// Time: the table and the protocol count monotonic time, which does not survive a restart;
// the snapshot stores wall-clock Unix milliseconds, converted at the moment of the snapshot,
// and restore converts back against the wall clock of the new process.
//
// Thread safety: start(), stop(), snapshot_on_stop() and set_interval() from the owner's thread;
// request_membership() and stats() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/wall_time.h"
#include "membership/clock.h"
#include "membership/presence_table.h"
#include "membership/protocol.h"
#include "persist/store.h"

namespace heartbeatd::persist {

// What the membership protocol knows, for a snapshot.
struct MembershipView {
  std::string self_name;
  std::uint64_t incarnation = 0;
  std::vector<membership::MemberInfo> members;  // self excluded or flagged
};

struct SnapshotStats {
  std::optional<std::int64_t> last_ms;  // Unix ms of the last complete snapshot
  std::uint64_t users = 0;
  std::uint64_t bytes = 0;       // of its chunks
  std::uint64_t disk_bytes = 0;  // of the whole database, after it
  std::chrono::milliseconds duration{0};
  std::uint64_t snapshots = 0;
  std::uint64_t failures = 0;
  std::optional<std::string> last_error;  // cleared by the next success
};

// Unix milliseconds <-> monotonic time points, through the API's wall-clock anchor
// (base/wall_time.h), so a last-seen time reads the same before and after a restart.
class WallConverter {
 public:
  WallConverter(membership::TimePoint mono_now, std::atomic<std::int64_t>& anchor,
                const WallClock& wall_clock = SystemWallClock::instance())
      : now_(mono_now), wall_(mono_now, anchor, wall_clock) {}
  std::int64_t to_unix_ms(membership::TimePoint t) const { return wall_.unix_ms(t); }
  // Times after now (the wall clock was stepped back since) become now; times more than
  // 100 years back (only a damaged record holds them) become 100 years back.
  membership::TimePoint to_mono(std::int64_t unix_ms) const {
    constexpr std::int64_t kMaxAgeMs = 100LL * 365 * 24 * 3600 * 1000;
    const std::int64_t now_ms = wall_.unix_ms(now_);
    if (unix_ms >= now_ms) return now_;
    std::int64_t age = 0;
    if (__builtin_sub_overflow(now_ms, unix_ms, &age) || age > kMaxAgeMs) {
      return now_ - std::chrono::milliseconds(kMaxAgeMs);
    }
    return wall_.mono_of(unix_ms);  // exact; before now, since unix_ms < now_ms
  }

 private:
  membership::TimePoint now_;
  WallTime wall_;
};

// Restore: what was loaded, turned into the table's and the protocol's terms.
struct RestoredMembership {
  std::uint64_t incarnation = 0;  // to start at: above the persisted one (0: none persisted)
  std::vector<membership::MemberInfo> members;
  std::size_t unreadable = 0;  // records whose address did not parse (left out)
};
RestoredMembership restore_membership(const LoadedState& state, const std::string& self_name,
                                      const WallConverter& wall);
std::vector<membership::PresenceTable::Record> to_table_records(
    const std::vector<UserRecord>& users, const WallConverter& wall);

class Snapshotter {
 public:
  using MembershipSource = std::function<std::optional<MembershipView>()>;
  // `table`: nullptr when presence lives elsewhere (Redis): snapshots then hold no users.
  Snapshotter(Store& store, membership::PresenceTable* table, const membership::Clock& clock,
              std::shared_ptr<std::atomic<std::int64_t>> wall_anchor, MembershipSource membership,
              std::chrono::milliseconds interval);
  ~Snapshotter();

  void start();
  // Stops the thread (a snapshot in progress completes first).
  // Stops the thread; a snapshot in progress is abandoned (snapshot_on_stop() follows).
  void stop();
  // The snapshot of a graceful stop, after stop(): everything, synchronously. nullopt when
  // written; otherwise the error.
  std::optional<std::string> snapshot_on_stop();
  // Asks the thread to write this node's incarnation and the member list soon (the
  // incarnation changed). Never blocks.
  void request_membership();
  void set_interval(std::chrono::milliseconds interval);
  SnapshotStats stats() const;

 private:
  void run();
  std::optional<std::string> snapshot_presence_and_membership();
  std::optional<std::string> write_membership();
  // This node's record and the member list, in one write; the caller holds write_mu_.
  std::optional<std::string> write_membership_locked(const MembershipView& view,
                                                     const WallConverter& wall);
  void record(std::optional<std::string> error, bool presence);

  Store& store_;
  membership::PresenceTable* const table_;
  const membership::Clock& clock_;
  std::shared_ptr<std::atomic<std::int64_t>> wall_anchor_;
  MembershipSource membership_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::chrono::milliseconds interval_;  // guarded by mu_
  bool stopping_ = false;               // guarded by mu_
  bool membership_wanted_ = false;      // guarded by mu_
  bool interval_changed_ = false;       // guarded by mu_
  SnapshotStats stats_;                 // guarded by mu_
  std::mutex write_mu_;                 // one write at a time
  std::uint64_t attempts_ = 0;          // presence snapshots begun (one at a time)
  std::atomic<bool> abandon_{false};    // stop(): the running snapshot gives up
  std::thread thread_;
};

}  // namespace heartbeatd::persist
