// SimCluster: many MembershipProtocol nodes on a simulated network, driven by one manual
// clock through a discrete-event queue. Deterministic for a given seed: the same seed gives
// the same run, so a failing scenario can be replayed exactly.
//
// Faults: loss (global and per directed link), delay (uniform between bounds, so datagrams
// also reorder), duplication, partitions, crashes, restarts, stalls (a node that does not
// run for a while and then processes its backlog, like SIGSTOP/SIGCONT) and graceful leaves.
//
// It records every state change every node observes, which is what the scenario tests
// assert on and what bench/membership_sim_report turns into Chen-Toueg figures.
//
// Not thread-safe; single-threaded by design. Used by tests and bench only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "membership/protocol.h"

namespace heartbeatd::sim {

using membership::Duration;
using membership::MemberState;
using membership::TimePoint;

struct NetworkFaults {
  double loss = 0.0;       // probability a datagram is lost
  double duplicate = 0.0;  // probability a delivered datagram arrives twice
  Duration min_delay = std::chrono::microseconds(100);
  Duration max_delay = std::chrono::microseconds(1000);
};

// One observed state change: at `at`, node `observer` saw member `member` become `state`.
struct Observation {
  TimePoint at;
  std::size_t observer;
  std::string member;
  MemberState state;
  std::uint64_t incarnation;
};

class SimCluster {
 public:
  SimCluster(std::uint64_t seed, membership::ProtocolTimings timings, NetworkFaults faults = {});
  ~SimCluster();
  SimCluster(const SimCluster&) = delete;
  SimCluster& operator=(const SimCluster&) = delete;

  // Adds `count` nodes named node-<i>, each seeded with node 0's address (node 0 with none),
  // started at random moments spread over `spread` (default: one interval), as in a rolling
  // start. Returns the first new index.
  std::size_t add_nodes(std::size_t count, std::optional<Duration> spread = std::nullopt);
  // One more node with a chosen name (e.g. one already taken, to test conflicts), seeded
  // with node 0's address, or with `seed`'s (nullopt: no seed, it founds a cluster).
  std::size_t add_node(const std::string& name);
  std::size_t add_node(const std::string& name, std::optional<std::size_t> seed);
  // Runs the event queue for `d` of simulated time.
  void run_for(Duration d);
  // Runs until `done` holds (checked after every event) or `limit` passes; returns whether
  // it held.
  bool run_until(const std::function<bool()>& done, Duration limit);

  TimePoint now() const { return now_; }
  std::size_t size() const { return nodes_.size(); }
  membership::MembershipProtocol& node(std::size_t i);
  const std::string& name(std::size_t i) const;
  bool up(std::size_t i) const;

  void crash(std::size_t i);
  // The node does not run for `d`; datagrams for it wait in its socket buffer.
  void stall(std::size_t i, Duration d);
  // A crashed node starts again with the same name and address and no memory.
  void restart(std::size_t i);
  void leave(std::size_t i);
  // Nodes only reach nodes in the same group; group[i] for every node.
  void partition(std::vector<int> group);
  void heal();
  void set_link_loss(std::size_t from, std::size_t to, double loss);
  void set_faults(NetworkFaults f) { faults_ = f; }
  // The monitor ring's key (MembershipProtocol::set_ring_key) on every node, now and later.
  void set_ring_key(std::uint64_t key);

  // Does every up node other than `subject` (and other than those in `except`) see
  // `subject` in `state`?
  bool all_see(std::size_t subject, MemberState state, const std::set<std::size_t>& except = {});
  // The state node `observer` holds for `subject` (nullopt: unknown).
  std::optional<MemberState> view(std::size_t observer, std::size_t subject);

  // An attacker's tools. tap() sees every datagram a node sends (before loss), as an
  // on-path observer would; inject() delivers any bytes to node `to` as if sent from `from`
  // (a spoofed source), after `delay`. The simulated cluster is sealed: its own datagrams
  // are authenticated, and so is an injected copy of one (a replay); `plain` injects bytes
  // the attacker made up, as a plaintext cluster would receive them.
  using Tap = std::function<void(std::size_t from, const membership::Address& to,
                                 std::span<const std::uint8_t> body)>;
  void tap(Tap t) { tap_ = std::move(t); }
  void inject(std::size_t to, const membership::Address& from, std::vector<std::uint8_t> body,
              Duration delay = Duration::zero(), bool plain = false);
  // Body bytes the cluster sent to an address no node has (a spoofed source, a victim).
  std::uint64_t bytes_to(const membership::Address& a) const;
  const membership::Address& address(std::size_t i) const;

  const std::vector<Observation>& observations() const { return observations_; }
  std::uint64_t datagrams_sent(std::size_t i) const;
  std::uint64_t datagrams_total() const;

 private:
  struct Node;
  struct Event {
    TimePoint at;
    std::uint64_t order;
    std::size_t node;
    bool wake;  // else: deliver `bytes` from `from`
    membership::Address from;
    std::vector<std::uint8_t> bytes;
    bool plain = false;  // not authenticated (a forgery in a plaintext cluster)
    bool operator>(const Event& o) const { return at != o.at ? at > o.at : order > o.order; }
  };
  friend class SimSink;

  void transmit(std::size_t from, const membership::Address& to,
                std::span<const std::uint8_t> body);
  void push(Event e);
  void reschedule(std::size_t i);
  void step(Event e);
  void make_protocol(std::size_t i);

  std::mt19937_64 rng_;
  membership::ProtocolTimings timings_;
  NetworkFaults faults_;
  TimePoint now_{std::chrono::hours(1000)};
  std::uint64_t order_ = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::map<membership::Address, std::size_t> by_address_;
  std::vector<int> group_;
  std::map<std::pair<std::size_t, std::size_t>, double> link_loss_;
  std::vector<Observation> observations_;
  Tap tap_;
  std::uint64_t ring_key_ = 0;
  std::map<membership::Address, std::uint64_t> bytes_to_;
};

}  // namespace heartbeatd::sim
