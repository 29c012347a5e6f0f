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
}  // namespace heartbeatd

namespace heartbeatd::log {
namespace {

std::atomic<LogLevel> g_level{LogLevel::info};
std::atomic<bool> g_journal{false};
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

}  // namespace

void init() {
  g_journal = stderr_is_journal();
}

void set_level(LogLevel level) {
  g_level = level;
}

bool enabled(LogLevel level) {
  return level >= g_level.load(std::memory_order_relaxed);
}

void write(LogLevel level, std::string_view message) {
  std::string line;
  if (g_journal) {
    line = fmt::format("<{}>{}\n", syslog_priority(level), message);
  } else {
    const auto now = std::chrono::system_clock::now();
    const std::time_t secs = std::chrono::system_clock::to_time_t(now);
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
        1000;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    line = fmt::format("{}.{:03}Z {}: {}\n", stamp, ms, to_string(level), message);
  }
  std::lock_guard lock(g_write_mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace heartbeatd::log
