// Member vocabulary: what a member is called, the states it can be in, and the one piece of
// news the protocol spreads about it (docs/PROTOCOL.md, "Members, states and incarnations").
// Everything that only needs to name a member or its state (the daemon's hooks and metrics,
// the HTTP routes, the event stream, the CLI) includes this, not the wire codec.
//
// Thread safety: value types and free functions on values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "membership/address.h"

namespace heartbeatd::membership {

// Node names: 1..128 bytes of [A-Za-z0-9._-] (the same rule as node.name in the config).
inline constexpr std::size_t kMaxNameBytes = 128;

bool valid_name(std::string_view name);

// Name patterns (GET /v1/members?name=, heartbeatctl members --name): the name characters plus
// the wildcards '*' (any run, also none) and '?' (exactly one character), 1 to
// kMaxNamePatternBytes bytes (a name's length plus as many wildcards). No brackets or escapes:
// names hold neither.
inline constexpr std::size_t kMaxNamePatternBytes = 2 * kMaxNameBytes;
bool valid_name_pattern(std::string_view pattern);
// Whether the whole of `name` matches `pattern`.
bool name_matches(std::string_view pattern, std::string_view name);

// Member tags (node.tags in the config): labels a member announces about itself, such as
// {role: db, zone: b}, gossiped with its alive news and shown in every member view. A key is
// 1..kMaxTagKeyBytes bytes of the name characters ([A-Za-z0-9._-]), a value 0..
// kMaxTagValueBytes bytes of printable ASCII (space to '~'), at most kMaxTags of them, and
// their encoding (membership/wire_codec.h) at most kMaxTagsBytes, so that a member with its
// tags still fits any datagram with room to spare for the message around it. Sorted by key,
// so every set has one encoding and two equal sets compare equal.
using Tags = std::map<std::string, std::string, std::less<>>;
inline constexpr std::size_t kMaxTags = 16;
inline constexpr std::size_t kMaxTagKeyBytes = 64;
inline constexpr std::size_t kMaxTagValueBytes = 128;
inline constexpr std::size_t kMaxTagsBytes = 512;

bool valid_tag_key(std::string_view key);
bool valid_tag_value(std::string_view value);
// Encoded size of a tag set on the wire: a count byte, then each key and value with a length
// byte (0 for the empty set, which is not encoded at all).
std::size_t tags_wire_size(const Tags& tags);
// What is wrong with `tags` ("tag \"x y\": a key is 1 to 64 letters, ..."), or nullopt if
// nothing is. The config, the codec's encoder and the API filters share this rule.
std::optional<std::string> tags_problem(const Tags& tags);

// WARNING: ONLY APPEND TO THIS LIST. The numeric values are part of the wire format
// (membership/wire_codec.h) and of the persisted membership (persist/format.h).
enum class MemberState : std::uint8_t { alive = 0, suspect = 1, dead = 2, left = 3 };

std::string_view to_string(MemberState s);

// One piece of membership news: "member `name` at `address` is `state` at `incarnation`".
// For suspect and dead, `from` names the accuser (used to count independent suspicions);
// it is empty for alive and left. For alive, `tags` are the member's tags as it announced them
// at incarnation `tags_at` (at most `incarnation`: a member relaying another's raised
// incarnation passes on the tags it knows); tags_at unset says nothing of tags (the news of a
// member that never had any, and every other state).
struct Update {
  Update() = default;
  // Every kind of news but alive-with-tags names these, in this order.
  Update(MemberState state, std::string name, Address address, std::uint64_t incarnation,
         std::string from = {}, Tags tags = {}, std::optional<std::uint64_t> tags_at = {})
      : state(state),
        name(std::move(name)),
        address(address),
        incarnation(incarnation),
        from(std::move(from)),
        tags(std::move(tags)),
        tags_at(tags_at) {}
  MemberState state = MemberState::alive;
  std::string name;
  Address address;
  std::uint64_t incarnation = 0;
  std::string from;
  Tags tags;
  std::optional<std::uint64_t> tags_at;
  // Left only (force-leave with prune, docs/PROTOCOL.md "Force-leave"): every receiver
  // forgets the member at once instead of keeping it as left until reap_after.
  bool forget = false;
  bool operator==(const Update&) const = default;
};

}  // namespace heartbeatd::membership
