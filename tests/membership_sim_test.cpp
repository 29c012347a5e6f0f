// Scenario tests of the membership protocol on the deterministic simulated network
// (tests/support/sim_cluster.h): crashes, mass crashes, loss, stalls, partitions,
// restarts, leaves, name conflicts, at up to 300 nodes (1000 in bench/membership_sim_report), with
// a manual clock. Every test prints its seed; HEARTBEATD_TEST_SEED=<seed> replays a run exactly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "membership/monitor_ring.h"
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

// Does every up node see every other one alive?
bool everyone_alive(SimCluster& c) {
  for (std::size_t i = 0; i < c.size(); ++i) {
    if (!c.all_see(i, MemberState::alive)) return false;
  }
  return true;
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
  ASSERT_TRUE(c.run_until([&] { return everyone_alive(c); }, 30s));
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

// Does every up node other than `subject` hold `tags` for it?
bool all_see_tags(SimCluster& c, std::size_t subject, const membership::Tags& tags) {
  for (std::size_t i = 0; i < c.size(); ++i) {
    if (i == subject || !c.up(i)) continue;
    const auto m = c.node(i).member(c.name(subject));
    if (!m || m->tags != tags) return false;
  }
  return true;
}

TEST(MembershipSim, TagsChangedAtRunTimeReachEveryoneDespiteLoss) {
  NetworkFaults lossy;
  lossy.loss = 0.05;
  auto cluster = converged(40, lossy);
  auto& c = *cluster;
  const ProtocolTimings t;
  // Each change raises the incarnation; others hear the new incarnation first from the
  // node's heartbeats (no tags in a header) or from its news (tags): either order ends with
  // the new tags everywhere, and nobody is suspected for it.
  const std::vector<membership::Tags> sets = {
      {{"role", "db"}, {"zone", "b"}}, {{"role", "db"}, {"zone", "c"}}, {}, {{"role", "web"}}};
  for (const auto& tags : sets) {
    const auto before = c.node(7).incarnation();
    c.node(7).set_tags(tags, c.now());
    EXPECT_GT(c.node(7).incarnation(), before);
    ASSERT_TRUE(c.run_until([&] { return all_see_tags(c, 7, tags); }, 5 * t.interval))
        << "tags of node-7 did not reach every node";
  }
  // And they stay: later heartbeats (claims without tags) and syncs change nothing.
  c.run_for(3 * t.sync_interval);
  EXPECT_TRUE(all_see_tags(c, 7, sets.back()));
  EXPECT_TRUE(all_see_tags(c, 8, {}));
  EXPECT_EQ(false_deaths(c, {}), 0u);
}

TEST(MembershipSim, ANewcomersTagsComeWithItsJoinAndSurviveARefutation) {
  auto cluster = converged(20);
  auto& c = *cluster;
  const membership::Tags tags{{"role", "cache"}, {"rack", "r12"}};
  const auto i = c.add_node("newcomer");
  c.node(i).set_tags(tags, c.now());  // before it starts: what its join announces
  const ProtocolTimings t;
  ASSERT_TRUE(c.run_until([&] { return all_see_tags(c, i, tags); }, t.sync_interval));
  // A stall long enough to be declared dead, then a refutation at a higher incarnation: the
  // tags come back with it, unchanged.
  c.stall(i, 6s);
  ASSERT_TRUE(c.run_until([&] { return c.all_see(i, MemberState::dead); }, 10s));
  ASSERT_TRUE(c.run_until([&] { return c.all_see(i, MemberState::alive); }, 10s));
  c.run_for(t.sync_interval);
  EXPECT_TRUE(all_see_tags(c, i, tags));
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

// Force-leave (POST /v1/members/{name}/leave) on one node, with 10% loss: the news reaches
// every node, and anti-entropy never brings the member back.
TEST(MembershipSim, AForceLeftDeadMemberIsLeftEverywhereAndStaysLeft) {
  ProtocolTimings t;
  t.sync_interval = 1s;  // many anti-entropy rounds in the time the test runs
  auto cluster = converged(12, NetworkFaults{.loss = 0.1}, t);
  auto& c = *cluster;
  c.crash(7);
  ASSERT_TRUE(c.run_until([&] { return c.all_see(7, MemberState::dead); }, 10s));
  ASSERT_TRUE(c.node(3).force_leave(c.name(7), false, c.now()).ok());
  ASSERT_TRUE(c.run_until([&] { return c.all_see(7, MemberState::left); }, 5s));
  c.run_for(20 * t.sync_interval);
  EXPECT_TRUE(c.all_see(7, MemberState::left));  // neither dead again nor forgotten
  EXPECT_EQ(c.node(3).counters().force_leaves, 1u);
}

TEST(MembershipSim, APrunedMemberIsForgottenEverywhereAndStaysForgotten) {
  ProtocolTimings t;
  t.sync_interval = 1s;
  auto cluster = converged(12, NetworkFaults{.loss = 0.1}, t);
  auto& c = *cluster;
  c.crash(7);
  ASSERT_TRUE(c.run_until([&] { return c.all_see(7, MemberState::dead); }, 10s));
  ASSERT_TRUE(c.node(3).force_leave(c.name(7), true, c.now()).ok());
  auto forgotten_everywhere = [&] {
    for (std::size_t i = 0; i < c.size(); ++i) {
      if (c.up(i) && c.view(i, 7)) return false;
    }
    return true;
  };
  ASSERT_TRUE(c.run_until(forgotten_everywhere, 5s));
  for (int round = 0; round < 20; ++round) {
    c.run_for(t.sync_interval);
    ASSERT_TRUE(forgotten_everywhere()) << "back after " << round + 1 << " sync rounds";
  }
  for (std::size_t i = 0; i < c.size(); ++i) {
    if (!c.up(i)) continue;
    EXPECT_EQ(c.node(i).member_count(), 11u) << c.name(i);
  }
  // Every node saw it leave on its way out (the event stream and hooks report that).
  std::set<std::size_t> saw_left;
  for (const auto& o : c.observations()) {
    if (o.member == c.name(7) && o.state == MemberState::left) saw_left.insert(o.observer);
  }
  EXPECT_EQ(saw_left.size(), 11u);
}

TEST(MembershipSim, ALoneNodeJoinsAtRunTime) {
  auto cluster = converged(5);
  auto& c = *cluster;
  const auto lone = c.add_node("lone", std::nullopt);
  c.run_for(3s);
  EXPECT_EQ(c.node(lone).member_count(), 1u);  // no seeds: it waits
  const std::vector<membership::Address> to{c.address(2)};
  EXPECT_EQ(c.node(lone).join(to, c.now()), 1u);
  ASSERT_TRUE(c.run_until([&] { return everyone_alive(c) && c.node(lone).member_count() == 6; },
                          5s));
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
  // Probes before the reload are the rolling start's (a subject that has not heard of its
  // new monitor yet; soak seed 15385220750625402540 had one): the reload must add none.
  std::vector<std::uint64_t> probes;
  for (std::size_t i = 0; i < c.size(); ++i) probes.push_back(c.node(i).counters().probes);
  ProtocolTimings slower;
  slower.interval = 500ms;
  slower.phi = membership::PhiAccrualParams{};  // another detector, another history
  for (std::size_t i = 0; i < c.size(); ++i) c.node(i).set_timings(slower);
  c.run_for(30s);
  EXPECT_EQ(false_deaths(c, {}), 0u);
  for (std::size_t i = 0; i < c.size(); ++i) EXPECT_EQ(c.node(i).counters().probes, probes[i]);
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

// ---- attacks (docs/SECURITY.md) --------------------------------------------------------

// Every datagram node `from` sends while `on` holds, as an on-path attacker records them.
struct Recording {
  struct Datagram {
    membership::Address to;
    std::vector<std::uint8_t> body;
  };
  std::vector<Datagram> datagrams;
  bool on = true;
};

void record(SimCluster& c, std::size_t from, Recording& r) {
  c.tap([&r, from](std::size_t sender, const membership::Address& to,
                   std::span<const std::uint8_t> body) {
    if (r.on && sender == from) r.datagrams.push_back({to, {body.begin(), body.end()}});
  });
}

// How long after a crash of node 3 every other node sees it dead, while `attack` runs every
// 50 ms; nullopt if not within 20 s.
std::optional<Duration> detection_time(SimCluster& c, const std::function<void()>& attack) {
  const auto crashed = c.now();
  c.crash(3);
  while (c.now() - crashed < 20s) {
    if (c.all_see(3, MemberState::dead)) return c.now() - crashed;
    attack();
    c.run_until([&] { return c.all_see(3, MemberState::dead); }, 50ms);
  }
  return std::nullopt;
}

// The attack of issue #14: three seconds of a node's sealed datagrams, captured while it
// was alive, replayed in a loop after it was killed, to their receivers and to every other
// node, from its address and from another port. Copies are worthless: a counter already
// seen, a receiver tag of another node.
TEST(MembershipAttack, ReplayedSealedDatagramsCannotHideACrash) {
  const auto seed = test::seeded_rng()();
  std::optional<Duration> plain_time, replay_time;
  std::uint64_t replays = 0, misdirected = 0;
  for (bool replay : {false, true}) {
    SimCluster c(seed, ProtocolTimings{});
    c.add_nodes(10);
    ASSERT_TRUE(c.run_until([&] { return c.all_see(3, MemberState::alive); }, 10s));
    c.run_for(5s);
    Recording r;
    record(c, 3, r);
    c.run_for(3s);
    r.on = false;
    ASSERT_GT(r.datagrams.size(), 20u);
    auto other_port = c.address(3);
    other_port.port = static_cast<std::uint16_t>(other_port.port + 1);
    auto attack = [&] {
      if (!replay) return;
      for (const auto& d : r.datagrams) {
        for (std::size_t i = 0; i < c.size(); ++i) {
          if (i == 3) continue;
          c.inject(i, c.address(3), d.body);
          c.inject(i, other_port, d.body);
        }
      }
    };
    (replay ? replay_time : plain_time) = detection_time(c, attack);
    if (replay) {
      for (std::size_t i = 0; i < c.size(); ++i) {
        replays += c.node(i).counters().replays;
        misdirected += c.node(i).counters().misdirected;
      }
    }
    EXPECT_EQ(false_deaths(c, {c.name(3)}), 0u);
  }
  ASSERT_TRUE(plain_time);
  ASSERT_TRUE(replay_time) << "the replay kept the crashed node alive";
  EXPECT_LE(*replay_time, detection_bound(ProtocolTimings{}) + 100ms);
  EXPECT_GT(replays, 0u);
  EXPECT_GT(misdirected, 0u);
  std::printf(
      "[ figure   ] crash detected everywhere after %lld ms without replay, %lld ms "
      "under replay (%llu copies dropped as seen, %llu as misdirected)\n",
      static_cast<long long>(plain_time->count() / 1000000),
      static_cast<long long>(replay_time->count() / 1000000),
      static_cast<unsigned long long>(replays), static_cast<unsigned long long>(misdirected));
}

// A restarted node's datagrams from before its restart are worthless too: its boot epoch
// is larger now, and the old ones are dropped even where they were never seen.
TEST(MembershipAttack, DatagramsFromBeforeARestartAreDropped) {
  auto cluster = converged(6);
  auto& c = *cluster;
  Recording r;
  record(c, 2, r);
  c.run_for(2s);
  r.on = false;
  c.crash(2);
  c.run_for(100ms);
  c.restart(2);
  ASSERT_TRUE(c.run_until([&] { return c.all_see(2, MemberState::alive); }, 10s));
  c.run_for(1s);
  std::uint64_t before = 0, after = 0;
  for (std::size_t i = 0; i < c.size(); ++i) before += c.node(i).counters().replays;
  for (const auto& d : r.datagrams) {
    for (std::size_t i = 0; i < c.size(); ++i) {
      if (i != 2) c.inject(i, c.address(2), d.body);
    }
  }
  c.run_for(100ms);
  for (std::size_t i = 0; i < c.size(); ++i) after += c.node(i).counters().replays;
  // Every copy delivered to a node that knows the new boot is dropped as a replay, or as
  // misdirected (it was meant for another node).
  std::uint64_t misdirected = 0;
  for (std::size_t i = 0; i < c.size(); ++i) misdirected += c.node(i).counters().misdirected;
  EXPECT_GE(after - before + misdirected, r.datagrams.size());
  EXPECT_TRUE(c.all_see(2, MemberState::alive));
}

// One forged datagram, in a plaintext cluster where anyone can write one: "dead" and
// "suspect" at the largest incarnation, twenty invented accusers, and an "alive" that would
// push another member to the top of the range. Nobody stays dead, and no incarnation
// leaves the range a member can refute from.
TEST(MembershipAttack, ForgedIncarnationsAndInventedAccusersKillNoOne) {
  auto cluster = converged(10);
  auto& c = *cluster;
  c.run_for(2s);
  constexpr auto kTop = std::numeric_limits<std::uint64_t>::max();
  membership::Message forged;
  forged.type = membership::MessageType::gossip;
  forged.sender = {c.name(1), c.address(1), 0};  // a real member's name and address
  forged.updates.push_back({MemberState::dead, c.name(5), c.address(5), kTop, "ghost"});
  for (int i = 0; i < 20; ++i) {
    forged.updates.push_back(
        {MemberState::suspect, c.name(6), c.address(6), kTop, "ghost-" + std::to_string(i)});
  }
  forged.updates.push_back({MemberState::alive, c.name(7), c.address(7), kTop, ""});
  forged.updates.push_back({MemberState::dead, c.name(8), c.address(8), 0, c.name(1)});
  const auto bytes = membership::encode(forged);
  for (std::size_t i = 0; i < c.size(); ++i) {
    c.inject(i, membership::Address::v4(0xc0000201, 666), bytes, Duration::zero(), true);
  }
  c.run_for(10s);
  for (std::size_t i = 0; i < c.size(); ++i) {
    EXPECT_TRUE(c.all_see(i, MemberState::alive)) << c.name(i);
    for (const auto& m : c.node(i).members()) {
      EXPECT_LE(m.incarnation, membership::kMaxIncarnationStep) << m.name << " at " << c.name(i);
    }
  }
  // The dead accused by a real member's name (node 8, at its own incarnation) refuted it;
  // the others never went past suspect.
  for (const auto& o : c.observations()) {
    if (o.state == MemberState::dead) {
      EXPECT_EQ(o.member, c.name(8));
    }
  }
  EXPECT_GT(c.node(0).counters().implausible, 0u);
}

// A join under a new name with a forged source: the cluster may answer the named address
// with at most what it sent (one page and a cookie), never its view, and never admits the
// name (which would make every member probe it and retry it for a day).
TEST(MembershipAttack, ASpoofedJoinIsNeverAmplified) {
  auto cluster = converged(40);
  auto& c = *cluster;
  c.run_for(1s);
  const auto victim = membership::Address::v4(0xc6336401, 53);
  membership::Message join;
  join.type = membership::MessageType::sync;
  join.flags = membership::kSyncJoin;
  join.sender = {"newcomer", victim, 0};
  const auto bytes = membership::encode(join);
  std::uint64_t sent = 0;
  for (int round = 0; round < 10; ++round) {
    for (std::size_t i = 0; i < c.size(); ++i) {
      c.inject(i, victim, bytes, Duration::zero(), true);
      sent += bytes.size();
    }
    c.run_for(500ms);
  }
  c.run_for(10s);
  const auto received = c.bytes_to(victim);
  std::printf(
      "[ figure   ] spoofed join: %llu bytes in, %llu bytes out to the named address "
      "(%.2fx)\n",
      static_cast<unsigned long long>(sent), static_cast<unsigned long long>(received),
      static_cast<double>(received) / static_cast<double>(sent));
  EXPECT_LE(received, sent);
  for (std::size_t i = 0; i < c.size(); ++i) EXPECT_FALSE(c.node(i).member("newcomer"));
}

// Every other kind of datagram from an unverified source: the answer is at most 3x what it
// sent (RFC 9000's limit), and carries no news.
TEST(MembershipAttack, UnverifiedSourcesGetAtMostThreeTimesWhatTheySent) {
  auto cluster = converged(20);
  auto& c = *cluster;
  c.run_for(1s);
  // Some news in every queue, so a careless reply would carry it.
  c.crash(9);
  c.run_for(2s);
  std::uint32_t port = 1000;
  for (auto type : {membership::MessageType::heartbeat, membership::MessageType::ping,
                    membership::MessageType::ack, membership::MessageType::ping_req,
                    membership::MessageType::nack, membership::MessageType::gossip,
                    membership::MessageType::sync, membership::MessageType::sync_reply}) {
    const auto victim = membership::Address::v4(0xc6336402, static_cast<std::uint16_t>(port++));
    membership::Message m;
    m.type = type;
    m.sender = {c.name(1), c.address(1), 0};  // a member's name, from the victim's address
    m.target = c.name(2);
    m.target_address = victim;
    const auto bytes = membership::encode(m);
    for (std::size_t i = 0; i < c.size(); ++i) {
      if (i != 9) c.inject(i, victim, bytes, Duration::zero(), true);
    }
    c.run_for(2s);
    const auto in = bytes.size() * (c.size() - 1);
    const auto out = c.bytes_to(victim);
    std::printf("[ figure   ] %-10s from an unverified source: %zu bytes in, %llu out (%.2fx)\n",
                std::string(membership::to_string(type)).c_str(), in,
                static_cast<unsigned long long>(out),
                static_cast<double>(out) / static_cast<double>(in));
    EXPECT_LE(out, 3 * in) << membership::to_string(type);
  }
}

// A flood of invented names from one source (a plaintext cluster): newcomers are
// rate-limited per source and refused at max_members, and no known member loses its place
// or its monitors.
TEST(MembershipAttack, ANameFloodEvictsNoOneAndIsRateLimited) {
  ProtocolTimings t;
  t.max_members = 300;
  auto cluster = converged(10, {}, t);
  auto& c = *cluster;
  c.run_for(1s);
  // From node 1's address, in node 1's name, 2000 invented members in 40 datagrams.
  for (int d = 0; d < 40; ++d) {
    membership::Message m;
    m.type = membership::MessageType::gossip;
    m.sender = {c.name(1), c.address(1), c.node(1).incarnation()};
    for (int k = 0; k < 50; ++k) {
      const auto n = static_cast<std::uint32_t>(d * 50 + k);
      m.updates.push_back({MemberState::alive, "fake-" + std::to_string(n),
                           membership::Address::v4(0x0b000000u + n, 1), 0, ""});
    }
    for (std::size_t i = 0; i < c.size(); ++i) {
      if (i != 1) c.inject(i, c.address(1), membership::encode(m), Duration::zero(), true);
    }
  }
  c.run_for(100ms);
  for (std::size_t i = 0; i < c.size(); ++i) {
    EXPECT_LE(c.node(i).member_count(), t.max_members);
    for (std::size_t j = 0; j < c.size(); ++j) {
      EXPECT_EQ(c.view(i, j), MemberState::alive) << c.name(i) << " about " << c.name(j);
    }
  }
  std::uint64_t limited = 0;
  for (std::size_t i = 0; i < c.size(); ++i) limited += c.node(i).counters().newcomers_limited;
  EXPECT_GT(limited, 0u);
  c.run_for(20s);  // the invented members are probed and die; no real one does
  for (std::size_t i = 0; i < c.size(); ++i) EXPECT_TRUE(c.all_see(i, MemberState::alive));
  for (const auto& o : c.observations()) {
    if (o.state == MemberState::dead) {
      EXPECT_EQ(o.member.rfind("fake-", 0), 0u) << o.member;
    }
  }
}

// Names chosen to sit right after a victim on the public ring would become all of its
// monitors, so its heartbeats would go only to invented members. With the ring keyed (the
// cluster key's derivative), an attacker without the key cannot choose positions.
TEST(MembershipAttack, MonitorPositionsCannotBeChosenByName) {
  for (const std::uint64_t key : {std::uint64_t{0}, std::uint64_t{0x5eed5eed5eed5eed}}) {
    SimCluster c(test::seeded_rng()(), ProtocolTimings{});
    c.set_ring_key(key);
    c.add_nodes(10);
    ASSERT_TRUE(c.run_until([&] { return c.all_see(4, MemberState::alive); }, 10s));
    c.run_for(2s);
    // The attacker knows the code, not the key: it picks names by their public position.
    std::vector<std::uint64_t> taken;
    for (std::size_t i = 0; i < c.size(); ++i) {
      if (i != 4)
        taken.push_back(membership::ring_position(c.name(i)) -
                        membership::ring_position(c.name(4)));
    }
    const auto gap = *std::min_element(taken.begin(), taken.end());  // to the next member
    membership::Message m;
    m.type = membership::MessageType::gossip;
    m.sender = {c.name(1), c.address(1), c.node(1).incarnation()};
    for (std::uint32_t n = 0; m.updates.size() < 3; ++n) {
      const auto name = "evil-" + std::to_string(n);
      if (membership::ring_position(name) - membership::ring_position(c.name(4)) < gap) {
        m.updates.push_back(
            {MemberState::alive, name, membership::Address::v4(0x0c000000u + n, 1), 0, ""});
      }
    }
    c.inject(4, c.address(1), membership::encode(m), Duration::zero(), true);
    std::set<std::string> heard;  // where node 4's heartbeats go after the flood
    std::map<membership::Address, std::string> by_address;
    for (std::size_t i = 0; i < c.size(); ++i) by_address[c.address(i)] = c.name(i);
    c.run_for(10ms);
    c.tap([&](std::size_t from, const membership::Address& to, std::span<const std::uint8_t> body) {
      auto d = membership::decode(body);
      if (from != 4 || std::get<membership::Message>(d).type != membership::MessageType::heartbeat)
        return;
      heard.insert(by_address.count(to) ? by_address[to] : "invented");
    });
    c.run_for(300ms);
    heard.erase("invented");
    if (key == 0) {
      EXPECT_TRUE(heard.empty()) << "the public ring should be choosable (the test's control)";
    } else {
      EXPECT_FALSE(heard.empty()) << "every monitor of node 4 is an invented member";
    }
  }
}

// Two plaintext clusters of the same name on one network (the default name, two teams): a
// member of one learns the address of a member of the other (a configuration slip, a
// reused address). The clusters stay apart: a stranger's datagram carrying another
// cluster's id is dropped unless the receiver is alone. A node seeded into one joins it.
TEST(MembershipAttack, TwoClustersOfTheSameNameNeverMergeUnlessSeeded) {
  SimCluster c(test::seeded_rng()(), ProtocolTimings{});
  for (std::size_t i = 0; i < 10; ++i) {
    c.add_node("node-" + std::to_string(i),
               i == 0 || i == 5 ? std::nullopt : std::optional<std::size_t>(i < 5 ? 0 : 5));
    c.run_for(20ms);
  }
  auto apart = [&] {
    for (std::size_t i = 0; i < 10; ++i) {
      for (std::size_t j = 0; j < 10; ++j) {
        const bool same = (i < 5) == (j < 5);
        if (same && c.view(i, j) != MemberState::alive) return false;
        if (!same && c.view(i, j) == MemberState::alive) return false;
      }
    }
    return true;
  };
  ASSERT_TRUE(c.run_until(apart, 10s));
  membership::Message slip;
  slip.type = membership::MessageType::gossip;
  slip.sender = {c.name(0), c.address(0), c.node(0).incarnation()};
  slip.updates.push_back({MemberState::alive, c.name(7), c.address(7), 0, ""});
  c.inject(1, c.address(0), membership::encode(slip), Duration::zero(), true);
  c.run_for(30s);
  std::uint64_t dropped = 0;
  for (std::size_t i = 5; i < 10; ++i) {
    dropped += c.node(i).counters().other_cluster;
    for (std::size_t j = 0; j < 5; ++j) EXPECT_FALSE(c.node(i).member(c.name(j))) << i << " " << j;
  }
  EXPECT_GT(dropped, 0u);
  for (std::size_t i = 0; i < 5; ++i) {
    for (std::size_t j = 0; j < 5; ++j) EXPECT_EQ(c.view(i, j), MemberState::alive);
  }
  // A new node seeded with a member of the second cluster joins that one.
  const auto n = c.add_node("node-10", 5);
  ASSERT_TRUE(c.run_until(
      [&] {
        for (std::size_t i = 5; i < 10; ++i) {
          if (c.view(i, n) != MemberState::alive) return false;
        }
        return c.node(n).member_count() == 6;
      },
      10s));
  for (std::size_t i = 0; i < 5; ++i) EXPECT_FALSE(c.node(i).member(c.name(n)));
}

// A ten-minute partition heals by itself, with every member alive on both sides after.
TEST(MembershipAttack, ATenMinutePartitionHeals) {
  auto cluster = converged(20);
  auto& c = *cluster;
  std::vector<int> groups(20);
  for (std::size_t i = 0; i < groups.size(); ++i) groups[i] = i < 8 ? 1 : 2;
  c.partition(groups);
  c.run_for(10min);
  EXPECT_EQ(c.view(0, 15), MemberState::dead);
  c.heal();
  ASSERT_TRUE(c.run_until([&] { return everyone_alive(c); }, 30s));
}

}  // namespace
}  // namespace heartbeatd::sim
