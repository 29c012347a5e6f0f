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
};

enum class NoteLevel : std::uint8_t { debug, info, warning, error };

// Events out of the protocol. Called synchronously, in order, never concurrently.
class MembershipObserver {
 public:
  virtual ~MembershipObserver() = default;
  // `before` is nullopt for a member seen for the first time.
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
  std::uint64_t suspicions_raised = 0;   // by this node
  std::uint64_t suspicions_refuted = 0;  // about this node, refuted by it
  std::uint64_t deaths_declared = 0;     // by this node
  std::uint64_t name_conflicts = 0;      // another address claimed a live member's name
  std::uint64_t pauses = 0;              // this node was stalled (no accusations then)
  std::uint64_t members_over_limit = 0;  // new members ignored at max_members
};

class MembershipProtocol {
 public:
  MembershipProtocol(std::string name, Address address, std::vector<Address> seeds,
                     ProtocolTimings timings, DatagramSink& sink, MembershipObserver* observer,
                     std::uint64_t seed, TimePoint now);
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
  // A datagram body from `from`. Returns false (and changes nothing) if it does not decode.
  bool receive(const Address& from, std::span<const std::uint8_t> body, TimePoint now);
  // Runs whatever is due; call at next_wakeup() (earlier is harmless).
  void tick(TimePoint now);
  TimePoint next_wakeup() const { return next_wakeup_; }
  // Graceful stop: announces `left` to every member it knows (directly to up to 64 of
  // them, and by gossip). Afterwards the node stays silent.
  void leave(TimePoint now);
  // Applies new timings (SIGHUP). Running timers keep their deadlines.
  void set_timings(const ProtocolTimings& timings);
  // Replaces the seeds (the owner re-resolves seed names; membership/ does no DNS). This
  // node's own address is dropped, as in the constructor. Used from the next join attempt.
  void set_seeds(std::vector<Address> seeds);

  std::vector<MemberInfo> members() const;  // sorted by name, self included
  std::optional<MemberInfo> member(std::string_view name) const;
  std::size_t member_count() const;  // every state, self included
  const ProtocolCounters& counters() const { return counters_; }
  const std::string& name() const { return self_name_; }
  std::uint64_t incarnation() const;
  std::uint32_t local_health() const { return health_; }

 private:
  struct Member;
  struct Forward {
    Address requester;
    std::uint32_t requester_seq;
    TimePoint deadline;
  };

  Member* find(std::string_view name);
  const Member* find(std::string_view name) const;
  Member& self();
  const Member& self() const;
  MemberInfo info(const Member& m) const;
  Member* add(const Update& u, TimePoint now);
  void set_state(Member& m, MemberState state, std::uint64_t incarnation, TimePoint now);
  void remove(const std::string& name);

  // Protocol rules.
  bool accept_sender(const Message& msg, const Address& from, TimePoint now);
  void refuse_claim(const Address& from);
  void apply(const Update& u, TimePoint now, bool from_sync);
  void apply_about_self(const Update& u, TimePoint now);
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
  Message message(MessageType type) const;
  void send(const Address& to, Message& m, bool piggyback = true);
  void send_sync(const Address& to, MessageType type, std::uint8_t flags, bool everything);
  Update update_of(const Member& m) const;
  static std::uint64_t digest_term(const Member& m);
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
  bool ring_dirty_ = true;
  std::map<std::uint32_t, std::string> probes_;  // seq -> subject
  std::map<std::uint32_t, Forward> forwards_;    // helper: our ping seq -> requester
  GossipQueue queue_;
  ProtocolCounters counters_;

  std::uint32_t next_seq_ = 1;
  std::uint32_t health_ = 0;  // Lifeguard local health: 0 good .. kMaxHealth
  TimePoint health_changed_;
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
};

}  // namespace heartbeatd::membership
