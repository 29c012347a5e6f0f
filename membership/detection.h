// The detection model shared by machines and users (DESIGN.md, "One detection model, two
// kinds of subject"). A subject has an ArrivalHistory (last-seen time and, where a policy
// needs them, inter-arrival statistics); a DetectionPolicy turns "now minus last seen" into a
// Verdict. Policies: fixed timeout (users), miss threshold (machines), phi accrual
// (Hayashibara et al. 2004, as in Akka).
//
// Every policy reduces to Deadlines: how long after the last heartbeat a subject becomes
// suspect and then dead. That keeps the boundary rule in one place (judge()) and lets callers
// schedule the exact moment a verdict changes instead of polling.
//
// Pure logic: no clock reads, no I/O. Thread safety: all types are values; const methods may
// be called concurrently, mutation needs external synchronisation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <variant>
#include <vector>

#include "membership/clock.h"

namespace heartbeatd::membership {

enum class Verdict : std::uint8_t { alive, suspect, dead };
std::string_view to_string(Verdict v);

// Elapsed time since the last heartbeat at which the verdict changes.
// Invariant: 0 <= suspect_after <= dead_after.
struct Deadlines {
  Duration suspect_after;
  Duration dead_after;
};

// The one boundary rule of the model: alive while elapsed < suspect_after, suspect while
// elapsed < dead_after, dead from then on. A negative elapsed (a heartbeat stamped after
// "now" by another thread) counts as zero.
Verdict judge(const Deadlines& d, Duration elapsed);

// Users: online while the last heartbeat is younger than the timeout; no suspect phase.
class FixedTimeout {
 public:
  explicit FixedTimeout(Duration timeout);
  Deadlines deadlines() const { return {timeout_, timeout_}; }
  Duration timeout() const { return timeout_; }

 private:
  Duration timeout_;
};

// Machines: suspect after `misses` heartbeat intervals without news, dead after a further
// `suspicion_timeout` (the window in which a live member can refute).
class MissThreshold {
 public:
  MissThreshold(Duration interval, std::uint32_t misses, Duration suspicion_timeout);
  Deadlines deadlines() const;

 private:
  Duration interval_;
  std::uint32_t misses_;
  Duration suspicion_timeout_;
};

// Inter-arrival times over a sliding window of the most recent `capacity` samples.
class ArrivalWindow {
 public:
  explicit ArrivalWindow(std::size_t capacity);
  void add(Duration interval);
  std::size_t size() const { return count_; }
  std::size_t capacity() const { return samples_ms_.size(); }
  double mean_ms() const;
  double std_dev_ms() const;  // population standard deviation

 private:
  void recompute_sums();

  std::vector<double> samples_ms_;
  std::size_t next_ = 0;
  std::size_t count_ = 0;
  double sum_ = 0;
  double sum_sq_ = 0;
};

struct PhiAccrualParams {
  double threshold = 8.0;                                 // Akka's default: ~1e-8 chance of error
  std::size_t window = 1000;                              // samples kept
  Duration min_std_dev = std::chrono::milliseconds(100);  // floor: steady LANs have tiny jitter
  Duration acceptable_pause = std::chrono::seconds(0);    // added to the mean (GC pauses)
  Duration first_interval_estimate = std::chrono::seconds(1);  // before any sample exists
  Duration suspicion_timeout = std::chrono::seconds(0);        // suspect → dead
};

// phi = -log10(1 - F(elapsed)), F the normal CDF fitted to the arrival window (mean plus
// acceptable_pause, std-dev at least min_std_dev). Suspect once phi >= threshold.
class PhiAccrual {
 public:
  explicit PhiAccrual(PhiAccrualParams params);
  const PhiAccrualParams& params() const { return params_; }
  double phi(const ArrivalWindow& window, Duration elapsed) const;
  Deadlines deadlines(const ArrivalWindow& window) const;

 private:
  struct Fit {
    double mean_ms;
    double std_dev_ms;
  };
  Fit fit(const ArrivalWindow& window) const;

  PhiAccrualParams params_;
  double threshold_z_;  // standard score at which phi reaches the threshold
};

// A subject's heartbeat history: last arrival and the intervals between arrivals.
class ArrivalHistory {
 public:
  // window_capacity 0 keeps no statistics (enough for the fixed and miss-threshold policies).
  explicit ArrivalHistory(std::size_t window_capacity = 0);

  // Records a heartbeat. An arrival stamped before the last one (another thread's clock
  // read lost a race) is folded in as "no newer news": last-seen never moves backwards.
  void heartbeat(TimePoint at);
  std::optional<TimePoint> last_seen() const { return last_seen_; }
  const ArrivalWindow& intervals() const { return intervals_; }

 private:
  std::optional<TimePoint> last_seen_;
  ArrivalWindow intervals_;
};

class DetectionPolicy {
 public:
  using Variant = std::variant<FixedTimeout, MissThreshold, PhiAccrual>;
  // Implicit on purpose: `DetectionPolicy p = FixedTimeout(30s);` reads as what it is.
  DetectionPolicy(FixedTimeout p) : policy_(std::move(p)) {}   // NOLINT
  DetectionPolicy(MissThreshold p) : policy_(std::move(p)) {}  // NOLINT
  DetectionPolicy(PhiAccrual p) : policy_(std::move(p)) {}     // NOLINT

  Deadlines deadlines(const ArrivalHistory& h) const;
  // A subject never heard from is dead (users: offline, last-seen null).
  Verdict judge(const ArrivalHistory& h, TimePoint now) const;
  // The moment the verdict will next change if no heartbeat arrives; nullopt once dead or
  // when never heard from. Lets callers arm one timer instead of polling.
  std::optional<TimePoint> next_change(const ArrivalHistory& h, TimePoint now) const;
  // Stats-aware policies want a window in every ArrivalHistory they judge.
  std::size_t window_capacity() const;

 private:
  Variant policy_;
};

}  // namespace heartbeatd::membership
