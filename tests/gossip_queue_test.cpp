// GossipQueue: each update sent a limited number of times, least-sent and newest first;
// newer news supersedes older, suspicions from different accusers stay apart; the byte
// budget of a datagram holds.
#include "membership/gossip_queue.h"

#include <gtest/gtest.h>

#include <string>

#include "membership/wire_codec.h"

namespace heartbeatd::membership {
namespace {

Update alive(const std::string& name, std::uint64_t inc = 0) {
  return Update{MemberState::alive, name, Address::v4(0x7f000001, 7701), inc, {}};
}

TEST(GossipQueue, SendsEachUpdateALimitedNumberOfTimesLeastSentFirst) {
  GossipQueue q;
  q.push(alive("a"));
  q.push(alive("b"));
  auto first = q.take(kMaxBodyBytes, 255, 2);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].name, "b");  // newest first among equals
  q.push(alive("c"));
  auto second = q.take(kMaxBodyBytes, 1, 2);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].name, "c");  // never sent beats sent once
  auto third = q.take(kMaxBodyBytes, 255, 2);
  EXPECT_EQ(third.size(), 3u);
  EXPECT_TRUE(q.empty());  // each was sent twice: the limit
}

TEST(GossipQueue, NewerNewsSupersedesButAccusersStayApart) {
  GossipQueue q;
  q.push(alive("a", 1));
  q.push(Update{MemberState::suspect, "a", {}, 1, "x"});
  q.push(Update{MemberState::suspect, "a", {}, 1, "y"});
  EXPECT_EQ(q.size(), 2u);
  q.push(alive("a", 2));
  auto all = q.take(kMaxBodyBytes, 255, 5);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].incarnation, 2u);
}

TEST(GossipQueue, RespectsTheByteBudget) {
  GossipQueue q;
  for (int i = 0; i < 100; ++i) q.push(alive("member-" + std::to_string(i)));
  const auto budget = 10 * encoded_size(alive("member-10"));
  auto some = q.take(budget, 255, 5);
  std::size_t used = 0;
  for (const auto& u : some) used += encoded_size(u);
  EXPECT_LE(used, budget);
  EXPECT_GE(some.size(), 9u);
}

}  // namespace
}  // namespace heartbeatd::membership
