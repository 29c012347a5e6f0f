// Member vocabulary: what a member is called, the states it can be in, and the one piece of
// news the protocol spreads about it (docs/PROTOCOL.md, "Members, states and incarnations").
// Everything that only needs to name a member or its state (the daemon's hooks and metrics,
// the HTTP routes, the event stream, the CLI) includes this, not the wire codec.
//
// Thread safety: value types and free functions on values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

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

// WARNING: ONLY APPEND TO THIS LIST. The numeric values are part of the wire format
// (membership/wire_codec.h) and of the persisted membership (persist/format.h).
enum class MemberState : std::uint8_t { alive = 0, suspect = 1, dead = 2, left = 3 };

std::string_view to_string(MemberState s);

// One piece of membership news: "member `name` at `address` is `state` at `incarnation`".
// For suspect and dead, `from` names the accuser (used to count independent suspicions);
// it is empty for alive and left.
struct Update {
  MemberState state = MemberState::alive;
  std::string name;
  Address address;
  std::uint64_t incarnation = 0;
  std::string from;
  // Left only (force-leave with prune, docs/PROTOCOL.md "Force-leave"): every receiver
  // forgets the member at once instead of keeping it as left until reap_after.
  bool forget = false;
  bool operator==(const Update&) const = default;
};

}  // namespace heartbeatd::membership
