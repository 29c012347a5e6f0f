// The presence verdict: whether an end user is online, offline or forgotten, written once and
// used by every presence store (the embedded table, Redis) and by the user watch. It is the
// shared detection model's fixed timeout (detection.h: FixedTimeout, judge()) plus the two
// things only users have: an explicit logout, which is offline at once, and forget_after,
// past which a user is not known at all.
//
// Pure logic: no clock reads; callers pass the age of the last heartbeat (now minus last
// seen, in whatever clock their store keeps). Thread safety: free functions on values.
#pragma once

#include <algorithm>
#include <cstdint>

#include "membership/clock.h"
#include "membership/detection.h"

namespace heartbeatd::membership {

enum class UserPresence : std::uint8_t { online, offline, forgotten };

// `age`: time since the last heartbeat; negative (a heartbeat stamped after "now" by another
// thread or node) counts as zero. Online while age < timeout (judge()'s boundary rule) unless
// logged out; forgotten from forget_after on, logged out or not.
inline UserPresence judge_user(Duration age, bool logged_out, Duration timeout,
                               Duration forget_after) {
  age = std::max(age, Duration::zero());
  if (age >= forget_after) return UserPresence::forgotten;
  if (logged_out) return UserPresence::offline;
  return judge(FixedTimeout(timeout).deadlines(), age) == Verdict::alive ? UserPresence::online
                                                                         : UserPresence::offline;
}

// The moment a user last seen at `last_seen` goes offline if no heartbeat comes: the first
// instant judge_user() no longer says online.
inline TimePoint offline_at(TimePoint last_seen, Duration timeout) {
  return last_seen + FixedTimeout(timeout).deadlines().dead_after;
}

}  // namespace heartbeatd::membership
