// UserWatch on a manual clock: transitions at their exact boundary (timeout, logout), the
// "came and went between two polls" case, references shared between subscribers, and the cap.
#include "membership/user_watch.h"

#include <gtest/gtest.h>

#include <vector>

namespace heartbeatd::membership {
namespace {

using namespace std::chrono_literals;

class UserWatchTest : public ::testing::Test {
 protected:
  ManualClock clock;
  PresenceTable table{PresenceOptions{1s, 1h, 1000}, clock.now() - 2h};
  UserWatch watch{3};
  std::vector<UserWatch::State> states;

  std::vector<UserWatch::Transition> poll() {
    std::vector<UserWatch::Transition> out;
    watch.poll(table, clock.now(), out);
    return out;
  }
};

TEST_F(UserWatchTest, OnlineAtTheHeartbeatOfflineExactlyAtTheTimeout) {
  const UserId ids[] = {1, 2};
  table.heartbeat(1, clock.now());
  ASSERT_TRUE(watch.add(ids, table, clock.now(), &states));
  ASSERT_EQ(states.size(), 2u);
  EXPECT_TRUE(states[0].online);
  EXPECT_FALSE(states[1].online);
  EXPECT_FALSE(states[1].last_seen);
  EXPECT_TRUE(poll().empty());

  const auto seen = clock.now() + 10ms;
  clock.set(seen);
  table.heartbeat(2, seen);
  auto t = poll();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].user, 2u);
  EXPECT_TRUE(t[0].online);
  EXPECT_EQ(t[0].last_seen, seen);

  // User 1 crosses its timeout 10 ms before user 2.
  clock.set(seen + 1s - 10ms - 1ms);
  EXPECT_TRUE(poll().empty());
  clock.set(seen + 1s - 10ms);
  t = poll();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].user, 1u);
  EXPECT_FALSE(t[0].online);
  clock.set(seen + 1s - 1ms);
  EXPECT_TRUE(poll().empty());
  clock.set(seen + 1s);
  t = poll();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].user, 2u);
  EXPECT_FALSE(t[0].online);
  EXPECT_EQ(t[0].last_seen, seen);
  EXPECT_TRUE(poll().empty());
}

TEST_F(UserWatchTest, AVisitBetweenTwoPollsIsReportedAsBothTransitions) {
  const UserId ids[] = {7};
  ASSERT_TRUE(watch.add(ids, table, clock.now(), &states));
  table.heartbeat(7, clock.now());
  table.logout(7, clock.now());
  auto t = poll();
  ASSERT_EQ(t.size(), 2u);
  EXPECT_TRUE(t[0].online);
  EXPECT_FALSE(t[1].online);
  EXPECT_TRUE(poll().empty());
  // An explicit offline of an online user.
  clock.advance(5ms);
  table.heartbeat(7, clock.now());
  ASSERT_EQ(poll().size(), 1u);
  table.logout(7, clock.now());
  t = poll();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_FALSE(t[0].online);
}

TEST_F(UserWatchTest, TimedOutAndBackBetweenTwoPollsIsBothTransitions) {
  const UserId ids[] = {3};
  const auto first = clock.now();
  table.heartbeat(3, first);
  ASSERT_TRUE(watch.add(ids, table, clock.now(), &states));
  EXPECT_TRUE(states[0].online);
  // The next heartbeat exactly one timeout later: the user was offline at that instant.
  clock.set(first + 1s);
  table.heartbeat(3, clock.now());
  auto t = poll();
  ASSERT_EQ(t.size(), 2u);
  EXPECT_FALSE(t[0].online);
  EXPECT_EQ(t[0].last_seen, first);
  EXPECT_TRUE(t[1].online);
  EXPECT_EQ(t[1].last_seen, first + 1s);
  // A heartbeat within the timeout is no transition.
  clock.advance(999ms);
  table.heartbeat(3, clock.now());
  EXPECT_TRUE(poll().empty());
}

TEST_F(UserWatchTest, ReferencesAreCountedAndTheCapHolds) {
  const UserId a[] = {1, 2}, b[] = {2, 3}, c[] = {4};
  ASSERT_TRUE(watch.add(a, table, clock.now(), &states));
  ASSERT_TRUE(watch.add(b, table, clock.now(), &states));
  EXPECT_EQ(watch.size(), 3u);
  EXPECT_FALSE(watch.add(c, table, clock.now(), &states));  // a 4th distinct user
  EXPECT_EQ(watch.size(), 3u);
  watch.remove(a);
  EXPECT_EQ(watch.size(), 2u);  // 2 is still watched through b
  table.heartbeat(2, clock.now());
  table.heartbeat(1, clock.now());
  auto t = poll();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].user, 2u);
  ASSERT_TRUE(watch.add(c, table, clock.now(), &states));
  watch.remove(b);
  watch.remove(c);
  EXPECT_EQ(watch.size(), 0u);
  EXPECT_TRUE(poll().empty());
}

TEST_F(UserWatchTest, AUserJoiningAWatchStartsFromItsStateThen) {
  const UserId ids[] = {5};
  table.heartbeat(5, clock.now());
  ASSERT_TRUE(watch.add(ids, table, clock.now(), &states));
  EXPECT_TRUE(states[0].online);
  // A second subscriber to the same user gets the state the first one last heard.
  clock.advance(2s);
  ASSERT_TRUE(watch.add(ids, table, clock.now(), &states));
  EXPECT_TRUE(states[0].online);
  auto t = poll();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_FALSE(t[0].online);
}

}  // namespace
}  // namespace heartbeatd::membership
