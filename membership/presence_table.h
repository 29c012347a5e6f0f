// PresenceTable: which end users are online, in about 8-10 bytes per user.
//
// A user is online while its last heartbeat is younger than the timeout — the shared
// FixedTimeout policy of detection.h — unless it logged out explicitly since. Offline users
// keep their last-seen time until `forget_after`, then they are forgotten and their slot is
// reused.
//
// Layout. 256 shards, each with its own mutex and two open-addressing Robin Hood tables:
// one keyed by 32-bit ids (4-byte key + 4-byte timestamp per slot) and one by 64-bit ids
// (8 + 4, packed). "Occupied" and "logged out" are bitmaps beside the slots.
// Tables grow by 1/10 at a time so the load factor stays between 0.85 and 0.94: that is what
// keeps a 32-bit user under 10 bytes. Timestamps are milliseconds since the table's epoch,
// modulo 2^32; forget_after is capped at 20 days, well inside what a signed 32-bit
// difference of them can tell apart, so ages never alias.
//
// The online count. A ring of per-millisecond buckets covering the timeout counts the users
// whose last heartbeat fell in each millisecond. A heartbeat moves its user from the old
// bucket to the new one; advance() expires the buckets that fall out of the window and
// subtracts their counts. The count is therefore exact at millisecond resolution and needs
// no per-user memory. Buckets are 64-bit atomics tagged with the millisecond they count, so
// a heartbeat and advance() racing on the same bucket settle by compare-and-swap.
//
// Time: the table never reads a clock; every call takes `now` (monotonic). Its tick is one
// millisecond: times are floored to it.
//
// Thread safety: every method may be called from any thread at once. A call locks only the
// shard of the user it touches; set_timeout() locks every shard (it rebuilds the ring).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "membership/clock.h"
#include "membership/detection.h"

namespace heartbeatd::membership {

using UserId = std::uint64_t;

struct PresenceOptions {
  Duration timeout = std::chrono::seconds(30);  // beats every ~10 s: two may be lost
  Duration forget_after = std::chrono::hours(24);  // covers "last seen yesterday"
  std::size_t max_users = 10'000'000;  // ~100 MB; past it a new user's heartbeat gets 507
};

// Longest supported timeout and forget_after: the ring holds 8 bytes per millisecond of
// timeout, and stored timestamps are compared as signed 32-bit millisecond differences
// (24.8 days), which forget_after plus the sweep's lag must stay under.
inline constexpr Duration kMaxPresenceTimeout = std::chrono::hours(1);
inline constexpr Duration kMaxForgetAfter = std::chrono::hours(24 * 20);

class PresenceTable {
 public:
  // `epoch` is the earliest time the table can store; `now` (default: the epoch) is where the
  // window starts. A table whose epoch lies long before now (the daemon's: restored users keep
  // last-seen times from before a restart) must be given `now`, or its first advance() walks
  // and expires the whole ring, millisecond by millisecond.
  PresenceTable(PresenceOptions options, TimePoint epoch, std::optional<TimePoint> now = {});
  ~PresenceTable();
  PresenceTable(const PresenceTable&) = delete;
  PresenceTable& operator=(const PresenceTable&) = delete;

  enum class HeartbeatResult { ok, table_full };
  // Records a heartbeat. table_full: the user is new and max_users are tracked already.
  HeartbeatResult heartbeat(UserId id, TimePoint now);

  struct BatchResult {
    std::size_t accepted = 0;
    std::size_t rejected_new = 0;  // new users refused because the table is full
  };
  // Applies a whole batch, unless it cannot fit: when the batch's new users would exceed
  // max_users, nothing is applied and rejected_new says how many did not fit.
  BatchResult heartbeat_batch(std::span<const UserId> ids, TimePoint now);

  // Explicit offline (logout): offline at once, last-seen kept. False if the user is not
  // tracked.
  bool logout(UserId id, TimePoint now);

  struct Status {
    bool online = false;
    std::optional<TimePoint> last_seen;  // nullopt: never seen, or forgotten
  };
  Status status(UserId id, TimePoint now) const;
  // The status of many users at once (out[i] for ids[i]): faster than one by one, since the
  // users' memory is fetched in parallel and each shard is locked once.
  void status_batch(std::span<const UserId> ids, TimePoint now, std::span<Status> out) const;
  // Only whether each user is online, as bits: bit i%8 of bits[i/8] (least significant first)
  // is set when ids[i] is online. `bits` holds at least ceil(n/8) bytes, zeroed by the caller.
  // The same verdicts as status_batch(), without making last-seen times.
  void online_batch(std::span<const UserId> ids, TimePoint now, std::span<std::uint8_t> bits) const;

  struct Counts {
    std::size_t online = 0;
    std::size_t tracked = 0;
  };
  // Exact as of `now` (expires what crossed the timeout first).
  Counts counts(TimePoint now);

  // Expires ring buckets older than the timeout. Cheap; the daemon calls it on a timer so
  // the count follows users as they cross the timeout.
  void advance(TimePoint now);
  // Forgets users last seen `forget_after` ago or more, in `shards` shards (round robin).
  // Returns how many were dropped.
  std::size_t sweep(TimePoint now, std::size_t shards);
  static constexpr std::size_t kShards = 256;

  // A new timeout applies to every user at once (SIGHUP); rebuilds the ring by a full scan.
  void set_timeout(Duration timeout, TimePoint now);
  Duration timeout() const;

  // Snapshots (persist/). One user as it is stored: last heartbeat, and whether it logged
  // out since.
  struct Record {
    UserId id = 0;
    TimePoint last_seen;
    bool logged_out = false;
  };
  // Appends the users of shard `shard` (< kShards) to `out`, leaving out those already
  // forgotten. Holds only that shard's lock, for the time of a copy.
  void export_shard(std::size_t shard, TimePoint now, std::vector<Record>& out) const;
  struct RestoreResult {
    std::size_t restored = 0;
    std::size_t forgotten = 0;   // last seen forget_after ago or more: left out
    std::size_t over_limit = 0;  // beyond max_users, or already tracked
  };
  // Puts users back as they were (after a restart): a user whose last heartbeat is younger
  // than the timeout, and who did not log out, is online again. Last-seen times later than
  // `now` are taken as `now`. Meant for an empty table before it serves; safe at any time.
  RestoreResult restore(std::span<const Record> users, TimePoint now);

  // Bytes held by the table's slots and ring (what grows with users).
  std::size_t memory_bytes() const;

 private:
  struct Shard;
  using Tick = std::uint32_t;  // what a slot stores: milliseconds since epoch_, mod 2^32
  using Ms = std::int64_t;     // milliseconds since epoch_, unwrapped

  Ms ms_of(TimePoint t) const;
  // `hash` is the id's mix(), computed once: its low bits pick the shard, its high bits the
  // slot.
  HeartbeatResult heartbeat_locked(Shard& s, UserId id, std::uint64_t hash, Ms ms,
                                   std::uint32_t* deferred);
  // With s.mu held: whether `id` is online, and its last heartbeat; nothing for a user the
  // table does not hold or that is forgotten (even if not swept yet).
  struct Judged {
    bool online;
    Ms seen;
  };
  std::optional<Judged> judged_locked(const Shard& s, UserId id, std::uint64_t hash, Ms ms) const;
  Status status_locked(const Shard& s, UserId id, std::uint64_t hash, Ms ms) const;
  // f(Shard&, index, hash) for every id; after each shard's ids, shard_done(), still under
  // that shard's lock.
  template <class F, class Done = void (*)()>
  void for_each_by_shard(std::span<const UserId> ids, F f, Done shard_done = [] {}) const;
  Ms unwrap(Tick stored, Ms now) const;
  TimePoint time_of(Ms ms) const;
  Shard& shard_for(std::uint64_t hash) const;
  std::atomic<std::uint64_t>& bucket(Ms ms) const;
  // Ring bookkeeping; callers hold the user's shard lock (expire_bucket: advance_mu_).
  void count_in(Ms ms, std::uint32_t n = 1);
  void count_out(Tick stored, Ms now);
  void expire_bucket(Ms ms, Ms limit);

  const TimePoint epoch_;
  const PresenceOptions options_;
  std::atomic<std::int64_t> timeout_ms_;
  std::unique_ptr<Shard[]> shards_;
  std::atomic<std::size_t> tracked_{0};
  std::atomic<std::int64_t> online_{0};

  std::mutex advance_mu_;                               // one advancer at a time
  std::unique_ptr<std::atomic<std::uint64_t>[]> ring_;  // (tag << 32) | count
  std::size_t ring_size_ = 0;  // changed only with advance_mu_ and every shard locked
  Ms expired_upto_ = 0;        // guarded by advance_mu_
  std::atomic<std::size_t> sweep_cursor_{0};
  mutable std::atomic<std::size_t> batch_cursor_{0};  // rotates where batches start
};

}  // namespace heartbeatd::membership
