// Prometheus text exposition (format 0.0.4): a writer that renders families and samples, the
// latency histogram the API records into, a plain histogram and the process_* families. Metric and label names are fixed strings in
// the code; label values are escaped here (backslash, quote, newline).
//
// Thread safety: LatencyHistogram::observe() may run on every thread at once (relaxed
// atomics; a scrape may see a count a moment ahead of its sum). MetricsWriter is a plain
// value used by one thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace heartbeatd {

using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

class MetricsWriter {
 public:
  // "# HELP" and "# TYPE" lines; every sample of the family must follow before the next one.
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, Labels labels, double value);
  void sample(std::string_view name, Labels labels, std::uint64_t value);
  void sample(std::string_view name, std::uint64_t value) { sample(name, {}, value); }
  // With one more label after `labels` (a histogram's "le").
  void sample(std::string_view name, Labels labels, std::string_view extra_label,
              std::string_view extra_value, std::uint64_t value);
  // One-sample families.
  void counter(std::string_view name, std::string_view help, std::uint64_t value);
  void gauge(std::string_view name, std::string_view help, double value);

  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void series(std::string_view name, Labels labels, std::string_view extra_name = {},
              std::string_view extra_value = {});
  std::string out_;
};

// Request durations in seconds, in fixed buckets from 100 us to 1 s.
class LatencyHistogram {
 public:
  static constexpr std::array<double, 12> kBounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                     0.01,   0.025,   0.05,   0.1,   0.25,  1.0};
  void observe(std::chrono::nanoseconds d);
  // The _bucket (cumulative, with le="+Inf"), _sum and _count samples of `name`, each with
  // `labels` first.
  void write(MetricsWriter& w, std::string_view name, Labels labels) const;
  std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> buckets_{};  // last: beyond 1 s
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_ns_{0};
};

// A histogram as plain counts, for an owner that already serialises its observations (the
// cluster transport, under its lock): a copyable value, read by copying it out.
class PlainHistogram {
 public:
  // The buckets' upper bounds, ascending; one more bucket (+Inf) holds what is beyond.
  explicit PlainHistogram(std::vector<double> bounds);
  void observe(double value);
  // The _bucket (cumulative, with le="+Inf"), _sum and _count samples of `name`.
  void write(MetricsWriter& w, std::string_view name, Labels labels) const;
  std::uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> buckets_;  // not cumulative; the last is beyond every bound
  std::uint64_t count_ = 0;
  double sum_ = 0;
};

// The process_* families of Prometheus' client libraries, read from /proc/self and
// getrlimit(): resident and virtual memory, CPU time, open and maximum file descriptors,
// start time. A figure that cannot be read (no /proc) is left out, never made up.
void write_process_metrics(MetricsWriter& w);

}  // namespace heartbeatd
