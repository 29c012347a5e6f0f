// Single rules of the membership protocol, driven by hand-made datagrams and a manual clock:
// joining, malformed input, refutation, incarnation order, probes and acks, restarts, pauses,
// name conflicts, leaving (scenarios with many nodes are in membership_sim_test.cpp; the
// protocol's parts have their own tests: suspicion_test, replay_window_test,
// monitor_ring_test, gossip_queue_test, local_health_test).
#include "membership/protocol.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace heartbeatd::membership {
namespace {

using namespace std::chrono_literals;

Update alive(const std::string& name, std::uint64_t inc = 0) {
  return Update{MemberState::alive, name, Address::v4(0x7f000001, 7701), inc, {}};
}

// A protocol instance with a recording sink, driven by hand.
struct Wire : DatagramSink, MembershipObserver {
  struct Sent {
    Address to;
    Message msg;
  };
  std::vector<Sent> sent;
  std::vector<std::pair<std::string, MemberState>> changes;
  std::vector<std::string> forgotten;
  void member_forgotten(const std::string& name) override { forgotten.push_back(name); }
  void send(const Address& to, std::span<const std::uint8_t> body) override {
    sent.push_back({to, std::get<Message>(decode(body))});
  }
  void member_changed(const MemberInfo& m, std::optional<MemberState>) override {
    changes.emplace_back(m.name, m.state);
  }
  void note(NoteLevel, const std::string&) override {}
  std::vector<Sent> of(MessageType t) const {
    std::vector<Sent> out;
    for (const auto& s : sent) {
      if (s.msg.type == t) out.push_back(s);
    }
    return out;
  }
};

const Address kSelf = Address::v4(0x7f000001, 7001);
const Address kPeer = Address::v4(0x7f000002, 7001);
const Address kOther = Address::v4(0x7f000003, 7001);

// The cookie a node built with seed 1 (every node in these tests) gives address `a`: what
// a sender at `a` echoes once it has heard from the node, proving it receives there.
std::uint64_t cookie_of(const Address& a) {
  Wire w;
  const TimePoint t0{1000h};
  MembershipProtocol q("cookie", Address::v4(0x7f0000ff, 7001), {a}, ProtocolTimings{}, w, &w, 1,
                       t0);
  q.start(t0);
  return w.sent.at(0).msg.cookie;
}

// Encodes `m` as its sender would send it: the next counter of its boot, so the receiver's
// replay window takes it as fresh, and the receiver's cookie for its address echoed.
std::vector<std::uint8_t> fresh(Message m) {
  static std::uint64_t counter = 0;
  m.boot = 1;
  m.counter = ++counter;
  m.echo = cookie_of(m.sender.address);
  return encode(m);
}

std::vector<std::uint8_t> from_peer(MessageType type, std::uint64_t inc = 0,
                                    std::vector<Update> updates = {}) {
  Message m;
  m.type = type;
  m.sender = NodeRef{"peer", kPeer, inc};
  m.updates = std::move(updates);
  return fresh(m);
}

std::vector<std::uint8_t> from_other(std::vector<Update> updates) {
  Message m;
  m.type = MessageType::gossip;
  m.sender = NodeRef{"other", kOther, 0};
  m.updates = std::move(updates);
  return fresh(m);
}

Update tagged(const std::string& name, std::uint64_t inc, membership::Tags tags,
              std::uint64_t at) {
  Update u{MemberState::alive, name, kPeer, inc};
  u.tags = std::move(tags);
  u.tags_at = at;
  return u;
}

TEST(MembershipProtocol, TagsMoveOnlyToALaterAnnouncementWhateverTheIncarnation) {
  Wire wire;
  const TimePoint t0{1000h};
  MembershipProtocol p("self", kSelf, {}, ProtocolTimings{}, wire, &wire, 1, t0);
  p.start(t0);
  ASSERT_TRUE(p.receive(kOther, from_other({tagged("peer", 3, {{"role", "db"}}, 3)}), t0));
  EXPECT_EQ(p.member("peer")->tags, (membership::Tags{{"role", "db"}}));
  EXPECT_EQ(p.member("peer")->tags_at, 3u);
  // Its own heartbeat at incarnation 5 (it changed its tags) has no tags in it: the
  // incarnation moves, the tags it knows stay until its news says otherwise.
  wire.changes.clear();
  ASSERT_TRUE(p.receive(kPeer, from_peer(MessageType::heartbeat, 5), t0 + 1ms));
  EXPECT_EQ(p.member("peer")->incarnation, 5u);
  EXPECT_EQ(p.member("peer")->tags, (membership::Tags{{"role", "db"}}));
  // Its news of incarnation 5 arrives after: the tags move although the incarnation does not.
  ASSERT_TRUE(
      p.receive(kOther, from_other({tagged("peer", 5, {{"role", "db"}, {"zone", "b"}}, 5)}), t0));
  EXPECT_EQ(p.member("peer")->tags, (membership::Tags{{"role", "db"}, {"zone", "b"}}));
  ASSERT_EQ(wire.changes.size(), 1u) << "a change of tags is reported, once";
  EXPECT_EQ(wire.changes[0], (std::pair<std::string, MemberState>{"peer", MemberState::alive}));
  // Older tags, even on later news (a relay of an incarnation whose tags it had not heard),
  // change nothing; neither does news that says nothing of tags.
  ASSERT_TRUE(p.receive(kOther, from_other({tagged("peer", 6, {{"role", "old"}}, 3)}), t0));
  ASSERT_TRUE(p.receive(kOther, from_other({Update{MemberState::alive, "peer", kPeer, 7}}), t0));
  EXPECT_EQ(p.member("peer")->incarnation, 7u);
  EXPECT_EQ(p.member("peer")->tags, (membership::Tags{{"role", "db"}, {"zone", "b"}}));
  EXPECT_EQ(wire.changes.size(), 1u);
  // Removing every tag is an announcement too.
  ASSERT_TRUE(p.receive(kOther, from_other({tagged("peer", 7, {}, 7)}), t0));
  EXPECT_TRUE(p.member("peer")->tags.empty());
  EXPECT_EQ(p.member("peer")->tags_at, 7u);
}

TEST(MembershipProtocol, SettingTagsRaisesTheIncarnationAndAnnouncesThem) {
  Wire wire;
  const TimePoint t0{1000h};
  MembershipProtocol p("self", kSelf, {}, ProtocolTimings{}, wire, &wire, 1, t0);
  p.set_tags({{"role", "db"}}, t0);  // before start: what it starts with, no new incarnation
  EXPECT_EQ(p.incarnation(), 0u);
  p.start(t0);
  ASSERT_TRUE(p.receive(kPeer, from_peer(MessageType::heartbeat), t0));
  p.set_tags({{"role", "db"}}, t0);  // unchanged: nothing
  EXPECT_EQ(p.incarnation(), 0u);
  wire.sent.clear();
  p.set_tags({{"role", "web"}}, t0 + 1ms);
  EXPECT_EQ(p.incarnation(), 1u);
  EXPECT_EQ(p.member("self")->tags, (membership::Tags{{"role", "web"}}));
  p.tick(t0 + 100ms);
  bool announced = false;
  for (const auto& s : wire.sent) {
    for (const auto& u : s.msg.updates) {
      announced |= u.name == "self" && u.incarnation == 1 && u.tags_at == 1u &&
                   u.tags == membership::Tags{{"role", "web"}};
    }
  }
  EXPECT_TRUE(announced);
}

TEST(MembershipProtocol, JoinsThroughASeedAndLearnsItsView) {
  Wire wire;
  const TimePoint t0{1000h};
  MembershipProtocol p("self", kSelf, {kPeer}, ProtocolTimings{}, wire, &wire, 1, t0);
  p.start(t0);
  auto joins = wire.of(MessageType::sync);
  ASSERT_EQ(joins.size(), 1u);
  EXPECT_EQ(joins[0].to, kPeer);
  EXPECT_TRUE(joins[0].msg.flags & kSyncJoin);

  Message reply;
  reply.type = MessageType::sync_reply;
  reply.sender = NodeRef{"peer", kPeer, 0};
  reply.updates = {alive("other", 3)};
  reply.updates[0].address = kOther;
  ASSERT_TRUE(p.receive(kPeer, fresh(reply), t0 + 1ms));
  EXPECT_EQ(p.members().size(), 3u);
  EXPECT_EQ(p.member("other")->incarnation, 3u);
  EXPECT_EQ(p.member("peer")->last_seen, t0 + 1ms);
  EXPECT_FALSE(p.member("other")->last_seen);  // only heard of, never heard from
}

TEST(MembershipProtocol, MalformedDatagramsChangeNothing) {
  Wire wire;
  const TimePoint t0{1000h};
  MembershipProtocol p("self", kSelf, {}, ProtocolTimings{}, wire, &wire, 1, t0);
  auto good = from_peer(MessageType::heartbeat);
  good.push_back(0);  // trailing byte
  EXPECT_FALSE(p.receive(kPeer, good, t0));
  EXPECT_FALSE(p.receive(kPeer, {}, t0));
  EXPECT_EQ(p.members().size(), 1u);
  EXPECT_EQ(p.counters().malformed, 2u);
}

TEST(MembershipProtocol, RefutesASuspicionWithAHigherIncarnation) {
  Wire wire;
  const TimePoint t0{1000h};
  MembershipProtocol p("self", kSelf, {}, ProtocolTimings{}, wire, &wire, 1, t0);
  p.start(t0);
  ASSERT_TRUE(p.receive(
      kPeer,
      from_peer(MessageType::gossip, 0, {Update{MemberState::suspect, "self", kSelf, 0, "peer"}}),
      t0));
  EXPECT_EQ(p.incarnation(), 1u);
  EXPECT_EQ(p.counters().suspicions_refuted, 1u);
  EXPECT_EQ(p.local_health(), 1u);
  // The refutation leaves at once (eager gossip) carrying alive at the new incarnation.
  bool refuted = false;
  for (const auto& s : wire.sent) {
    for (const auto& u : s.msg.updates) {
      refuted |= u.name == "self" && u.state == MemberState::alive && u.incarnation == 1;
    }
  }
  EXPECT_TRUE(refuted);
  // An old suspicion (lower incarnation) is ignored.
  ASSERT_TRUE(p.receive(
      kPeer,
      from_peer(MessageType::gossip, 0, {Update{MemberState::suspect, "self", kSelf, 0, "peer"}}),
      t0 + 1ms));
  EXPECT_EQ(p.incarnation(), 1u);
}

TEST(MembershipProtocol, OldIncarnationsAreIgnoredAndDeadIsFinal) {
  Wire wire;
  const TimePoint t0{1000h};
  MembershipProtocol p("self", kSelf, {}, ProtocolTimings{}, wire, &wire, 1, t0);
  ASSERT_TRUE(p.receive(kPeer, from_peer(MessageType::heartbeat, 5), t0));
  auto dead = Update{MemberState::dead, "peer", kPeer, 4, "other"};
  ASSERT_TRUE(p.receive(kOther, from_other({dead}), t0));
  EXPECT_EQ(p.member("peer")->state, MemberState::alive);  // incarnation 4 < 5
  dead.incarnation = 5;
  ASSERT_TRUE(p.receive(kOther, from_other({dead}), t0));
  EXPECT_EQ(p.member("peer")->state, MemberState::dead);
  // Suspicion at the same incarnation cannot resurrect or downgrade it; alive at a higher
  // one does.
  auto sus = Update{MemberState::suspect, "peer", kPeer, 5, "y"};
  ASSERT_TRUE(p.receive(kOther, from_other({sus}), t0));
  EXPECT_EQ(p.member("peer")->state, MemberState::dead);
  ASSERT_TRUE(p.receive(kPeer, from_peer(MessageType::heartbeat, 6), t0));
  EXPECT_EQ(p.member("peer")->state, MemberState::alive);
}

// Regression (seed 599432870417 of MembershipSim.OneLossyLinkCannotKillAHealthyMember, about
// 1 run in 400): the only accuser of a healthy member could not hear it, and the member's
// refutation, spread by gossip to random members, happened to miss the accuser until its
// suspicion expired. A monitor of the suspect that sees the refutation tells the accusers.
TEST(MembershipProtocol, AMonitorSeeingARefutationTellsTheAccusersDirectly) {
  Wire wire;
  const TimePoint t0{1000h};
  ProtocolTimings t;
  t.gossip_fanout = 0;  // random gossip misses the accuser
  MembershipProtocol p("self", kSelf, {}, t, wire, &wire, 1, t0);
  p.start(t0);
  ASSERT_TRUE(p.receive(kPeer, from_peer(MessageType::heartbeat), t0));
  ASSERT_TRUE(p.receive(kOther, from_other({}), t0));
  p.tick(t0);  // three members: each watches the other two
  ASSERT_TRUE(
      p.receive(kOther, from_other({Update{MemberState::suspect, "peer", kPeer, 0, "other"}}), t0));
  ASSERT_EQ(p.member("peer")->state, MemberState::suspect);
  wire.sent.clear();
  ASSERT_TRUE(p.receive(kPeer, from_peer(MessageType::heartbeat, 1), t0 + 1ms));
  EXPECT_EQ(p.member("peer")->state, MemberState::alive);
  bool told = false;
  for (const auto& s : wire.of(MessageType::gossip)) {
    for (const auto& u : s.msg.updates) {
      told |=
          s.to == kOther && u.name == "peer" && u.state == MemberState::alive && u.incarnation == 1;
    }
  }
  EXPECT_TRUE(told);
}

// Runs the node as the daemon does: a tick at every next_wakeup() up to `until`.
void run_until(MembershipProtocol& p, TimePoint& now, TimePoint until) {
  while (p.next_wakeup() <= until) {
    now = std::max(now, p.next_wakeup());
    p.tick(now);
  }
  now = until;
  p.tick(now);
}

TEST(MembershipProtocol, AnOverdueSubjectIsProbedBeforeItIsSuspected) {
  Wire wire;
  const TimePoint t0{1000h};
  const ProtocolTimings t;
  MembershipProtocol p("self", kSelf, {}, t, wire, &wire, 1, t0);
  p.start(t0);
  ASSERT_TRUE(p.receive(kPeer, from_peer(MessageType::heartbeat), t0));
  // Heartbeats keep arriving every interval: never probed.
  auto now = t0;
  for (int i = 0; i < 10; ++i) {
    run_until(p, now, now + t.interval);
    ASSERT_TRUE(p.receive(kPeer, from_peer(MessageType::heartbeat), now));
  }
  EXPECT_EQ(p.counters().probes, 0u);
  // Silence: probed exactly when interval x miss_threshold has passed, not a tick earlier.
  const auto overdue = now + t.interval * t.miss_threshold;
  run_until(p, now, overdue - 1ns);
  EXPECT_EQ(p.counters().probes, 0u);
  EXPECT_EQ(p.next_wakeup(), overdue);
  run_until(p, now, overdue);
  EXPECT_EQ(p.counters().probes, 1u);
  auto pings = wire.of(MessageType::ping);
  ASSERT_FALSE(pings.empty());
  EXPECT_EQ(pings.back().to, kPeer);
  // The ack arrives in time: no suspicion.
  Message ack;
  ack.type = MessageType::ack;
  ack.sender = NodeRef{"peer", kPeer, 0};
  ack.seq = pings.back().msg.seq;
  ASSERT_TRUE(p.receive(kPeer, fresh(ack), overdue + 1ms));
  run_until(p, now, overdue + t.probe_timeout);
  EXPECT_EQ(p.member("peer")->state, MemberState::alive);
  // Silence after that: probe, no answer, suspect, then dead after the suspicion timeout
  // (a two-node cluster expects no further confirmations).
  const auto overdue2 = overdue + 1ms + t.interval * t.miss_threshold;
  run_until(p, now, overdue2);
  EXPECT_EQ(p.counters().probes, 2u);
  run_until(p, now, overdue2 + t.probe_timeout - 1ns);
  EXPECT_EQ(p.member("peer")->state, MemberState::alive);
  run_until(p, now, overdue2 + t.probe_timeout);
  EXPECT_EQ(p.member("peer")->state, MemberState::suspect);
  run_until(p, now, overdue2 + t.probe_timeout + t.suspicion_timeout - 1ns);
  EXPECT_EQ(p.member("peer")->state, MemberState::suspect);
  run_until(p, now, overdue2 + t.probe_timeout + t.suspicion_timeout);
  EXPECT_EQ(p.member("peer")->state, MemberState::dead);
}

// An ack answers the probe it names, and only from the probed member (or a helper that was
// asked): a forged or replayed ack cannot clear a silent member.
TEST(MembershipProtocol, AnAckCountsOnlyFromTheProbedMemberForItsProbe) {
  Wire wire;
  const TimePoint t0{1000h};
  ProtocolTimings t;
  t.indirect_checks = 0;
  MembershipProtocol p("self", kSelf, {}, t, wire, &wire, 1, t0);
  p.start(t0);
  ASSERT_TRUE(p.receive(kPeer, from_peer(MessageType::heartbeat), t0));
  ASSERT_TRUE(p.receive(kOther, from_other({}), t0));
  auto now = t0;
  const auto overdue = t0 + t.interval * t.miss_threshold;
  run_until(p, now, overdue);
  ASSERT_EQ(p.counters().probes, 2u);  // both members went silent
  std::uint32_t seq = 0;
  for (const auto& s : wire.of(MessageType::ping)) {
    if (s.to == kPeer) seq = s.msg.seq;
  }
  ASSERT_NE(seq, 0u);
  auto ack = [&](NodeRef sender, std::uint32_t n) {
    Message m;
    m.type = MessageType::ack;
    m.sender = std::move(sender);
    m.seq = n;
    return fresh(m);
  };
  // The right sequence number from another member, and another number from the member.
  ASSERT_TRUE(p.receive(kOther, ack(NodeRef{"other", kOther, 0}, seq), overdue + 1ms));
  ASSERT_TRUE(p.receive(kPeer, ack(NodeRef{"peer", kPeer, 0}, seq + 1), overdue + 1ms));
  run_until(p, now, overdue + t.probe_timeout);
  EXPECT_EQ(p.member("peer")->state, MemberState::suspect);
}

// The probe counters the daemon exports: probes, ping requests to helpers, probes nobody
// answered, and ping requests served for another member.
TEST(MembershipProtocol, CountsProbesIndirectProbesFailuresAndForwards) {
  Wire wire;
  const TimePoint t0{1000h};
  const ProtocolTimings t;  // indirect_checks 3: the other member helps
  MembershipProtocol p("self", kSelf, {}, t, wire, &wire, 1, t0);
  p.start(t0);
  ASSERT_TRUE(p.receive(kPeer, from_peer(MessageType::heartbeat), t0));
  ASSERT_TRUE(p.receive(kOther, from_other({}), t0));
  auto now = t0;
  const auto overdue = t0 + t.interval * t.miss_threshold;
  run_until(p, now, overdue);
  EXPECT_EQ(p.counters().probes, 2u);
  EXPECT_EQ(p.counters().indirect_probes, 2u);  // each silent member asked the other
  EXPECT_EQ(p.counters().indirect_probes, wire.of(MessageType::ping_req).size());
  EXPECT_EQ(p.counters().probes_failed, 0u);
  run_until(p, now, overdue + t.probe_timeout);
  EXPECT_EQ(p.counters().probes_failed, 2u);
  EXPECT_EQ(p.counters().probes_forwarded, 0u);
  // The other member asks this node to ping the peer (still in the ring, as a suspect).
  Message req;
  req.type = MessageType::ping_req;
  req.sender = NodeRef{"other", kOther, 0};
  req.seq = 77;
  req.target = "peer";
  req.target_address = kPeer;
  ASSERT_TRUE(p.receive(kOther, fresh(req), now + 1ms));
  EXPECT_EQ(p.counters().probes_forwarded, 1u);
}

// After a restart (persist/): the node starts above its persisted incarnation, knows its
// members again, asks a restored one (and the seeds) for the news, and judges the restored
// members afresh: a silent one is declared dead in the usual time; dead ones stay dead.
TEST(MembershipProtocol, RestoredMembersAreRejoinedAndJudgedAfresh) {
  Wire wire;
  const TimePoint t0{1000h};
  const ProtocolTimings t;
  MembershipProtocol p("self", kSelf, {}, t, wire, &wire, 1, t0);
  MemberInfo peer{"peer", kPeer, MemberState::suspect, 4, t0 - 1h, t0 - 2h, false, {}, {}};
  MemberInfo gone{"gone", kOther, MemberState::dead, 2, std::nullopt, t0 - 3h, false, {}, {}};
  MemberInfo me{"self", kSelf, MemberState::alive, 9, std::nullopt, t0 - 1h, true, {}, {}};
  const std::vector<MemberInfo> restored{peer, gone, me};
  p.restore(8, restored, t0);
  EXPECT_EQ(p.incarnation(), 8u);
  EXPECT_EQ(p.member("peer")->state, MemberState::alive);  // judged afresh
  EXPECT_EQ(p.member("peer")->incarnation, 4u);
  EXPECT_EQ(p.member("gone")->state, MemberState::dead);
  EXPECT_EQ(p.member("gone")->state_since, t0 - 3h);  // reaping counts from then
  EXPECT_EQ(p.members().size(), 3u);

  p.start(t0);
  bool asked_peer = false;
  for (const auto& s : wire.of(MessageType::sync)) {
    if (s.to == kPeer && (s.msg.flags & kSyncJoin)) asked_peer = true;
  }
  EXPECT_TRUE(asked_peer);
  // Silence from the restored member: probed when overdue, suspected, then dead.
  auto now = t0;
  const auto dead_by =
      t0 + t.interval * t.miss_threshold + t.probe_timeout + t.suspicion_max_timeout + t.interval;
  run_until(p, now, dead_by);
  EXPECT_GE(p.counters().probes, 1u);
  EXPECT_EQ(p.member("peer")->state, MemberState::dead);
  // A member that answers stays alive, and hears the restored incarnation.
  MembershipProtocol q("self", kSelf, {}, t, wire, &wire, 1, t0);
  q.restore(8, restored, t0);
  q.start(t0);
  auto now_q = t0;
  for (int i = 0; i < 20; ++i) {
    run_until(q, now_q, now_q + t.interval);
    ASSERT_TRUE(q.receive(kPeer, from_peer(MessageType::heartbeat, 4), now_q));
  }
  EXPECT_EQ(q.member("peer")->state, MemberState::alive);
  bool told = false;
  for (const auto& s : wire.of(MessageType::heartbeat)) {
    if (s.to == kPeer && s.msg.sender.incarnation == 8) told = true;
  }
  EXPECT_TRUE(told);
}

TEST(MembershipProtocol, APausedNodeAccusesNoOneOnWaking) {
  Wire wire;
  const TimePoint t0{1000h};
  const ProtocolTimings t;
  MembershipProtocol p("self", kSelf, {}, t, wire, &wire, 1, t0);
  p.start(t0);
  ASSERT_TRUE(p.receive(kPeer, from_peer(MessageType::heartbeat), t0));
  p.tick(t0);
  p.tick(t0 + 10s);  // we were stopped for 10 s
  EXPECT_EQ(p.counters().pauses, 1u);
  EXPECT_EQ(p.counters().probes, 0u);
  EXPECT_EQ(p.member("peer")->state, MemberState::alive);
}

TEST(MembershipProtocol, AClaimOnALiveNameFromAnotherAddressIsRefused) {
  Wire wire;
  const TimePoint t0{1000h};
  MembershipProtocol p("self", kSelf, {}, ProtocolTimings{}, wire, &wire, 1, t0);
  ASSERT_TRUE(p.receive(kPeer, from_peer(MessageType::heartbeat), t0));
  Message impostor;
  impostor.type = MessageType::heartbeat;
  impostor.sender = NodeRef{"peer", kOther, 7};
  ASSERT_TRUE(p.receive(kOther, fresh(impostor), t0 + 1ms));
  EXPECT_EQ(p.member("peer")->address, kPeer);
  EXPECT_EQ(p.member("peer")->incarnation, 0u);
  EXPECT_EQ(p.counters().name_conflicts, 1u);
  auto refusals = wire.of(MessageType::refuse);
  ASSERT_EQ(refusals.size(), 1u);
  EXPECT_EQ(refusals[0].to, kOther);
}

TEST(MembershipProtocol, LeavingAnnouncesLeftDirectly) {
  Wire wire;
  const TimePoint t0{1000h};
  MembershipProtocol p("self", kSelf, {}, ProtocolTimings{}, wire, &wire, 1, t0);
  ASSERT_TRUE(p.receive(kPeer, from_peer(MessageType::heartbeat), t0));
  wire.sent.clear();
  p.leave(t0 + 1ms);
  ASSERT_EQ(wire.sent.size(), 1u);
  EXPECT_EQ(wire.sent[0].to, kPeer);
  ASSERT_EQ(wire.sent[0].msg.updates.size(), 1u);
  EXPECT_EQ(wire.sent[0].msg.updates[0].state, MemberState::left);
  EXPECT_EQ(wire.sent[0].msg.updates[0].incarnation, 1u);
  EXPECT_EQ(p.member("self")->state, MemberState::left);
}

// ---- run-time join and force-leave ---------------------------------------------------

TEST(MembershipProtocol, JoinSendsAJoinRequestToEachAddressButItsOwn) {
  Wire wire;
  const TimePoint t0{1000h};
  MembershipProtocol p("self", kSelf, {}, ProtocolTimings{}, wire, &wire, 1, t0);
  p.start(t0);
  wire.sent.clear();
  const std::vector<Address> to{kPeer, kSelf, kOther};
  EXPECT_EQ(p.join(to, t0 + 1ms), 2u);
  auto joins = wire.of(MessageType::sync);
  ASSERT_EQ(joins.size(), 2u);
  EXPECT_EQ(joins[0].to, kPeer);
  EXPECT_EQ(joins[1].to, kOther);
  for (const auto& j : joins) EXPECT_TRUE(j.msg.flags & kSyncJoin);
  // The answer makes the joined node a member, as a seed's does.
  Message reply;
  reply.type = MessageType::sync_reply;
  reply.sender = NodeRef{"peer", kPeer, 0};
  ASSERT_TRUE(p.receive(kPeer, fresh(reply), t0 + 2ms));
  EXPECT_EQ(p.member("peer")->state, MemberState::alive);
  p.leave(t0 + 3ms);
  EXPECT_EQ(p.join(to, t0 + 4ms), 0u);  // a leaving node joins nothing
}

// self knows peer (alive, it heard from it) and other in `state` (heard of from peer only).
void with_other(MembershipProtocol& p, MemberState state, TimePoint t) {
  Update o = alive("other");
  o.address = kOther;
  ASSERT_TRUE(p.receive(kPeer, from_peer(MessageType::gossip, 0, {o}), t));
  if (state == MemberState::alive) return;
  const auto accused = state == MemberState::left ? MemberState::dead : state;
  ASSERT_TRUE(p.receive(
      kPeer, from_peer(MessageType::gossip, 0, {Update{accused, "other", kOther, 0, "peer"}}), t));
  if (state == MemberState::left) {
    ASSERT_TRUE(p.receive(
        kPeer, from_peer(MessageType::gossip, 0, {Update{state, "other", kOther, 0, {}}}), t));
  }
  ASSERT_EQ(p.member("other")->state, state);
}

// Every update about `name` the node sent, in order.
std::vector<Update> sent_about(const Wire& wire, const std::string& name) {
  std::vector<Update> out;
  for (const auto& s : wire.sent) {
    for (const auto& u : s.msg.updates) {
      if (u.name == name) out.push_back(u);
    }
  }
  return out;
}

TEST(MembershipProtocol, ForceLeaveIsRefusedForItselfAnUnknownAndALiveMember) {
  using Outcome = ForceLeaveResult::Outcome;
  Wire wire;
  const TimePoint t0{1000h};
  MembershipProtocol p("self", kSelf, {}, ProtocolTimings{}, wire, &wire, 1, t0);
  p.start(t0);
  with_other(p, MemberState::alive, t0);
  EXPECT_EQ(p.force_leave("self", false, t0).outcome, Outcome::self);
  EXPECT_EQ(p.force_leave("nobody", true, t0).outcome, Outcome::unknown);
  const auto r = p.force_leave("other", true, t0);
  EXPECT_EQ(r.outcome, Outcome::alive);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(p.member("other")->state, MemberState::alive);
  EXPECT_EQ(p.member("self")->state, MemberState::alive);
  EXPECT_EQ(p.counters().force_leaves, 0u);
  EXPECT_TRUE(wire.forgotten.empty());
}

TEST(MembershipProtocol, ForceLeaveOfASuspectWaitsForItsDetectionTimeHere) {
  using Outcome = ForceLeaveResult::Outcome;
  Wire wire;
  const TimePoint t0{1000h};
  MembershipProtocol p("self", kSelf, {}, ProtocolTimings{}, wire, &wire, 1, t0);
  p.start(t0);
  with_other(p, MemberState::suspect, t0);
  // This node itself heard from it: others' suspicion may be a partition that spares us.
  ASSERT_TRUE(p.receive(kOther, from_other({}), t0 + 100ms));
  ASSERT_EQ(p.member("other")->state, MemberState::suspect);
  const auto r = p.force_leave("other", false, t0 + 1s);
  EXPECT_EQ(r.outcome, Outcome::heard_recently);
  EXPECT_EQ(r.heard_ago, 900ms);
  // miss threshold 200 ms x 4, probe timeout 200 ms, suspicion timeout 800 ms.
  EXPECT_EQ(r.detection_time, 1800ms);
  EXPECT_EQ(p.member("other")->state, MemberState::suspect);
  // Silent here for longer than that: accepted.
  EXPECT_EQ(p.force_leave("other", false, t0 + 1901ms).outcome, Outcome::left);
  EXPECT_EQ(p.member("other")->state, MemberState::left);
}

TEST(MembershipProtocol, ForceLeaveOfASuspectNeverHeardFromHereIsAccepted) {
  Wire wire;
  const TimePoint t0{1000h};
  MembershipProtocol p("self", kSelf, {}, ProtocolTimings{}, wire, &wire, 1, t0);
  p.start(t0);
  with_other(p, MemberState::suspect, t0);
  const auto r = p.force_leave("other", false, t0 + 1ms);
  EXPECT_EQ(r.outcome, ForceLeaveResult::Outcome::left);
  EXPECT_EQ(r.before, MemberState::suspect);
}

TEST(MembershipProtocol, ForceLeaveMarksADeadMemberLeftAndGossipsIt) {
  Wire wire;
  const TimePoint t0{1000h};
  MembershipProtocol p("self", kSelf, {}, ProtocolTimings{}, wire, &wire, 1, t0);
  p.start(t0);
  with_other(p, MemberState::dead, t0);
  wire.sent.clear();
  wire.changes.clear();
  const auto r = p.force_leave("other", false, t0 + 1s);
  EXPECT_EQ(r.outcome, ForceLeaveResult::Outcome::left);
  EXPECT_EQ(r.before, MemberState::dead);
  EXPECT_EQ(p.member("other")->state, MemberState::left);
  EXPECT_EQ(p.counters().force_leaves, 1u);
  ASSERT_EQ(wire.changes.size(), 1u);  // the stream and hooks see dead -> left
  EXPECT_EQ(wire.changes[0], std::make_pair(std::string("other"), MemberState::left));
  p.tick(t0 + 2s);
  const auto news = sent_about(wire, "other");
  ASSERT_FALSE(news.empty());
  EXPECT_EQ(news.back().state, MemberState::left);
  EXPECT_FALSE(news.back().forget);
  EXPECT_TRUE(wire.forgotten.empty());
}

TEST(MembershipProtocol, ForceLeaveWithPruneForgetsTheMemberAndTellsEveryone) {
  Wire wire;
  const TimePoint t0{1000h};
  MembershipProtocol p("self", kSelf, {}, ProtocolTimings{}, wire, &wire, 1, t0);
  p.start(t0);
  with_other(p, MemberState::left, t0);
  wire.sent.clear();
  wire.changes.clear();
  const auto r = p.force_leave("other", true, t0 + 1s);
  EXPECT_EQ(r.outcome, ForceLeaveResult::Outcome::forgotten);
  EXPECT_FALSE(p.member("other"));
  EXPECT_EQ(wire.forgotten, std::vector<std::string>{"other"});
  EXPECT_TRUE(wire.changes.empty());  // it was left already
  p.tick(t0 + 2s);
  const auto news = sent_about(wire, "other");
  ASSERT_FALSE(news.empty());
  EXPECT_EQ(news.back().state, MemberState::left);
  EXPECT_TRUE(news.back().forget);
  EXPECT_EQ(news.back().address, kOther);
}

TEST(MembershipProtocol, AForgetIsAppliedUnlessTheMemberIsKnownAliveAtALaterIncarnation) {
  const TimePoint t0{1000h};
  Update forget{MemberState::left, "other", kOther, 0, {}};
  forget.forget = true;
  {
    Wire wire;
    MembershipProtocol p("self", kSelf, {}, ProtocolTimings{}, wire, &wire, 1, t0);
    with_other(p, MemberState::dead, t0);
    wire.changes.clear();
    ASSERT_TRUE(p.receive(kPeer, from_peer(MessageType::gossip, 0, {forget}), t0 + 1ms));
    EXPECT_FALSE(p.member("other"));
    EXPECT_EQ(wire.forgotten, std::vector<std::string>{"other"});
    ASSERT_EQ(wire.changes.size(), 1u);  // dead -> left, then forgotten
    EXPECT_EQ(wire.changes[0].second, MemberState::left);
    p.tick(t0 + 1s);
    const auto news = sent_about(wire, "other");  // passed on
    ASSERT_FALSE(news.empty());
    EXPECT_TRUE(news.back().forget);
  }
  {
    Wire wire;
    MembershipProtocol p("self", kSelf, {}, ProtocolTimings{}, wire, &wire, 1, t0);
    Update o = alive("other", 2);
    o.address = kOther;
    ASSERT_TRUE(p.receive(kPeer, from_peer(MessageType::gossip, 0, {o}), t0));
    ASSERT_TRUE(p.receive(kPeer, from_peer(MessageType::gossip, 0, {forget}), t0 + 1ms));
    ASSERT_TRUE(p.member("other"));  // it refuted whatever the force-leave was based on
    EXPECT_EQ(p.member("other")->state, MemberState::alive);
    EXPECT_TRUE(wire.forgotten.empty());
  }
}

TEST(MembershipProtocol, AForgottenMemberIsNotBroughtBackBySecondHandNews) {
  Wire wire;
  const TimePoint t0{1000h};
  MembershipProtocol p("self", kSelf, {}, ProtocolTimings{}, wire, &wire, 1, t0);
  p.start(t0);
  with_other(p, MemberState::dead, t0);
  ASSERT_TRUE(p.force_leave("other", true, t0 + 1ms).ok());
  p.tick(t0 + 1s);
  wire.sent.clear();
  // A peer that has not heard still pages it, dead or even alive at the same incarnation.
  Message page;
  page.type = MessageType::sync;
  page.sender = NodeRef{"peer", kPeer, 0};
  page.updates = {Update{MemberState::dead, "other", kOther, 0, "peer"}};
  ASSERT_TRUE(p.receive(kPeer, fresh(page), t0 + 2s));
  EXPECT_FALSE(p.member("other"));
  Update stale = alive("other");
  stale.address = kOther;
  ASSERT_TRUE(p.receive(kPeer, from_peer(MessageType::gossip, 0, {stale}), t0 + 2s + 1ms));
  EXPECT_FALSE(p.member("other"));
  p.tick(t0 + 3s);
  const auto news = sent_about(wire, "other");  // told again
  ASSERT_FALSE(news.empty());
  EXPECT_TRUE(news.back().forget);
  // The member itself speaking is first-hand: a live node force-left by mistake comes back.
  ASSERT_TRUE(p.receive(kOther, from_other({}), t0 + 4s));
  ASSERT_TRUE(p.member("other"));
  EXPECT_EQ(p.member("other")->state, MemberState::alive);
}

TEST(MembershipProtocol, AForgetAboutItselfIsRefuted) {
  Wire wire;
  const TimePoint t0{1000h};
  MembershipProtocol p("self", kSelf, {}, ProtocolTimings{}, wire, &wire, 1, t0);
  p.start(t0);
  Update forget{MemberState::left, "self", kSelf, 0, {}};
  forget.forget = true;
  ASSERT_TRUE(p.receive(kPeer, from_peer(MessageType::gossip, 0, {forget}), t0));
  EXPECT_EQ(p.member("self")->state, MemberState::alive);
  EXPECT_EQ(p.incarnation(), 1u);
}

}  // namespace
}  // namespace heartbeatd::membership
