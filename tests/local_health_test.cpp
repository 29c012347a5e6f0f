// LocalHealth (Lifeguard's local health multiplier) at its boundaries: the climb to and the
// stop at kMax, the quiet period one tick either side, one step per period however long the
// gap, a hint at the top restarting the period, and the stretch of a wait at each score.
#include "membership/local_health.h"

#include <gtest/gtest.h>

namespace heartbeatd::membership {
namespace {

using namespace std::chrono_literals;

const TimePoint t0{1000h};
constexpr Duration kQuiet = 1600ms;  // 2 x interval x miss_threshold with the defaults

// A score of `score`, its last step at `at`.
LocalHealth at_score(std::uint32_t score, TimePoint at) {
  LocalHealth h;
  for (std::uint32_t i = 0; i < score; ++i) h.worsen(at);
  return h;
}

TEST(LocalHealth, StartsHealthy) {
  const LocalHealth h;
  EXPECT_EQ(h.score(), 0u);
  EXPECT_EQ(h.scale(200ms), 200ms);
}

TEST(LocalHealth, EachHintRaisesTheScoreByOneUpToTheCeiling) {
  struct Case {
    std::uint32_t hints, want;
  };
  for (auto c : {Case{0, 0}, Case{1, 1}, Case{7, 7}, Case{LocalHealth::kMax, LocalHealth::kMax},
                 Case{LocalHealth::kMax + 1, LocalHealth::kMax}, Case{100, LocalHealth::kMax}}) {
    EXPECT_EQ(at_score(c.hints, t0).score(), c.want) << c.hints << " hints";
  }
}

TEST(LocalHealth, FallsByOneOnlyOnceTheQuietPeriodHasPassed) {
  struct Case {
    std::uint32_t score;
    Duration since_last_step;
    std::uint32_t want;
  };
  for (auto c : {
           Case{1, 0ns, 1}, Case{1, kQuiet - 1ns, 1},  // one tick early: no step
           Case{1, kQuiet, 0},                         // exactly at the period: a step
           Case{1, kQuiet + 1ns, 0}, Case{LocalHealth::kMax, kQuiet - 1ns, LocalHealth::kMax},
           Case{LocalHealth::kMax, kQuiet, LocalHealth::kMax - 1},
           Case{3, 100 * kQuiet, 2},  // a long gap is still one step
           Case{0, 100 * kQuiet, 0},  // never below 0
       }) {
    auto h = at_score(c.score, t0);
    h.recover(t0 + c.since_last_step, kQuiet);
    EXPECT_EQ(h.score(), c.want) << "score " << c.score << ", " << c.since_last_step.count()
                                 << " ns since its last step";
  }
}

TEST(LocalHealth, EachStepDownStartsTheNextQuietPeriod) {
  auto h = at_score(3, t0);
  h.recover(t0 + kQuiet, kQuiet);
  ASSERT_EQ(h.score(), 2u);
  h.recover(t0 + kQuiet, kQuiet);  // the same tick again
  EXPECT_EQ(h.score(), 2u);
  h.recover(t0 + 2 * kQuiet - 1ns, kQuiet);
  EXPECT_EQ(h.score(), 2u);
  h.recover(t0 + 2 * kQuiet, kQuiet);
  EXPECT_EQ(h.score(), 1u);
  h.recover(t0 + 3 * kQuiet, kQuiet);
  EXPECT_EQ(h.score(), 0u);
  h.recover(t0 + 4 * kQuiet, kQuiet);
  EXPECT_EQ(h.score(), 0u);
}

TEST(LocalHealth, AHintRestartsTheQuietPeriodEvenAtTheCeiling) {
  struct Case {
    std::uint32_t score;  // before the hint
    std::uint32_t want;   // one quiet period after the first steps, one tick before the hint's
  };
  for (auto c : {Case{1, 2}, Case{LocalHealth::kMax - 1, LocalHealth::kMax},
                 Case{LocalHealth::kMax, LocalHealth::kMax}}) {
    auto h = at_score(c.score, t0);
    h.worsen(t0 + 1s);
    h.recover(t0 + 1s + kQuiet - 1ns, kQuiet);
    EXPECT_EQ(h.score(), c.want) << "score " << c.score;
    h.recover(t0 + 1s + kQuiet, kQuiet);
    EXPECT_EQ(h.score(), c.want - 1) << "score " << c.score;
  }
}

TEST(LocalHealth, StretchesAWaitByOnePlusTheScore) {
  struct Case {
    std::uint32_t score;
    Duration wait, want;
  };
  for (auto c : {Case{0, 200ms, 200ms}, Case{1, 200ms, 400ms}, Case{4, 800ms, 4s},
                 Case{LocalHealth::kMax, 200ms, 1800ms}, Case{LocalHealth::kMax, 0ns, 0ns}}) {
    EXPECT_EQ(at_score(c.score, t0).scale(c.wait), c.want) << "score " << c.score;
  }
}

}  // namespace
}  // namespace heartbeatd::membership
