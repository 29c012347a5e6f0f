// Durations as people write them in the config and on heartbeatctl's command line: "250ms",
// "30s", "1m30s", "1d". Pure functions, shared by the daemon's config and the client so that
// both read a duration by the same rule.
//
// Thread safety: none needed (pure functions).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace heartbeatd {

using Millis = std::chrono::milliseconds;

// A sum of <digits><unit> terms, unit one of ms, s, m, h, d; or "0". nullopt otherwise.
std::optional<Millis> parse_duration(std::string_view text);
// The shortest exact form: "1m", "1500ms", "0s". parse_duration(format_duration(d)) == d.
std::string format_duration(Millis d);

}  // namespace heartbeatd
