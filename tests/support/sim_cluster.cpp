#include "tests/support/sim_cluster.h"

#include <algorithm>

namespace heartbeatd::sim {

using membership::Address;

class SimSink final : public membership::DatagramSink, public membership::MembershipObserver {
 public:
  SimSink(SimCluster& c, std::size_t i) : cluster_(c), index_(i) {}
  void send(const Address& to, std::span<const std::uint8_t> body) override {
    cluster_.transmit(index_, to, body);
  }
  void member_changed(const membership::MemberInfo& m,
                      std::optional<MemberState> /*before*/) override {
    cluster_.observations_.push_back(
        Observation{cluster_.now_, index_, m.name, m.state, m.incarnation});
  }
  void note(membership::NoteLevel, const std::string&) override {}

 private:
  SimCluster& cluster_;
  std::size_t index_;
};

struct SimCluster::Node {
  std::string name;
  Address address;
  std::vector<Address> seeds;
  std::unique_ptr<SimSink> sink;
  std::unique_ptr<membership::MembershipProtocol> protocol;
  bool up = true;
  TimePoint stalled_until{};
  std::optional<TimePoint> wake_at;  // the wake event currently queued
  std::uint64_t sent = 0;
};

SimCluster::SimCluster(std::uint64_t seed, membership::ProtocolTimings timings,
                       NetworkFaults faults)
    : rng_(seed), timings_(timings), faults_(faults) {}

SimCluster::~SimCluster() = default;

membership::MembershipProtocol& SimCluster::node(std::size_t i) {
  return *nodes_[i]->protocol;
}
const std::string& SimCluster::name(std::size_t i) const {
  return nodes_[i]->name;
}
bool SimCluster::up(std::size_t i) const {
  return nodes_[i]->up;
}
std::uint64_t SimCluster::datagrams_sent(std::size_t i) const {
  return nodes_[i]->sent;
}

void SimCluster::make_protocol(std::size_t i) {
  auto& n = *nodes_[i];
  n.protocol = std::make_unique<membership::MembershipProtocol>(
      n.name, n.address, n.seeds, timings_, *n.sink, n.sink.get(), rng_(), now_);
  n.protocol->set_ring_key(ring_key_);
  n.protocol->start(now_);
  n.wake_at.reset();
  reschedule(i);
}

std::size_t SimCluster::add_node(const std::string& name) {
  return add_node(name, nodes_.empty() ? std::nullopt : std::optional<std::size_t>(0));
}

std::size_t SimCluster::add_node(const std::string& name, std::optional<std::size_t> seed) {
  const auto i = nodes_.size();
  auto n = std::make_unique<Node>();
  n->name = name;
  n->address = Address::v4(0x0a000000u + static_cast<std::uint32_t>(i + 1), 7701);
  if (seed) n->seeds.push_back(nodes_.at(*seed)->address);
  n->sink = std::make_unique<SimSink>(*this, i);
  by_address_[n->address] = i;
  nodes_.push_back(std::move(n));
  group_.push_back(0);
  make_protocol(i);
  return i;
}

std::size_t SimCluster::add_nodes(std::size_t count, std::optional<Duration> spread) {
  const auto first = nodes_.size();
  const auto over = spread.value_or(timings_.interval);
  for (std::size_t k = 0; k < count; ++k) {
    add_node("node-" + std::to_string(nodes_.size()));
    // Stagger starts so heartbeat phases differ, as on real machines.
    std::uniform_int_distribution<Duration::rep> jitter(0, 2 * over.count() / count + 1);
    run_for(Duration(jitter(rng_)));
  }
  return first;
}

void SimCluster::transmit(std::size_t from, const Address& to, std::span<const std::uint8_t> body) {
  ++nodes_[from]->sent;
  if (tap_) tap_(from, to, body);
  auto it = by_address_.find(to);
  if (it == by_address_.end()) {
    bytes_to_[to] += body.size();
    return;
  }
  const auto dest = it->second;
  if (group_[from] != group_[dest]) return;
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  if (coin(rng_) < faults_.loss) return;
  if (auto l = link_loss_.find({from, dest}); l != link_loss_.end() && coin(rng_) < l->second) {
    return;
  }
  const int copies = coin(rng_) < faults_.duplicate ? 2 : 1;
  for (int c = 0; c < copies; ++c) {
    std::uniform_int_distribution<Duration::rep> delay(faults_.min_delay.count(),
                                                       faults_.max_delay.count());
    push(Event{now_ + Duration(delay(rng_)), 0, dest, false, nodes_[from]->address,
               std::vector<std::uint8_t>(body.begin(), body.end())});
  }
}

void SimCluster::inject(std::size_t to, const Address& from, std::vector<std::uint8_t> body,
                        Duration delay, bool plain) {
  push(Event{now_ + delay, 0, to, false, from, std::move(body), plain});
}

std::uint64_t SimCluster::bytes_to(const Address& a) const {
  auto it = bytes_to_.find(a);
  return it == bytes_to_.end() ? 0 : it->second;
}

const Address& SimCluster::address(std::size_t i) const {
  return nodes_[i]->address;
}

void SimCluster::push(Event e) {
  e.order = order_++;
  events_.push(std::move(e));
}

void SimCluster::reschedule(std::size_t i) {
  auto& n = *nodes_[i];
  if (!n.up) return;
  const auto at = std::max(n.protocol->next_wakeup(), n.stalled_until);
  if (n.wake_at && *n.wake_at <= at) return;  // an earlier wake is already queued
  n.wake_at = at;
  push(Event{at, 0, i, true, {}, {}});
}

void SimCluster::step(Event e) {
  now_ = std::max(now_, e.at);
  auto& n = *nodes_[e.node];
  if (!n.up) return;
  if (now_ < n.stalled_until) {
    // Not running: the datagram waits in the socket buffer; a wake waits for the end.
    if (e.wake) {
      if (!n.wake_at || *n.wake_at != e.at) return;
      n.wake_at = n.stalled_until;
    }
    e.at = n.stalled_until;
    push(std::move(e));
    return;
  }
  if (e.wake) {
    if (!n.wake_at || *n.wake_at != e.at) return;  // superseded by an earlier wake
    n.wake_at.reset();
    n.protocol->tick(now_);
  } else {
    n.protocol->receive(e.from, e.bytes, now_, !e.plain);
  }
  reschedule(e.node);
}

void SimCluster::run_for(Duration d) {
  run_until([] { return false; }, d);
}

bool SimCluster::run_until(const std::function<bool()>& done, Duration limit) {
  const auto end = now_ + limit;
  // Conditions scan every node; checking once per simulated millisecond is precise enough.
  std::optional<TimePoint> checked;
  while (!events_.empty() && events_.top().at <= end) {
    if (!checked || now_ - *checked >= std::chrono::milliseconds(1)) {
      checked = now_;
      if (done()) return true;
    }
    auto e = std::move(const_cast<Event&>(events_.top()));
    events_.pop();
    step(std::move(e));
  }
  now_ = std::max(now_, end);
  return done();
}

void SimCluster::crash(std::size_t i) {
  nodes_[i]->up = false;
}

void SimCluster::stall(std::size_t i, Duration d) {
  nodes_[i]->stalled_until = now_ + d;
  reschedule(i);
}

void SimCluster::restart(std::size_t i) {
  nodes_[i]->up = true;
  nodes_[i]->stalled_until = {};
  make_protocol(i);
}

void SimCluster::leave(std::size_t i) {
  nodes_[i]->protocol->leave(now_);
  nodes_[i]->up = false;
}

void SimCluster::partition(std::vector<int> group) {
  group_ = std::move(group);
}
void SimCluster::heal() {
  std::fill(group_.begin(), group_.end(), 0);
}
void SimCluster::set_ring_key(std::uint64_t key) {
  ring_key_ = key;
  for (auto& n : nodes_) n->protocol->set_ring_key(key);
}

void SimCluster::set_link_loss(std::size_t from, std::size_t to, double loss) {
  link_loss_[{from, to}] = loss;
}

std::optional<MemberState> SimCluster::view(std::size_t observer, std::size_t subject) {
  auto m = nodes_[observer]->protocol->member(nodes_[subject]->name);
  if (!m) return std::nullopt;
  return m->state;
}

bool SimCluster::all_see(std::size_t subject, MemberState state,
                         const std::set<std::size_t>& except) {
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (i == subject || !nodes_[i]->up || except.count(i)) continue;
    if (view(i, subject) != state) return false;
  }
  return true;
}

std::uint64_t SimCluster::datagrams_total() const {
  std::uint64_t total = 0;
  for (const auto& n : nodes_) total += n->sent;
  return total;
}

}  // namespace heartbeatd::sim
