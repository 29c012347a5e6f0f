#include "transport/presence/redis_changes.h"

#include <charconv>

namespace heartbeatd::transport::redis {

namespace {

// Decimal digits only (no sign, no leading zeros but "0"), the whole of `s`, no overflow.
template <typename T>
std::optional<T> decimal(std::string_view s) {
  if (s.empty() || s.size() > 20 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  for (const char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  T v{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

std::optional<std::vector<UserChange>> parse_user_changes(std::string_view message,
                                                          std::size_t max_changes) {
  std::vector<UserChange> out;
  if (message.empty()) return std::nullopt;
  while (!message.empty()) {
    const auto space = message.find(' ');
    const std::string_view token = message.substr(0, space);
    message = space == std::string_view::npos ? std::string_view{} : message.substr(space + 1);
    if (space != std::string_view::npos && message.empty()) return std::nullopt;  // trailing ' '
    if (token.size() < 3 || (token[0] != '+' && token[0] != '-')) return std::nullopt;
    const auto colon = token.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    UserChange c;
    c.online = token[0] == '+';
    const auto id = decimal<std::uint64_t>(token.substr(1, colon - 1));
    if (!id) return std::nullopt;
    c.user = *id;
    const std::string_view ms = token.substr(colon + 1);
    if (!ms.empty()) {
      const auto t = decimal<std::int64_t>(ms);
      if (!t) return std::nullopt;
      c.last_seen_ms = *t;
    } else if (c.online) {
      return std::nullopt;  // an online change always carries its heartbeat's time
    }
    if (out.size() == max_changes) return std::nullopt;
    out.push_back(c);
  }
  return out;
}

}  // namespace heartbeatd::transport::redis
