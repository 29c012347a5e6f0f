#include "tests/fuzz/receive_harness.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <variant>

#include "membership/address.h"
#include "membership/wire_codec.h"
#include "tests/support/sim_cluster.h"
#include "transport/cluster/datagram_seal.h"

namespace heartbeatd::fuzz {

namespace {

using namespace std::chrono_literals;
using membership::Address;
using membership::MemberState;

// Long enough for a refutation to spread and for a wrongly dead member to be reached by a
// reconnect round and a sync (sync_interval 5s) a few times over; the hold covers a
// suspicion's longest timer (suspicion_max_timeout 4s).
constexpr auto kRecoveryBound = 30s;
constexpr auto kHoldAfter = 5s;

membership::ProtocolTimings timings() {
  membership::ProtocolTimings t;
  t.max_members = kReceiveMaxMembers;
  return t;
}

Address source(std::size_t i) {
  if (i < kReceiveNodes) return Address::v4(0x0a000000u + static_cast<std::uint32_t>(i + 1), 7701);
  if (i == kReceiveNodes) return Address::v4(0x0a000063u, 7701);  // 10.0.0.99: nobody
  return membership::parse_address("[2001:db8::1]:7701").value();
}

bool all_alive(sim::SimCluster& c) {
  for (std::size_t i = 0; i < kReceiveNodes; ++i) {
    if (!c.all_see(i, MemberState::alive)) return false;
  }
  return true;
}

std::string views(sim::SimCluster& c) {
  std::string out;
  for (std::size_t i = 0; i < kReceiveNodes; ++i) {
    out += "\n  " + c.name(i) + " sees:";
    for (const auto& m : c.node(i).members()) {
      out += " " + m.name + "=" + std::string(membership::to_string(m.state)) + "/" +
             std::to_string(m.incarnation);
    }
  }
  return out;
}

// Broken after any chunk: a node sees itself dead, or tracks more than max_members.
std::optional<std::string> check_always(sim::SimCluster& c, std::size_t observations_seen) {
  const auto& obs = c.observations();
  for (std::size_t k = observations_seen; k < obs.size(); ++k) {
    if (obs[k].member == c.name(obs[k].observer) && obs[k].state == MemberState::dead) {
      return c.name(obs[k].observer) + " declared itself dead";
    }
  }
  for (std::size_t i = 0; i < kReceiveNodes; ++i) {
    if (auto self = c.node(i).member(c.name(i)); !self || self->state == MemberState::dead) {
      return c.name(i) + " does not hold itself alive";
    }
    if (c.node(i).member_count() > kReceiveMaxMembers) {
      return c.name(i) + " tracks " + std::to_string(c.node(i).member_count()) +
             " members, over max_members " + std::to_string(kReceiveMaxMembers);
    }
  }
  return std::nullopt;
}

// A name by index: the real members, made-up ones, and one that is no member anywhere.
std::string name_of(std::uint8_t i) {
  i %= kReceiveNodes + 5;
  if (i < kReceiveNodes) return "node-" + std::to_string(i);
  if (i < kReceiveNodes + 4) return "ghost-" + std::to_string(i - kReceiveNodes);
  return "nobody";
}

// Small incarnations, and the top of the range where adding one wraps.
std::uint64_t incarnation_of(std::uint8_t code) {
  if (code < 200) return code;
  if (code < 240) return UINT64_MAX - (code - 200);
  return std::uint64_t{1} << (24 + (code - 240) * 2);
}

// kChunkDescribed: a message from a byte description (missing bytes read as 0).
//   type, sender name, sender address, sender incarnation, seq, target name, target address,
//   flags, update count (mod 9), then per update: state, name, address, incarnation, accuser
//   (255: none).
std::optional<std::vector<std::uint8_t>> describe(std::span<const std::uint8_t> d) {
  std::size_t at = 0;
  auto next = [&]() -> std::uint8_t { return at < d.size() ? d[at++] : 0; };
  membership::Message m;
  m.type = static_cast<membership::MessageType>(next() % 9 + 1);
  m.sender.name = name_of(next());
  m.sender.address = source(next() % kReceiveSources);
  m.sender.incarnation = incarnation_of(next());
  const std::uint8_t seq = next(), target = next(), target_address = next(), flags = next();
  using membership::MessageType;
  if (m.type >= MessageType::ping && m.type <= MessageType::nack) m.seq = seq;
  if (m.type == MessageType::ping || m.type == MessageType::ping_req) m.target = name_of(target);
  if (m.type == MessageType::ping_req) m.target_address = source(target_address % kReceiveSources);
  if (m.type == MessageType::sync || m.type == MessageType::sync_reply) m.flags = flags & 3;
  const std::size_t updates = next() % 9;
  for (std::size_t k = 0; k < updates; ++k) {
    membership::Update u;
    u.state = static_cast<MemberState>(next() % 4);
    u.name = name_of(next());
    u.address = source(next() % kReceiveSources);
    u.incarnation = incarnation_of(next());
    const std::uint8_t accuser = next();
    if (accuser != 255 && (u.state == MemberState::suspect || u.state == MemberState::dead)) {
      u.from = name_of(accuser);
    }
    m.updates.push_back(std::move(u));
  }
  try {
    return membership::encode(m);
  } catch (const std::invalid_argument&) {
    return std::nullopt;  // not a message a sender could make; the raw path covers bytes
  }
}

}  // namespace

std::vector<std::uint8_t> receive_chunk(std::uint8_t target, std::uint8_t source_index,
                                        std::uint8_t advance_ms, std::uint8_t flags,
                                        std::span<const std::uint8_t> bytes) {
  std::vector<std::uint8_t> out(6 + bytes.size());
  out[0] = target;
  out[1] = source_index;
  out[2] = advance_ms;
  out[3] = flags;
  out[4] = static_cast<std::uint8_t>(bytes.size() & 0xff);
  out[5] = static_cast<std::uint8_t>(bytes.size() >> 8);
  std::copy(bytes.begin(), bytes.end(), out.begin() + 6);
  return out;
}

std::optional<std::string> run_receive_input(std::span<const std::uint8_t> input) {
  static const transport::DatagramSeal plain("heartbeatd", std::nullopt);
  // The same cluster every time (fixed seed), so an input replays exactly.
  sim::SimCluster c(1, timings());
  c.add_nodes(kReceiveNodes);
  if (!c.run_until([&] { return all_alive(c); }, 10s)) {
    throw std::logic_error("receive harness: the clean cluster did not converge");
  }
  std::size_t seen = c.observations().size();

  std::size_t chunks = 0;
  while (input.size() >= 6 && chunks++ < kReceiveMaxChunks) {
    const std::size_t target = input[0] % kReceiveNodes;
    const Address from = source(input[1] % kReceiveSources);
    const auto advance = std::chrono::milliseconds(input[2]);
    const std::uint8_t flags = input[3];
    const std::size_t length = std::min<std::size_t>(input[4] | (input[5] << 8), input.size() - 6);
    const auto bytes = input.subspan(6, length);
    input = input.subspan(6 + length);

    std::vector<std::uint8_t> datagram;
    if (flags & kChunkDescribed) {
      if (auto body = describe(bytes)) datagram = plain.seal(*body);
    } else if (flags & kChunkBody) {
      if (bytes.size() > transport::kMaxDatagramBytes - transport::DatagramSeal::header_bytes) {
        continue;
      }
      datagram = plain.seal(bytes);
    } else {
      datagram.assign(bytes.begin(), bytes.end());
    }
    // What ClusterTransport does with a datagram: size limit, envelope, then the protocol.
    if (datagram.size() <= transport::kMaxDatagramBytes) {
      auto opened = plain.open(datagram);
      if (auto* o = std::get_if<transport::DatagramSeal::Opened>(&opened)) {
        // A plaintext cluster: the attacker writes whatever it likes.
        c.inject(target, from, std::move(o->body), membership::Duration::zero(), true);
      }
    }
    c.run_for(advance);
    if (auto broken = check_always(c, seen)) return *broken;
    seen = c.observations().size();
  }

  // Then a clean network: every real node must be alive everywhere again, and stay so.
  const bool recovered = c.run_until([&] { return all_alive(c); }, kRecoveryBound);
  if (auto broken = check_always(c, seen)) return *broken;
  if (!recovered) {
    return "after " + std::to_string(kRecoveryBound.count()) +
           " s on a clean network, not every node is alive everywhere:" + views(c);
  }
  c.run_for(kHoldAfter);
  if (auto broken = check_always(c, seen)) return *broken;
  if (!all_alive(c)) {
    return "recovered, then lost a live member again within " + std::to_string(kHoldAfter.count()) +
           " s:" + views(c);
  }
  return std::nullopt;
}

}  // namespace heartbeatd::fuzz
