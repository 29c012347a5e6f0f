#include "base/wall_time.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>

#include "base/wall_clock.h"

namespace heartbeatd {
namespace {

using namespace std::chrono_literals;
using Mono = WallTime::MonoTime;

constexpr std::int64_t kStartMs = 1'767'225'600'000;  // ManualWallClock's default start

TEST(WallTime, ConvertsThroughTheWallClockItIsGiven) {
  ManualWallClock wall;
  std::atomic<std::int64_t> anchor{0};
  const Mono now{100h};
  const WallTime t(now, anchor, wall);
  EXPECT_EQ(t.unix_ms(now), kStartMs);
  EXPECT_EQ(t.unix_ms(now - 1500ms), kStartMs - 1500);
  EXPECT_EQ(t.mono_of(kStartMs - 1500), now - 1500ms);
}

// Every answer uses one offset, so a time read twice reads the same: small drifts of the
// wall clock against the monotonic one (NTP slewing) do not move it.
TEST(WallTime, KeepsTheAnchorThroughDriftsOfUpToASecond) {
  ManualWallClock wall;
  std::atomic<std::int64_t> anchor{0};
  const Mono start{100h};
  const Mono last_seen = start - 5s;
  const std::int64_t first = WallTime(start, anchor, wall).unix_ms(last_seen);
  wall.advance(10s + 900ms);  // 10 s passed on the monotonic clock, 10.9 s on the wall
  EXPECT_EQ(WallTime(start + 10s, anchor, wall).unix_ms(last_seen), first);
  wall.advance(-1800ms);      // now 0.9 s behind instead
  EXPECT_EQ(WallTime(start + 10s, anchor, wall).unix_ms(last_seen), first);
}

// A step of more than a second (an NTP step, a VM resume) moves the anchor, so that times
// read true again.
TEST(WallTime, FollowsAStepOfTheWallClock) {
  ManualWallClock wall;
  std::atomic<std::int64_t> anchor{0};
  const Mono start{100h};
  const std::int64_t before = WallTime(start, anchor, wall).unix_ms(start);
  wall.advance(1h);
  EXPECT_EQ(WallTime(start, anchor, wall).unix_ms(start), before + 3'600'000);
  wall.set(kStartMs * 1000 - 3'600'000'000);  // stepped back an hour before the start
  EXPECT_EQ(WallTime(start, anchor, wall).unix_ms(start), before - 3'600'000);
}

TEST(WallClock, SystemClockIsUnixTime) {
  const std::int64_t us = SystemWallClock::instance().unix_us();
  EXPECT_GT(us, kStartMs * 1000 - 365LL * 24 * 3600 * 1'000'000);  // after 2025
}

}  // namespace
}  // namespace heartbeatd
