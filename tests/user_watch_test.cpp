// UserWatch on a manual clock: transitions at their exact boundary (timeout, logout), the
// deadline heap (one live entry per user however many heartbeats), a user who timed out and
// came back before the expiry ran, references shared between subscribers, and a new timeout.
#include "membership/user_watch.h"

#include <gtest/gtest.h>

#include <vector>

namespace heartbeatd::membership {
namespace {

using namespace std::chrono_literals;

class UserWatchTest : public ::testing::Test {
 protected:
  ManualClock clock;
  UserWatch watch{1s};
  std::vector<UserWatch::Transition> out;

  std::vector<UserWatch::Transition> take() { return std::exchange(out, {}); }
  std::vector<UserWatch::Transition> expire() {
    watch.expire(clock.now(), out);
    return take();
  }
  std::vector<UserWatch::Transition> heartbeat(UserWatch::UserId id) {
    watch.heartbeat(id, clock.now(), out);
    return take();
  }
};

TEST_F(UserWatchTest, OnlineAtTheHeartbeatOfflineExactlyAtTheTimeout) {
  const auto first = clock.now();
  watch.add(1, true, first);  // online when the watch began
  watch.add(2, false, std::nullopt);
  EXPECT_EQ(watch.next_deadline(), first + 1s);
  EXPECT_TRUE(expire().empty());

  const auto seen = first + 10ms;
  clock.set(seen);
  auto t = heartbeat(2);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].user, 2u);
  EXPECT_TRUE(t[0].online);
  EXPECT_EQ(t[0].last_seen, seen);

  // User 1 crosses its timeout 10 ms before user 2.
  clock.set(first + 1s - 1ms);
  EXPECT_TRUE(expire().empty());
  clock.set(first + 1s);
  t = expire();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].user, 1u);
  EXPECT_FALSE(t[0].online);
  EXPECT_EQ(t[0].last_seen, first);
  EXPECT_EQ(watch.next_deadline(), seen + 1s);
  clock.set(seen + 1s - 1ms);
  EXPECT_TRUE(expire().empty());
  clock.set(seen + 1s);
  t = expire();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].user, 2u);
  EXPECT_FALSE(t[0].online);
  EXPECT_EQ(t[0].last_seen, seen);
  // Both offline: nothing left to wait for.
  EXPECT_FALSE(watch.next_deadline());
  clock.advance(1h);
  EXPECT_TRUE(expire().empty());
}

TEST_F(UserWatchTest, AVisitIsReportedAsBothTransitions) {
  watch.add(7, false, std::nullopt);
  EXPECT_EQ(heartbeat(7).size(), 1u);
  watch.logout(7, out);
  auto t = take();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_FALSE(t[0].online);
  EXPECT_EQ(t[0].last_seen, clock.now());
  // A logout of an offline user, and the deadline of a logged-out one, are no transitions.
  watch.logout(7, out);
  EXPECT_TRUE(take().empty());
  clock.advance(2s);
  EXPECT_TRUE(expire().empty());
  // Back online after the logout.
  auto back = heartbeat(7);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_TRUE(back[0].online);
}

TEST_F(UserWatchTest, TimedOutAndBackBeforeTheExpiryRanIsBothTransitions) {
  const auto first = clock.now();
  watch.add(3, true, first);
  // The next heartbeat exactly one timeout later: the user was offline at that instant.
  clock.set(first + 1s);
  auto t = heartbeat(3);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_FALSE(t[0].online);
  EXPECT_EQ(t[0].last_seen, first);
  EXPECT_TRUE(t[1].online);
  EXPECT_EQ(t[1].last_seen, first + 1s);
  // The expiry that comes late finds the user online again: nothing more.
  EXPECT_TRUE(expire().empty());
  // A heartbeat within the timeout is no transition.
  clock.advance(999ms);
  EXPECT_TRUE(heartbeat(3).empty());
  clock.advance(999ms);
  EXPECT_TRUE(expire().empty());
  clock.advance(1ms);
  t = expire();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_FALSE(t[0].online);
}

TEST_F(UserWatchTest, HeartbeatsMoveTheDeadlineWithoutGrowingTheHeap) {
  const auto first = clock.now();
  watch.add(4, false, std::nullopt);
  heartbeat(4);
  // A heartbeat every 100 ms for 10 s: the heap keeps one entry, moved on each time it comes
  // due, and the user never goes offline.
  for (int i = 0; i < 100; ++i) {
    clock.advance(100ms);
    EXPECT_TRUE(heartbeat(4).empty());
    EXPECT_TRUE(expire().empty());
    ASSERT_TRUE(watch.next_deadline());
    EXPECT_LE(*watch.next_deadline(), clock.now() + 1s);
  }
  EXPECT_EQ(watch.next_deadline(), first + 10s + 1s);
  clock.set(first + 11s);
  EXPECT_EQ(expire().size(), 1u);
  EXPECT_FALSE(watch.next_deadline());
}

TEST_F(UserWatchTest, ReferencesAreCounted) {
  watch.add(1, false, std::nullopt);
  watch.add(2, false, std::nullopt);
  watch.add(2, false, std::nullopt);  // a second subscriber
  EXPECT_EQ(watch.size(), 2u);
  watch.remove(1);
  watch.remove(2);
  EXPECT_EQ(watch.size(), 1u);  // 2 is still watched through the other
  EXPECT_TRUE(heartbeat(1).empty());
  auto t = heartbeat(2);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].user, 2u);
  watch.remove(2);
  EXPECT_EQ(watch.size(), 0u);
  // Its heap entry is dropped when it comes due, with no transition.
  clock.advance(2s);
  EXPECT_TRUE(expire().empty());
  EXPECT_FALSE(watch.next_deadline());
}

TEST_F(UserWatchTest, AUserJoiningAWatchStartsFromItsStateThen) {
  watch.add(5, true, clock.now());
  // A second reference does not reset the state the first one follows.
  clock.advance(2s);
  watch.add(5, false, std::nullopt);
  auto t = expire();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_FALSE(t[0].online);
}

TEST_F(UserWatchTest, ANewTimeoutMovesEveryDeadlineAtOnce) {
  const auto first = clock.now();
  watch.add(1, true, first);
  watch.add(2, true, first + 500ms);
  watch.set_timeout(300ms);
  EXPECT_EQ(watch.next_deadline(), first + 300ms);
  clock.set(first + 300ms);
  auto t = expire();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].user, 1u);
  watch.set_timeout(5s);
  clock.set(first + 800ms);
  EXPECT_TRUE(expire().empty());  // user 2 is online until first + 5.5 s now
  clock.set(first + 5500ms);
  EXPECT_EQ(expire().size(), 1u);
}

}  // namespace
}  // namespace heartbeatd::membership
