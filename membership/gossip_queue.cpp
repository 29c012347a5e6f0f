#include "membership/gossip_queue.h"

#include <algorithm>

#include "membership/wire_codec.h"

namespace heartbeatd::membership {

void GossipQueue::erase(std::map<Key, Entry>::iterator it) {
  ranking_.erase(rank(it->first, it->second));
  entries_.erase(it);
}

void GossipQueue::push(Update update) {
  // A suspicion only supersedes the same accuser's (or older incarnations); anything else
  // supersedes all news about the member.
  const bool suspicion = update.state == MemberState::suspect;
  auto it = entries_.lower_bound({update.name, std::string()});
  while (it != entries_.end() && it->first.first == update.name) {
    const auto& old = it->second.update;
    const bool keep = suspicion && old.state == MemberState::suspect && old.from != update.from &&
                      old.incarnation >= update.incarnation;
    if (keep) {
      ++it;
    } else {
      auto next = std::next(it);
      erase(it);
      it = next;
    }
  }
  Key key{update.name, suspicion ? update.from : std::string()};
  auto [pos, inserted] =
      entries_.emplace(std::move(key), Entry{std::move(update), 0, next_order_++});
  (void)inserted;  // any previous entry under this key was erased above
  ranking_.insert(rank(pos->first, pos->second));
}

std::vector<Update> GossipQueue::take(std::size_t budget_bytes, std::size_t max_count,
                                      std::uint32_t transmit_limit) {
  std::vector<Update> out;
  std::vector<const Key*> sent;
  std::size_t misses = 0;  // updates too big for what is left; give up after a few
  for (auto r = ranking_.begin(); r != ranking_.end() && out.size() < max_count && misses < 16;
       ++r) {
    const auto* key = std::get<2>(*r);
    const auto& e = entries_.find(*key)->second;
    const auto size = encoded_size(e.update);
    if (size > budget_bytes) {
      ++misses;
      continue;
    }
    budget_bytes -= size;
    out.push_back(e.update);
    sent.push_back(key);
  }
  for (const auto* key : sent) {
    auto it = entries_.find(*key);
    ranking_.erase(rank(it->first, it->second));
    if (++it->second.transmits >= transmit_limit) {
      entries_.erase(it);
    } else {
      ranking_.insert(rank(it->first, it->second));
    }
  }
  return out;
}

void GossipQueue::forget(const std::string& name) {
  auto it = entries_.lower_bound({name, std::string()});
  while (it != entries_.end() && it->first.first == name) {
    auto next = std::next(it);
    erase(it);
    it = next;
  }
}

}  // namespace heartbeatd::membership
