// GossipQueue: membership news waiting to be piggybacked on outgoing datagrams, each sent a
// bounded number of times (SWIM's infection-style dissemination; memberlist's
// TransmitLimitedQueue). The freshest and least-sent news goes first, so a change reaches
// everyone in O(log N) gossip rounds while per-datagram cost stays bounded.
//
// Newer news about a member supersedes what is queued about it; suspicions from different
// accusers are kept apart because each accusation counts as independent evidence.
//
// Not thread-safe: owned by one MembershipProtocol.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "membership/member.h"

namespace heartbeatd::membership {

class GossipQueue {
 public:
  void push(Update update);
  // Takes as many updates as fit in `budget_bytes` (encoded), at most `max_count`, fewest
  // transmissions first, newest first among equals; counts one transmission for each and
  // forgets those that reached `transmit_limit`.
  std::vector<Update> take(std::size_t budget_bytes, std::size_t max_count,
                           std::uint32_t transmit_limit);
  // Drops everything queued about `name` (the member was removed).
  void forget(const std::string& name);

  bool empty() const { return entries_.empty(); }
  std::size_t size() const { return entries_.size(); }

 private:
  using Key = std::pair<std::string, std::string>;  // member name, accuser (suspicions)
  struct Entry {
    Update update;
    std::uint32_t transmits = 0;
    std::uint64_t order = 0;  // push order; higher is newer
  };
  // Sending order: fewest transmissions, then newest.
  using Rank = std::tuple<std::uint32_t, std::uint64_t, const Key*>;
  static Rank rank(const Key& key, const Entry& e) { return {e.transmits, ~e.order, &key}; }
  void erase(std::map<Key, Entry>::iterator it);

  // What one push may supersede is one contiguous key range, and a take walks only the
  // head of the ranking: both stay cheap while a whole cluster joins at once.
  std::map<Key, Entry> entries_;
  std::set<Rank> ranking_;
  std::uint64_t next_order_ = 0;
};

}  // namespace heartbeatd::membership
