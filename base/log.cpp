#include "base/log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <string>
#include <utility>

namespace heartbeatd {
std::string_view to_string(LogLevel l) {
  switch (l) {
    case LogLevel::debug:
      return "debug";
    case LogLevel::info:
      return "info";
    case LogLevel::warning:
      return "warning";
    case LogLevel::error:
      return "error";
  }
  return "?";
}
std::string_view to_string(LogFormat f) {
  return f == LogFormat::json ? "json" : "text";
}
}  // namespace heartbeatd

namespace heartbeatd::log {
namespace {

std::atomic<LogLevel> g_level{LogLevel::info};
std::atomic<LogFormat> g_format{LogFormat::text};
std::atomic<bool> g_journal{false};
std::atomic<JournalSink> g_journal_sink{nullptr};
std::mutex g_write_mutex;  // guards stderr so lines never interleave

int syslog_priority(LogLevel l) {
  switch (l) {
    case LogLevel::debug:
      return 7;
    case LogLevel::info:
      return 6;
    case LogLevel::warning:
      return 4;
    case LogLevel::error:
      return 3;
  }
  return 6;
}

bool stderr_is_journal() {
  const char* js = std::getenv("JOURNAL_STREAM");
  if (!js) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(js, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (fstat(STDERR_FILENO, &st) != 0) return false;
  return st.st_dev == dev && st.st_ino == ino;
}

bool reserved_json_key(std::string_view k) {
  return k.empty() || k == "ts" || k == "level" || k == "msg";
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 if there is none (RFC 3629:
// no overlong forms, no surrogates, nothing beyond U+10FFFF).
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const auto cont = [&](std::size_t k) { return i + k < s.size() && (b(k) & 0xC0) == 0x80; };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;  // overlong
    if (c == 0xED && b(1) > 0x9F) return 0;  // UTF-16 surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;  // overlong
    if (c == 0xF4 && b(1) > 0x8F) return 0;  // beyond U+10FFFF
    return 4;
  }
  return 0;  // a continuation byte on its own, C0, C1, F5..FF
}

}  // namespace

void init() {
  g_journal = stderr_is_journal();
}

void set_level(LogLevel level) {
  g_level = level;
}

void set_format(LogFormat format) {
  g_format = format;
}

void set_journal_sink(JournalSink sink) {
  g_journal_sink = sink;
}

bool enabled(LogLevel level) {
  return level >= g_level.load(std::memory_order_relaxed);
}

std::string timestamp(std::chrono::system_clock::time_point t) {
  // floor, not duration_cast: before 1970 the second is the one below.
  const auto whole = std::chrono::floor<std::chrono::seconds>(t);
  const std::time_t secs = static_cast<std::time_t>(whole.time_since_epoch().count());
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - whole).count();
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", stamp, ms);
}

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        ++i;
        continue;
      case '\\':
        out += "\\\\";
        ++i;
        continue;
      case '\n':
        out += "\\n";
        ++i;
        continue;
      case '\r':
        out += "\\r";
        ++i;
        continue;
      case '\t':
        out += "\\t";
        ++i;
        continue;
      case '\b':
        out += "\\b";
        ++i;
        continue;
      case '\f':
        out += "\\f";
        ++i;
        continue;
      default:
        break;
    }
    if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\u{:04x}", c);
      ++i;
      continue;
    }
    const std::size_t n = utf8_sequence(s, i);
    if (n == 0) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    out.append(s.substr(i, n));
    i += n;
  }
  out.push_back('"');
}

std::string json_line(std::string_view ts, LogLevel level, std::string_view message,
                      std::span<const Field> fields) {
  std::string line;
  line.reserve(64 + message.size());
  line += "{\"ts\":";
  append_json_string(line, ts);
  line += ",\"level\":";
  append_json_string(line, to_string(level));
  line += ",\"msg\":";
  append_json_string(line, message);
  for (const auto& f : fields) {
    if (reserved_json_key(f.key)) continue;
    line.push_back(',');
    append_json_string(line, f.key);
    line.push_back(':');
    if (f.number) {
      line += f.value;  // std::to_string of an integer: digits and a sign, valid JSON
    } else {
      append_json_string(line, f.value);
    }
  }
  line += "}\n";
  return line;
}

std::vector<std::string> journal_fields(LogLevel level, std::string_view message,
                                        std::span<const Field> fields) {
  std::vector<std::string> out;
  out.reserve(3 + fields.size());
  out.push_back("MESSAGE=" + std::string(message));
  out.push_back(fmt::format("PRIORITY={}", syslog_priority(level)));
  out.push_back("SYSLOG_IDENTIFIER=heartbeatd");
  for (const auto& f : fields) {
    std::string name;
    name.reserve(f.key.size());
    for (const char ch : f.key) {
      const char up = (ch >= 'a' && ch <= 'z') ? static_cast<char>(ch - 'a' + 'A') : ch;
      name.push_back((up >= 'A' && up <= 'Z') || (up >= '0' && up <= '9') ? up : '_');
    }
    // journald drops names it does not accept and gives '_' names to itself only.
    if (name.empty() || name.size() > 64 || name[0] == '_' || (name[0] >= '0' && name[0] <= '9')) {
      continue;
    }
    if (name == "MESSAGE" || name == "PRIORITY" || name == "SYSLOG_IDENTIFIER") continue;
    out.push_back(name + "=" + f.value);
  }
  return out;
}

void write(LogLevel level, std::string_view message, std::span<const Field> fields) {
  std::string line;
  if (g_journal) {
    // No sink (the daemon sets none when journald's socket is missing) or a failing one:
    // journald still reads stderr, so the "<N>" prefix keeps the priority.
    if (const JournalSink sink = g_journal_sink.load()) {
      if (sink(journal_fields(level, message, fields))) return;
    }
    line = fmt::format("<{}>{}\n", syslog_priority(level), message);
  } else if (g_format.load(std::memory_order_relaxed) == LogFormat::json) {
    line = json_line(timestamp(std::chrono::system_clock::now()), level, message, fields);
  } else {
    line = fmt::format("{} {}: {}\n", timestamp(std::chrono::system_clock::now()), to_string(level),
                       message);
  }
  std::lock_guard lock(g_write_mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace heartbeatd::log
