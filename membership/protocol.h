// MembershipProtocol: one node's side of the machine-membership protocol (docs/PROTOCOL.md).
// Heartbeats to a few ring monitors, judged by the shared detection model; a monitor that
// stops hearing from a subject probes it directly and through helpers before it accuses;
// suspicions are refuted by a higher incarnation or confirmed by other monitors (Lifeguard
// timing, membership/suspicion.h); news spreads by piggybacked, retransmit-limited gossip
// and a paged anti-entropy sync; dead members are retried so partitions heal.
//
// Pure logic: the caller passes "now" into every call, datagrams arrive through receive()
// and leave through the DatagramSink, and the caller wakes the protocol at next_wakeup().
// That is what lets tests run hundreds of nodes on a simulated network with a manual clock.
//
// Thread safety: none. The owner serialises all calls (the daemon holds a mutex; the
// simulator is single-threaded). Sink and observer callbacks run inside those calls, never
// concurrently.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "membership/address.h"
#include "membership/clock.h"
#include "membership/detection.h"
#include "membership/gossip_queue.h"
#include "membership/local_health.h"
#include "membership/wire_codec.h"

namespace heartbeatd::membership {

// Where encoded message bodies go. The daemon seals and sends them over UDP; the simulator
// delivers them through its network model.
class DatagramSink {
 public:
  virtual ~DatagramSink() = default;
  virtual void send(const Address& to, std::span<const std::uint8_t> body) = 0;
};

struct MemberInfo {
  std::string name;
  Address address;
  MemberState state = MemberState::alive;
  std::uint64_t incarnation = 0;
  std::optional<TimePoint> last_seen;  // last datagram from it (self: last activity)
  TimePoint state_since{};             // when it entered `state`, as this node saw it
  bool self = false;
  Tags tags;                             // as it last announced them
  std::optional<std::uint64_t> tags_at;  // the incarnation it announced them at; unset: never
};

enum class NoteLevel : std::uint8_t { debug, info, warning, error };

// Events out of the protocol. Called synchronously, in order, never concurrently.
class MembershipObserver {
 public:
  virtual ~MembershipObserver() = default;
  // `before` is nullopt for a member seen for the first time. A live member that announced
  // new tags at a new incarnation is reported too, with `before` equal to its state.
  virtual void member_changed(const MemberInfo& member, std::optional<MemberState> before) = 0;
  // A dead or left member was forgotten (reap_after passed): it is no longer listed.
  virtual void member_forgotten(const std::string& /*name*/) {}
  // Things an operator should be able to read in the log.
  virtual void note(NoteLevel level, const std::string& text) = 0;
};

// Every number here is a config key (membership.* in examples/heartbeatd.yaml).
struct ProtocolTimings {
  Duration interval = std::chrono::milliseconds(200);
  std::uint32_t miss_threshold = 4;
  Duration probe_timeout = std::chrono::milliseconds(200);
  Duration suspicion_timeout = std::chrono::milliseconds(800);
  Duration suspicion_max_timeout = std::chrono::seconds(4);
  std::uint32_t monitors = 3;
  std::uint32_t indirect_checks = 3;
  std::uint32_t gossip_fanout = 3;
  std::uint32_t retransmit_mult = 4;
  Duration sync_interval = std::chrono::seconds(5);
  Duration reconnect_interval = std::chrono::seconds(1);
  Duration reap_after = std::chrono::hours(24);
  std::size_t max_members = 10000;
  // nullopt: miss threshold (interval x miss_threshold); set: phi accrual.
  std::optional<PhiAccrualParams> phi;
};

struct ProtocolCounters {
  std::uint64_t messages_received = 0;
  std::uint64_t messages_sent = 0;
  std::uint64_t malformed = 0;           // bodies the codec rejected
  std::uint64_t probes = 0;              // overdue subjects probed
  std::uint64_t probes_failed = 0;       // probes no ack answered in time (a suspicion follows)
  std::uint64_t indirect_probes = 0;     // ping requests sent to helpers by our probes
  std::uint64_t probes_forwarded = 0;    // ping requests of other members served as a helper
  std::uint64_t suspicions_raised = 0;   // by this node
  std::uint64_t suspicions_refuted = 0;  // about this node, refuted by it
  std::uint64_t deaths_declared = 0;     // by this node
  std::uint64_t name_conflicts = 0;      // another address claimed a live member's name
  std::uint64_t pauses = 0;              // this node was stalled (no accusations then)
  std::uint64_t members_over_limit = 0;  // new members ignored at max_members
  std::uint64_t replays = 0;      // datagrams already seen, or from an earlier boot (dropped)
  std::uint64_t misdirected = 0;  // datagrams meant for another receiver (dropped)
  std::uint64_t implausible = 0;  // updates refused: incarnation jump or unknown accuser
  std::uint64_t unverified_dropped = 0;  // replies withheld from an unverified address
  std::uint64_t newcomers_limited = 0;   // new members refused: too many from one source
  std::uint64_t other_cluster = 0;       // datagrams of another cluster of the same name
  std::uint64_t force_leaves = 0;        // members marked left (or forgotten) on request here
};

// What force_leave() did, or why it refused.
struct ForceLeaveResult {
  enum class Outcome : std::uint8_t {
    left,            // marked left everywhere (gossiped)
    forgotten,       // marked left and forgotten everywhere (prune)
    unknown,         // no member of that name
    self,            // this node: it announces left itself when it stops
    alive,           // this node holds it alive
    heard_recently,  // suspect, but this node heard from it within its detection time
  };
  Outcome outcome = Outcome::unknown;
  MemberState before = MemberState::alive;  // its state here when asked (not for unknown)
  // heard_recently: how long ago this node last heard from it, and the detection time that is
  // within (suspect_after + probe_timeout + suspicion_timeout, as this node judges it now).
  Duration heard_ago{};
  Duration detection_time{};
  bool ok() const { return outcome == Outcome::left || outcome == Outcome::forgotten; }
};

// Incarnation rules (docs/PROTOCOL.md, "Trust"): no update may move a member's incarnation
// up by more than kMaxIncarnationStep, and none is accepted above kMaxIncarnation, so no
// datagram (or 2^40 of them) can push a member where it can no longer refute.
inline constexpr std::uint64_t kMaxIncarnationStep = std::uint64_t{1} << 20;
inline constexpr std::uint64_t kMaxIncarnation = std::uint64_t{1} << 60;

class MembershipProtocol {
 public:
  MembershipProtocol(std::string name, Address address, std::vector<Address> seeds,
                     ProtocolTimings timings, DatagramSink& sink, MembershipObserver* observer,
                     std::uint64_t seed, TimePoint now, std::uint64_t boot = 0);
  ~MembershipProtocol();
  MembershipProtocol(const MembershipProtocol&) = delete;
  MembershipProtocol& operator=(const MembershipProtocol&) = delete;

  // Before start(), after a restart: this node's incarnation (above the one it had, so it
  // can refute news from before the restart) and the members it knew. Alive and suspect
  // members come back alive and are judged afresh (a silent one is suspected and declared
  // dead in the usual time); dead and left ones keep their state and its age, so reaping and
  // reconnecting go on. Entries for this node's own name, and beyond max_members, are ignored.
  // start() then also sends join requests to a few of the restored members.
  void restore(std::uint64_t incarnation, std::span<const MemberInfo> members, TimePoint now);
  // Sends join requests to the seeds. Safe to call again (a no-op once joined).
  void start(TimePoint now);
  // `boot` must be larger at every start of this node's name (the daemon passes wall-clock
  // microseconds); 0 takes now's count, which is what a simulation with one clock needs.
  // A datagram body from `from`. Returns false (and changes nothing) if it does not decode.
  // `sealed`: it was authenticated with the cluster key, so its freshness (boot, counter) can
  // be trusted and is checked against the sender's replay window; a plain datagram can
  // forge any of it, so it neither passes nor moves the window.
  bool receive(const Address& from, std::span<const std::uint8_t> body, TimePoint now,
               bool sealed = true);
  // Runs whatever is due; call at next_wakeup() (earlier is harmless).
  void tick(TimePoint now);
  TimePoint next_wakeup() const { return next_wakeup_; }
  // Graceful stop: announces `left` to every member it knows (directly to up to 64 of
  // them, and by gossip). Afterwards the node stays silent.
  void leave(TimePoint now);
  // Places members on the monitor ring by ring_position(name, key) (0: the public hash).
  // Every member of a cluster must use the same key; while they differ (a key rotation
  // rolling out) some heartbeats go to members not watching for them, which costs probes.
  void set_ring_key(std::uint64_t key);
  // Applies new timings (SIGHUP). Running timers keep their deadlines.
  void set_timings(const ProtocolTimings& timings);
  // This node's tags (node.tags). Before start() they are simply what it announces; after,
  // a change raises the incarnation and announces the new set, so it reaches every member as
  // any alive news does. Precondition: !tags_problem(tags) (the config checked it).
  void set_tags(Tags tags, TimePoint now);
  // Replaces the seeds (the owner re-resolves seed names; membership/ does no DNS). This
  // node's own address is dropped, as in the constructor. Used from the next join attempt.
  void set_seeds(std::vector<Address> seeds);
  // Run-time join (POST /v1/join): sends each address a join request now, the one start()
  // sends the seeds; an answer brings in its sender's view as it does for a seed. The
  // addresses are not remembered (cluster.seeds are what a restart uses). This node's own
  // address is skipped. Returns how many requests went out (none while leaving).
  std::size_t join(std::span<const Address> addresses, TimePoint now);
  // Force-leave (POST /v1/members/{name}/leave): marks a member this node cannot reach `left`
  // cluster-wide, as if it had left itself; with `prune`, every node forgets it at once
  // (Update::forget). Refused for this node, for a member held alive, and for a suspect heard
  // from within its detection time. A live member force-left by mistake refutes the news
  // about itself and revives, as it would a wrong suspicion.
  ForceLeaveResult force_leave(std::string_view name, bool prune, TimePoint now);

  std::vector<MemberInfo> members() const;  // sorted by name, self included
  std::optional<MemberInfo> member(std::string_view name) const;
  std::size_t member_count() const;  // every state, self included
  const ProtocolCounters& counters() const { return counters_; }
  const std::string& name() const { return self_name_; }
  std::uint64_t incarnation() const;
  std::uint32_t local_health() const { return health_.score(); }

 private:
  struct Member;
  struct Forward {
    Address requester;
    std::uint32_t requester_seq;
    TimePoint deadline;
    std::string target;  // only its ack counts
    std::string requester_name;
  };
  struct Probe {
    std::string subject;
    std::vector<std::string> helpers;  // asked to ping it; their forwarded acks count
  };
  // What we know of an address that sent us datagrams (amplification limits).
  struct Peer {
    std::uint64_t received = 0;      // body bytes from it while unverified
    std::uint64_t sent = 0;          // body bytes to it while unverified
    std::uint64_t their_cookie = 0;  // the cookie it gave us, echoed back to it
    std::uint32_t newcomers = 0;     // new members it introduced this sync_interval
    bool verified = false;           // it echoed our cookie: it receives at this address
    TimePoint last;
    TimePoint challenged;  // when we last asked it, an unknown sender, to prove its address
  };

  Member* find(std::string_view name);
  const Member* find(std::string_view name) const;
  Member& self();
  const Member& self() const;
  MemberInfo info(const Member& m) const;
  Member* add(const Update& u, TimePoint now);
  void set_state(Member& m, MemberState state, std::uint64_t incarnation, TimePoint now);
  void set_tags_of(Member& m, Tags tags, std::optional<std::uint64_t> at);  // keeps the digest
  void remove(const std::string& name);

  // Protocol rules.
  bool fresh(const Message& msg, std::size_t bytes, const Address& from, bool sealed,
             TimePoint now);
  bool accept_sender(const Message& msg, const Address& from, TimePoint now);
  bool same_cluster(const Message& msg);
  bool plausible(const Update& u, const Member* m);
  bool credible_accuser(const Member& suspect, const std::string& accuser) const;
  Peer& peer(const Address& a, TimePoint now);
  std::uint64_t cookie_for(const Address& a) const;
  void refuse_claim(const Address& from, const std::string& name);
  void apply(const Update& u, TimePoint now, bool from_sync);
  void apply_about_self(const Update& u, TimePoint now);
  void apply_forget(const Update& u, TimePoint now);
  void forget(Member& m, const Update& u, TimePoint now);
  void mark_left(Member& m, std::uint64_t incarnation, TimePoint now);
  void refute(std::uint64_t above, TimePoint now);
  void suspect(Member& m, const std::string& accuser, TimePoint now);
  void arm_suspicion(Member& m);
  void announce(Update u, TimePoint now);

  // Timers.
  void observe(TimePoint now);
  void on_pause(Duration gap, TimePoint now);
  void send_heartbeats(TimePoint now);
  void watch_subjects(TimePoint now);
  void start_probe(Member& m, TimePoint now);
  void finish_probe(Member& m, bool answered, TimePoint now);
  void expire_suspicions(TimePoint now);
  void expire_forwards(TimePoint now);
  void gossip_round(TimePoint now);
  void sync_round();
  void reconnect_round(TimePoint now);
  void reap(TimePoint now);
  void refresh_ring(TimePoint now);
  void ring_insert(Member* m);
  void ring_erase(Member* m);
  void schedule(TimePoint at);
  void recompute_wakeup(TimePoint now);

  // Sending.
  // A message to the member called `to_name` ("" when not known, e.g. a seed).
  Message message(MessageType type, std::string_view to_name) const;
  void send(const Address& to, Message& m, bool piggyback = true);
  // A reply to `to`, a source not yet verified: at most 3x the bytes it sent us, no news.
  void reply(const Address& to, Message& m);
  void send_sync(const Address& to, std::string_view to_name, MessageType type, std::uint8_t flags,
                 bool everything);
  Update update_of(const Member& m) const;
  static std::uint64_t digest_term(const Member& m);
  static std::uint64_t tags_digest(const Member& m);
  std::uint32_t transmit_limit() const;
  std::vector<Member*> pick_random(std::size_t count, const Member* exclude);
  std::uint32_t alive_peers() const;
  std::optional<TimePoint> overdue_at(const Member& m) const;
  void note(NoteLevel level, const std::string& text);
  void changed(const Member& m, std::optional<MemberState> before);

  std::string self_name_;
  std::vector<Address> seeds_;
  std::vector<Address> rejoin_;  // restored members to send a join request at start()
  ProtocolTimings t_;
  DetectionPolicy policy_;
  DatagramSink& sink_;
  MembershipObserver* observer_;
  std::mt19937_64 rng_;

  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::unique_ptr<Member>, NameHash, std::equal_to<>> members_;
  Member* self_ = nullptr;
  std::vector<Member*> list_;  // the same members, for random picks and paging
  // Alive and suspect members (self included) in ring order (membership/monitor_ring.h).
  struct RingOrder {
    bool operator()(const Member* a, const Member* b) const;
  };
  std::vector<Member*> ring_;
  std::vector<Member*> monitors_;  // who we send heartbeats to
  std::vector<Member*> subjects_;  // whose heartbeats we watch
  std::vector<Member*> suspects_;  // members in state suspect
  std::vector<Member*> dead_;      // members in state dead (retried by reconnect_round)
  std::uint64_t digest_ = 0;       // of the whole view (digest_term)
  std::uint64_t ring_key_ = 0;
  // Which cluster this node is in (docs/PROTOCOL.md, "Trust"): drawn when it is first
  // joined, adopted when it joins; 0 until then. Sent as 0 while the node is alone.
  std::uint32_t cluster_id_ = 0;
  bool ring_dirty_ = true;
  std::map<std::uint32_t, Probe> probes_;      // seq -> the probe
  std::map<std::uint32_t, Forward> forwards_;  // helper: our ping seq -> requester
  GossipQueue queue_;
  ProtocolCounters counters_;

  std::uint32_t next_seq_ = 1;  // starts at a random value: acks answer only our probes
  std::uint64_t boot_ = 0;
  std::uint64_t counter_ = 0;        // datagrams sent in this boot
  std::uint64_t cookie_secret_ = 0;  // keys the cookies we hand out
  std::map<Address, Peer> peers_;    // bounded (kMaxPeers), oldest forgotten first
  TimePoint peers_reset_;
  Peer* source_ = nullptr;              // where the datagram being applied came from
  std::uint32_t join_proofs_left_ = 8;  // joins re-sent with our proof, per sync_interval
  LocalHealth health_;                  // stretches our waits while we may be the slow one
  TimePoint last_reannounce_;
  TimePoint last_self_step_;  // the last time a claim about us raised our incarnation
  std::optional<TimePoint> last_activity_;
  TimePoint next_heartbeat_;
  TimePoint next_gossip_;
  TimePoint last_gossip_;
  TimePoint next_sync_;
  TimePoint next_reconnect_;
  Duration join_backoff_;
  TimePoint next_wakeup_;
  std::size_t sync_cursor_ = 0;
  std::uint32_t sync_pulls_left_ = 8;  // a joiner may pull what its join lost at once
  bool started_ = false;
  bool leaving_ = false;
  std::unordered_map<std::string, TimePoint> conflict_logged_;
  // Members forgotten by a force-leave with prune, kept for reap_after (bounded by
  // max_members): second-hand news of them at or below this incarnation does not bring them
  // back, and a node still gossiping them as dead or left is told to forget them again.
  struct Tombstone {
    Update forget;  // the news to spread again
    TimePoint until;
    TimePoint resent;
  };
  std::unordered_map<std::string, Tombstone> tombstones_;
};

}  // namespace heartbeatd::membership
