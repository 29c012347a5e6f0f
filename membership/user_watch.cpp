#include "membership/user_watch.h"

namespace heartbeatd::membership {

bool UserWatch::add(std::span<const UserId> ids, const PresenceTable& table, TimePoint now,
                    std::vector<State>* states) {
  std::size_t fresh = 0;
  for (UserId id : ids) fresh += users_.find(id) == users_.end();
  if (users_.size() + fresh > max_users_) return false;
  states->clear();
  states->reserve(ids.size());
  for (UserId id : ids) {
    auto [it, inserted] = users_.try_emplace(id);
    if (inserted) {
      const auto st = table.status(id, now);
      it->second.reported = {st.online, st.last_seen};
      ids_stale_ = true;
    }
    ++it->second.refs;
    states->push_back(it->second.reported);
  }
  return true;
}

void UserWatch::remove(std::span<const UserId> ids) {
  for (UserId id : ids) {
    auto it = users_.find(id);
    if (it == users_.end()) continue;
    if (--it->second.refs == 0) {
      users_.erase(it);
      ids_stale_ = true;
    }
  }
}

void UserWatch::poll(const PresenceTable& table, TimePoint now, std::vector<Transition>& out) {
  if (users_.empty()) return;
  if (ids_stale_) {
    ids_.clear();
    ids_.reserve(users_.size());
    for (const auto& [id, _] : users_) ids_.push_back(id);
    ids_stale_ = false;
  }
  statuses_.resize(ids_.size());
  table.status_batch(ids_, now, statuses_);
  for (std::size_t i = 0; i < ids_.size(); ++i) {
    const auto& st = statuses_[i];
    State& was = users_.find(ids_[i])->second.reported;
    if (st.online != was.online) {
      out.push_back({ids_[i], st.online, st.last_seen});
    } else if (!st.online && st.last_seen && st.last_seen != was.last_seen &&
               (!was.last_seen || *st.last_seen > *was.last_seen)) {
      // Online and offline again since the last poll.
      out.push_back({ids_[i], true, st.last_seen});
      out.push_back({ids_[i], false, st.last_seen});
    } else if (st.online && was.last_seen && st.last_seen &&
               *st.last_seen >= *was.last_seen + table.timeout()) {
      // Timed out and back since the last poll: the heartbeat came after the timeout.
      out.push_back({ids_[i], false, was.last_seen});
      out.push_back({ids_[i], true, st.last_seen});
    }
    was = {st.online, st.last_seen};
  }
}

}  // namespace heartbeatd::membership
