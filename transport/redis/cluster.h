// Redis Cluster routing, as pure functions (no I/O), for the presence backend (issue #7):
// the key slot (CRC16-CCITT/XMODEM of the key, or of its {hash tag}, mod 16384), the slot
// map read from CLUSTER SLOTS, and the MOVED/ASK redirections a node answers with.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "transport/redis/client.h"

namespace heartbeatd::transport::redis {

inline constexpr std::uint16_t kSlots = 16384;

std::uint16_t crc16(std::string_view data);
// The slot of a key: only the part inside the first {...} counts when it is non-empty, so
// keys sharing a tag share a slot (and a node).
std::uint16_t key_slot(std::string_view key);

struct NodeAddress {
  std::string host;
  std::uint16_t port = 0;
  bool operator==(const NodeAddress&) const = default;
  std::string to_string() const;
};

// Which master serves each slot. Built from a CLUSTER SLOTS reply.
class SlotMap {
 public:
  // nullopt with `why` when the reply is not a CLUSTER SLOTS answer. Slots no range covers
  // stay unassigned (a cluster being resharded or broken).
  static std::optional<SlotMap> from_cluster_slots(const Value& reply, std::string* why);
  // A map where one node serves every slot (standalone Redis).
  static SlotMap single(NodeAddress node);

  const NodeAddress* node_for(std::uint16_t slot) const;
  const std::vector<NodeAddress>& masters() const { return masters_; }
  // A MOVED redirection: from now on `slot` is served by `node`.
  void move(std::uint16_t slot, const NodeAddress& node);

 private:
  std::vector<NodeAddress> masters_;
  std::array<std::int16_t, kSlots> owner_{};  // index into masters_, -1: unassigned
};

struct Redirect {
  bool ask = false;  // ASK: this command only (after ASKING); MOVED: the slot moved
  std::uint16_t slot = 0;
  NodeAddress node;
};
// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381" -> the redirection; nullopt for
// any other error.
std::optional<Redirect> parse_redirect(std::string_view error);

}  // namespace heartbeatd::transport::redis
