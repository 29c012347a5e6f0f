#include "membership/user_watch.h"

#include <algorithm>

#include "membership/presence_rule.h"

namespace heartbeatd::membership {

// At most one live heap entry per user: one already queued is earlier than any new
// deadline (deadlines only move later, but for set_timeout(), which rebuilds the heap), and
// expire() moves it on when it comes due.
void UserWatch::schedule(UserId id, Entry& e) {
  if (!e.online || !e.last_seen || e.queued) return;
  e.queued = offline_at(*e.last_seen, timeout_);
  heap_.push({*e.queued, id});
}

void UserWatch::add(UserId id, bool online, std::optional<TimePoint> last_seen) {
  auto [it, inserted] = users_.try_emplace(id);
  ++it->second.refs;
  if (!inserted) return;
  it->second.online = online && last_seen;
  it->second.last_seen = last_seen;
  schedule(id, it->second);
}

void UserWatch::remove(UserId id) {
  auto it = users_.find(id);
  if (it == users_.end()) return;
  if (--it->second.refs == 0) users_.erase(it);  // its heap entry is dropped when it comes due
}

void UserWatch::heartbeat(UserId id, TimePoint at, std::vector<Transition>& out) {
  auto it = users_.find(id);
  if (it == users_.end()) return;
  Entry& e = it->second;
  if (e.last_seen && at < *e.last_seen) at = *e.last_seen;  // never back in time
  if (e.online && offline_at(*e.last_seen, timeout_) <= at) {
    // Timed out before this heartbeat, and expire() has not run since.
    out.push_back({id, false, e.last_seen});
    e.online = false;
  }
  e.last_seen = at;
  if (e.online) return;  // its heap entry moves on when it comes due
  e.online = true;
  out.push_back({id, true, at});
  schedule(id, e);
}

void UserWatch::logout(UserId id, std::vector<Transition>& out) {
  auto it = users_.find(id);
  if (it == users_.end() || !it->second.online) return;
  it->second.online = false;
  out.push_back({id, false, it->second.last_seen});
}

void UserWatch::expire(TimePoint now, std::vector<Transition>& out) {
  while (!heap_.empty() && heap_.top().at <= now) {
    const Due due = heap_.top();
    heap_.pop();
    auto it = users_.find(due.user);
    if (it == users_.end() || it->second.queued != due.at) continue;  // not its live entry
    Entry& e = it->second;
    e.queued.reset();
    if (!e.online) continue;  // logged out since
    if (offline_at(*e.last_seen, timeout_) > now) {
      schedule(due.user, e);  // a heartbeat moved its deadline on
      continue;
    }
    e.online = false;
    out.push_back({due.user, false, e.last_seen});
  }
}

std::optional<TimePoint> UserWatch::next_deadline() const {
  if (heap_.empty()) return std::nullopt;
  return heap_.top().at;
}

void UserWatch::set_timeout(Duration timeout) {
  timeout_ = timeout;
  heap_ = {};
  for (auto& [id, e] : users_) {
    e.queued.reset();
    schedule(id, e);
  }
}

}  // namespace heartbeatd::membership
