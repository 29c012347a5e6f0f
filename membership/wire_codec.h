// WireCodec: the membership protocol's messages and their binary encoding (docs/PROTOCOL.md,
// "Wire format"). Pure functions: bytes in, a message or an error out; no I/O, no clock.
// This is the message body only; the envelope around it (magic, version, cluster tag,
// optional AEAD sealing) is transport/cluster/datagram_seal.h.
//
// Every encoded message fits kMaxBodyBytes, so a sealed datagram fits 1400 bytes. Integers
// are big-endian or LEB128 varints; strings are length-prefixed. The decoder rejects
// anything it does not fully understand (unknown type or state, bad name, bad address,
// truncation, trailing bytes), so a malformed datagram can never change state.
//
// Thread safety: free functions on values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "membership/address.h"
#include "membership/member.h"

namespace heartbeatd::membership {

// Largest encoded body. 1400-byte datagrams minus the sealed envelope (8-byte header,
// 24-byte nonce, 16-byte tag).
inline constexpr std::size_t kMaxBodyBytes = 1352;

// WARNING: ONLY APPEND TO THIS LIST. The numeric values are part of the wire format. (So are
// MemberState's, in membership/member.h.)
enum class MessageType : std::uint8_t {
  heartbeat = 1,   // sender -> its monitors, every interval
  ping = 2,        // direct probe; answered by ack
  ack = 3,         // answer to ping (or forwarded by a ping_req helper)
  ping_req = 4,    // "please ping target for me" (indirect probe)
  nack = 5,        // helper could not reach the target within its probe timeout
  gossip = 6,      // carries updates only
  sync = 7,        // anti-entropy / join: digest and a page of the sender's view
  sync_reply = 8,  // answer to sync
  refuse = 9,      // to a sender: "your name is held by a live member at another address"
};

std::string_view to_string(MessageType t);

// Who sent a message: every message carries its sender's own view of itself.
struct NodeRef {
  std::string name;
  Address address;
  std::uint64_t incarnation = 0;
  bool operator==(const NodeRef&) const = default;
};

// One struct for every type; fields unused by a type are left at their defaults and are
// not encoded (decode leaves them at defaults too, so round trips compare equal).
struct Message {
  MessageType type = MessageType::heartbeat;
  NodeRef sender;
  // Freshness (docs/PROTOCOL.md, "Freshness"): every message names the sender's life and
  // its place in it, and the receiver it was meant for, so a copy is worth nothing.
  std::uint64_t boot = 0;     // the sender's boot epoch: larger for every later start
  std::uint64_t counter = 0;  // the sender's datagram counter in this boot, from 1
  std::uint32_t to = 0;       // receiver_tag() of the intended receiver; 0: not known yet
  std::uint32_t cluster = 0;  // the sender's cluster id; 0: the sender is alone (joining)
  // Address validation (docs/PROTOCOL.md, "Amplification"): a cookie the sender gives the
  // receiver's address, and the cookie the receiver last gave the sender's. 0: none.
  std::uint64_t cookie = 0;
  std::uint64_t echo = 0;
  std::uint32_t seq = 0;        // ping, ack, ping_req, nack
  std::string target;           // ping (expected receiver name), ping_req
  Address target_address;       // ping_req
  std::uint64_t digest = 0;     // sync, sync_reply
  std::uint8_t flags = 0;       // sync, sync_reply: kSyncJoin, kSyncMore
  std::uint16_t padding = 0;    // sync, sync_reply: zero bytes (a join is padded, see above)
  std::vector<Update> updates;  // every type: piggybacked news, at most 255
  bool operator==(const Message&) const = default;
};

inline constexpr std::uint8_t kSyncJoin = 1;  // sync: the sender is joining, send everything
inline constexpr std::uint8_t kSyncMore = 2;  // sync_reply: more pages follow
// sync_reply: echo my cookie (send again) before I send more: your address is not verified
inline constexpr std::uint8_t kSyncProve = 4;

struct DecodeError {
  std::string message;  // what was wrong and where, e.g. "update 3: unknown state 7"
};

// The `to` tag of a message meant for the member called `name` (never 0).
std::uint32_t receiver_tag(std::string_view name);

// Encoded size of a message with no updates, and what one update adds; lets the sender
// fill a datagram greedily without encoding twice.
std::size_t encoded_size_without_updates(const Message& m);
std::size_t encoded_size(const Update& u);

// Precondition: names valid, at most 255 updates, total size <= kMaxBodyBytes (checked;
// violating it throws std::invalid_argument — a bug in the sender, never remote input).
std::vector<std::uint8_t> encode(const Message& m);
std::variant<Message, DecodeError> decode(std::span<const std::uint8_t> body);
// The sender's name of a body decode() accepted, read in place (what a transport needs to
// attribute a datagram without decoding it twice); nullopt if the bytes are too short.
std::optional<std::string_view> peek_sender_name(std::span<const std::uint8_t> body);

}  // namespace heartbeatd::membership
