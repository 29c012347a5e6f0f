// Log: one line per event on stderr, formatted with fmt. When stderr is the systemd journal
// ($JOURNAL_STREAM names our stderr) each line starts with the syslog priority in journald's
// "<N>" form and carries no timestamp (journald adds one); otherwise lines read
// "2026-11-28T22:00:00.123Z info: message".
//
// Thread safety: every function may be called from any thread; lines never interleave.
#pragma once

#include <fmt/format.h>

#include <string_view>

namespace heartbeatd {
enum class LogLevel { debug, info, warning, error };
std::string_view to_string(LogLevel l);
}  // namespace heartbeatd

namespace heartbeatd::log {

void init();  // detects the journal; call once before threads start
void set_level(LogLevel level);
bool enabled(LogLevel level);
void write(LogLevel level, std::string_view message);

template <class... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(LogLevel::debug)) write(LogLevel::debug, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(LogLevel::info)) write(LogLevel::info, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void warning(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(LogLevel::warning)) {
    write(LogLevel::warning, fmt::format(f, std::forward<Args>(args)...));
  }
}
template <class... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
  write(LogLevel::error, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace heartbeatd::log
