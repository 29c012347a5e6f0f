// The shared detection model at its boundaries, on a manual clock: exactly at each deadline
// and one tick either side, first heartbeat, no heartbeat ever, phi under jitter and after a
// long pause, the clock not moving or moving backwards.
#include "membership/detection.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "tests/support/test_util.h"

namespace heartbeatd::membership {
namespace {

using namespace std::chrono_literals;
constexpr Duration kTick = 1ns;

TEST(Judge, BoundariesAreHalfOpen) {
  const Deadlines d{100ms, 300ms};
  EXPECT_EQ(judge(d, 0ns), Verdict::alive);
  EXPECT_EQ(judge(d, 100ms - kTick), Verdict::alive);
  EXPECT_EQ(judge(d, 100ms), Verdict::suspect);
  EXPECT_EQ(judge(d, 100ms + kTick), Verdict::suspect);
  EXPECT_EQ(judge(d, 300ms - kTick), Verdict::suspect);
  EXPECT_EQ(judge(d, 300ms), Verdict::dead);
  EXPECT_EQ(judge(d, 300ms + kTick), Verdict::dead);
}

TEST(Judge, NegativeElapsedCountsAsZero) {
  EXPECT_EQ(judge({100ms, 100ms}, -5s), Verdict::alive);
}

TEST(FixedTimeout, OnlineUntilExactlyTheTimeout) {
  ManualClock clock;
  const DetectionPolicy policy = FixedTimeout(30s);
  ArrivalHistory user;
  user.heartbeat(clock.now());
  clock.advance(30s - kTick);
  EXPECT_EQ(policy.judge(user, clock.now()), Verdict::alive);
  clock.advance(kTick);
  EXPECT_EQ(policy.judge(user, clock.now()), Verdict::dead) << "exactly at the timeout";
  clock.advance(kTick);
  EXPECT_EQ(policy.judge(user, clock.now()), Verdict::dead);
}

TEST(FixedTimeout, NoSuspectPhase) {
  const Deadlines d = FixedTimeout(5s).deadlines();
  EXPECT_EQ(d.suspect_after, d.dead_after);
}

TEST(FixedTimeout, RejectsNonPositiveTimeout) {
  EXPECT_THROW(FixedTimeout(0s), std::invalid_argument);
}

TEST(DetectionPolicy, NeverHeardFromIsDeadAndSchedulesNothing) {
  ManualClock clock;
  const DetectionPolicy policy = FixedTimeout(30s);
  ArrivalHistory nobody;
  EXPECT_FALSE(nobody.last_seen());
  EXPECT_EQ(policy.judge(nobody, clock.now()), Verdict::dead);
  EXPECT_FALSE(policy.next_change(nobody, clock.now()));
}

TEST(DetectionPolicy, FirstHeartbeatMakesAlive) {
  ManualClock clock;
  const DetectionPolicy policy = MissThreshold(200ms, 4, 800ms);
  ArrivalHistory h;
  h.heartbeat(clock.now());
  EXPECT_EQ(policy.judge(h, clock.now()), Verdict::alive);
  EXPECT_EQ(h.intervals().size(), 0u) << "one arrival is not an interval";
}

TEST(DetectionPolicy, ClockNotMovingStaysAlive) {
  ManualClock clock;
  const DetectionPolicy policy = FixedTimeout(1s);
  ArrivalHistory h;
  h.heartbeat(clock.now());
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(policy.judge(h, clock.now()), Verdict::alive);
}

TEST(DetectionPolicy, ClockGoingBackwardsNeitherConvictsNorRewindsLastSeen) {
  ManualClock clock;
  const DetectionPolicy policy = FixedTimeout(1s);
  ArrivalHistory h;
  const TimePoint t0 = clock.now();
  h.heartbeat(t0);
  clock.set(t0 - 10s);
  EXPECT_EQ(policy.judge(h, clock.now()), Verdict::alive);
  h.heartbeat(clock.now());  // stamped before the last one: ignored
  EXPECT_EQ(h.last_seen(), t0);
}

TEST(MissThreshold, SuspectAfterMissesThenDeadAfterSuspicionTimeout) {
  ManualClock clock;
  const DetectionPolicy policy = MissThreshold(200ms, 4, 800ms);
  ArrivalHistory h;
  h.heartbeat(clock.now());
  clock.advance(800ms - kTick);
  EXPECT_EQ(policy.judge(h, clock.now()), Verdict::alive);
  clock.advance(kTick);
  EXPECT_EQ(policy.judge(h, clock.now()), Verdict::suspect);
  clock.advance(800ms - kTick);
  EXPECT_EQ(policy.judge(h, clock.now()), Verdict::suspect);
  clock.advance(kTick);
  EXPECT_EQ(policy.judge(h, clock.now()), Verdict::dead);
}

TEST(MissThreshold, HeartbeatResetsTheCountdown) {
  ManualClock clock;
  const DetectionPolicy policy = MissThreshold(100ms, 3, 0ms);
  ArrivalHistory h;
  h.heartbeat(clock.now());
  clock.advance(299ms);
  h.heartbeat(clock.now());
  clock.advance(299ms);
  EXPECT_EQ(policy.judge(h, clock.now()), Verdict::alive);
  clock.advance(1ms);
  EXPECT_EQ(policy.judge(h, clock.now()), Verdict::dead) << "zero suspicion: straight to dead";
}

TEST(MissThreshold, NextChangeNamesEachTransition) {
  ManualClock clock;
  const DetectionPolicy policy = MissThreshold(200ms, 4, 800ms);
  ArrivalHistory h;
  const TimePoint t0 = clock.now();
  h.heartbeat(t0);
  EXPECT_EQ(policy.next_change(h, t0), t0 + 800ms);
  EXPECT_EQ(policy.next_change(h, t0 + 800ms), t0 + 1600ms);
  EXPECT_EQ(policy.next_change(h, t0 + 1600ms), std::nullopt);
}

TEST(MissThreshold, RejectsNonsense) {
  EXPECT_THROW(MissThreshold(0ms, 3, 1s), std::invalid_argument);
  EXPECT_THROW(MissThreshold(1s, 0, 1s), std::invalid_argument);
  EXPECT_THROW(MissThreshold(1s, 3, -1ms), std::invalid_argument);
}

TEST(ArrivalWindow, MeanAndStdDevOverTheLastSamples) {
  ArrivalWindow w(3);
  w.add(100ms);
  w.add(200ms);
  w.add(300ms);
  EXPECT_DOUBLE_EQ(w.mean_ms(), 200);
  EXPECT_NEAR(w.std_dev_ms(), std::sqrt(20000.0 / 3), 1e-9);
  w.add(400ms);  // evicts 100ms
  EXPECT_EQ(w.size(), 3u);
  EXPECT_DOUBLE_EQ(w.mean_ms(), 300);
}

TEST(ArrivalWindow, StaysAccurateOverManyLaps) {
  ArrivalWindow w(10);
  for (int i = 0; i < 100000; ++i) w.add(std::chrono::milliseconds(1000 + (i % 2) * 1000));
  EXPECT_NEAR(w.mean_ms(), 1500, 1e-6);
  EXPECT_NEAR(w.std_dev_ms(), 500, 1e-6);
}

PhiAccrualParams phi_params() {
  PhiAccrualParams p;
  p.threshold = 8;
  p.window = 100;
  p.min_std_dev = 100ms;
  p.first_interval_estimate = 1s;
  p.suspicion_timeout = 0ms;
  return p;
}

TEST(PhiAccrual, PhiIsHalfAtTheMeanAndGrowsWithElapsed) {
  const PhiAccrual phi(phi_params());
  ArrivalWindow w(100);
  for (int i = 0; i < 50; ++i) w.add(1s);
  // At the mean, 1 - F = 0.5: phi = log10(2).
  EXPECT_NEAR(phi.phi(w, 1s), std::log10(2.0), 1e-9);
  double last = -1;
  for (auto e = 0ms; e <= 5s; e += 100ms) {
    const double v = phi.phi(w, e);
    EXPECT_GE(v, last);
    last = v;
  }
}

TEST(PhiAccrual, DeadlineAgreesWithPhiCrossingTheThreshold) {
  const PhiAccrual phi(phi_params());
  ArrivalWindow w(100);
  for (int i = 0; i < 50; ++i) w.add(1s);
  const Deadlines d = phi.deadlines(w);
  EXPECT_LT(phi.phi(w, d.suspect_after - 1ms), 8.0);
  EXPECT_GE(phi.phi(w, d.suspect_after + 1ms), 8.0);
  // std-dev floored at 100ms: z for phi 8 is ~5.6, so ~1.56s.
  EXPECT_GT(d.suspect_after, 1500ms);
  EXPECT_LT(d.suspect_after, 1600ms);
}

TEST(PhiAccrual, JitteredArrivalsWidenTheDeadline) {
  auto rng = test::seeded_rng();
  std::normal_distribution<double> jitter(1000, 200);
  const PhiAccrual phi(phi_params());
  ArrivalWindow steady(100), jittery(100);
  for (int i = 0; i < 100; ++i) {
    steady.add(1s);
    jittery.add(std::chrono::milliseconds(static_cast<int>(std::max(1.0, jitter(rng)))));
  }
  EXPECT_GT(phi.deadlines(jittery).suspect_after, phi.deadlines(steady).suspect_after);
  // A heartbeat 700ms late is within the jittery subject's spread (sd ~200ms) and seven
  // floored deviations out for the steady one.
  EXPECT_LT(phi.phi(jittery, 1700ms), 8.0);
  EXPECT_GT(phi.phi(steady, 1700ms), 8.0);
}

TEST(PhiAccrual, LongPauseGivesLargeFinitePhi) {
  const PhiAccrual phi(phi_params());
  ArrivalWindow w(100);
  for (int i = 0; i < 50; ++i) w.add(1s);
  const double v = phi.phi(w, 1h);
  EXPECT_TRUE(std::isfinite(v));
  EXPECT_GT(v, 1000);
}

TEST(PhiAccrual, AcceptablePauseShiftsTheDeadline) {
  PhiAccrualParams p = phi_params();
  ArrivalWindow w(100);
  for (int i = 0; i < 50; ++i) w.add(1s);
  const Duration base = PhiAccrual(p).deadlines(w).suspect_after;
  p.acceptable_pause = 3s;
  EXPECT_EQ(PhiAccrual(p).deadlines(w).suspect_after, base + 3s);
}

TEST(PhiAccrual, FirstHeartbeatUsesTheEstimate) {
  ManualClock clock;
  PhiAccrualParams p = phi_params();
  p.suspicion_timeout = 1s;
  const DetectionPolicy policy = PhiAccrual(p);
  ArrivalHistory h(policy.window_capacity());
  h.heartbeat(clock.now());
  EXPECT_EQ(policy.judge(h, clock.now() + 1s), Verdict::alive);
  // Estimate 1s with spread 250ms: phi reaches 8 at z ~ 5.61, about 1s + 1.40s.
  EXPECT_EQ(policy.judge(h, clock.now() + 2350ms), Verdict::alive);
  EXPECT_EQ(policy.judge(h, clock.now() + 2450ms), Verdict::suspect);
}

TEST(PhiAccrual, SuspicionTimeoutSeparatesSuspectFromDead) {
  PhiAccrualParams p = phi_params();
  p.suspicion_timeout = 500ms;
  ArrivalWindow w(100);
  const Deadlines d = PhiAccrual(p).deadlines(w);
  EXPECT_EQ(d.dead_after - d.suspect_after, 500ms);
}

}  // namespace
}  // namespace heartbeatd::membership
