#include "base/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>

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

}  // namespace heartbeatd
