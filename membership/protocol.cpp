#include "membership/protocol.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "membership/hash.h"
#include "membership/monitor_ring.h"
#include "membership/replay_window.h"
#include "membership/suspicion.h"

namespace heartbeatd::membership {

namespace {

constexpr std::size_t kMaxForwards = 1024;  // pending indirect probes we help with
constexpr std::size_t kLeaveDirect = 64;    // members told directly on leave
constexpr std::size_t kMaxUpdatesPerMessage = 255;
constexpr std::uint32_t kSyncPullsPerRound = 8;     // extra sync pages per sync_interval
constexpr std::size_t kRestoreJoins = 3;            // restored members asked to rejoin
constexpr std::size_t kMaxPeers = 16384;            // source addresses remembered (about 1 MB)
constexpr std::uint32_t kNewcomersPerSource = 256;  // new members per source per sync_interval
// A join is padded to this size so that the answer to an unverified joiner (one page of at
// most what it sent, and a cookie) is never larger than the request.
constexpr std::size_t kJoinBytes = 512;
// What send() adds to a message after its size was planned: the counter, cookie and echo
// varints at their largest.
constexpr std::size_t kSendRoom = 3 * 10;  // sync_reply: echo my cookie, then I send the rest

DetectionPolicy make_policy(const ProtocolTimings& t) {
  if (t.phi) {
    auto p = *t.phi;
    p.first_interval_estimate = t.interval;
    return PhiAccrual(p);
  }
  return MissThreshold(t.interval, t.miss_threshold, t.suspicion_timeout);
}

bool in_ring(MemberState s) {
  return s == MemberState::alive || s == MemberState::suspect;
}

}  // namespace

struct MembershipProtocol::Member {
  std::string name;
  Address address;
  MemberState state = MemberState::alive;
  std::uint64_t incarnation = 0;
  TimePoint state_since;
  std::optional<TimePoint> last_seen;
  bool is_self = false;
  std::uint64_t position = 0;  // on the monitor ring
  // While suspect: when the suspicion began, who accused, when it convicts.
  TimePoint suspect_start;
  std::vector<std::string> accusers;
  TimePoint suspect_deadline;
  // While one of our subjects: its heartbeat history, and a probe in flight.
  bool subject = false;
  TimePoint watch_since;
  ArrivalHistory history;
  std::optional<std::uint32_t> probe_seq;
  TimePoint probe_deadline;
  std::uint32_t probe_helpers = 0;
  std::uint32_t probe_nacks = 0;
  TimePoint last_correction;
  TimePoint last_check;             // when an accusation above its known incarnation made us ask it
  ReplayWindow window;              // its sealed datagrams accepted so far
  bool address_first_hand = false;  // its own datagram gave this address (not others' news)
  // Its tags, and the incarnation at which it announced them (nullopt: no news has said).
  // Tags move only to a later announcement, whatever the news's own incarnation: a claim
  // from a datagram's header raises the incarnation but says nothing of tags.
  // This node's own: tags_at is set once it has announced tags, and is its incarnation.
  Tags tags;
  std::optional<std::uint64_t> tags_at;
};

MembershipProtocol::MembershipProtocol(std::string name, Address address,
                                       std::vector<Address> seeds, ProtocolTimings timings,
                                       DatagramSink& sink, MembershipObserver* observer,
                                       std::uint64_t seed, TimePoint now, std::uint64_t boot)
    : self_name_(std::move(name)),
      seeds_(std::move(seeds)),
      t_(timings),
      policy_(make_policy(timings)),
      sink_(sink),
      observer_(observer),
      rng_(seed) {
  if (!valid_name(self_name_)) throw std::invalid_argument("invalid node name: " + self_name_);
  boot_ = boot != 0
              ? boot
              : static_cast<std::uint64_t>(
                    std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch())
                        .count());
  next_seq_ = static_cast<std::uint32_t>(rng_()) | 1;
  cookie_secret_ = rng_();
  peers_reset_ = now;
  auto me = std::make_unique<Member>();
  me->name = self_name_;
  me->address = address;
  me->state_since = now;
  me->is_self = true;
  me->position = ring_position(self_name_, ring_key_);
  self_ = me.get();
  list_.push_back(me.get());
  ring_insert(me.get());
  digest_ = digest_term(*me);
  members_.emplace(self_name_, std::move(me));
  std::erase(seeds_, address);  // a seed list may name this node too
  next_heartbeat_ = now;
  next_gossip_ = now;
  last_gossip_ = now - t_.interval;
  next_sync_ = now + t_.sync_interval;
  next_reconnect_ = now;
  join_backoff_ = t_.interval;
  next_wakeup_ = now;
}

MembershipProtocol::~MembershipProtocol() = default;

void MembershipProtocol::set_tags(Tags tags, TimePoint now) {
  auto& me = self();
  if (me.tags == tags) return;
  set_tags_of(me, std::move(tags), me.incarnation);
  // Tags are announced with an incarnation; members that know this one have its tags.
  if (!started_ || leaving_) return;
  refute(me.incarnation, now);
  note(NoteLevel::info, "tags changed: now at incarnation " + std::to_string(me.incarnation));
}

void MembershipProtocol::set_seeds(std::vector<Address> seeds) {
  seeds_ = std::move(seeds);
  std::erase(seeds_, self().address);  // a seed list may name this node too
}

// ---- members -------------------------------------------------------------------------

MembershipProtocol::Member* MembershipProtocol::find(std::string_view name) {
  auto it = members_.find(name);
  return it == members_.end() ? nullptr : it->second.get();
}
const MembershipProtocol::Member* MembershipProtocol::find(std::string_view name) const {
  auto it = members_.find(name);
  return it == members_.end() ? nullptr : it->second.get();
}
MembershipProtocol::Member& MembershipProtocol::self() {
  return *self_;
}
const MembershipProtocol::Member& MembershipProtocol::self() const {
  return *self_;
}
std::uint64_t MembershipProtocol::incarnation() const {
  return self().incarnation;
}

MemberInfo MembershipProtocol::info(const Member& m) const {
  MemberInfo i{m.name,        m.address, m.state, m.incarnation, m.last_seen,
               m.state_since, m.is_self, m.tags,  m.tags_at};
  if (m.is_self) i.last_seen = last_activity_;
  return i;
}

std::size_t MembershipProtocol::member_count() const {
  return list_.size();
}

std::vector<MemberInfo> MembershipProtocol::members() const {
  std::vector<MemberInfo> out;
  out.reserve(list_.size());
  for (const auto* m : list_) out.push_back(info(*m));
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.name < b.name; });
  return out;
}

std::optional<MemberInfo> MembershipProtocol::member(std::string_view name) const {
  const auto* m = find(name);
  if (!m) return std::nullopt;
  return info(*m);
}

MembershipProtocol::Member* MembershipProtocol::add(const Update& u, TimePoint now) {
  if (members_.size() >= t_.max_members) {
    if (counters_.members_over_limit++ == 0) {
      note(NoteLevel::error, "membership.max_members (" + std::to_string(t_.max_members) +
                                 ") reached: ignoring new member " + u.name);
    }
    return nullptr;
  }
  if (source_ != nullptr && source_->newcomers >= kNewcomersPerSource) {
    ++counters_.newcomers_limited;  // a name flood from one source
    return nullptr;
  }
  if (source_ != nullptr) ++source_->newcomers;
  auto m = std::make_unique<Member>();
  m->name = u.name;
  m->address = u.address;
  m->state = u.state;
  m->incarnation = u.incarnation;
  m->tags = u.tags;
  m->tags_at = u.tags_at;
  m->state_since = now;
  m->position = ring_position(m->name, ring_key_);
  auto* raw = m.get();
  list_.push_back(raw);
  members_.emplace(u.name, std::move(m));
  if (in_ring(raw->state)) ring_insert(raw);
  if (raw->state == MemberState::suspect) suspects_.push_back(raw);
  if (raw->state == MemberState::dead) dead_.push_back(raw);
  digest_ += digest_term(*raw);
  return raw;
}

void MembershipProtocol::set_tags_of(Member& m, Tags tags, std::optional<std::uint64_t> at) {
  digest_ -= digest_term(m);
  m.tags = std::move(tags);
  m.tags_at = at;
  digest_ += digest_term(m);
}

void MembershipProtocol::set_state(Member& m, MemberState state, std::uint64_t incarnation,
                                   TimePoint now) {
  const auto before = m.state;
  digest_ -= digest_term(m);
  m.incarnation = incarnation;
  m.state = state;
  digest_ += digest_term(m);
  if (state == before) return;
  m.state_since = now;
  m.accusers.clear();
  if (in_ring(state) && !in_ring(before)) ring_insert(&m);
  if (!in_ring(state) && in_ring(before)) ring_erase(&m);
  if (state == MemberState::suspect) suspects_.push_back(&m);
  if (before == MemberState::suspect) std::erase(suspects_, &m);
  if (state == MemberState::dead) dead_.push_back(&m);
  if (before == MemberState::dead) std::erase(dead_, &m);
  if (state != MemberState::alive && m.probe_seq) {
    probes_.erase(*m.probe_seq);
    m.probe_seq.reset();
  }
}

void MembershipProtocol::remove(const std::string& name) {
  auto it = members_.find(name);
  if (it == members_.end() || it->second->is_self) return;
  auto* m = it->second.get();
  if (m->probe_seq) probes_.erase(*m->probe_seq);
  if (in_ring(m->state)) ring_erase(m);
  std::erase(suspects_, m);
  std::erase(dead_, m);
  digest_ -= digest_term(*m);
  std::erase(list_, m);
  std::erase(subjects_, m);
  std::erase(monitors_, m);
  members_.erase(it);
  queue_.forget(name);
}

bool MembershipProtocol::RingOrder::operator()(const Member* a, const Member* b) const {
  return a->position != b->position ? a->position < b->position : a->name < b->name;
}

void MembershipProtocol::ring_insert(Member* m) {
  ring_.insert(std::upper_bound(ring_.begin(), ring_.end(), m, RingOrder{}), m);
  ring_dirty_ = true;
}

void MembershipProtocol::ring_erase(Member* m) {
  auto it = std::lower_bound(ring_.begin(), ring_.end(), m, RingOrder{});
  if (it != ring_.end() && *it == m) ring_.erase(it);
  ring_dirty_ = true;
}

// ---- receiving -----------------------------------------------------------------------

bool MembershipProtocol::receive(const Address& from, std::span<const std::uint8_t> body,
                                 TimePoint now, bool sealed) {
  auto decoded = decode(body);
  if (auto* err = std::get_if<DecodeError>(&decoded)) {
    ++counters_.malformed;
    note(NoteLevel::debug, "malformed datagram from " + from.to_string() + ": " + err->message);
    return false;
  }
  observe(now);
  ++counters_.messages_received;
  if (leaving_) return true;
  auto& msg = std::get<Message>(decoded);
  if (!fresh(msg, body.size(), from, sealed, now)) return true;
  if (!same_cluster(msg)) {
    ++counters_.other_cluster;  // another cluster of the same name: never merged
    return true;
  }

  if (msg.type == MessageType::refuse) {
    // Not applied: its news about our name is the other holder's, and refuting it would
    // start a fight over the name.
    ++counters_.name_conflicts;
    note(NoteLevel::error, "refused by " + msg.sender.name + ": the name " + self_name_ +
                               " is held by a live member at another address");
    return true;
  }
  source_ = &peer(from, now);
  if (!source_->verified && msg.sender.name != self_name_ && find(msg.sender.name) == nullptr) {
    // A newcomer whose source address has not echoed our cookie could be anyone's forgery
    // naming a victim's address: it is not admitted (it would be probed, gossiped to and
    // retried for a day). A join gets one page within what it sent, and the cookie.
    ++counters_.unverified_dropped;
    if (msg.type == MessageType::sync && (msg.flags & kSyncJoin)) {
      send_sync(from, msg.sender.name, MessageType::sync_reply, kSyncProve, false);
    } else if (now - source_->challenged >= t_.interval) {
      // A node we do not know yet (its join went astray): ask it to prove its address.
      source_->challenged = now;
      Message challenge = message(MessageType::sync_reply, msg.sender.name);
      challenge.flags = kSyncProve;
      challenge.digest = digest_;
      reply(from, challenge);
    }
    source_ = nullptr;
    return true;
  }
  const bool accepted = accept_sender(msg, from, now);
  Member* sender = find(msg.sender.name);
  if (sealed && sender && !sender->is_self && !sender->window.open()) {
    sender->window.accept(msg.boot, msg.counter);  // its first datagram: the window opens
  }
  if (!accepted) {
    source_ = nullptr;
    return true;
  }
  for (const auto& u : msg.updates) {
    apply(u, now, msg.type == MessageType::sync || msg.type == MessageType::sync_reply);
  }
  source_ = nullptr;
  sender = find(msg.sender.name);  // a forget among the updates may have removed it

  switch (msg.type) {
    case MessageType::heartbeat:
      if (sender && sender->subject) {
        sender->history.heartbeat(now);
        if (sender->probe_seq) finish_probe(*sender, true, now);
      }
      break;
    case MessageType::ping:
      if (msg.target == self_name_) {
        Message ack = message(MessageType::ack, msg.sender.name);
        ack.seq = msg.seq;
        reply(from, ack);
      }
      break;
    case MessageType::ack: {
      // Only the probed member, or a helper we asked, can answer our probe: an ack is bound
      // to its probe by a sequence number that starts at a random value every boot.
      if (auto p = probes_.find(msg.seq); p != probes_.end()) {
        const auto& probe = p->second;
        const bool answers = msg.sender.name == probe.subject ||
                             std::find(probe.helpers.begin(), probe.helpers.end(),
                                       msg.sender.name) != probe.helpers.end();
        if (!answers) break;
        if (auto* m = find(probe.subject)) finish_probe(*m, true, now);
      } else if (auto f = forwards_.find(msg.seq);
                 f != forwards_.end() && f->second.target == msg.sender.name) {
        Message ack = message(MessageType::ack, f->second.requester_name);
        ack.seq = f->second.requester_seq;
        auto to = f->second.requester;
        forwards_.erase(f);
        reply(to, ack);
      }
      break;
    }
    case MessageType::ping_req: {
      if (forwards_.size() >= kMaxForwards) break;  // busy: the requester counts no nack
      // Ping only a member we know, at the address we know: never an address that is only
      // named in a datagram (that would make us a reflector).
      const Member* target = find(msg.target);
      if (!target || target->is_self || !in_ring(target->state) ||
          target->address != msg.target_address) {
        break;
      }
      const auto seq = next_seq_++;
      // The nack must reach the requester before its own probe timeout ends (Lifeguard).
      const auto nack_at = now + t_.probe_timeout * 4 / 5;
      forwards_[seq] = Forward{from, msg.seq, nack_at, msg.target, msg.sender.name};
      ++counters_.probes_forwarded;
      Message ping = message(MessageType::ping, msg.target);
      ping.seq = seq;
      ping.target = msg.target;
      send(target->address, ping);
      schedule(nack_at);
      break;
    }
    case MessageType::nack:
      if (auto p = probes_.find(msg.seq); p != probes_.end()) {
        const auto& helpers = p->second.helpers;
        if (std::find(helpers.begin(), helpers.end(), msg.sender.name) == helpers.end()) break;
        if (auto* m = find(p->second.subject)) ++m->probe_nacks;
      }
      break;
    case MessageType::sync:
      if ((msg.flags & kSyncJoin) && cluster_id_ == 0 && alive_peers() > 0) {
        // Joined for the first time: this node and its joiner are a cluster now.
        while (cluster_id_ == 0) cluster_id_ = static_cast<std::uint32_t>(rng_());
      }
      if (msg.flags & kSyncJoin) {
        if (peer(from, now).verified) {
          send_sync(from, msg.sender.name, MessageType::sync_reply, 0, true);
        } else {
          // Bulk state goes only to an address that proved it receives there: one page of
          // at most what it sent, and the cookie to echo (docs/PROTOCOL.md, "Amplification").
          send_sync(from, msg.sender.name, MessageType::sync_reply, kSyncProve, false);
        }
      } else if (msg.digest != digest_) {
        send_sync(from, msg.sender.name, MessageType::sync_reply, 0, false);
      }
      break;
    case MessageType::sync_reply:
      if (msg.flags & kSyncProve) {
        // It wants proof that we receive at our address; the echo goes with the join again.
        // A node still joining asks for everything again; a joined one sends a page.
        if (join_proofs_left_ > 0) {
          --join_proofs_left_;
          send_sync(from, msg.sender.name, MessageType::sync, alive_peers() < 2 ? kSyncJoin : 0,
                    false);
        }
        break;
      }
      // Still different after the last page: pull another page from the same peer (its
      // cursor moves on), a few per sync_interval, so pages lost from a join or a long
      // partition are filled in seconds rather than one page per interval.
      // (Only from a verified address: a pull is a page of our view.)
      if (!(msg.flags & kSyncMore) && msg.digest != digest_ && sync_pulls_left_ > 0 &&
          peer(from, now).verified) {
        --sync_pulls_left_;
        send_sync(from, msg.sender.name, MessageType::sync, 0, false);
      }
      break;
    case MessageType::gossip:
    case MessageType::refuse:
      break;
  }
  if (!queue_.empty()) {
    // New news travels at once (rate-limited) instead of waiting for the next round.
    const auto eager = last_gossip_ + t_.interval / 4;
    if (now >= eager) {
      gossip_round(now);
    } else {
      next_gossip_ = std::min(next_gossip_, eager);
      schedule(eager);
    }
  }
  return true;
}

// Clusters of the same name never merge (docs/PROTOCOL.md, "Trust"): a node takes a
// stranger's datagram carrying another cluster's id only while it is alone (it is joining,
// through its seeds or a member it knew) or has no cluster yet. Members' datagrams always
// count; ids drawn by two nodes joined at once converge to the smaller.
bool MembershipProtocol::same_cluster(const Message& msg) {
  if (msg.cluster == 0 || msg.cluster == cluster_id_) return true;
  const Member* sender = find(msg.sender.name);
  if (sender != nullptr && !sender->is_self) {
    // Already a member of ours: its datagrams count whatever id it carries.
    if (msg.cluster < cluster_id_) cluster_id_ = msg.cluster;
    return true;
  }
  if (cluster_id_ == 0 || alive_peers() == 0) {
    cluster_id_ = msg.cluster;  // joining: this is our cluster now
    return true;
  }
  return false;
}

// Freshness (docs/PROTOCOL.md, "Trust"): a datagram counts once, at the receiver it was
// meant for, and only in the sender's latest boot. Returns false if it must be dropped.
bool MembershipProtocol::fresh(const Message& msg, std::size_t bytes, const Address& from,
                               bool sealed, TimePoint now) {
  if (msg.to != 0 && msg.to != receiver_tag(self_name_)) {
    ++counters_.misdirected;  // a copy of a datagram another member was sent
    return false;
  }
  if (Member* m = find(msg.sender.name);
      sealed && m && !m->is_self && m->window.open() && !m->window.accept(msg.boot, msg.counter)) {
    ++counters_.replays;  // seen before, too old to tell, or from an earlier life
    return false;
  }
  auto& p = peer(from, now);
  if (msg.echo != 0 && msg.echo == cookie_for(from)) p.verified = true;
  p.their_cookie = msg.cookie;  // 0 once it has verified us: stop echoing
  if (!p.verified) p.received += bytes;
  return true;
}

MembershipProtocol::Peer& MembershipProtocol::peer(const Address& a, TimePoint now) {
  if (now - peers_reset_ >= t_.sync_interval) {
    peers_reset_ = now;
    for (auto& [address, p] : peers_) p.newcomers = 0;
  }
  auto it = peers_.find(a);
  if (it == peers_.end()) {
    if (peers_.size() >= kMaxPeers) {
      // Full (a flood of sources): forget the unverified ones first; verified members
      // re-verify in one round trip if they were forgotten too.
      std::erase_if(peers_, [](const auto& kv) { return !kv.second.verified; });
      if (peers_.size() >= kMaxPeers) peers_.clear();
    }
    it = peers_.emplace(a, Peer{}).first;
  }
  it->second.last = now;
  return it->second;
}

std::uint64_t MembershipProtocol::cookie_for(const Address& a) const {
  const auto c = mix64(cookie_secret_ ^ (AddressHash{}(a)*0x9e3779b97f4a7c15ull));
  return c == 0 ? 1 : c;
}

// The sender's claim about itself is first-hand evidence. Returns false if the datagram
// must be ignored (it claims a live member's name from another address).
bool MembershipProtocol::accept_sender(const Message& msg, const Address& from, TimePoint now) {
  const auto& ref = msg.sender;
  // Its tags are not in the header: the claim says nothing of them (tags_at unset).
  Update claim{MemberState::alive, ref.name, ref.address, ref.incarnation, {}};
  if (ref.name == self_name_) {
    if (ref.address != self().address) {
      refuse_claim(from, ref.name);
      note(NoteLevel::error, "a node at " + ref.address.to_string() + " claims this node's name " +
                                 self_name_ + "; refused");
    }
    return false;
  }
  // The member itself speaks: whatever a force-leave with prune said of it, it is alive.
  if (!tombstones_.empty()) tombstones_.erase(ref.name);
  Member* m = find(ref.name);
  {
    // A claim more than one step above what we know moves it one step (kMaxIncarnationStep):
    // a member whose own incarnation ran ahead of our view (it stepped after a restart, or
    // a forger pushed it) still gets through, a step per datagram, and no single datagram
    // carries it out of reach. Ignoring the claim instead would leave the member dead here
    // for good.
    const std::uint64_t known = m ? m->incarnation : 0;
    if (claim.incarnation > known &&
        (claim.incarnation - known > kMaxIncarnationStep || claim.incarnation > kMaxIncarnation)) {
      ++counters_.implausible;
      claim.incarnation = std::min(known + kMaxIncarnationStep, kMaxIncarnation);
    }
  }
  if (!m) {
    apply(claim, now, false);  // a newcomer introducing itself
    m = find(ref.name);
    if (!m) return false;  // membership.max_members reached, or an implausible claim
  } else if (ref.address != m->address && in_ring(m->state) && !m->address_first_hand) {
    // Its address came from others' news (which a forger can write); what it says of
    // itself wins.
    m->address = ref.address;
  } else if (ref.address != m->address && in_ring(m->state)) {
    refuse_claim(from, ref.name);
    auto& logged = conflict_logged_[ref.name];
    if (logged == TimePoint{} || now - logged > std::chrono::seconds(10)) {
      logged = now;
      note(NoteLevel::error, "refused " + ref.address.to_string() + ": the name " + ref.name +
                                 " belongs to a live member at " + m->address.to_string());
    }
    return false;
  }
  m->last_seen = now;
  if (claim.incarnation > m->incarnation) {
    apply(claim, now, false);
    m->address_first_hand = m->address == ref.address;
  } else if (claim.incarnation < m->incarnation || m->state != MemberState::alive) {
    // It is behind on news about itself (restarted, or suspected without knowing): tell it
    // directly so it can refute, at most once per interval.
    if (now - m->last_correction >= t_.interval) {
      m->last_correction = now;
      Message g = message(MessageType::gossip, ref.name);
      g.updates.push_back(update_of(*m));
      reply(from, g);
    }
  }
  if (m->address == ref.address) m->address_first_hand = true;
  return true;
}

// Another address holds a live member's name (or ours): tell it, and count it.
void MembershipProtocol::refuse_claim(const Address& from, const std::string& name) {
  ++counters_.name_conflicts;
  Message refuse = message(MessageType::refuse, name);
  reply(from, refuse);
}

// No update may raise a member's incarnation by more than kMaxIncarnationStep, or above
// kMaxIncarnation: only the member itself raises its own, one refutation at a time, so a
// larger jump is a forgery (or a bug), and accepting it could put the member out of reach
// of its own refutations (an incarnation at the top of the range cannot be outbid).
bool MembershipProtocol::plausible(const Update& u, const Member* m) {
  const std::uint64_t known = m ? m->incarnation : 0;
  if (u.incarnation <= known) return true;
  if (u.incarnation <= kMaxIncarnation && u.incarnation - known <= kMaxIncarnationStep) return true;
  ++counters_.implausible;
  return false;
}

// An accusation counts as a confirmation only from a distinct member we know to be alive
// (not the suspect itself): names invented in a datagram confirm nothing.
bool MembershipProtocol::credible_accuser(const Member& suspect, const std::string& accuser) const {
  if (accuser == suspect.name) return false;
  if (accuser == self_name_) return true;
  const Member* a = find(accuser);
  return a != nullptr && a->state == MemberState::alive;
}

void MembershipProtocol::apply(const Update& u, TimePoint now, bool from_sync) {
  if (u.name == self_name_) {
    apply_about_self(u, now);
    return;
  }
  Member* m = find(u.name);
  if (!m && !tombstones_.empty()) {
    if (auto t = tombstones_.find(u.name); t != tombstones_.end()) {
      if (u.incarnation > t->second.forget.incarnation) {
        tombstones_.erase(t);  // it refuted what the force-leave was based on
      } else {
        // Second-hand news of a member forgotten on request: whoever still holds it has not
        // heard, so say it again (once an interval) instead of taking it back.
        if (!u.forget && now - t->second.resent >= t_.interval) {
          t->second.resent = now;
          announce(t->second.forget, now);
        }
        return;
      }
    }
  }
  if (u.state != MemberState::suspect && u.state != MemberState::dead && !plausible(u, m)) return;
  switch (u.state) {
    case MemberState::alive: {
      if (!m) {
        m = add(u, now);
        if (!m) return;
        changed(*m, std::nullopt);
        announce(u, now);
        return;
      }
      // Later tags than we know, even on news no later than ours (a claim from its header
      // raised the incarnation we know without them).
      const bool later_tags = u.tags_at && (!m->tags_at || *u.tags_at > *m->tags_at);
      const bool retagged = later_tags && m->tags != u.tags;
      // Ignore old incarnation numbers: only the member itself raises its own.
      if (u.incarnation <= m->incarnation) {
        if (!later_tags) return;
        set_tags_of(*m, u.tags, u.tags_at);
        if (retagged) changed(*m, m->state);
        announce(update_of(*m), now);
        return;
      }
      if (u.address != m->address && in_ring(m->state)) return;  // a name conflict, not news
      const auto before = m->state;
      std::vector<std::string> accusers;
      if (before == MemberState::suspect && m->subject) accusers = m->accusers;
      if (m->address != u.address) m->address_first_hand = false;  // until it says so itself
      m->address = u.address;
      set_state(*m, MemberState::alive, u.incarnation, now);
      if (later_tags) set_tags_of(*m, u.tags, u.tags_at);
      if (m->subject) m->watch_since = now;
      if (before != MemberState::alive || retagged) changed(*m, before);
      announce(later_tags || !m->tags_at ? u : update_of(*m), now);
      // A refutation must reach the accusers before their suspicion ends, and gossip to
      // random members can miss one that few others reach (a lossy link; seed
      // 599432870417 of OneLossyLinkCannotKillAHealthyMember): the suspect's monitors, who
      // saw it refute, tell them directly.
      for (const auto& name : accusers) {
        const Member* a = find(name);
        if (!a || a->is_self || !in_ring(a->state)) continue;
        Message g = message(MessageType::gossip, a->name);
        g.updates.push_back(u);
        send(a->address, g, false);
      }
      return;
    }
    case MemberState::suspect:
    case MemberState::dead: {
      // Only a member's own alive news revives it; dead and left are final for an
      // incarnation. Unknown members are not worth tracking as dead.
      if (!m || m->state == MemberState::dead || m->state == MemberState::left) return;
      if (u.incarnation < m->incarnation) return;
      // An accusation can only be weighed against the incarnation we know: a higher one is
      // a refutation we have not heard yet, or a forgery meant to put the member out of
      // reach of its refutations. Either way it is an accusation of what we know.
      const std::uint64_t incarnation = m->incarnation;
      const bool credible = credible_accuser(*m, u.from);
      if (u.incarnation > incarnation && now - m->last_check >= t_.interval) {
        // We may have missed its refutation: ask it, and its answer carries its incarnation.
        m->last_check = now;
        Message ping = message(MessageType::ping, m->name);
        ping.seq = next_seq_++;
        ping.target = m->name;
        send(m->address, ping);
      }
      // A remote view's "dead" (anti-entropy), and a "dead" from anyone who is not a live
      // member we know, becomes a suspicion here: the member gets its chance to refute
      // before we convict on second-hand news.
      const bool as_suspect =
          u.state == MemberState::suspect || from_sync || !credible || u.incarnation != incarnation;
      if (as_suspect) {
        if (m->state == MemberState::suspect) {
          if (!credible) {
            ++counters_.implausible;  // confirms nothing
            return;
          }
          if (std::find(m->accusers.begin(), m->accusers.end(), u.from) != m->accusers.end()) {
            return;
          }
          m->accusers.push_back(u.from);  // an independent confirmation
          arm_suspicion(*m);
          announce(Update{MemberState::suspect, m->name, m->address, m->incarnation, u.from}, now);
          return;
        }
        const auto before = m->state;
        set_state(*m, MemberState::suspect, incarnation, now);
        m->suspect_start = now;
        m->accusers = {u.from};
        arm_suspicion(*m);
        changed(*m, before);
        announce(Update{MemberState::suspect, m->name, m->address, m->incarnation, u.from}, now);
        return;
      }
      const auto before = m->state;
      set_state(*m, MemberState::dead, incarnation, now);
      changed(*m, before);
      announce(u, now);
      return;
    }
    case MemberState::left: {
      if (u.forget) {
        apply_forget(u, now);
        return;
      }
      if (!m || m->state == MemberState::left || u.incarnation < m->incarnation) return;
      mark_left(*m, u.incarnation, now);
      announce(u, now);
      return;
    }
  }
}

// `m` is left from now on, at `incarnation`, and the stream and hooks see the change; one
// already left stays as it is.
void MembershipProtocol::mark_left(Member& m, std::uint64_t incarnation, TimePoint now) {
  if (m.state == MemberState::left) return;
  const auto before = m.state;
  set_state(m, MemberState::left, incarnation, now);
  changed(m, before);
}

// A force-leave with prune somewhere: forget the member here too, and pass the news on.
void MembershipProtocol::apply_forget(const Update& u, TimePoint now) {
  Member* m = find(u.name);
  if (!m) return;  // never known here, or forgotten already: nothing to pass on
  // Known live at a later incarnation: it refuted what the force-leave was based on.
  if (in_ring(m->state) && u.incarnation < m->incarnation) return;
  note(NoteLevel::info, "forgetting member " + u.name + " (force-left with prune)");
  forget(*m, u, now);
}

// Marks `m` left (so the stream and hooks see the transition), removes it, keeps a tombstone
// and gossips `u` (a left update with forget set).
void MembershipProtocol::forget(Member& m, const Update& u, TimePoint now) {
  Update news = u;
  news.incarnation = std::max(u.incarnation, m.incarnation);
  news.address = m.address;
  news.forget = true;
  mark_left(m, news.incarnation, now);
  const std::string name = m.name;
  remove(name);  // also drops queued news about it, so the forget is queued after
  if (observer_) observer_->member_forgotten(name);
  if (tombstones_.size() < t_.max_members) {
    tombstones_[name] = Tombstone{news, now + t_.reap_after, now};
  }
  announce(std::move(news), now);
}

std::size_t MembershipProtocol::join(std::span<const Address> addresses, TimePoint now) {
  observe(now);
  if (leaving_) return 0;
  // Each fresh address first asks us to prove ours, and the join goes again with the proof.
  join_proofs_left_ = std::max(join_proofs_left_, static_cast<std::uint32_t>(addresses.size()));
  std::size_t sent = 0;
  for (const auto& a : addresses) {
    if (a == self().address) continue;
    send_sync(a, "", MessageType::sync, kSyncJoin, false);
    ++sent;
  }
  return sent;
}

ForceLeaveResult MembershipProtocol::force_leave(std::string_view name, bool prune, TimePoint now) {
  observe(now);
  using Outcome = ForceLeaveResult::Outcome;
  ForceLeaveResult r;
  if (name == self_name_) {
    r.outcome = Outcome::self;
    r.before = self().state;
    return r;
  }
  Member* m = find(name);
  if (!m) return r;
  r.before = m->state;
  if (m->state == MemberState::alive) {
    r.outcome = Outcome::alive;
    return r;
  }
  if (m->state == MemberState::suspect && m->last_seen) {
    // Others suspect it, but if it reached this node lately it may only be cut off from them.
    r.detection_time = health_.scale(policy_.deadlines(m->history).suspect_after) +
                       t_.probe_timeout + t_.suspicion_timeout;
    r.heard_ago = now - *m->last_seen;
    if (r.heard_ago < r.detection_time) {
      r.outcome = Outcome::heard_recently;
      return r;
    }
  }
  ++counters_.force_leaves;
  note(NoteLevel::info, "force-leave of member " + m->name + " (was " +
                            std::string(to_string(m->state)) + (prune ? "; forgetting it" : "") +
                            ")");
  Update u{MemberState::left, m->name, m->address, m->incarnation, {}};
  u.forget = prune;
  if (prune) {
    forget(*m, u, now);
    r.outcome = Outcome::forgotten;
    return r;
  }
  mark_left(*m, m->incarnation, now);
  announce(std::move(u), now);  // again for one already left: someone may still list it dead
  r.outcome = Outcome::left;
  return r;
}

void MembershipProtocol::apply_about_self(const Update& u, TimePoint now) {
  if (leaving_) return;
  auto& me = self();
  if (u.state == MemberState::alive) {
    // Someone knows a later incarnation of this name (we restarted without our data): move
    // past it, by at most one plausible step per interval, so peers accept every step and a
    // forged claim at the top of the range cannot carry us there.
    if (u.incarnation <= me.incarnation || now - last_self_step_ < t_.interval) return;
    if (u.incarnation - me.incarnation >= kMaxIncarnationStep) ++counters_.implausible;
    last_self_step_ = now;
    refute(std::min(u.incarnation, me.incarnation + kMaxIncarnationStep - 1), now);
    return;
  }
  if (u.incarnation < me.incarnation) {
    // Already refuted, but whoever sent this has not heard: say it again (at most once per
    // interval), or a node that missed the refutation convicts us on its stale suspicion.
    if (now - last_reannounce_ >= t_.interval) {
      last_reannounce_ = now;
      announce(update_of(me), now);
    }
    return;
  }
  if (u.state == MemberState::suspect || u.state == MemberState::dead) {
    ++counters_.suspicions_refuted;
    // Being suspected hints that we are the slow one (Lifeguard): be slower to accuse.
    health_.worsen(now);
    note(NoteLevel::info, "refuting " + std::string(to_string(u.state)) + " from " +
                              (u.from.empty() ? std::string("?") : u.from) + " at incarnation " +
                              std::to_string(u.incarnation));
  }
  // One above our own beats the accusation everywhere: peers weigh accusations against the
  // incarnation they know, never above it, so a forged one at the top of the range is an
  // accusation of our current incarnation too.
  refute(me.incarnation, now);
}

void MembershipProtocol::refute(std::uint64_t above, TimePoint now) {
  auto& me = self();
  set_state(me, MemberState::alive, std::min(above + 1, kMaxIncarnation), now);
  announce(update_of(me), now);
  next_heartbeat_ = now;  // tell our monitors directly, too
  schedule(now);
}

void MembershipProtocol::suspect(Member& m, const std::string& accuser, TimePoint now) {
  apply(Update{MemberState::suspect, m.name, m.address, m.incarnation, accuser}, now, false);
}

void MembershipProtocol::arm_suspicion(Member& m) {
  // The suspect's other monitors are the independent confirmations we can expect.
  const auto ring = std::min<std::uint32_t>(t_.monitors, alive_peers());
  const auto expected = ring > 1 ? ring - 1 : 0;
  const auto confirmations = static_cast<std::uint32_t>(m.accusers.size()) - 1;
  m.suspect_deadline =
      m.suspect_start +
      suspicion_timeout(confirmations, expected, t_.suspicion_timeout, t_.suspicion_max_timeout);
  schedule(m.suspect_deadline);
}

void MembershipProtocol::announce(Update u, TimePoint now) {
  queue_.push(std::move(u));
  schedule(std::min(next_gossip_, now + t_.interval / 4));
}

// ---- timers --------------------------------------------------------------------------

void MembershipProtocol::restore(std::uint64_t incarnation, std::span<const MemberInfo> members,
                                 TimePoint now) {
  if (started_) return;
  auto& me = self();
  if (incarnation > me.incarnation) {
    digest_ -= digest_term(me);
    me.incarnation = incarnation;
    digest_ += digest_term(me);
  }
  std::vector<Address> alive;
  for (const auto& info : members) {
    if (info.self || info.name == self_name_ || find(info.name) || !valid_name(info.name)) continue;
    const bool gone = info.state == MemberState::dead || info.state == MemberState::left;
    Member* m = add(
        Update{
            gone ? info.state : MemberState::alive, info.name, info.address, info.incarnation, {}},
        now);
    if (!m) break;  // max_members reached (noted by add)
    if (info.tags_at && *info.tags_at <= info.incarnation && !tags_problem(info.tags)) {
      set_tags_of(*m, info.tags, info.tags_at);  // a damaged record's are dropped
    }
    if (info.last_seen) m->last_seen = std::min(*info.last_seen, now);
    if (gone) m->state_since = std::min(info.state_since, now);
    if (!gone) alive.push_back(info.address);
  }
  // A few of them, not all: each answers a join with its whole view.
  std::shuffle(alive.begin(), alive.end(), rng_);
  alive.resize(std::min<std::size_t>(alive.size(), kRestoreJoins));
  rejoin_ = std::move(alive);
  note(NoteLevel::info, "restored " + std::to_string(list_.size() - 1) +
                            " members; starting at incarnation " + std::to_string(incarnation));
}

void MembershipProtocol::start(TimePoint now) {
  observe(now);
  if (started_) return;
  started_ = true;
  next_reconnect_ = now;
  if (!rejoin_.empty()) {
    // Restored members make this node look joined; ask them and the seeds for the news of
    // the time it was away instead of waiting for a sync round.
    for (const auto& a : rejoin_) send_sync(a, "", MessageType::sync, kSyncJoin, false);
    for (const auto& s : seeds_) send_sync(s, "", MessageType::sync, kSyncJoin, false);
    rejoin_.clear();
  }
  tick(now);
}

void MembershipProtocol::tick(TimePoint now) {
  observe(now);
  if (leaving_) {
    next_wakeup_ = now + std::chrono::hours(1);
    return;
  }
  if (ring_dirty_) refresh_ring(now);
  if (now >= next_heartbeat_) send_heartbeats(now);
  watch_subjects(now);
  expire_suspicions(now);
  expire_forwards(now);
  if (ring_dirty_) refresh_ring(now);
  if (!queue_.empty() && now >= next_gossip_) gossip_round(now);
  if (now >= next_sync_) {
    sync_round();
    reap(now);
    next_sync_ = now + t_.sync_interval;
  }
  if (started_ && now >= next_reconnect_) reconnect_round(now);
  health_.recover(now, t_.interval * t_.miss_threshold * 2);
  recompute_wakeup(now);
}

// A node that did not run for a while (stopped, starved, swapped) has no evidence about
// anyone for that time: it must not convict others on waking (Cassandra's local-pause
// guard). Every clock it runs restarts from now.
void MembershipProtocol::observe(TimePoint now) {
  const auto threshold = std::max(t_.interval * 2, t_.interval * t_.miss_threshold / 2);
  if (last_activity_ && now - *last_activity_ > threshold) on_pause(now - *last_activity_, now);
  if (!last_activity_ || now > *last_activity_) last_activity_ = now;
}

void MembershipProtocol::on_pause(Duration gap, TimePoint now) {
  ++counters_.pauses;
  note(NoteLevel::warning,
       "this node did not run for " +
           std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(gap).count()) +
           " ms; restarting failure-detection clocks instead of accusing anyone");
  for (auto* m : subjects_) {
    m->watch_since = now;
    if (m->probe_seq) m->probe_deadline = std::max(m->probe_deadline, now + t_.probe_timeout);
  }
  for (auto* m : suspects_) {
    m->suspect_start += gap;
    arm_suspicion(*m);
  }
  next_heartbeat_ = now;
}

void MembershipProtocol::send_heartbeats(TimePoint now) {
  for (const auto* m : monitors_) {
    Message hb = message(MessageType::heartbeat, m->name);
    send(m->address, hb);
  }
  next_heartbeat_ += t_.interval;
  if (next_heartbeat_ <= now) next_heartbeat_ = now + t_.interval;
}

// When a quiet subject is due for a probe; nullopt while our own accusation of it stands
// (until it refutes or dies).
std::optional<TimePoint> MembershipProtocol::overdue_at(const Member& m) const {
  if (m.state == MemberState::suspect &&
      std::find(m.accusers.begin(), m.accusers.end(), self_name_) != m.accusers.end()) {
    return std::nullopt;
  }
  auto last = m.watch_since;
  if (auto seen = m.history.last_seen()) last = std::max(last, *seen);
  return last + health_.scale(policy_.deadlines(m.history).suspect_after);
}

void MembershipProtocol::watch_subjects(TimePoint now) {
  for (auto* m : subjects_) {
    if (m->probe_seq) {
      if (now >= m->probe_deadline) finish_probe(*m, false, now);
      continue;
    }
    if (auto due = overdue_at(*m); due && now >= *due) start_probe(*m, now);
  }
}

// A subject went quiet: ask it directly and, at the same time, through a few helpers, so
// one lossy link between us cannot make us accuse it.
void MembershipProtocol::start_probe(Member& m, TimePoint now) {
  ++counters_.probes;
  const auto seq = next_seq_++;
  m.probe_seq = seq;
  m.probe_deadline = now + health_.scale(t_.probe_timeout);
  m.probe_nacks = 0;
  Message ping = message(MessageType::ping, m.name);
  ping.seq = seq;
  ping.target = m.name;
  send(m.address, ping);
  auto helpers = pick_random(t_.indirect_checks, &m);
  m.probe_helpers = static_cast<std::uint32_t>(helpers.size());
  auto& probe = probes_[seq];
  probe.subject = m.name;
  for (auto* h : helpers) {
    probe.helpers.push_back(h->name);
    Message req = message(MessageType::ping_req, h->name);
    req.seq = seq;
    req.target = m.name;
    req.target_address = m.address;
    send(h->address, req);
    ++counters_.indirect_probes;
  }
  schedule(m.probe_deadline);
}

void MembershipProtocol::finish_probe(Member& m, bool answered, TimePoint now) {
  if (m.probe_seq) probes_.erase(*m.probe_seq);
  m.probe_seq.reset();
  if (answered) {
    m.watch_since = now;
    return;
  }
  // Helpers that answered nothing at all, not even a nack, suggest the problem is here.
  if (m.probe_helpers > 0 && m.probe_nacks == 0) health_.worsen(now);
  ++counters_.probes_failed;
  ++counters_.suspicions_raised;
  suspect(m, self_name_, now);
}

void MembershipProtocol::expire_suspicions(TimePoint now) {
  std::vector<Member*> due;
  for (auto* m : suspects_) {
    if (now >= m->suspect_deadline) due.push_back(m);
  }
  for (auto* m : due) {
    ++counters_.deaths_declared;
    apply(Update{MemberState::dead, m->name, m->address, m->incarnation, self_name_}, now, false);
  }
}

void MembershipProtocol::expire_forwards(TimePoint now) {
  for (auto it = forwards_.begin(); it != forwards_.end();) {
    if (now < it->second.deadline) {
      ++it;
      continue;
    }
    Message nack = message(MessageType::nack, it->second.requester_name);
    nack.seq = it->second.requester_seq;
    auto to = it->second.requester;
    it = forwards_.erase(it);
    reply(to, nack);
  }
}

void MembershipProtocol::gossip_round(TimePoint now) {
  last_gossip_ = now;
  next_gossip_ = now + t_.interval;
  for (auto* m : pick_random(t_.gossip_fanout, nullptr)) {
    if (queue_.empty()) break;
    Message g = message(MessageType::gossip, m->name);
    send(m->address, g);
  }
}

void MembershipProtocol::sync_round() {
  sync_pulls_left_ = kSyncPullsPerRound;
  join_proofs_left_ = kSyncPullsPerRound;
  auto peers = pick_random(1, nullptr);
  if (!peers.empty()) {
    send_sync(peers.front()->address, peers.front()->name, MessageType::sync, 0, false);
  }
}

// Seeds while we know no live peer (with backoff); otherwise one dead member per round, so
// a partition heals by itself once the network does.
void MembershipProtocol::reconnect_round(TimePoint now) {
  const bool alone = alive_peers() == 0;
  if (alone) {
    for (const auto& s : seeds_) send_sync(s, "", MessageType::sync, kSyncJoin, false);
  }
  if (!dead_.empty()) {
    std::uniform_int_distribution<std::size_t> pick(0, dead_.size() - 1);
    const auto* m = dead_[pick(rng_)];
    send_sync(m->address, m->name, MessageType::sync, kSyncJoin, false);
  }
  if (alone) {
    next_reconnect_ = now + join_backoff_;
    join_backoff_ = std::min(join_backoff_ * 2, std::max(t_.reconnect_interval, t_.interval));
  } else {
    join_backoff_ = t_.interval;
    next_reconnect_ = now + t_.reconnect_interval;
  }
}

void MembershipProtocol::reap(TimePoint now) {
  std::vector<std::string> gone;
  for (auto* m : list_) {
    if ((m->state == MemberState::dead || m->state == MemberState::left) &&
        now - m->state_since >= t_.reap_after) {
      gone.push_back(m->name);
    }
  }
  for (const auto& name : gone) {
    note(NoteLevel::info, "forgetting member " + name + " (reap_after passed)");
    remove(name);
    if (observer_) observer_->member_forgotten(name);
  }
  std::erase_if(tombstones_, [&](const auto& kv) { return now >= kv.second.until; });
}

void MembershipProtocol::refresh_ring(TimePoint now) {
  ring_dirty_ = false;
  std::vector<Member*> monitors, subjects;
  auto me = std::lower_bound(ring_.begin(), ring_.end(), self_, RingOrder{});
  if (me != ring_.end() && *me == self_) {
    const auto at = static_cast<std::size_t>(me - ring_.begin());
    const auto [after, before] = ring_neighbour_indices(ring_.size(), at, t_.monitors);
    for (auto i : after) monitors.push_back(ring_[i]);
    for (auto i : before) subjects.push_back(ring_[i]);
  }
  for (auto* m : subjects_) {
    if (std::find(subjects.begin(), subjects.end(), m) != subjects.end()) continue;
    m->subject = false;
    if (m->probe_seq) probes_.erase(*m->probe_seq);
    m->probe_seq.reset();
  }
  for (auto* m : subjects) {
    if (m->subject) continue;
    m->subject = true;
    m->watch_since = now;  // a new subject gets a full window before it can be overdue
    m->history = ArrivalHistory(policy_.window_capacity());
  }
  monitors_ = std::move(monitors);
  subjects_ = std::move(subjects);
}

void MembershipProtocol::schedule(TimePoint at) {
  next_wakeup_ = std::min(next_wakeup_, at);
}

void MembershipProtocol::recompute_wakeup(TimePoint now) {
  auto next = std::min(next_heartbeat_, next_sync_);
  if (started_) next = std::min(next, next_reconnect_);
  if (!queue_.empty()) next = std::min(next, next_gossip_);
  for (const auto* m : subjects_) {
    if (m->probe_seq) {
      next = std::min(next, m->probe_deadline);
    } else if (auto due = overdue_at(*m)) {
      next = std::min(next, *due);
    }
  }
  for (const auto* m : suspects_) next = std::min(next, m->suspect_deadline);
  for (const auto& [seq, f] : forwards_) next = std::min(next, f.deadline);
  next_wakeup_ = std::max(next, now);
}

// ---- leaving -------------------------------------------------------------------------

void MembershipProtocol::leave(TimePoint now) {
  if (leaving_) return;
  auto& me = self();
  set_state(me, MemberState::left, me.incarnation + 1, now);
  const Update left = update_of(me);
  std::vector<Member*> peers;
  for (auto* m : list_) {
    if (!m->is_self && in_ring(m->state)) peers.push_back(m);
  }
  std::shuffle(peers.begin(), peers.end(), rng_);
  if (peers.size() > kLeaveDirect) peers.resize(kLeaveDirect);
  for (auto* m : peers) {
    Message g = message(MessageType::gossip, m->name);
    g.updates.push_back(left);
    send(m->address, g, false);
  }
  leaving_ = true;
  next_wakeup_ = now + std::chrono::hours(1);
}

void MembershipProtocol::set_ring_key(std::uint64_t key) {
  if (key == ring_key_) return;
  ring_key_ = key;
  ring_.clear();
  digest_ = 0;
  for (auto* m : list_) {
    m->position = ring_position(m->name, ring_key_);
    if (in_ring(m->state)) ring_.push_back(m);
    digest_ += digest_term(*m);
  }
  std::sort(ring_.begin(), ring_.end(), RingOrder{});
  ring_dirty_ = true;
}

void MembershipProtocol::set_timings(const ProtocolTimings& timings) {
  t_ = timings;
  policy_ = make_policy(timings);
  ring_dirty_ = true;
  // A detector that keeps another window starts a fresh history; the last heartbeat still
  // counts, so no subject becomes overdue just because the config changed.
  const auto capacity = policy_.window_capacity();
  for (auto* m : list_) {
    if (m->history.intervals().capacity() == capacity) continue;
    if (auto seen = m->history.last_seen()) m->watch_since = std::max(m->watch_since, *seen);
    m->history = ArrivalHistory(capacity);
  }
}

// ---- sending -------------------------------------------------------------------------

Message MembershipProtocol::message(MessageType type, std::string_view to_name) const {
  Message m;
  m.type = type;
  const auto& me = self();
  m.sender = NodeRef{me.name, me.address, me.incarnation};
  m.to = to_name.empty() ? 0 : receiver_tag(to_name);
  m.cluster = alive_peers() == 0 ? 0 : cluster_id_;
  return m;
}

void MembershipProtocol::send(const Address& to, Message& m, bool piggyback) {
  if (piggyback && !queue_.empty() && m.updates.empty()) {
    const auto base = encoded_size_without_updates(m) + kSendRoom;
    m.updates = queue_.take(kMaxBodyBytes - base, kMaxUpdatesPerMessage, transmit_limit());
  }
  m.boot = boot_;
  m.counter = ++counter_;
  m.cookie = 0;
  m.echo = 0;
  if (auto it = peers_.find(to); it != peers_.end()) {
    m.echo = it->second.their_cookie;
    if (!it->second.verified) m.cookie = cookie_for(to);
  } else {
    m.cookie = cookie_for(to);
  }
  const auto bytes = encode(m);
  if (auto it = peers_.find(to); it != peers_.end() && !it->second.verified) {
    it->second.sent += bytes.size();
  }
  ++counters_.messages_sent;
  sink_.send(to, bytes);
}

// Before an address has echoed our cookie, anyone could have written it as the source of a
// datagram: it gets no news, and at most 3x the bytes it sent (RFC 9000 section 8.1 allows
// a QUIC server as much). Anything larger is withheld and counted.
void MembershipProtocol::reply(const Address& to, Message& m) {
  auto it = peers_.find(to);
  if (it == peers_.end() || it->second.verified) {
    send(to, m);
    return;
  }
  const auto& p = it->second;
  auto size = encoded_size_without_updates(m) + kSendRoom;
  for (const auto& u : m.updates) size += encoded_size(u);
  if (p.sent + size > 3 * p.received) {
    ++counters_.unverified_dropped;
    return;
  }
  send(to, m, false);
}

// A page (or, for a join, every page) of our view: every member's latest state. To an
// unverified address, one page of at most what it sent us (kSyncProve asks it to echo our
// cookie first); a join we send is padded so that such a page always fits.
void MembershipProtocol::send_sync(const Address& to, std::string_view to_name, MessageType type,
                                   std::uint8_t flags, bool everything) {
  const auto total = list_.size();
  std::size_t sent = 0;
  std::size_t allowance = kMaxBodyBytes;
  if (type == MessageType::sync_reply) {
    if (auto it = peers_.find(to); it != peers_.end() && !it->second.verified) {
      const auto& p = it->second;
      allowance =
          p.received > p.sent ? std::min<std::size_t>(kMaxBodyBytes, p.received - p.sent) : 0;
      everything = false;
    }
  }
  do {
    Message m = message(type, to_name);
    m.flags = flags;
    m.digest = digest_;
    const auto overhead = encoded_size_without_updates(m) + kSendRoom;
    if (overhead > allowance) {
      ++counters_.unverified_dropped;
      return;
    }
    auto budget = allowance - overhead;
    while (sent < total && m.updates.size() < kMaxUpdatesPerMessage) {
      const auto& member = *list_[sync_cursor_ % total];
      auto u = update_of(member);
      const auto size = encoded_size(u);
      if (size > budget) break;
      budget -= size;
      m.updates.push_back(std::move(u));
      ++sync_cursor_;
      ++sent;
    }
    if (everything && sent < total && type == MessageType::sync_reply) m.flags |= kSyncMore;
    if (type == MessageType::sync && (flags & kSyncJoin)) {
      auto size = encoded_size_without_updates(m) + kSendRoom;
      for (const auto& u : m.updates) size += encoded_size(u);
      if (size < kJoinBytes) m.padding = static_cast<std::uint16_t>(kJoinBytes - size);
    }
    send(to, m, false);
  } while (everything && sent < total);
}

Update MembershipProtocol::update_of(const Member& m) const {
  Update u{m.state, m.name, m.address, m.incarnation, {}};
  if (m.state == MemberState::suspect || m.state == MemberState::dead) {
    u.from = m.accusers.empty() ? self_name_ : m.accusers.front();
  }
  if (m.state == MemberState::alive && m.tags_at) {
    u.tags = m.tags;
    u.tags_at = m.is_self ? m.incarnation : *m.tags_at;
  }
  return u;
}

// The view's digest is a sum of one term per member, so it is kept up to date in O(1) per
// change and two views with the same members, states and incarnations agree.
// Tags count for alive members only, the ones whose news carries them, with the incarnation
// they were announced at; a member no news told tags of adds nothing, so a view without tags
// digests as it did before tags existed. Views that differ only in tags differ, and the sync
// that follows brings the later ones.
std::uint64_t MembershipProtocol::digest_term(const Member& m) {
  std::uint64_t h = m.position;
  h ^= (m.incarnation + 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
  h ^= static_cast<std::uint64_t>(m.state) << 61;
  if (m.state == MemberState::alive && m.tags_at) h ^= tags_digest(m);
  return h * 0x94d049bb133111ebull;
}

std::uint64_t MembershipProtocol::tags_digest(const Member& m) {
  std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over key, 0, value, 0, ...
  h ^= m.is_self ? m.incarnation : *m.tags_at;
  for (const auto& [k, v] : m.tags) {
    for (const std::string* s : {&k, &v}) {
      for (unsigned char c : *s) h = (h ^ c) * 0x100000001b3ull;
      h *= 0x100000001b3ull;
    }
  }
  return mix64(h);
}

// Each piece of news is sent retransmit_mult * ceil(log10(N + 1)) times: enough for
// infection-style gossip to reach every member with high probability.
std::uint32_t MembershipProtocol::transmit_limit() const {
  const auto scale = std::ceil(std::log10(static_cast<double>(list_.size()) + 1.0));
  return std::max<std::uint32_t>(1, t_.retransmit_mult * static_cast<std::uint32_t>(scale));
}

std::vector<MembershipProtocol::Member*> MembershipProtocol::pick_random(std::size_t count,
                                                                         const Member* exclude) {
  std::vector<Member*> out;
  if (count == 0 || list_.size() < 2) return out;
  auto eligible = [&](Member* m) {
    return !m->is_self && m != exclude && m->state == MemberState::alive &&
           std::find(out.begin(), out.end(), m) == out.end();
  };
  // Random draws are cheap when most members are alive; a scan finishes the rare rest.
  std::uniform_int_distribution<std::size_t> pick(0, list_.size() - 1);
  for (std::size_t tries = 0; out.size() < count && tries < count * 4; ++tries) {
    auto* m = list_[pick(rng_)];
    if (eligible(m)) out.push_back(m);
  }
  if (out.size() < count) {
    std::vector<Member*> rest;
    for (auto* m : list_) {
      if (eligible(m)) rest.push_back(m);
    }
    std::shuffle(rest.begin(), rest.end(), rng_);
    for (auto* m : rest) {
      if (out.size() >= count) break;
      out.push_back(m);
    }
  }
  return out;
}

std::uint32_t MembershipProtocol::alive_peers() const {
  const auto n = static_cast<std::uint32_t>(ring_.size());
  return in_ring(self_->state) && n > 0 ? n - 1 : n;
}

void MembershipProtocol::note(NoteLevel level, const std::string& text) {
  if (observer_) observer_->note(level, text);
}

void MembershipProtocol::changed(const Member& m, std::optional<MemberState> before) {
  if (observer_) observer_->member_changed(info(m), before);
}

}  // namespace heartbeatd::membership
