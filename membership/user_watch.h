// UserWatch: online/offline transitions of a chosen set of users (those named by event
// subscribers and by hooks.users), found by comparing each watched user's status in the
// PresenceTable with the one last reported. The daemon polls it every 100 ms, so a user's
// offline transition is reported at most ~100 ms after its timeout passed — without the
// table having to track who is watched, and at a cost that grows with the watched users
// only (a status_batch of them per poll).
//
// A user who came online and left again between two polls (a heartbeat then a logout within
// 100 ms) is reported as both transitions, in order: its last-seen time changed. So is one
// who timed out and came back between two polls (its new heartbeat is a timeout or more
// after the last one). Only a logout followed by a heartbeat within one poll goes unseen:
// the user is online before and after, and nothing in the table tells them apart.
//
// Time: never reads a clock; every call takes `now`. Thread safety: none; the caller
// serialises (transport/event_hub does, under its own lock).
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "membership/clock.h"
#include "membership/presence_table.h"

namespace heartbeatd::membership {

class UserWatch {
 public:
  explicit UserWatch(std::size_t max_users) : max_users_(max_users) {}

  struct State {
    bool online = false;
    std::optional<TimePoint> last_seen;
  };
  struct Transition {
    UserId user = 0;
    bool online = false;
    std::optional<TimePoint> last_seen;
  };

  // Adds one reference to each id (ids must be distinct) and returns in `states` the state
  // now known for each, the one later transitions start from. False, changing nothing, when
  // the distinct watched users would exceed max_users.
  bool add(std::span<const UserId> ids, const PresenceTable& table, TimePoint now,
           std::vector<State>* states);
  // Drops one reference to each id (as given to add()); a user with none left is unwatched.
  void remove(std::span<const UserId> ids);
  // Appends every transition since the last poll.
  void poll(const PresenceTable& table, TimePoint now, std::vector<Transition>& out);

  std::size_t size() const { return users_.size(); }
  std::size_t max_users() const { return max_users_; }

 private:
  struct Entry {
    std::size_t refs = 0;
    State reported;
  };
  const std::size_t max_users_;
  std::unordered_map<UserId, Entry> users_;
  // Reused by poll(): the ids in a flat array (rebuilt when the set changed) and statuses.
  std::vector<UserId> ids_;
  std::vector<PresenceTable::Status> statuses_;
  bool ids_stale_ = true;
};

}  // namespace heartbeatd::membership
