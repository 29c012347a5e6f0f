// UserWatch: online/offline transitions of a chosen set of users (those named by event
// subscribers and by hooks.users), found from the events themselves rather than by polling:
// the store tells it each heartbeat and logout of a watched user, and a deadline heap holds
// the moment each online watched user goes offline if no heartbeat comes
// (membership/presence_rule.h: offline_at). The owner arms one timer for next_deadline()
// and calls expire() when it fires, so 10^5 watched users cost nothing while nothing
// happens, and an offline transition is reported at its deadline, not up to a poll later.
//
// Heartbeats move a user's deadline without touching the heap: an entry that comes due is
// checked against the user's current deadline and pushed again if it moved. A heartbeat
// that arrives after the deadline passed but before expire() ran reports both transitions
// (offline at the old last-seen, then online): the user really was offline in between.
//
// Time: never reads a clock; every call takes `now` (monotonic). Thread safety: none; the
// owner serialises (transport/presence/memory_store does, under its own lock).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <queue>
#include <unordered_map>
#include <vector>

#include "membership/clock.h"

namespace heartbeatd::membership {

class UserWatch {
 public:
  using UserId = std::uint64_t;

  struct Transition {
    UserId user = 0;
    bool online = false;
    std::optional<TimePoint> last_seen;
  };

  explicit UserWatch(Duration timeout) : timeout_(timeout) {}

  // One more reference to `id`; the first starts watching it from its state now (online with
  // its last heartbeat, or offline).
  void add(UserId id, bool online, std::optional<TimePoint> last_seen);
  // One reference fewer; the last one stops watching.
  void remove(UserId id);
  bool watching(UserId id) const { return users_.count(id) != 0; }

  // A heartbeat of `id` at `at` (nothing for an unwatched id).
  void heartbeat(UserId id, TimePoint at, std::vector<Transition>& out);
  // An explicit logout of `id`.
  void logout(UserId id, std::vector<Transition>& out);
  // Offline transitions of the users whose deadline is at or before `now`.
  void expire(TimePoint now, std::vector<Transition>& out);
  // The earliest deadline in the heap (an upper bound's worth of work: it may have moved).
  std::optional<TimePoint> next_deadline() const;

  // presence.timeout changed: every deadline moves at once.
  void set_timeout(Duration timeout);

  std::size_t size() const { return users_.size(); }

 private:
  struct Entry {
    std::size_t refs = 0;
    bool online = false;
    std::optional<TimePoint> last_seen;
    std::optional<TimePoint> queued;  // the `at` of its one live heap entry
  };
  struct Due {
    TimePoint at;
    UserId user;
    bool operator>(const Due& o) const { return at > o.at; }
  };
  void schedule(UserId id, Entry& e);

  Duration timeout_;
  std::unordered_map<UserId, Entry> users_;
  std::priority_queue<Due, std::vector<Due>, std::greater<>> heap_;
};

}  // namespace heartbeatd::membership
