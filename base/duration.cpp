#include "base/duration.h"

#include <cctype>
#include <charconv>
#include <cstdint>

#include <fmt/format.h>

#include "base/parse_int.h"

namespace heartbeatd {
namespace {

}  // namespace

std::optional<Millis> parse_duration(std::string_view s) {
  if (s == "0") return Millis(0);
  if (s.empty()) return std::nullopt;
  Millis total(0);
  while (!s.empty()) {
    std::size_t digits = 0;
    while (digits < s.size() && std::isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
    if (digits == 0 || digits > 12) return std::nullopt;
    const auto n = parse_int<std::int64_t>(s.substr(0, digits));
    s.remove_prefix(digits);
    std::int64_t unit_ms;
    if (s.starts_with("ms")) {
      unit_ms = 1, s.remove_prefix(2);
    } else if (s.starts_with("s")) {
      unit_ms = 1000, s.remove_prefix(1);
    } else if (s.starts_with("m")) {
      unit_ms = 60'000, s.remove_prefix(1);
    } else if (s.starts_with("h")) {
      unit_ms = 3'600'000, s.remove_prefix(1);
    } else if (s.starts_with("d")) {
      unit_ms = 86'400'000, s.remove_prefix(1);
    } else {
      return std::nullopt;
    }
    total += Millis(*n * unit_ms);
  }
  return total;
}

std::string format_duration(Millis d) {
  const auto ms = d.count();
  if (ms == 0) return "0s";
  if (ms % 86'400'000 == 0) return fmt::format("{}d", ms / 86'400'000);
  if (ms % 3'600'000 == 0) return fmt::format("{}h", ms / 3'600'000);
  if (ms % 60'000 == 0) return fmt::format("{}m", ms / 60'000);
  if (ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{}ms", ms);
}

}  // namespace heartbeatd
