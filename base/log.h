// Log: one line per event on stderr, formatted with fmt, in one of two formats (log.format):
//   text  "2026-11-28T22:00:00.123Z info: message"
//   json  {"ts":"2026-11-28T22:00:00.123Z","level":"info","msg":"message","member":"db-3",...}
//         one object per line; the keys after msg are the line's fields (below).
// When stderr is the systemd journal ($JOURNAL_STREAM names our stderr, as systemd documents)
// and a journal sink is set (the daemon sets one that calls sd_journal_sendv, when journald's
// socket exists), each line goes to the journal instead, as MESSAGE=, PRIORITY=,
// SYSLOG_IDENTIFIER=heartbeatd and one upper-case field per field (MEMBER=db-3, STATE=dead),
// whatever log.format says. Without a sink, or if it fails, the line goes to stderr with
// journald's "<N>" priority prefix and no timestamp (journald adds one).
//
// Fields: a call may carry (key, value) pairs that a machine can read without parsing the
// message: log::info({{"member", name}, {"state", "dead"}}, "member {} is {}", name, "dead").
// The message still says everything (the text format shows only it); keys are lower-case
// snake_case names from the list in README.md ("Logs"), and never ts, level or msg.
//
// Thread safety: every function may be called from any thread; lines never interleave (each
// is written whole, with one write, under one lock).
#pragma once

#include <fmt/format.h>

#include <chrono>
#include <concepts>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace heartbeatd {
enum class LogLevel { debug, info, warning, error };
std::string_view to_string(LogLevel l);
enum class LogFormat { text, json };
std::string_view to_string(LogFormat f);
}  // namespace heartbeatd

namespace heartbeatd::log {

// One structured field of a log line. Integers are JSON numbers; everything else a string.
struct Field {
  Field(std::string_view k, std::string v) : key(k), value(std::move(v)) {}
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(v) {}
  template <std::integral I>
    requires(!std::same_as<I, bool>)
  Field(std::string_view k, I n) : key(k), value(std::to_string(n)), number(true) {}

  std::string_view key;  // a string literal: it outlives the line
  std::string value;
  bool number = false;
};
using Fields = std::vector<Field>;

void init();  // detects the journal; call once before threads start
void set_level(LogLevel level);
void set_format(LogFormat format);
bool enabled(LogLevel level);
void write(LogLevel level, std::string_view message, std::span<const Field> fields = {});

// Under the journal, lines go to this function (given the "KEY=value" strings of
// journal_fields()); it returns false if the journal did not take them. base/ does not link
// libsystemd: the daemon passes one that calls sd_journal_sendv.
using JournalSink = bool (*)(std::span<const std::string> fields);
void set_journal_sink(JournalSink sink);

// The pure parts, for tests.
// "2026-11-28T22:00:00.123Z" (UTC, milliseconds).
std::string timestamp(std::chrono::system_clock::time_point t);
// Appends `s` as a JSON string with its quotes. Escaped: '"', '\\', every control character
// (\n, \r, \t, \b, \f, others \u00XX) and DEL (\u007f). Valid UTF-8 is kept as it is; each
// byte that does not belong to a valid UTF-8 sequence (a stray continuation byte, a truncated
// or overlong sequence, a surrogate, beyond U+10FFFF) becomes \ufffd, so that the line is
// always valid JSON and never claims the byte was some other character.
void append_json_string(std::string& out, std::string_view s);
// The whole json-format line, '\n' included. Fields whose key is ts, level or msg are left
// out (the line's own keys win); so are fields with an empty key.
std::string json_line(std::string_view ts, LogLevel level, std::string_view message,
                      std::span<const Field> fields);
// What goes to sd_journal_sendv: MESSAGE=, PRIORITY= (syslog's: debug 7, info 6, warning 4,
// error 3), SYSLOG_IDENTIFIER=heartbeatd, then each field as KEY=value, KEY being the key in
// upper case with any character but A-Z, 0-9 and '_' turned into '_'. Fields whose name would
// be one of those three, start with '_' or a digit (journald reserves or rejects them), or be
// longer than 64 characters are left out.
std::vector<std::string> journal_fields(LogLevel level, std::string_view message,
                                        std::span<const Field> fields);

template <class... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(LogLevel::debug)) write(LogLevel::debug, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void debug(const Fields& fields, fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(LogLevel::debug)) {
    write(LogLevel::debug, fmt::format(f, std::forward<Args>(args)...), fields);
  }
}
template <class... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(LogLevel::info)) write(LogLevel::info, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void info(const Fields& fields, fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(LogLevel::info)) {
    write(LogLevel::info, fmt::format(f, std::forward<Args>(args)...), fields);
  }
}
template <class... Args>
void warning(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(LogLevel::warning)) {
    write(LogLevel::warning, fmt::format(f, std::forward<Args>(args)...));
  }
}
template <class... Args>
void warning(const Fields& fields, fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(LogLevel::warning)) {
    write(LogLevel::warning, fmt::format(f, std::forward<Args>(args)...), fields);
  }
}
template <class... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
  write(LogLevel::error, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void error(const Fields& fields, fmt::format_string<Args...> f, Args&&... args) {
  write(LogLevel::error, fmt::format(f, std::forward<Args>(args)...), fields);
}

}  // namespace heartbeatd::log
