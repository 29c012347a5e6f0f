// MemberQuery: what `GET /v1/members?state=...&name=...&limit=...&cursor=...` asks for
// (docs/API.md, "Filters and paging"), parsed from the query string and applied to the
// member list. Pure functions on values, so every rule and every 400 is unit-tested without a
// cluster.
//
// A member matches when every given filter matches it (AND across filters and across `tag`s;
// OR within the states). `tag=key:value` asks for a tag with exactly that value (percent-
// decoded; the value may be empty), `tag=key` for the key with any value.
//
// Paging is by name: the list is sorted by name and a cursor is the last name a page held, so
// the next page starts strictly after it whatever joined or left in between (no member is
// skipped or repeated because of another's arrival or departure).
//
// Thread safety: value types and free functions on values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "membership/member.h"
#include "membership/protocol.h"

namespace heartbeatd::transport {

// The largest `limit` a page may ask for.
inline constexpr std::size_t kMaxMemberPage = 10000;

struct MemberQuery {
  std::uint8_t states = 0;  // bit (1 << MemberState) per wanted state; 0: every state
  std::string name_glob;    // membership::name_matches; empty: every name
  // Every one required: a key, and the value it must have (nullopt: any value).
  std::vector<std::pair<std::string, std::optional<std::string>>> tags;
  std::optional<std::size_t> limit;  // unset: the whole list in one answer
  std::string after;                 // from `cursor`: only names strictly after this one

  // Whether the filters (not the paging) select `m`.
  bool matches(const membership::MemberInfo& m) const;
};

// The query string of GET /v1/members (after '?', still percent-encoded), or the message of
// the 400: an unknown parameter, a state that is not alive|suspect|dead|left, a bad name
// pattern, a limit outside 1..kMaxMemberPage, a cursor this API did not make, a tag whose key
// or value breaks membership/member.h's rule.
std::variant<MemberQuery, std::string> parse_member_query(std::string_view query);

// The cursor that resumes after `last_name` (base64url, no padding), and back; nullopt when
// `cursor` does not decode to a member name.
std::string encode_member_cursor(std::string_view last_name);
std::optional<std::string> decode_member_cursor(std::string_view cursor);

}  // namespace heartbeatd::transport
