// DedupCache: a remote presence store's memory of the heartbeats it wrote a moment ago, so
// that a user's heartbeats within `dedup_window` of the written one are answered without a
// write (a round trip on Redis, a billed write unit on DynamoDB). It understates a user's
// last-seen by at most the window, which presence.timeout dwarfs.
//
// Direct-mapped and fixed in size (64 stripes x 4096 slots, about 6 MiB): a collision only
// costs a write, never a wrong answer. Thread safety: every call from any thread (striped
// locks).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "membership/hash.h"

namespace heartbeatd::transport {

// id -> Unix ms of the heartbeat written for it.
class DedupCache {
 public:
  static constexpr std::size_t kStripes = 64;
  static constexpr std::size_t kSlotsPerStripe = 4096;

  bool recent(std::uint64_t id, std::int64_t now, std::int64_t window) {
    auto& s = stripe(id);
    std::lock_guard lock(s.mu);
    const auto& e = s.slots[slot(id)];
    return e.used && e.id == id && now - e.written_ms < window && now >= e.written_ms;
  }
  // Read before a heartbeat's write; remember() with it after the write succeeded. A logout
  // in between (forget()) changes it, so a heartbeat that raced a logout is not remembered:
  // Redis may have applied the logout after it, and the next heartbeat must then be written.
  std::uint64_t generation(std::uint64_t id) {
    auto& s = stripe(id);
    std::lock_guard lock(s.mu);
    return s.slots[slot(id)].generation;
  }
  void remember(std::uint64_t id, std::int64_t written, std::uint64_t generation) {
    auto& s = stripe(id);
    std::lock_guard lock(s.mu);
    auto& e = s.slots[slot(id)];
    if (e.generation != generation) return;
    e.id = id;
    e.written_ms = written;
    e.used = true;
  }
  void forget(std::uint64_t id) {
    auto& s = stripe(id);
    std::lock_guard lock(s.mu);
    auto& e = s.slots[slot(id)];
    ++e.generation;
    if (e.id == id) e.used = false;
  }

 private:
  struct Entry {
    std::uint64_t id = 0;
    std::int64_t written_ms = 0;
    std::uint64_t generation = 0;
    bool used = false;
  };
  struct Stripe {
    std::mutex mu;
    std::vector<Entry> slots = std::vector<Entry>(kSlotsPerStripe);
  };
  Stripe& stripe(std::uint64_t id) { return stripes_[membership::mix64(id) % kStripes]; }
  static std::size_t slot(std::uint64_t id) {
    return (membership::mix64(id) >> 8) % kSlotsPerStripe;
  }
  std::array<Stripe, kStripes> stripes_;
};

}  // namespace heartbeatd::transport
