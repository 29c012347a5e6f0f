#include "membership/presence_table.h"

#include "membership/hash.h"
#include "membership/presence_rule.h"

#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <limits>
#include <stdexcept>
#include <utility>

namespace heartbeatd::membership {
namespace {

using Tick = std::uint32_t;

std::uint64_t mix(std::uint64_t k) {
  return mix64(k);
}

// `n` users' indices grouped by shard (a counting sort): shard sh's users are
// order[start[sh]] .. order[start[sh + 1] - 1], and hashes[i] is mix() of user i's id.
struct ShardOrder {
  std::array<std::uint32_t, PresenceTable::kShards + 1> start{};
  std::vector<std::uint32_t> order;
  std::vector<std::uint64_t> hashes;
};

template <class IdOf>
ShardOrder order_by_shard(std::size_t n, IdOf id_of) {
  constexpr std::size_t kShards = PresenceTable::kShards;
  ShardOrder g;
  g.order.resize(n);
  g.hashes.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    g.hashes[i] = mix(id_of(i));
    ++g.start[(g.hashes[i] & (kShards - 1)) + 1];
  }
  for (std::size_t i = 1; i <= kShards; ++i) g.start[i] += g.start[i - 1];
  std::array<std::uint32_t, kShards> fill{};
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t sh = g.hashes[i] & (kShards - 1);
    g.order[g.start[sh] + fill[sh]++] = static_cast<std::uint32_t>(i);
  }
  return g;
}

// Maps a hash onto [0, n) with its high bits (Lemire's fast range); the shard is chosen
// from the low bits, so the two choices are independent.
__extension__ using Uint128 = unsigned __int128;  // GCC and Clang on 64-bit targets
std::size_t fast_range(std::uint64_t hash, std::size_t n) {
  return static_cast<std::size_t>((static_cast<Uint128>(hash) * n) >> 64);
}

// Signed distance a - b between two wrapping ticks.
std::int32_t tick_diff(Tick a, Tick b) {
  return static_cast<std::int32_t>(a - b);
}

// A bucket: (tag << 32) | expired flag | count. The flag marks a millisecond that advance()
// (or set_timeout()) has moved out of the window, so that a heartbeat stamped with it that
// arrives late (its thread stalled for a whole timeout between reading the clock and
// counting) is not counted into a bucket nobody will expire again.
constexpr std::uint32_t kExpiredFlag = 1u << 31;
constexpr std::uint64_t pack(Tick tag, std::uint32_t count) {
  return (static_cast<std::uint64_t>(tag) << 32) | count;
}
constexpr Tick tag_of(std::uint64_t v) {
  return static_cast<Tick>(v >> 32);
}
constexpr std::uint32_t count_of(std::uint64_t v) {
  return static_cast<std::uint32_t>(v) & ~kExpiredFlag;
}
constexpr bool expired(std::uint64_t v) {
  return (static_cast<std::uint32_t>(v) & kExpiredFlag) != 0;
}

std::int64_t to_ms(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// Large arrays come straight from mmap and go straight back with munmap, so a table that grew
// (allocating the new array before freeing the old) leaves no freed-but-retained heap behind:
// resident memory tracks the table's own size.
template <class T>
struct PageAllocator {
  using value_type = T;
  static constexpr std::size_t kMmapFrom = 16 << 10;
  PageAllocator() = default;
  template <class U>
  PageAllocator(const PageAllocator<U>&) {}  // NOLINT: rebinding
  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    if (bytes < kMmapFrom) return static_cast<T*>(::operator new(bytes));
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    // Random lookups over gigabytes of slots are TLB-bound on 4 KiB pages.
    if (bytes >= (2u << 20)) madvise(p, bytes, MADV_HUGEPAGE);
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    if (bytes < kMmapFrom) {
      ::operator delete(p);
    } else {
      munmap(p, bytes);
    }
  }
  template <class U>
  bool operator==(const PageAllocator<U>&) const {
    return true;
  }
};

// An open-addressing Robin Hood table of Key -> (tick, logged-out flag). Key and tick share a
// packed slot (8 or 12 bytes) so a lookup costs one cache miss; the two flag bitmaps are 1/32
// of the slots' size and mostly stay in cache.
template <class Key>
class SlotTable {
  struct [[gnu::packed]] Slot {
    Key key;
    Tick ts;
  };

 public:
  static constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();

  // Starts loading the cache line where `key` would live. Safe without the shard lock: it
  // reads an atomic snapshot of the array, and a stale one only makes a useless prefetch.
  // `hash` is mix(key), computed once by the caller.
  void prefetch(std::uint64_t hash) const {
    const auto* base = static_cast<const char*>(snapshot_base_.load(std::memory_order_relaxed));
    const std::size_t cap = snapshot_cap_.load(std::memory_order_relaxed);
    if (base && cap) __builtin_prefetch(base + fast_range(hash, cap) * sizeof(Slot));
  }

  std::size_t find(Key key, std::uint64_t hash) const {
    if (size_ == 0) return npos;
    std::size_t pos = fast_range(hash, cap_);
    for (std::size_t dist = 0;; ++dist) {
      if (!occupied(pos)) return npos;
      if (slots_[pos].key == key) return pos;
      // Robin Hood's early exit: a resident nearer its home than we are to ours means the key
      // is absent. Checked every 4th slot only: it costs a hash, and probing a few slots
      // further is cheaper than hashing at every one.
      if ((dist & 3) == 3 && distance(pos) < dist) return npos;
      if (++pos == cap_) pos = 0;
    }
  }

  // Key must not be present. Returns its slot.
  std::size_t insert(Key key, Tick ts) {
    if (size_ + 1 > cap_ * kMaxLoadNum / kMaxLoadDen) grow();
    std::size_t pos = home(key);
    std::size_t dist = 0;
    std::size_t placed = npos;
    bool out = false;
    while (true) {
      if (!occupied(pos)) {
        slots_[pos] = Slot{key, ts};
        set_bit(occupied_, pos, true);
        set_bit(logged_out_, pos, out);
        ++size_;
        return placed == npos ? pos : placed;
      }
      const std::size_t resident = distance(pos);
      if (resident < dist) {
        // Take from the rich: the resident is nearer its home than we are to ours.
        const Slot resident_slot = slots_[pos];
        slots_[pos] = Slot{key, ts};
        key = resident_slot.key;
        ts = resident_slot.ts;
        const bool resident_out = bit(logged_out_, pos);
        set_bit(logged_out_, pos, out);
        out = resident_out;
        if (placed == npos) placed = pos;
        dist = resident;
      }
      if (++pos == cap_) pos = 0;
      ++dist;
    }
  }

  // Backward-shift deletion: no tombstones, probe lengths stay short.
  void erase(std::size_t pos) {
    std::size_t next = pos + 1 == cap_ ? 0 : pos + 1;
    while (occupied(next) && distance(next) > 0) {
      slots_[pos] = slots_[next];
      set_bit(logged_out_, pos, bit(logged_out_, next));
      pos = next;
      next = pos + 1 == cap_ ? 0 : pos + 1;
    }
    set_bit(occupied_, pos, false);
    set_bit(logged_out_, pos, false);
    --size_;
  }

  Tick ts(std::size_t pos) const { return slots_[pos].ts; }
  Key key(std::size_t pos) const { return slots_[pos].key; }
  void set_ts(std::size_t pos, Tick t) { slots_[pos].ts = t; }
  bool logged_out(std::size_t pos) const { return bit(logged_out_, pos); }
  void set_logged_out(std::size_t pos, bool v) { set_bit(logged_out_, pos, v); }
  std::size_t size() const { return size_; }

  // f(pos, ts, logged_out) for each occupied slot; f returns true to erase the slot. Erasing
  // shifts later entries back, so the same position is looked at again.
  template <class F>
  std::size_t erase_if(F f) {
    std::size_t erased = 0;
    // Start just after an empty slot so no cluster wraps around the start unseen.
    std::size_t start = 0;
    while (start < cap_ && occupied(start)) ++start;
    for (std::size_t i = 0; i < cap_; ++i) {
      const std::size_t pos = (start + i) % cap_;
      while (occupied(pos) && f(pos, slots_[pos].ts, bit(logged_out_, pos))) {
        erase(pos);
        ++erased;
      }
    }
    return erased;
  }

  template <class F>
  void for_each(F f) const {
    for (std::size_t pos = 0; pos < cap_; ++pos) {
      if (occupied(pos)) f(pos, slots_[pos].ts, bit(logged_out_, pos));
    }
  }

  std::size_t memory_bytes() const {
    return cap_ * sizeof(Slot) + 2 * occupied_.size() * sizeof(std::uint64_t);
  }

  // Becomes a copy of `other`, reusing this table's memory: three flat copies (memcpy), so
  // the caller can hold `other`'s lock for far less time than a walk through it takes.
  void copy_from(const SlotTable& other) {
    slots_.assign(other.slots_.begin(), other.slots_.end());
    occupied_.assign(other.occupied_.begin(), other.occupied_.end());
    logged_out_.assign(other.logged_out_.begin(), other.logged_out_.end());
    size_ = other.size_;
    cap_ = other.cap_;
  }

 private:
  // Grow at 94% full by a tenth: right after growing the load is still 0.85, which is what
  // keeps a 32-bit user under 10 bytes (8.25 bytes a slot / 0.85).
  static constexpr std::size_t kMaxLoadNum = 94, kMaxLoadDen = 100;

  std::size_t home(Key key) const { return fast_range(mix(key), cap_); }
  std::size_t distance(std::size_t pos) const {
    const std::size_t h = home(slots_[pos].key);
    return pos >= h ? pos - h : pos + cap_ - h;
  }
  bool occupied(std::size_t pos) const { return bit(occupied_, pos); }
  using Bitmap = std::vector<std::uint64_t, PageAllocator<std::uint64_t>>;
  static bool bit(const Bitmap& v, std::size_t i) { return (v[i >> 6] >> (i & 63)) & 1; }
  static void set_bit(Bitmap& v, std::size_t i, bool on) {
    const std::uint64_t m = std::uint64_t{1} << (i & 63);
    v[i >> 6] = on ? (v[i >> 6] | m) : (v[i >> 6] & ~m);
  }

 public:
  // Room for `n` keys without growing, at a load of about 0.9 (restoring a snapshot: one
  // rebuild instead of one per tenth of growth).
  void reserve(std::size_t n) {
    if (n <= cap_ * kMaxLoadNum / kMaxLoadDen) return;
    rebuild(std::max<std::size_t>(16, n * 10 / 9 + 1));
  }

 private:
  void grow() { rebuild(std::max<std::size_t>(16, cap_ + cap_ / 10 + 1)); }

  void rebuild(std::size_t new_cap) {
    SlotTable next;
    next.cap_ = new_cap;
    next.slots_.resize(new_cap);
    next.occupied_.assign((new_cap + 63) / 64, 0);
    next.logged_out_.assign((new_cap + 63) / 64, 0);
    for (std::size_t pos = 0; pos < cap_; ++pos) {
      if (!occupied(pos)) continue;
      const std::size_t p =
          next.insert(slots_[pos].key, slots_[pos].ts);  // never grows: room for all
      next.set_bit(next.logged_out_, p, bit(logged_out_, pos));
    }
    slots_ = std::move(next.slots_);
    occupied_ = std::move(next.occupied_);
    logged_out_ = std::move(next.logged_out_);
    size_ = next.size_;
    cap_ = next.cap_;
    snapshot_base_.store(slots_.data(), std::memory_order_relaxed);
    snapshot_cap_.store(cap_, std::memory_order_relaxed);
  }

  std::vector<Slot, PageAllocator<Slot>> slots_;
  Bitmap occupied_;
  Bitmap logged_out_;
  std::size_t size_ = 0;
  std::size_t cap_ = 0;
  std::atomic<const void*> snapshot_base_{nullptr};  // slots_.data() and cap_, for prefetch()
  std::atomic<std::size_t> snapshot_cap_{0};
};

}  // namespace

struct PresenceTable::Shard {
  mutable std::mutex mu;
  SlotTable<std::uint32_t> narrow;  // ids below 2^32; guarded by mu
  SlotTable<std::uint64_t> wide;    // the rest; guarded by mu
};

namespace {

// Runs f on the table that holds (or would hold) `id`, with the key converted.
template <class Shard, class F>
auto with_table(Shard& s, UserId id, F f) {
  if (id <= std::numeric_limits<std::uint32_t>::max()) {
    return f(s.narrow, static_cast<std::uint32_t>(id));
  }
  return f(s.wide, id);
}

}  // namespace

PresenceTable::PresenceTable(PresenceOptions options, TimePoint epoch,
                             std::optional<TimePoint> now)
    : epoch_(epoch),
      options_(options),
      timeout_ms_(0),
      shards_(std::make_unique<Shard[]>(kShards)) {
  if (options.forget_after > kMaxForgetAfter || options.forget_after < options.timeout) {
    throw std::invalid_argument("PresenceTable: forget_after must be in [timeout, 20d]");
  }
  set_timeout(options.timeout, now.value_or(epoch));
}

PresenceTable::~PresenceTable() = default;

PresenceTable::Ms PresenceTable::ms_of(TimePoint t) const {
  return t <= epoch_ ? 0 : to_ms(t - epoch_);
}

// Stored ticks are the low 32 bits of a millisecond count; `now` supplies the high bits.
PresenceTable::Ms PresenceTable::unwrap(Tick stored, Ms now) const {
  return now - tick_diff(static_cast<Tick>(now), stored);
}

TimePoint PresenceTable::time_of(Ms ms) const {
  return epoch_ + std::chrono::milliseconds(ms);
}

PresenceTable::Shard& PresenceTable::shard_for(std::uint64_t hash) const {
  return shards_[hash & (kShards - 1)];
}

Duration PresenceTable::timeout() const {
  return std::chrono::milliseconds(timeout_ms_.load());
}

std::atomic<std::uint64_t>& PresenceTable::bucket(Ms ms) const {
  const auto r = static_cast<Ms>(ring_size_);
  return ring_[static_cast<std::size_t>(((ms % r) + r) % r)];
}

void PresenceTable::expire_bucket(Ms ms, Ms limit) {
  // The bucket is stamped with this very millisecond, expired, even if nobody was counted in
  // it (it still held an older lap's tag): a heartbeat for it arriving late must find it
  // expired, not take it for an old lap's bucket to reuse.
  auto& b = bucket(ms);
  const std::uint64_t done = pack(static_cast<Tick>(ms), kExpiredFlag);
  std::uint64_t v = b.load(std::memory_order_acquire);
  while (v != done && tick_diff(tag_of(v), static_cast<Tick>(limit)) <= 0) {
    if (b.compare_exchange_weak(v, done, std::memory_order_acq_rel)) {
      online_.fetch_sub(count_of(v), std::memory_order_relaxed);
      return;
    }
  }
}

void PresenceTable::count_in(Ms ms, std::uint32_t n) {
  auto& b = bucket(ms);
  const Tick tag = static_cast<Tick>(ms);
  std::uint64_t v = b.load(std::memory_order_acquire);
  while (true) {
    const std::int32_t d = tick_diff(tag_of(v), tag);
    if (d > 0) return;                 // the window already moved past this millisecond: not online
    if (d == 0 && expired(v)) return;  // likewise
    // d < 0: the bucket still counts a millisecond a whole ring ago that nobody expired yet;
    // those users are out of the window, so expire them here.
    const std::uint64_t next = pack(tag, d == 0 ? count_of(v) + n : n);
    if (b.compare_exchange_weak(v, next, std::memory_order_acq_rel)) {
      online_.fetch_add(
          static_cast<std::int64_t>(n) - (d == 0 ? 0 : static_cast<std::int64_t>(count_of(v))),
          std::memory_order_relaxed);
      return;
    }
  }
}

void PresenceTable::count_out(Tick stored, Ms now) {
  const Ms ms = unwrap(stored, now);
  if (now - ms >= timeout_ms_.load(std::memory_order_relaxed)) return;  // already expired
  auto& b = bucket(ms);
  const Tick tag = static_cast<Tick>(ms);
  std::uint64_t v = b.load(std::memory_order_acquire);
  while (tag_of(v) == tag && !expired(v) && count_of(v) > 0) {
    if (b.compare_exchange_weak(v, pack(tag, count_of(v) - 1), std::memory_order_acq_rel)) {
      online_.fetch_sub(1, std::memory_order_relaxed);
      return;
    }
  }
}

PresenceTable::HeartbeatResult PresenceTable::heartbeat(UserId id, TimePoint now) {
  const std::uint64_t hash = mix(id);
  Shard& s = shard_for(hash);
  std::lock_guard lock(s.mu);
  return heartbeat_locked(s, id, hash, ms_of(now), nullptr);
}

PresenceTable::HeartbeatResult PresenceTable::heartbeat_locked(Shard& s, UserId id,
                                                               std::uint64_t hash, Ms ms,
                                                               std::uint32_t* deferred) {
  // Batches count their users into the current millisecond once per shard (`deferred`):
  // one atomic update per shard instead of one per user on the hottest cache line.
  auto count = [&](Ms at) {
    if (deferred && at == ms) {
      ++*deferred;
    } else {
      count_in(at);
    }
  };
  return with_table(s, id, [&](auto& table, auto key) {
    const std::size_t pos = table.find(key, hash);
    if (pos == table.npos) {
      if (tracked_.fetch_add(1, std::memory_order_relaxed) >= options_.max_users) {
        tracked_.fetch_sub(1, std::memory_order_relaxed);
        return HeartbeatResult::table_full;
      }
      table.insert(key, static_cast<Tick>(ms));
      count(ms);
      return HeartbeatResult::ok;
    }
    const Tick old = table.ts(pos);
    // A racing thread may have stamped a later time: last-seen never moves backwards.
    const Ms seen = unwrap(old, ms);
    const Ms newest = std::max(ms, seen);
    const bool was_out = table.logged_out(pos);
    // Already counted in this very millisecond (or deferred into it by this batch): the
    // user stays in the same bucket.
    if (!was_out && seen == newest) return HeartbeatResult::ok;
    if (!was_out) count_out(old, ms);
    table.set_ts(pos, static_cast<Tick>(newest));
    table.set_logged_out(pos, false);
    count(newest);
    return HeartbeatResult::ok;
  });
}

template <class F, class Done>
void PresenceTable::for_each_by_shard(std::span<const UserId> ids, F f, Done shard_done) const {
  // Visit the users shard by shard (one lock each) in a counting-sort order, prefetching the
  // slot of the user a few places ahead so that cache misses overlap instead of queueing
  // (6 measured best among 4..48 on the benchmark machine).
  constexpr std::size_t kAhead = 6;
  if (ids.empty()) return;
  const auto [start, order, hashes] =
      order_by_shard(ids.size(), [&](std::size_t i) { return ids[i]; });
  auto prefetch = [&](std::size_t k) {
    const std::size_t i = order[k];
    with_table(shard_for(hashes[i]), ids[i],
               [&](const auto& table, auto) { table.prefetch(hashes[i]); });
  };
  // Concurrent batches start at different shards so they do not queue on the same locks.
  const std::size_t first = batch_cursor_.fetch_add(1, std::memory_order_relaxed) * 89 % kShards;
  const std::size_t first_k = start[first];
  auto in_order = [&](std::size_t k) { return (first_k + k) % order.size(); };
  for (std::size_t k = 0; k < std::min(kAhead, order.size()); ++k) prefetch(in_order(k));
  std::size_t k = 0;
  for (std::size_t n = 0; n < kShards; ++n) {
    const std::size_t sh = (first + n) % kShards;
    if (start[sh] == start[sh + 1]) continue;
    std::lock_guard lock(shards_[sh].mu);
    for (std::size_t end = k + (start[sh + 1] - start[sh]); k < end; ++k) {
      if (k + kAhead < order.size()) prefetch(in_order(k + kAhead));
      const std::size_t i = order[in_order(k)];
      f(shards_[sh], i, hashes[i]);
    }
    shard_done();
  }
}

void PresenceTable::status_batch(std::span<const UserId> ids, TimePoint now,
                                 std::span<Status> out) const {
  const Ms ms = ms_of(now);
  for_each_by_shard(ids, [&](const Shard& s, std::size_t i, std::uint64_t hash) {
    out[i] = status_locked(s, ids[i], hash, ms);
  });
}

void PresenceTable::online_batch(std::span<const UserId> ids, TimePoint now,
                                 std::span<std::uint8_t> bits) const {
  const Ms ms = ms_of(now);
  for_each_by_shard(ids, [&](const Shard& s, std::size_t i, std::uint64_t hash) {
    const auto judged = judged_locked(s, ids[i], hash, ms);
    const bool online = judged && judged->online;
    bits[i / 8] = static_cast<std::uint8_t>(bits[i / 8] | online << (i % 8));
  });
}

PresenceTable::BatchResult PresenceTable::heartbeat_batch(std::span<const UserId> ids,
                                                          TimePoint now) {
  BatchResult r;
  if (tracked_.load(std::memory_order_relaxed) + ids.size() > options_.max_users) {
    // Might not fit: count the new users first so that a refused batch changes nothing.
    std::size_t fresh = 0;
    for_each_by_shard(ids, [&](const Shard& s, std::size_t i, std::uint64_t hash) {
      fresh += with_table(
          s, ids[i], [&](auto& table, auto key) { return table.find(key, hash) == table.npos; });
    });
    const std::size_t tracked = tracked_.load();
    const std::size_t room = options_.max_users - std::min(options_.max_users, tracked);
    if (fresh > room) {
      r.rejected_new = fresh - room;
      return r;
    }
  }
  const Ms ms = ms_of(now);
  std::uint32_t deferred = 0;
  // Each shard's deferred count goes in before its lock is released. Later would be wrong:
  // another thread could then move or log out one of these users and find nothing to count
  // out of this millisecond (the user would stay counted twice), or set_timeout() could
  // replace the ring and recount them first.
  for_each_by_shard(
      ids,
      [&](Shard& s, std::size_t i, std::uint64_t hash) {
        if (heartbeat_locked(s, ids[i], hash, ms, &deferred) == HeartbeatResult::ok) {
          ++r.accepted;
        } else {
          ++r.rejected_new;  // lost a race with another batch for the last free places
        }
      },
      [&] {
        if (deferred) count_in(ms, std::exchange(deferred, 0));
      });
  return r;
}

bool PresenceTable::logout(UserId id, TimePoint now) {
  const Ms ms = ms_of(now);
  const std::uint64_t hash = mix(id);
  Shard& s = shard_for(hash);
  std::lock_guard lock(s.mu);
  return with_table(s, id, [&](auto& table, auto key) {
    const std::size_t pos = table.find(key, hash);
    if (pos == table.npos) return false;
    if (!table.logged_out(pos)) count_out(table.ts(pos), ms);
    table.set_logged_out(pos, true);
    return true;
  });
}

PresenceTable::Status PresenceTable::status(UserId id, TimePoint now) const {
  const std::uint64_t hash = mix(id);
  const Shard& s = shard_for(hash);
  std::lock_guard lock(s.mu);
  return status_locked(s, id, hash, ms_of(now));
}

std::optional<PresenceTable::Judged> PresenceTable::judged_locked(const Shard& s, UserId id,
                                                                  std::uint64_t hash,
                                                                  Ms ms) const {
  return with_table(s, id, [&](const auto& table, auto key) -> std::optional<Judged> {
    const std::size_t pos = table.find(key, hash);
    if (pos == table.npos) return std::nullopt;
    const Ms seen = unwrap(table.ts(pos), ms);
    const auto verdict =
        judge_user(std::chrono::milliseconds(ms - seen), table.logged_out(pos),
                   std::chrono::milliseconds(timeout_ms_.load()), options_.forget_after);
    if (verdict == UserPresence::forgotten) return std::nullopt;
    return Judged{verdict == UserPresence::online, seen};
  });
}

PresenceTable::Status PresenceTable::status_locked(const Shard& s, UserId id, std::uint64_t hash,
                                                   Ms ms) const {
  Status st;
  if (const auto judged = judged_locked(s, id, hash, ms)) {
    st.last_seen = time_of(judged->seen);
    st.online = judged->online;
  }
  return st;
}

void PresenceTable::export_shard(std::size_t shard, TimePoint now, std::vector<Record>& out) const {
  const Ms ms = ms_of(now);
  const Shard& s = shards_[shard];
  // The shard's lock is held only for a flat copy of its tables (tens of microseconds at
  // 40,000 users a shard; the walk below takes several times that): the snapshot thread runs
  // at a low priority, and if it is preempted while it holds the lock, every heartbeat to
  // the shard waits with it (issue #20). The copies are kept per thread, so after the first
  // snapshot they cost no allocation.
  thread_local SlotTable<std::uint32_t> narrow;
  thread_local SlotTable<std::uint64_t> wide;
  {
    std::lock_guard lock(s.mu);
    narrow.copy_from(s.narrow);
    wide.copy_from(s.wide);
  }
  auto copy = [&](const auto& table) {
    table.for_each([&](std::size_t pos, Tick ts, bool out_flag) {
      const Ms seen = unwrap(ts, ms);
      if (judge_user(std::chrono::milliseconds(ms - seen), out_flag, timeout(),
                     options_.forget_after) == UserPresence::forgotten) {
        return;
      }
      out.push_back(Record{table.key(pos), time_of(seen), out_flag});
    });
  };
  out.reserve(out.size() + narrow.size() + wide.size());
  copy(narrow);
  copy(wide);
}

PresenceTable::RestoreResult PresenceTable::restore(std::span<const Record> users, TimePoint now) {
  RestoreResult r;
  const Ms ms = ms_of(now);
  const Duration timeout = this->timeout();
  // Shard by shard (a counting sort of the users by shard), each shard locked once and its
  // tables sized for the newcomers first: restoring 10^7 users is then a pass of inserts
  // into tables that never grow.
  const auto [start, order, hashes] =
      order_by_shard(users.size(), [&](std::size_t i) { return users[i].id; });
  for (std::size_t sh = 0; sh < kShards; ++sh) {
    if (start[sh] == start[sh + 1]) continue;
    Shard& s = shards_[sh];
    std::lock_guard lock(s.mu);
    std::size_t narrow = 0;
    for (std::size_t k = start[sh]; k < start[sh + 1]; ++k) {
      narrow += users[order[k]].id <= std::numeric_limits<std::uint32_t>::max();
    }
    s.narrow.reserve(s.narrow.size() + narrow);
    s.wide.reserve(s.wide.size() + (start[sh + 1] - start[sh] - narrow));
    for (std::size_t k = start[sh]; k < start[sh + 1]; ++k) {
      const Record& u = users[order[k]];
      // Before the table's epoch is before anything it can store: such a user is forgotten
      // (the daemon sets the epoch forget_after before its start).
      const Ms seen = std::min(ms, u.last_seen <= epoch_ ? Ms{-1} : ms_of(u.last_seen));
      const auto verdict = judge_user(std::chrono::milliseconds(ms - seen), u.logged_out, timeout,
                                      options_.forget_after);
      if (seen < 0 || verdict == UserPresence::forgotten) {
        ++r.forgotten;
        continue;
      }
      const bool added = with_table(s, u.id, [&](auto& table, auto key) {
        if (table.find(key, hashes[order[k]]) != table.npos) return false;
        if (tracked_.fetch_add(1, std::memory_order_relaxed) >= options_.max_users) {
          tracked_.fetch_sub(1, std::memory_order_relaxed);
          return false;
        }
        const std::size_t pos = table.insert(key, static_cast<Tick>(seen));
        table.set_logged_out(pos, u.logged_out);
        return true;
      });
      if (!added) {
        ++r.over_limit;
        continue;
      }
      ++r.restored;
      if (verdict == UserPresence::online) {
        count_in(seen);
      }
    }
  }
  return r;
}

void PresenceTable::advance(TimePoint now) {
  std::lock_guard lock(advance_mu_);
  // Buckets at or before `limit` are out of the window (age >= timeout).
  const Ms limit = ms_of(now) - timeout_ms_.load();
  if (limit <= expired_upto_) return;
  const Ms from = std::max(expired_upto_ + 1, limit - static_cast<Ms>(ring_size_) + 1);
  for (Ms m = from; m <= limit; ++m) expire_bucket(m, limit);
  expired_upto_ = limit;
}

PresenceTable::Counts PresenceTable::counts(TimePoint now) {
  advance(now);
  return {static_cast<std::size_t>(std::max<std::int64_t>(0, online_.load())), tracked_.load()};
}

std::size_t PresenceTable::sweep(TimePoint now, std::size_t shards) {
  const Ms ms = ms_of(now);
  const Ms forget_ms = to_ms(options_.forget_after);
  std::size_t dropped = 0;
  for (std::size_t n = 0; n < std::min(shards, kShards); ++n) {
    Shard& s = shards_[sweep_cursor_.fetch_add(1) % kShards];
    std::lock_guard lock(s.mu);
    // forget_after >= timeout, so a forgotten user is already counted out of the ring.
    auto forget = [&](std::size_t, Tick stored, bool) {
      return ms - unwrap(stored, ms) >= forget_ms;
    };
    const std::size_t d = s.narrow.erase_if(forget) + s.wide.erase_if(forget);
    tracked_.fetch_sub(d, std::memory_order_relaxed);
    dropped += d;
  }
  return dropped;
}

void PresenceTable::set_timeout(Duration timeout, TimePoint now) {
  if (timeout <= Duration::zero() || timeout > kMaxPresenceTimeout ||
      timeout > options_.forget_after) {
    throw std::invalid_argument("PresenceTable: timeout must be in (0, min(1h, forget_after)]");
  }
  std::lock_guard advance_lock(advance_mu_);
  std::vector<std::unique_lock<std::mutex>> locks;
  locks.reserve(kShards);
  for (std::size_t i = 0; i < kShards; ++i) locks.emplace_back(shards_[i].mu);

  const Ms t_ms = std::max<Ms>(1, to_ms(timeout));
  const Ms ms = ms_of(now);
  timeout_ms_ = t_ms;
  ring_size_ = static_cast<std::size_t>(t_ms) + 1;
  ring_ = std::make_unique<std::atomic<std::uint64_t>[]>(ring_size_);
  // Every bucket starts empty and expired, stamped with the last millisecond it stood for
  // before the window (so a late heartbeat from before the window is not counted).
  const Ms limit = ms - t_ms;
  // Relaxed: every reader and writer of the ring takes one of the locks held here first.
  for (Ms m = limit - static_cast<Ms>(ring_size_) + 1; m <= limit; ++m) {
    bucket(m).store(pack(static_cast<Tick>(m), kExpiredFlag), std::memory_order_relaxed);
  }
  expired_upto_ = limit;
  online_ = 0;
  for (std::size_t i = 0; i < kShards; ++i) {
    auto recount = [&](std::size_t, Tick stored, bool out) {
      const Ms seen = unwrap(stored, ms);
      if (!out && seen > limit) count_in(seen);
    };
    shards_[i].narrow.for_each(recount);
    shards_[i].wide.for_each(recount);
  }
}

std::size_t PresenceTable::memory_bytes() const {
  std::size_t total = ring_size_ * sizeof(std::uint64_t);
  for (std::size_t i = 0; i < kShards; ++i) {
    std::lock_guard lock(shards_[i].mu);
    total += shards_[i].narrow.memory_bytes() + shards_[i].wide.memory_bytes();
  }
  return total;
}

}  // namespace heartbeatd::membership
