#include "transport/redis/cluster.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

namespace heartbeatd::transport::redis {

std::uint16_t crc16(std::string_view data) {
  // CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, no reflection, as Redis
  // Cluster specifies.
  std::uint16_t crc = 0;
  for (unsigned char c : data) {
    crc ^= static_cast<std::uint16_t>(c) << 8;
    for (int i = 0; i < 8; ++i) {
      crc = (crc & 0x8000) ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021)
                           : static_cast<std::uint16_t>(crc << 1);
    }
  }
  return crc;
}

std::uint16_t key_slot(std::string_view key) {
  const auto open = key.find('{');
  if (open != std::string_view::npos) {
    const auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return crc16(key) & (kSlots - 1);
}

std::string NodeAddress::to_string() const {
  return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port)
                                             : fmt::format("{}:{}", host, port);
}

namespace {

std::optional<std::uint16_t> parse_port(std::string_view s) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v == 0 || v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

// "host:port" where host may itself contain ':' (IPv6): the port follows the last ':'.
std::optional<NodeAddress> parse_address(std::string_view s) {
  const auto colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  auto port = parse_port(s.substr(colon + 1));
  if (!port) return std::nullopt;
  std::string_view host = s.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return NodeAddress{std::string(host), *port};
}

}  // namespace

SlotMap SlotMap::single(NodeAddress node) {
  SlotMap m;
  m.masters_.push_back(std::move(node));
  m.owner_.fill(0);
  return m;
}

std::optional<SlotMap> SlotMap::from_cluster_slots(const Value& reply, std::string* why) {
  auto no = [&](std::string text) -> std::optional<SlotMap> {
    *why = std::move(text);
    return std::nullopt;
  };
  if (reply.type != Value::Type::array) return no("CLUSTER SLOTS did not answer an array");
  SlotMap m;
  m.owner_.fill(-1);
  for (const auto& range : reply.elements) {
    // [start, end, [host, port, id...], replicas...]
    if (range.type != Value::Type::array || range.elements.size() < 3 ||
        range.elements[0].type != Value::Type::integer ||
        range.elements[1].type != Value::Type::integer ||
        range.elements[2].type != Value::Type::array ||
        range.elements[2].elements.size() < 2 ||
        range.elements[2].elements[0].type != Value::Type::string ||
        range.elements[2].elements[1].type != Value::Type::integer) {
      return no("CLUSTER SLOTS: a range is not [start, end, [host, port, ...], ...]");
    }
    const long long start = range.elements[0].integer, end = range.elements[1].integer;
    const long long port = range.elements[2].elements[1].integer;
    if (start < 0 || end >= kSlots || start > end) {
      return no(fmt::format("CLUSTER SLOTS: bad slot range {}-{}", start, end));
    }
    if (port <= 0 || port > 65535) return no(fmt::format("CLUSTER SLOTS: bad port {}", port));
    NodeAddress node{range.elements[2].elements[0].str, static_cast<std::uint16_t>(port)};
    auto it = std::find(m.masters_.begin(), m.masters_.end(), node);
    if (it == m.masters_.end()) {
      m.masters_.push_back(node);
      it = m.masters_.end() - 1;
    }
    const auto index = static_cast<std::int16_t>(it - m.masters_.begin());
    for (long long s = start; s <= end; ++s) m.owner_[static_cast<std::size_t>(s)] = index;
  }
  return m;
}

const NodeAddress* SlotMap::node_for(std::uint16_t slot) const {
  const auto i = owner_[slot & (kSlots - 1)];
  return i < 0 ? nullptr : &masters_[static_cast<std::size_t>(i)];
}

void SlotMap::move(std::uint16_t slot, const NodeAddress& node) {
  auto it = std::find(masters_.begin(), masters_.end(), node);
  if (it == masters_.end()) {
    masters_.push_back(node);
    it = masters_.end() - 1;
  }
  owner_[slot & (kSlots - 1)] = static_cast<std::int16_t>(it - masters_.begin());
}

std::optional<Redirect> parse_redirect(std::string_view error) {
  Redirect r;
  if (error.starts_with("MOVED ")) {
    error.remove_prefix(6);
  } else if (error.starts_with("ASK ")) {
    r.ask = true;
    error.remove_prefix(4);
  } else {
    return std::nullopt;
  }
  const auto space = error.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  unsigned slot = 0;
  auto [p, ec] = std::from_chars(error.data(), error.data() + space, slot);
  if (ec != std::errc() || p != error.data() + space || slot >= kSlots) return std::nullopt;
  auto node = parse_address(error.substr(space + 1));
  if (!node) return std::nullopt;
  r.slot = static_cast<std::uint16_t>(slot);
  r.node = std::move(*node);
  return r;
}

}  // namespace heartbeatd::transport::redis
