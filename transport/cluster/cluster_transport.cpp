#include "transport/cluster/cluster_transport.h"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <future>

#include <fmt/format.h>

#include "base/host_port.h"
#include "base/log.h"
#include "membership/wire_codec.h"

namespace heartbeatd::transport {

namespace asio = boost::asio;
using asio::ip::udp;
using membership::Address;

namespace {
// A seed name that keeps failing is logged again at most this often (it is retried every
// reconnect_interval).
constexpr auto kSeedWarnEvery = std::chrono::minutes(1);
}  // namespace

Address to_address(const udp::endpoint& ep) {
  Address a;
  a.port = ep.port();
  auto ip = ep.address();
  if (ip.is_v6() && ip.to_v6().is_v4_mapped()) {
    ip = asio::ip::make_address_v4(asio::ip::v4_mapped, ip.to_v6());
  }
  if (ip.is_v4()) {
    const auto b = ip.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), a.ip.begin());
  } else {
    const auto b = ip.to_v6().to_bytes();
    std::copy(b.begin(), b.end(), a.ip.begin());
    a.v6 = true;
  }
  return a;
}

udp::endpoint to_endpoint(const Address& a) {
  if (a.v6) {
    asio::ip::address_v6::bytes_type b;
    std::copy(a.ip.begin(), a.ip.end(), b.begin());
    return {asio::ip::address_v6(b), a.port};
  }
  asio::ip::address_v4::bytes_type b;
  std::copy(a.ip.begin(), a.ip.begin() + 4, b.begin());
  return {asio::ip::address_v4(b), a.port};
}

ClusterTransport::ClusterTransport(ClusterOptions options, const membership::Clock& clock,
                                   std::uint64_t seed)
    : options_(std::move(options)),
      clock_(clock),
      socket_(io_),
      timer_(io_),
      seed_timer_(io_),
      resolver_(io_),
      seed_interval_(options_.timings.reconnect_interval),
      seal_(std::make_shared<const DatagramSeal>(options_.cluster_name, std::move(options_.keys),
                                                 options_.seal_policy)),
      seed_(seed) {
  if (!options_.resolve_seed) {
    options_.resolve_seed = [this](const SeedHost& seed, auto done) {
      resolver_.async_resolve(seed.host, std::to_string(seed.port), udp::resolver::numeric_service,
                              [done = std::move(done)](const boost::system::error_code& ec,
                                                       const udp::resolver::results_type& results) {
                                std::vector<Address> found;
                                if (!ec) {
                                  for (const auto& r : results)
                                    found.push_back(to_address(r.endpoint()));
                                }
                                done(std::move(found), ec ? ec.message() : "no address");
                              });
    };
  }
}

ClusterTransport::~ClusterTransport() {
  leave_and_stop();
}

void ClusterTransport::start() {
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(options_.bind_host, ec);
  if (ec) throw std::runtime_error(fmt::format("{}: not an IP address", options_.bind_host));
  const udp::endpoint bind(ip, options_.bind_port);
  socket_.open(bind.protocol(), ec);
  if (!ec) socket_.bind(bind, ec);
  if (ec) {
    throw std::runtime_error(fmt::format("cannot bind UDP {}:{}: {}", options_.bind_host,
                                         options_.bind_port, ec.message()));
  }
  // IP literals are seeds at once; names are looked up on the transport's thread, so a
  // slow or failing DNS never delays the start or a heartbeat.
  std::vector<Address> seeds;
  seed_state_.assign(options_.seeds.size(), SeedState{});
  for (std::size_t i = 0; i < options_.seeds.size(); ++i) {
    const auto literal = asio::ip::make_address(options_.seeds[i].host, ec);
    if (ec) continue;
    seed_state_[i].literal = true;
    seed_state_[i].addresses = {to_address(udp::endpoint(literal, options_.seeds[i].port))};
    if (usable(seed_state_[i].addresses.front())) seeds.push_back(seed_state_[i].addresses.front());
  }
  // Advertise what peers can reach: the configured address, else the bound one; for a
  // wildcard bind, the address the kernel would use towards the first seed given as an IP
  // address (else the default route).
  Address self = options_.advertise.value_or(to_address(socket_.local_endpoint()));
  if (!options_.advertise && ip.is_unspecified()) {
    udp::socket probe(io_);
    const auto towards = seeds.empty() ? udp::endpoint(asio::ip::make_address("192.0.2.1"), 9)
                                       : to_endpoint(seeds.front());
    probe.open(towards.protocol(), ec);
    if (!ec) probe.connect(towards, ec);
    if (!ec) {
      auto local = to_address(probe.local_endpoint());
      local.port = self.port;
      self = local;
    } else {
      self = Address::v4(0x7f000001, self.port);
      log::warning(
          "cluster.bind is a wildcard and no route was found; advertising {} — set "
          "cluster.advertise",
          self.to_string());
    }
  }
  const auto now = clock_.now();
  {
    std::lock_guard lock(mu_);
    // The boot epoch orders this start after every earlier one, so peers drop datagrams of
    // an earlier life (docs/PROTOCOL.md, "Trust"): wall-clock microseconds, which a restart
    // always advances unless the clock is stepped back by more than the restart took.
    const auto boot =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
    protocol_ = std::make_unique<membership::MembershipProtocol>(options_.node_name, self,
                                                                 std::move(seeds), options_.timings,
                                                                 *this, this, seed_, now, boot);
    protocol_->set_ring_key(seal_->ring_key());
    protocol_->set_tags(options_.tags, now);
    if (options_.restored_incarnation || !options_.restored_members.empty()) {
      protocol_->restore(options_.restored_incarnation, options_.restored_members, now);
    }
    incarnation_seen_ = protocol_->incarnation();
  }
  std::string envelope;
  {
    std::lock_guard lock(mu_);
    envelope = describe(*seal_);
  }
  log::info("cluster: {} listening on UDP {} as {} (cluster {}, {})", options_.node_name,
            local_endpoint(), self.to_string(), options_.cluster_name, envelope);
  asio::post(io_, [this] {
    {
      std::lock_guard lock(mu_);
      protocol_->start(clock_.now());
    }
    arm_timer();
    seed_timer_.expires_after(std::chrono::seconds(0));
    do_resolve_seeds();
  });
  do_receive();
  thread_ = std::thread([this] { io_.run(); });
}

void ClusterTransport::leave_and_stop() {
  if (!thread_.joinable()) return;
  std::promise<void> done;
  asio::post(io_, [this, &done] {
    {
      std::lock_guard lock(mu_);
      if (protocol_) protocol_->leave(clock_.now());
      stopped_ = true;
    }
    for (auto& j : std::vector(joins_)) finish_join(*j, "this node is stopping");
    boost::system::error_code ignored;
    timer_.cancel();
    seed_timer_.cancel();
    resolver_.cancel();
    socket_.close(ignored);
    done.set_value();
  });
  done.get_future().wait_for(std::chrono::milliseconds(500));
  io_.stop();
  thread_.join();
}

void ClusterTransport::do_receive() {
  socket_.async_receive_from(
      asio::buffer(buffer_), from_, [this](const boost::system::error_code& ec, std::size_t n) {
        if (ec == asio::error::operation_aborted) return;
        if (!ec) {
          std::lock_guard lock(mu_);
          ++counters_.datagrams_received;
          if (n > kMaxDatagramBytes) {
            ++counters_.dropped[static_cast<std::size_t>(DropReason::malformed)];
          } else {
            auto opened = seal_->open(std::span(buffer_.data(), n));
            if (auto* reason = std::get_if<DropReason>(&opened)) {
              ++counters_.dropped[static_cast<std::size_t>(*reason)];
              log::debug("cluster: dropped a datagram from {}: {}", from_.address().to_string(),
                         to_string(*reason));
            } else if (!stopped_) {
              const auto& o = std::get<DatagramSeal::Opened>(opened);
              const auto from = to_address(from_);
              if (protocol_->receive(from, o.body, clock_.now(), o.key.has_value())) {
                note_sender_key(o);
                note_join_answer(from, o.body);
              } else {
                ++counters_.dropped[static_cast<std::size_t>(DropReason::malformed)];
              }
            }
          }
        }
        if (!stopped_) {
          arm_timer();
          do_receive();
        }
      });
}

void ClusterTransport::note_sender_key(const DatagramSeal::Opened& opened) {
  // The protocol accepted the body, so its sender's name is where the codec puts it.
  const auto sender = membership::peek_sender_name(opened.body);
  if (!sender || *sender == options_.node_name) return;
  auto it = sender_keys_.find(std::string(*sender));
  if (it == sender_keys_.end()) {
    if (!protocol_->member(*sender)) return;  // not in the view (max_members)
    it = sender_keys_.emplace(std::string(*sender), std::nullopt).first;
  }
  if (!opened.key) {
    it->second.reset();
  } else if (const auto& fp = seal_->fingerprints()[*opened.key]; it->second != fp) {
    it->second = fp;
  }
}

void ClusterTransport::arm_timer() {
  membership::TimePoint at;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    at = protocol_->next_wakeup();
    // Every receive and tick ends here: the place to notice a new incarnation.
    if (protocol_->incarnation() != incarnation_seen_) {
      incarnation_seen_ = protocol_->incarnation();
      if (options_.on_incarnation) options_.on_incarnation(incarnation_seen_);
    }
  }
  // The daemon's clock is steady_clock, the same epoch as the timer's.
  const auto when = asio::steady_timer::time_point(at.time_since_epoch());
  if (timer_.expiry() == when) return;
  timer_.expires_at(when);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    {
      std::lock_guard lock(mu_);
      if (stopped_) return;
      protocol_->tick(clock_.now());
    }
    arm_timer();
  });
}

// Every reconnect_interval while the node has no live peer (the only time the protocol
// uses its seeds), every seed name is looked up again, so a seed that was down in DNS at
// start, or moved, is found (Consul's retry_join does the same).
void ClusterTransport::do_resolve_seeds() {
  if (stopped_) return;
  if (lookups_in_flight_ == 0 && (!seeds_looked_up_ || alone())) {
    seeds_looked_up_ = true;
    for (std::size_t i = 0; i < options_.seeds.size(); ++i) {
      if (seed_state_[i].literal) continue;
      ++lookups_in_flight_;
      options_.resolve_seed(options_.seeds[i],
                            [this, i](std::vector<Address> found, std::string error) {
                              seed_resolved(i, std::move(found), std::move(error));
                            });
    }
  }
  seed_timer_.expires_at(seed_timer_.expiry() + seed_interval_);
  seed_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) do_resolve_seeds();
  });
}

void ClusterTransport::seed_resolved(std::size_t i, std::vector<Address> found, std::string error) {
  --lookups_in_flight_;
  if (stopped_) return;
  auto& st = seed_state_[i];
  const auto& seed = options_.seeds[i];
  found = usable_only(std::move(found));
  const auto now = clock_.now();
  if (found.empty()) {
    // The addresses it had before (if any) stay seeds: a DNS hiccup forgets no one.
    if (!st.failing || now - st.warned >= kSeedWarnEvery) {
      log::warning("cluster.seeds: {}: {}; retried every {} ms while this node has no live peer",
                   seed.host, error.empty() ? "no address this socket can reach" : error,
                   std::chrono::duration_cast<std::chrono::milliseconds>(seed_interval_).count());
      st.warned = now;
    }
    st.failing = true;
    return;
  }
  if (st.failing) log::info("cluster.seeds: {} resolves again", seed.host);
  st.failing = false;
  if (found == st.addresses) return;
  std::string list;
  for (const auto& a : found) list.append(list.empty() ? "" : ", ").append(a.to_string());
  log::info("cluster.seeds: {} is {}", seed.host, list);
  st.addresses = std::move(found);
  std::vector<Address> all;
  for (const auto& s : seed_state_) {
    for (const auto& a : s.addresses) {
      if (usable(a) && std::find(all.begin(), all.end(), a) == all.end()) all.push_back(a);
    }
  }
  std::lock_guard lock(mu_);
  protocol_->set_seeds(std::move(all));
}

// An IPv4 socket cannot send to IPv6 addresses, nor one bound to a specific IPv6 address
// to IPv4 ones; a socket bound to :: reaches both.
bool ClusterTransport::usable(const Address& a) const {
  boost::system::error_code ec;
  const auto local = socket_.local_endpoint(ec);
  if (ec) return true;
  if (local.address().is_v4()) return !a.v6;
  return a.v6 || local.address().is_unspecified();
}

std::vector<Address> ClusterTransport::usable_only(std::vector<Address> found) const {
  std::erase_if(found, [this](const Address& a) { return !usable(a); });
  std::sort(found.begin(), found.end());
  found.erase(std::unique(found.begin(), found.end()), found.end());
  return found;
}

bool ClusterTransport::alone() const {
  std::lock_guard lock(mu_);
  for (const auto& m : protocol_->members()) {
    if (!m.self && (m.state == membership::MemberState::alive ||
                    m.state == membership::MemberState::suspect)) {
      return false;
    }
  }
  return true;
}

void ClusterTransport::send(const Address& to, std::span<const std::uint8_t> body) {
  const auto datagram = seal_->seal(body);
  boost::system::error_code ec;
  socket_.send_to(asio::buffer(datagram), to_endpoint(to), 0, ec);
  if (ec) {
    ++counters_.send_errors;
    log::debug("cluster: send to {} failed: {}", to.to_string(), ec.message());
  } else {
    ++counters_.datagrams_sent;
  }
}

void ClusterTransport::member_changed(const membership::MemberInfo& m,
                                      std::optional<membership::MemberState> before) {
  const std::string_view state = membership::to_string(m.state);
  if (!before) {
    log::info({{"member", m.name},
               {"address", m.address.to_string()},
               {"state", state},
               {"incarnation", m.incarnation}},
              "cluster: member {} at {} joined ({})", m.name, m.address.to_string(), state);
  } else {
    const std::string_view previous = membership::to_string(*before);
    log::info({{"member", m.name},
               {"address", m.address.to_string()},
               {"state", state},
               {"previous_state", previous},
               {"incarnation", m.incarnation}},
              "cluster: member {} is {} (was {}, incarnation {})", m.name, state, previous,
              m.incarnation);
  }
  note_detection(m, before);
  if (options_.on_member_change) options_.on_member_change(m, before);
}

void ClusterTransport::note_detection(const membership::MemberInfo& m,
                                      std::optional<membership::MemberState> before) {
  using membership::MemberState;
  if (m.state == MemberState::suspect) {
    suspect_since_[m.name] = m.state_since;
    return;
  }
  const bool was_live = before == MemberState::alive || before == MemberState::suspect;
  if (m.state == MemberState::dead && was_live) {
    auto seconds = [&](membership::TimePoint from) {
      return std::chrono::duration<double>(m.state_since - from).count();
    };
    if (auto it = suspect_since_.find(m.name);
        before == MemberState::suspect && it != suspect_since_.end()) {
      counters_.suspect_to_dead.observe(seconds(it->second));
    }
    if (m.last_seen && *m.last_seen <= m.state_since) {
      counters_.silent_to_dead.observe(seconds(*m.last_seen));
    }
  }
  suspect_since_.erase(m.name);
}

void ClusterTransport::member_forgotten(const std::string& name) {
  sender_keys_.erase(name);
  suspect_since_.erase(name);
  if (options_.on_member_forgotten) options_.on_member_forgotten(name);
}

void ClusterTransport::note(membership::NoteLevel level, const std::string& text) {
  switch (level) {
    case membership::NoteLevel::debug:
      log::debug("cluster: {}", text);
      break;
    case membership::NoteLevel::info:
      log::info("cluster: {}", text);
      break;
    case membership::NoteLevel::warning:
      log::warning("cluster: {}", text);
      break;
    case membership::NoteLevel::error:
      log::error("cluster: {}", text);
      break;
  }
}

std::vector<membership::MemberInfo> ClusterTransport::members() const {
  std::lock_guard lock(mu_);
  return protocol_ ? protocol_->members() : std::vector<membership::MemberInfo>{};
}

std::uint64_t ClusterTransport::incarnation() const {
  std::lock_guard lock(mu_);
  return protocol_ ? protocol_->incarnation() : options_.restored_incarnation;
}

std::optional<membership::MemberInfo> ClusterTransport::member(std::string_view name) const {
  std::lock_guard lock(mu_);
  return protocol_ ? protocol_->member(name) : std::nullopt;
}

ClusterCounters ClusterTransport::counters() const {
  std::lock_guard lock(mu_);
  auto c = counters_;
  if (protocol_) {
    c.protocol = protocol_->counters();
    c.local_health = protocol_->local_health();
  }
  return c;
}

void ClusterTransport::set_timings(const membership::ProtocolTimings& timings) {
  asio::post(io_, [this, timings] {
    {
      std::lock_guard lock(mu_);
      if (protocol_) protocol_->set_timings(timings);
    }
    seed_interval_ = timings.reconnect_interval;
    arm_timer();
  });
}

void ClusterTransport::set_tags(membership::Tags tags) {
  asio::post(io_, [this, tags = std::move(tags)]() mutable {
    {
      std::lock_guard lock(mu_);
      if (protocol_) protocol_->set_tags(std::move(tags), clock_.now());
    }
    arm_timer();  // gossip the new incarnation now, and persist it
  });
}

bool ClusterTransport::set_keyring(Keyring keys, SealPolicy policy) {
  auto next = std::make_shared<const DatagramSeal>(options_.cluster_name, std::move(keys), policy);
  std::lock_guard lock(mu_);
  if (next->fingerprints() == seal_->fingerprints() && next->sealed() == seal_->sealed() &&
      next->requires_sealed() == seal_->requires_sealed()) {
    return false;
  }
  seal_ = std::move(next);
  if (protocol_) protocol_->set_ring_key(seal_->ring_key());
  log::info("cluster: envelope now {}", describe(*seal_));
  return true;
}

KeyUsage ClusterTransport::key_usage() const {
  std::lock_guard lock(mu_);
  KeyUsage u;
  u.seal_outgoing = seal_->sealed();
  u.require_sealed = seal_->requires_sealed();
  const auto& fps = seal_->fingerprints();
  for (std::size_t i = 0; i < fps.size(); ++i) u.keys.push_back({fps[i], i == 0, 0});
  if (!protocol_) return u;
  auto count = [&](const std::optional<std::string>& fp) {
    if (!fp) return void(++u.plaintext_members);
    const auto at = std::find(fps.begin(), fps.end(), *fp);
    if (at == fps.end()) return void(++u.unknown_members);
    ++u.keys[static_cast<std::size_t>(at - fps.begin())].members;
  };
  for (const auto& m : protocol_->members()) {
    if (m.state != membership::MemberState::alive && m.state != membership::MemberState::suspect) {
      continue;
    }
    if (m.self) {
      count(u.seal_outgoing ? std::optional(fps.front()) : std::nullopt);
    } else if (auto it = sender_keys_.find(m.name); it != sender_keys_.end()) {
      count(it->second);
    } else {
      ++u.unknown_members;
    }
  }
  return u;
}

std::string describe(const DatagramSeal& seal) {
  if (seal.key_count() == 0) return "NOT encrypted: set cluster.key_file";
  return fmt::format(
      "keyring of {} (primary {}), {}, {}", seal.key_count(), seal.fingerprints().front(),
      seal.sealed() ? "sending sealed" : "sending plain (cluster.seal_outgoing: false)",
      seal.requires_sealed() ? "accepting sealed only"
                             : "accepting plain and sealed (cluster.require_sealed: false)");
}

std::string ClusterTransport::local_endpoint() const {
  boost::system::error_code ec;
  auto ep = socket_.local_endpoint(ec);
  if (ec) return "?";
  return to_address(ep).to_string();
}

}  // namespace heartbeatd::transport

namespace heartbeatd::transport {

// ---- run-time join and force-leave ----------------------------------------------------

void ClusterTransport::join(std::vector<SeedHost> targets, membership::Duration wait,
                            std::function<void(JoinReport)> done) {
  auto j = std::make_shared<PendingJoin>();
  j->done = std::move(done);
  asio::post(io_, [this, j, targets = std::move(targets), wait] {
    joins_.push_back(j);  // from now on a stop answers it
    if (stopped_) return finish_join(*j, "this node is stopping");
    // One deadline for the lookups and the answers: a resolver that hangs cannot hold the
    // request past it either.
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(wait).count();
    j->timer = std::make_unique<asio::steady_timer>(io_);
    j->timer->expires_after(wait);
    j->timer->async_wait([this, j, ms](const boost::system::error_code& ec) {
      if (ec || j->finished) return;
      if (j->lookups_left > 0) {
        for (auto& t : j->targets) {
          if (t.looking_up) {
            j->unresolved.emplace_back(t.host,
                                       fmt::format("no answer from the resolver within {} ms", ms));
          }
        }
        return finish_unresolved(*j);
      }
      finish_join(*j, fmt::format("no answer within {} ms (nothing listening there, a firewall, "
                                  "another cluster.name or key, or a node of another cluster "
                                  "of the same name)",
                                  ms));
    });
    j->targets.resize(targets.size());
    std::vector<std::size_t> names;
    for (std::size_t i = 0; i < targets.size(); ++i) {
      auto& t = j->targets[i];
      t.given = HostPort{targets[i].host, targets[i].port}.to_string();
      t.host = targets[i].host;
      boost::system::error_code ec;
      const auto literal = asio::ip::make_address(targets[i].host, ec);
      if (ec) {
        names.push_back(i);
      } else if (const auto a = to_address(udp::endpoint(literal, targets[i].port)); usable(a)) {
        t.addresses = {a};
      }
    }
    j->lookups_left = names.size();
    for (auto i : names) j->targets[i].looking_up = true;
    if (names.empty()) return join_resolved(j);
    for (auto i : names) {
      options_.resolve_seed(
          targets[i], [this, j, i](std::vector<Address> found, std::string error) {
            if (j->finished) return;
            auto& t = j->targets[i];
            t.looking_up = false;
            t.addresses = usable_only(std::move(found));
            if (t.addresses.empty()) {
              j->unresolved.emplace_back(
                  t.host, error.empty() ? "no address this socket can reach" : error);
            }
            if (--j->lookups_left > 0) return;
            if (j->unresolved.empty()) return join_resolved(j);
            finish_unresolved(*j);
          });
    }
  });
}

void ClusterTransport::join_resolved(const std::shared_ptr<PendingJoin>& j) {
  if (j->finished) return;
  if (stopped_) return finish_join(*j, "this node is stopping");
  std::vector<Address> all;
  bool waiting = false;
  {
    std::lock_guard lock(mu_);
    const auto self = protocol_->member(options_.node_name)->address;
    for (auto& t : j->targets) {
      const bool only_self =
          !t.addresses.empty() && std::all_of(t.addresses.begin(), t.addresses.end(),
                                              [&](const Address& a) { return a == self; });
      if (only_self || t.addresses.empty()) {
        t.error =
            only_self ? "this node's own cluster address" : "no address this socket can reach";
        continue;
      }
      waiting = true;
      for (const auto& a : t.addresses) {
        if (a != self && std::find(all.begin(), all.end(), a) == all.end()) all.push_back(a);
      }
    }
    protocol_->join(all, clock_.now());
  }
  j->sent = true;
  arm_timer();
  if (!waiting) finish_join(*j, "");
}

void ClusterTransport::finish_unresolved(PendingJoin& j) {
  if (j.finished) return;
  j.finished = true;
  j.timer->cancel();
  JoinReport r;
  r.unresolved = std::move(j.unresolved);
  auto done = std::move(j.done);
  std::erase_if(joins_, [&](const auto& p) { return p.get() == &j; });  // may destroy j
  done(std::move(r));
}

void ClusterTransport::note_join_answer(const Address& from, std::span<const std::uint8_t> body) {
  if (joins_.empty()) return;
  const auto sender = membership::peek_sender_name(body);
  std::optional<membership::MemberInfo> m;
  if (sender) m = protocol_->member(*sender);
  const bool admitted =
      m && !m->self &&
      (m->state == membership::MemberState::alive || m->state == membership::MemberState::suspect);
  for (const auto& j : joins_) {
    if (j->finished || !j->sent) continue;  // still resolving: nothing was sent yet
    bool open = false;
    for (auto& t : j->targets) {
      if (t.member.empty() && t.error.empty() &&
          std::find(t.addresses.begin(), t.addresses.end(), from) != t.addresses.end()) {
        if (admitted) {
          t.member = m->name;
        } else {
          t.answered_unadmitted = true;
        }
      }
      open |= t.member.empty() && t.error.empty();
    }
    // Answered outside mu_ (held here): the answer goes to an HTTP connection.
    if (!open) asio::post(io_, [this, j] { finish_join(*j, ""); });
  }
}

void ClusterTransport::finish_join(PendingJoin& j, const std::string& unanswered) {
  if (j.finished) return;
  j.finished = true;
  if (j.timer) j.timer->cancel();
  JoinReport r;
  for (const auto& t : j.targets) {
    JoinReport::Target out{t.given, t.member, t.error};
    if (out.member.empty() && out.error.empty()) {
      out.error = t.answered_unadmitted
                      ? "it answered but did not admit this node (another cluster of the same "
                        "name, or a name conflict: see both logs)"
                      : unanswered;
    }
    r.targets.push_back(std::move(out));
  }
  auto done = std::move(j.done);
  std::erase_if(joins_, [&](const auto& p) { return p.get() == &j; });  // may destroy j
  done(std::move(r));
}

std::optional<membership::ForceLeaveResult> ClusterTransport::force_leave(std::string name,
                                                                          bool prune) {
  if (!thread_.joinable()) return std::nullopt;
  auto result = std::make_shared<std::promise<std::optional<membership::ForceLeaveResult>>>();
  auto future = result->get_future();
  asio::post(io_, [this, result, name = std::move(name), prune] {
    std::optional<membership::ForceLeaveResult> r;
    {
      std::lock_guard lock(mu_);
      if (protocol_ && !stopped_) r = protocol_->force_leave(name, prune, clock_.now());
    }
    if (r) arm_timer();  // the news is due sooner than the timer was set for
    result->set_value(r);
  });
  // The transport's thread never blocks for long; a stopping one may never run this.
  if (future.wait_for(std::chrono::seconds(2)) != std::future_status::ready) return std::nullopt;
  return future.get();
}

}  // namespace heartbeatd::transport
