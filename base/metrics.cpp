#include "base/metrics.h"

#include <fmt/format.h>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <system_error>

namespace heartbeatd {
namespace {

void append_escaped(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

std::string format_value(double v) {
  if (v == static_cast<double>(static_cast<std::int64_t>(v)) && v > -1e15 && v < 1e15) {
    return fmt::format("{}", static_cast<std::int64_t>(v));
  }
  return fmt::format("{}", v);
}

}  // namespace

void MetricsWriter::family(std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void MetricsWriter::series(std::string_view name, Labels labels, std::string_view extra_name,
                           std::string_view extra_value) {
  out_.append(name);
  if (labels.size() == 0 && extra_name.empty()) return;
  out_ += '{';
  bool first = true;
  auto label = [&](std::string_view k, std::string_view v) {
    if (!first) out_ += ',';
    first = false;
    out_.append(k).append("=\"");
    append_escaped(out_, v);
    out_ += '"';
  };
  for (const auto& [k, v] : labels) label(k, v);
  if (!extra_name.empty()) label(extra_name, extra_value);
  out_ += '}';
}

void MetricsWriter::sample(std::string_view name, Labels labels, double value) {
  series(name, labels);
  out_ += ' ';
  out_ += format_value(value);
  out_ += '\n';
}

void MetricsWriter::sample(std::string_view name, Labels labels, std::uint64_t value) {
  series(name, labels);
  fmt::format_to(std::back_inserter(out_), " {}\n", value);
}

void MetricsWriter::sample(std::string_view name, Labels labels, std::string_view extra_label,
                           std::string_view extra_value, std::uint64_t value) {
  series(name, labels, extra_label, extra_value);
  fmt::format_to(std::back_inserter(out_), " {}\n", value);
}

void MetricsWriter::counter(std::string_view name, std::string_view help, std::uint64_t value) {
  family(name, "counter", help);
  sample(name, value);
}

void MetricsWriter::gauge(std::string_view name, std::string_view help, double value) {
  family(name, "gauge", help);
  sample(name, {}, value);
}

void LatencyHistogram::observe(std::chrono::nanoseconds d) {
  const double s = std::chrono::duration<double>(d).count();
  const auto i = static_cast<std::size_t>(
      std::lower_bound(kBounds.begin(), kBounds.end(), s) - kBounds.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<std::uint64_t>(std::max<std::int64_t>(d.count(), 0)),
                    std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

void LatencyHistogram::write(MetricsWriter& w, std::string_view name, Labels labels) const {
  // Each bucket is read once, so the cumulative counts, +Inf and _count agree with each other
  // even while requests are being observed.
  const std::string bucket = std::string(name) + "_bucket";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= kBounds.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    const std::string le = i < kBounds.size() ? fmt::format("{}", kBounds[i]) : "+Inf";
    w.sample(bucket, labels, "le", le, cumulative);
  }
  w.sample(std::string(name) + "_sum", labels,
           static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9);
  w.sample(std::string(name) + "_count", labels, cumulative);
}

PlainHistogram::PlainHistogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(bounds_.size() + 1, 0) {}

void PlainHistogram::observe(double value) {
  const auto i = static_cast<std::size_t>(
      std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  ++buckets_[i];
  ++count_;
  sum_ += value;
}

void PlainHistogram::write(MetricsWriter& w, std::string_view name, Labels labels) const {
  const std::string bucket = std::string(name) + "_bucket";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    cumulative += buckets_[i];
    const std::string le = i < bounds_.size() ? fmt::format("{}", bounds_[i]) : "+Inf";
    w.sample(bucket, labels, "le", le, cumulative);
  }
  w.sample(std::string(name) + "_sum", labels, sum_);
  w.sample(std::string(name) + "_count", labels, count_);
}

namespace {

// The fields of /proc/self/stat after the command name (which may hold spaces and
// parentheses, so it is skipped up to the last ')'): index 0 is field 3, the state.
std::vector<std::string> stat_fields() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  if (!std::getline(in, line)) return {};
  const auto close = line.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream rest(line.substr(close + 1));
  std::vector<std::string> fields;
  for (std::string f; rest >> f;) fields.push_back(f);
  return fields;
}

// Seconds since the epoch at which the system booted ("btime" in /proc/stat), or 0.
double boot_time() {
  std::ifstream in("/proc/stat");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("btime ", 0) == 0) return std::strtod(line.c_str() + 6, nullptr);
  }
  return 0;
}

}  // namespace

void write_process_metrics(MetricsWriter& w) {
  const auto f = stat_fields();
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  // Field n of stat(5) is f[n - 3]: utime 14, stime 15, starttime 22, vsize 23, rss 24.
  if (f.size() >= 22 && ticks > 0) {
    const double utime = std::strtod(f[11].c_str(), nullptr);
    const double stime = std::strtod(f[12].c_str(), nullptr);
    w.family("process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.");
    w.sample("process_cpu_seconds_total", {}, (utime + stime) / ticks);
    w.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.",
            std::strtod(f[20].c_str(), nullptr));
    w.gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
            std::strtod(f[21].c_str(), nullptr) * page);
    if (const double boot = boot_time(); boot > 0) {
      w.gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
              boot + std::strtod(f[19].c_str(), nullptr) / ticks);
    }
  }
  std::error_code ec;
  std::size_t fds = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++fds;
  }
  if (!ec) {
    // The count includes the descriptor the listing itself held open.
    w.gauge("process_open_fds", "Number of open file descriptors.", static_cast<double>(fds));
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    w.gauge("process_max_fds", "Maximum number of open file descriptors.",
            static_cast<double>(limit.rlim_cur));
  }
}

}  // namespace heartbeatd
