// parse_int: exactly the whole of a text as a decimal integer of type Int (no sign for
// unsigned types, no spaces, no trailing characters), or nullopt. The one integer rule of
// the config, durations and addresses.
//
// Thread safety: a pure function.
#pragma once

#include <charconv>
#include <optional>
#include <string_view>
#include <system_error>

namespace heartbeatd {

template <class Int>
std::optional<Int> parse_int(std::string_view s) {
  Int v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace heartbeatd
