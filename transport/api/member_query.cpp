#include "transport/api/member_query.h"

#include <charconv>
#include <vector>

#include <fmt/format.h>

#include "transport/api/query.h"

namespace heartbeatd::transport {
namespace {

constexpr std::string_view kBase64Url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::optional<membership::MemberState> state_named(std::string_view s) {
  using membership::MemberState;
  for (auto st : {MemberState::alive, MemberState::suspect, MemberState::dead, MemberState::left}) {
    if (membership::to_string(st) == s) return st;
  }
  return std::nullopt;
}

std::uint8_t state_bit(membership::MemberState s) {
  return static_cast<std::uint8_t>(1u << static_cast<unsigned>(s));
}

}  // namespace

bool MemberQuery::matches(const membership::MemberInfo& m) const {
  if (states != 0 && (states & state_bit(m.state)) == 0) return false;
  if (!name_glob.empty() && !membership::name_matches(name_glob, m.name)) return false;
  for (const auto& [key, value] : tags) {
    const auto it = m.tags.find(key);
    if (it == m.tags.end() || (value && it->second != *value)) return false;
  }
  return true;
}

std::string encode_member_cursor(std::string_view last_name) {
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : last_name) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kBase64Url[(acc >> bits) & 0x3f];
    }
  }
  if (bits > 0) out += kBase64Url[(acc << (6 - bits)) & 0x3f];
  return out;
}

std::optional<std::string> decode_member_cursor(std::string_view cursor) {
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : cursor) {
    const auto v = kBase64Url.find(c);
    if (v == std::string_view::npos) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  // Leftover bits must be the zero padding encode_member_cursor writes: one spelling per name.
  if (bits >= 6 || (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  if (!membership::valid_name(out)) return std::nullopt;
  return out;
}

std::variant<MemberQuery, std::string> parse_member_query(std::string_view query) {
  auto parsed = parse_query(query, {"state", "name", "limit", "cursor", "tag"}, {"state", "tag"});
  if (auto* why = std::get_if<std::string>(&parsed)) return std::move(*why);
  MemberQuery q;
  for (const auto& p : std::get<std::vector<QueryParam>>(parsed)) {
    if (p.key == "state") {
      // state=alive,suspect and state=alive&state=suspect are the same question.
      for (auto s : split(p.value, ',')) {
        const auto st = state_named(s);
        if (!st) {
          return fmt::format("state: unknown state \"{}\" (expected alive, suspect, dead or left)",
                             s);
        }
        q.states |= state_bit(*st);
      }
      if (p.value.empty())
        return std::string("state: empty (expected alive, suspect, dead or left)");
    } else if (p.key == "name") {
      if (!membership::valid_name_pattern(p.value)) {
        return fmt::format(
            "name: bad pattern \"{}\" (expected 1 to {} letters, digits, '.', '-', '_' and the "
            "wildcards '*' and '?')",
            p.value, membership::kMaxNamePatternBytes);
      }
      q.name_glob = p.value;
    } else if (p.key == "limit") {
      std::size_t n = 0;
      const auto* end = p.value.data() + p.value.size();
      const auto r = std::from_chars(p.value.data(), end, n);
      if (p.value.empty() || r.ec != std::errc() || r.ptr != end || n < 1 || n > kMaxMemberPage) {
        return fmt::format("limit: expected an integer from 1 to {}, got \"{}\"", kMaxMemberPage,
                           p.value);
      }
      q.limit = n;
    } else if (p.key == "cursor") {
      auto after = decode_member_cursor(p.value);
      if (!after) {
        return fmt::format(
            "cursor: \"{}\" is not a cursor of this API (pass next_cursor back unchanged)",
            p.value);
      }
      q.after = std::move(*after);
    } else if (p.key == "tag") {
      const auto colon = p.value.find(':');
      const std::string key = p.value.substr(0, colon);
      if (!membership::valid_tag_key(key)) {
        return fmt::format(
            "tag: bad key \"{}\" (expected key:value or key, the key 1 to {} letters, digits, "
            "'.', '-' or '_')",
            key, membership::kMaxTagKeyBytes);
      }
      std::optional<std::string> value;
      if (colon != std::string::npos) {
        value = p.value.substr(colon + 1);
        if (!membership::valid_tag_value(*value)) {
          return fmt::format("tag: bad value for {} (at most {} printable ASCII characters)", key,
                             membership::kMaxTagValueBytes);
        }
      }
      q.tags.emplace_back(key, std::move(value));
    }
  }
  return q;
}

}  // namespace heartbeatd::transport
