// Scenario tests of the membership protocol on the deterministic simulated network
// (tests/support/sim_cluster.h): crashes, mass crashes, loss, stalls, partitions,
// restarts, leaves, name conflicts, at up to 300 nodes (1000 in bench/membership_sim_report), with
// a manual clock. Every test prints its seed; HEARTBEATD_TEST_SEED=<seed> replays a run exactly.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "tests/support/sim_cluster.h"
#include "tests/support/test_util.h"

namespace heartbeatd::sim {
namespace {

using namespace std::chrono_literals;
using membership::ProtocolTimings;

// The documented detection bound at the defaults (docs/PROTOCOL.md, "Detection time"):
// interval x miss_threshold + probe_timeout + suspicion_timeout, plus network delays.
Duration detection_bound(const ProtocolTimings& t) {
  return t.interval * t.miss_threshold + t.probe_timeout + t.suspicion_timeout + 50ms;
}

// Every dead verdict any node reached about a member that was up at that moment.
std::size_t false_deaths(const SimCluster& c, const std::set<std::string>& really_down) {
  std::size_t n = 0;
  for (const auto& o : c.observations()) {
    if (o.state == MemberState::dead && !really_down.count(o.member)) ++n;
  }
  return n;
}

std::unique_ptr<SimCluster> converged(std::size_t n, NetworkFaults faults = {},
                                      ProtocolTimings t = ProtocolTimings{}) {
  auto cluster = std::make_unique<SimCluster>(test::seeded_rng()(), t, faults);
  auto& c = *cluster;
  // A rolling start, 100 nodes per second, as a deployment tool would do it.
  c.add_nodes(n, std::max<Duration>(t.interval, n * 10ms));
  const bool joined = c.run_until(
      [&] {
        for (std::size_t i = 0; i < c.size(); ++i) {
          if (c.node(i).member_count() != n) return false;
        }
        return true;
      },
      30s);
  EXPECT_TRUE(joined) << "the cluster did not converge on " << n << " members";
  return cluster;
}

TEST(MembershipSim, JoiningOneSeedTeachesTheWholeCluster) {
  auto cluster = converged(100);
  auto& c = *cluster;
  for (std::size_t i = 0; i < c.size(); ++i) {
    for (const auto& m : c.node(i).members()) EXPECT_EQ(m.state, MemberState::alive);
  }
  EXPECT_EQ(false_deaths(c, {}), 0u);
}

TEST(MembershipSim, AJoinWhosePagesAreLostIsCompletedWithinOneSyncInterval) {
  auto cluster = converged(300);
  auto& c = *cluster;
  // The seed's full view takes several pages; a third of what it sends the newcomer is lost.
  // What is missing is pulled again page by page, not one page per sync_interval.
  c.set_link_loss(0, 300, 0.3);
  const auto joined_at = c.now();
  const auto newcomer = c.add_node("newcomer");
  ASSERT_TRUE(c.run_until([&] { return c.node(newcomer).member_count() == 301; }, 30s));
  const ProtocolTimings t;
  EXPECT_LE(c.now() - joined_at, t.sync_interval + 1s);
}

TEST(MembershipSim, OneCrashIsReportedDeadEverywhereWithinTheBound) {
  auto cluster = converged(50);
  auto& c = *cluster;
  c.run_for(5s);
  const auto crashed_at = c.now();
  c.crash(17);
  const ProtocolTimings t;
  ASSERT_TRUE(c.run_until([&] { return c.all_see(17, MemberState::dead); }, 10s));
  const auto took = c.now() - crashed_at;
  EXPECT_LE(took, detection_bound(t)) << "took " << took.count() / 1000000 << " ms";
  EXPECT_LT(took, 2s);
  EXPECT_EQ(false_deaths(c, {c.name(17)}), 0u);
}

TEST(MembershipSim, TenPercentCrashingTogetherAreAllDetected) {
  auto cluster = converged(100);
  auto& c = *cluster;
  c.run_for(5s);
  auto rng = test::seeded_rng();
  std::vector<std::size_t> all(100);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
  std::shuffle(all.begin(), all.end(), rng);
  std::set<std::string> down;
  std::set<std::size_t> crashed(all.begin(), all.begin() + 10);
  for (auto i : crashed) {
    c.crash(i);
    down.insert(c.name(i));
  }
  // Neighbours on the ring may crash together, leaving fewer confirmations: the bound is
  // then the one-accuser suspicion time.
  const ProtocolTimings t;
  const auto bound =
      t.interval * t.miss_threshold + t.probe_timeout + t.suspicion_max_timeout + 100ms;
  ASSERT_TRUE(c.run_until(
      [&] {
        for (auto i : crashed) {
          if (!c.all_see(i, MemberState::dead, crashed)) return false;
        }
        return true;
      },
      bound));
  EXPECT_EQ(false_deaths(c, down), 0u);
}

TEST(MembershipSim, FivePercentLossCausesNoFalsePositives) {
  NetworkFaults lossy;
  lossy.loss = 0.05;
  auto cluster = converged(100, lossy);
  auto& c = *cluster;
  c.run_for(120s);
  EXPECT_EQ(false_deaths(c, {}), 0u);
  // And detection still works through the loss.
  c.crash(3);
  ASSERT_TRUE(c.run_until([&] { return c.all_see(3, MemberState::dead); }, 10s));
  EXPECT_EQ(false_deaths(c, {c.name(3)}), 0u);
}

TEST(MembershipSim, DuplicatedAndReorderedDatagramsAreHarmless) {
  NetworkFaults messy;
  messy.duplicate = 0.2;
  messy.min_delay = 100us;
  messy.max_delay = 30ms;  // wide spread: many datagrams overtake each other
  auto cluster = converged(30, messy);
  auto& c = *cluster;
  c.run_for(30s);
  EXPECT_EQ(false_deaths(c, {}), 0u);
  c.crash(5);
  ASSERT_TRUE(c.run_until([&] { return c.all_see(5, MemberState::dead); }, 10s));
}

TEST(MembershipSim, OneLossyLinkCannotKillAHealthyMember) {
  auto cluster = converged(20);
  auto& c = *cluster;
  // Everything node 4 sends to each of its monitors in turn is lost, and everything they
  // send back: the link is cut both ways, the rest of the network is fine.
  for (std::size_t j = 0; j < c.size(); ++j) {
    if (j == 4) continue;
    c.set_link_loss(4, j, j % 3 == 0 ? 1.0 : 0.0);
    c.set_link_loss(j, 4, j % 3 == 0 ? 1.0 : 0.0);
  }
  c.run_for(60s);
  EXPECT_EQ(false_deaths(c, {}), 0u);
  EXPECT_TRUE(c.all_see(4, MemberState::alive));
}

TEST(MembershipSim, AStallShorterThanTheTimeoutConvictsNoOne) {
  auto cluster = converged(30);
  auto& c = *cluster;
  c.run_for(3s);
  c.stall(8, 600ms);  // like SIGSTOP then SIGCONT
  c.run_for(20s);
  EXPECT_EQ(false_deaths(c, {}), 0u);
  EXPECT_TRUE(c.all_see(8, MemberState::alive));
}

TEST(MembershipSim, ALongStallIsConvictedThenRefutedWithAHigherIncarnation) {
  auto cluster = converged(30);
  auto& c = *cluster;
  c.run_for(3s);
  const auto before = c.node(8).incarnation();
  c.stall(8, 5s);
  ASSERT_TRUE(c.run_until([&] { return c.all_see(8, MemberState::dead); }, 5s));
  ASSERT_TRUE(c.run_until([&] { return c.all_see(8, MemberState::alive); }, 10s));
  EXPECT_GT(c.node(8).incarnation(), before);
  for (std::size_t i = 0; i < c.size(); ++i) {
    EXPECT_EQ(c.node(i).member(c.name(8))->incarnation, c.node(8).incarnation());
  }
  // The stalled node itself accused no one when it woke.
  for (const auto& o : c.observations()) {
    if (o.observer == 8) {
      EXPECT_NE(o.state, MemberState::dead) << o.member;
    }
  }
  EXPECT_GE(c.node(8).counters().pauses, 1u);
}

TEST(MembershipSim, APartitionHealsWithoutAnOperator) {
  auto cluster = converged(40);
  auto& c = *cluster;
  c.run_for(3s);
  std::vector<int> groups(40);
  for (std::size_t i = 0; i < groups.size(); ++i) groups[i] = i < 15 ? 1 : 2;
  c.partition(groups);
  ASSERT_TRUE(c.run_until(
      [&] { return c.view(0, 30) == MemberState::dead && c.view(30, 0) == MemberState::dead; },
      10s));
  c.run_for(10s);
  c.heal();
  ASSERT_TRUE(c.run_until(
      [&] {
        for (std::size_t i = 0; i < c.size(); ++i) {
          if (!c.all_see(i, MemberState::alive)) return false;
        }
        return true;
      },
      30s));
}

TEST(MembershipSim, ARestartedNodeComesBackAliveWithAHigherIncarnation) {
  auto cluster = converged(20);
  auto& c = *cluster;
  c.run_for(2s);
  c.crash(6);
  ASSERT_TRUE(c.run_until([&] { return c.all_see(6, MemberState::dead); }, 5s));
  const auto dead_incarnation = c.node(0).member(c.name(6))->incarnation;
  c.restart(6);
  ASSERT_TRUE(c.run_until([&] { return c.all_see(6, MemberState::alive); }, 5s));
  EXPECT_GT(c.node(6).incarnation(), dead_incarnation);
  EXPECT_EQ(c.node(6).members().size(), 20u);
}

TEST(MembershipSim, AQuickRestartIsNeverSeenDead) {
  auto cluster = converged(20);
  auto& c = *cluster;
  c.run_for(2s);
  c.crash(6);
  c.run_for(300ms);
  c.restart(6);
  ASSERT_TRUE(c.run_until([&] { return c.all_see(6, MemberState::alive); }, 5s));
  c.run_for(5s);
  EXPECT_EQ(false_deaths(c, {}), 0u);
}

TEST(MembershipSim, ALeaveIsSeenAsLeftWithinOneInterval) {
  auto cluster = converged(30);
  auto& c = *cluster;
  c.run_for(2s);
  c.leave(11);
  const ProtocolTimings t;
  ASSERT_TRUE(c.run_until([&] { return c.all_see(11, MemberState::left); }, t.interval));
  c.run_for(10s);
  EXPECT_TRUE(c.all_see(11, MemberState::left));  // not later turned dead
}

TEST(MembershipSim, DeadAndLeftMembersAreForgottenAfterReapAfter) {
  ProtocolTimings t;
  t.reap_after = 20s;
  auto cluster = converged(10, {}, t);
  auto& c = *cluster;
  c.crash(2);
  c.leave(5);
  ASSERT_TRUE(c.run_until(
      [&] { return c.all_see(2, MemberState::dead) && c.all_see(5, MemberState::left); }, 5s));
  c.run_for(t.reap_after - 3s);
  EXPECT_EQ(c.node(0).member_count(), 10u);  // still listed
  // Reaping is checked every sync_interval.
  ASSERT_TRUE(c.run_until(
      [&] {
        for (std::size_t i = 0; i < c.size(); ++i) {
          if (c.up(i) && c.node(i).member_count() != 8) return false;
        }
        return true;
      },
      3s + t.sync_interval + 1s));
  EXPECT_FALSE(c.node(0).member(c.name(2)));
  EXPECT_FALSE(c.node(0).member(c.name(5)));
}

TEST(MembershipSim, ASecondNodeClaimingALiveNameIsRefused) {
  auto cluster = converged(10);
  auto& c = *cluster;
  c.run_for(2s);
  const auto impostor = c.add_node(c.name(3));
  c.run_for(10s);
  for (std::size_t i = 0; i < 10; ++i) {
    auto m = c.node(i).member(c.name(3));
    ASSERT_TRUE(m);
    EXPECT_EQ(m->state, MemberState::alive);
    if (i != 3) {
      EXPECT_EQ(m->address, c.node(3).member(c.name(3))->address);
    }
  }
  EXPECT_GT(c.node(impostor).counters().name_conflicts, 0u);
  EXPECT_EQ(false_deaths(c, {}), 0u);
}

TEST(MembershipSim, ThreeHundredNodesDetectACrashAtConstantPerNodeLoad) {
  auto cluster = converged(300);
  auto& c = *cluster;
  c.run_for(5s);
  const auto sent_before = c.datagrams_total();
  c.run_for(10s);
  const double per_node_per_s =
      static_cast<double>(c.datagrams_total() - sent_before) / 300.0 / 10.0;
  const ProtocolTimings t;
  // Heartbeats to `monitors` peers every interval, plus a little anti-entropy: independent of N.
  EXPECT_LT(per_node_per_s, (1.0 + t.monitors) * 1s / t.interval);
  const auto crashed_at = c.now();
  c.crash(150);
  ASSERT_TRUE(c.run_until([&] { return c.all_see(150, MemberState::dead); }, 10s));
  EXPECT_LT(c.now() - crashed_at, detection_bound(t) + 100ms);
  EXPECT_EQ(false_deaths(c, {c.name(150)}), 0u);
}

TEST(MembershipSim, ThePhiAccrualDetectorDetectsWithoutMistakesToo) {
  ProtocolTimings t;
  t.phi = membership::PhiAccrualParams{};
  NetworkFaults lossy;
  lossy.loss = 0.05;
  auto cluster = converged(30, lossy, t);
  auto& c = *cluster;
  c.run_for(60s);
  EXPECT_EQ(false_deaths(c, {}), 0u);
  const auto crashed_at = c.now();
  c.crash(7);
  ASSERT_TRUE(c.run_until([&] { return c.all_see(7, MemberState::dead); }, 10s));
  // phi reaches 8 about 5.6 standard deviations (at least min_std_dev, 100 ms) past the
  // mean interval: under a second, then the probe and the suspicion as with miss_threshold.
  EXPECT_LT(c.now() - crashed_at, 1s + t.probe_timeout + t.suspicion_timeout);
  EXPECT_EQ(false_deaths(c, {c.name(7)}), 0u);
}

TEST(MembershipSim, ReloadedTimingsTakeEffectWithoutFalseSuspicions) {
  auto cluster = converged(20);
  auto& c = *cluster;
  c.run_for(2s);
  ProtocolTimings slower;
  slower.interval = 500ms;
  slower.phi = membership::PhiAccrualParams{};  // another detector, another history
  for (std::size_t i = 0; i < c.size(); ++i) c.node(i).set_timings(slower);
  c.run_for(30s);
  EXPECT_EQ(false_deaths(c, {}), 0u);
  for (std::size_t i = 0; i < c.size(); ++i) EXPECT_EQ(c.node(i).counters().probes, 0u);
  c.crash(3);
  EXPECT_TRUE(c.run_until([&] { return c.all_see(3, MemberState::dead); }, 10s));
}

TEST(MembershipSim, TheSameSeedReplaysTheSameRun) {
  auto run = [](std::uint64_t seed) {
    SimCluster c(seed, ProtocolTimings{}, NetworkFaults{0.05, 0.05});
    c.add_nodes(20);
    c.run_for(5s);
    c.crash(2);
    c.run_for(5s);
    std::vector<std::tuple<TimePoint, std::size_t, std::string, MemberState>> out;
    for (const auto& o : c.observations()) out.emplace_back(o.at, o.observer, o.member, o.state);
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

}  // namespace
}  // namespace heartbeatd::sim
