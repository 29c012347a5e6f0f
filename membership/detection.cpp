#include "membership/detection.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace heartbeatd::membership {
namespace {

using FloatMs = std::chrono::duration<double, std::milli>;

double to_ms(Duration d) {
  return std::chrono::duration_cast<FloatMs>(d).count();
}

Duration from_ms_ceil(double ms) {
  if (ms <= 0) return Duration::zero();
  // Cap far beyond any useful deadline so the cast cannot overflow.
  constexpr double kMaxMs = 1e12;  // ~31 years
  return Duration(static_cast<Duration::rep>(std::ceil(std::min(ms, kMaxMs) * 1e6)));
}

// -log10 of the upper tail of the standard normal distribution at z.
double phi_of_z(double z) {
  const double x = z / std::sqrt(2.0);
  const double tail = 0.5 * std::erfc(x);
  if (tail > 1e-300) return -std::log10(tail);
  // erfc underflows past x ~ 26; use its asymptote erfc(x) ~ exp(-x^2) / (x sqrt(pi)).
  constexpr double kLn10 = 2.302585092994046;
  return (x * x + std::log(x * std::sqrt(M_PI)) + std::log(2.0)) / kLn10;
}

// Inverse of phi_of_z by bisection; phi_of_z is strictly increasing.
double z_for_phi(double phi) {
  double lo = -40, hi = 60;
  for (int i = 0; i < 200; ++i) {
    const double mid = (lo + hi) / 2;
    (phi_of_z(mid) < phi ? lo : hi) = mid;
  }
  return hi;
}

}  // namespace

std::string_view to_string(Verdict v) {
  switch (v) {
    case Verdict::alive:
      return "alive";
    case Verdict::suspect:
      return "suspect";
    case Verdict::dead:
      return "dead";
  }
  return "unknown";
}

Verdict judge(const Deadlines& d, Duration elapsed) {
  elapsed = std::max(elapsed, Duration::zero());
  if (elapsed < d.suspect_after) return Verdict::alive;
  if (elapsed < d.dead_after) return Verdict::suspect;
  return Verdict::dead;
}

FixedTimeout::FixedTimeout(Duration timeout) : timeout_(timeout) {
  if (timeout <= Duration::zero()) throw std::invalid_argument("FixedTimeout: timeout must be > 0");
}

MissThreshold::MissThreshold(Duration interval, std::uint32_t misses, Duration suspicion_timeout)
    : interval_(interval), misses_(misses), suspicion_timeout_(suspicion_timeout) {
  if (interval <= Duration::zero())
    throw std::invalid_argument("MissThreshold: interval must be > 0");
  if (misses == 0) throw std::invalid_argument("MissThreshold: misses must be >= 1");
  if (suspicion_timeout < Duration::zero())
    throw std::invalid_argument("MissThreshold: suspicion_timeout must be >= 0");
}

Deadlines MissThreshold::deadlines() const {
  const Duration suspect = interval_ * misses_;
  return {suspect, suspect + suspicion_timeout_};
}

ArrivalWindow::ArrivalWindow(std::size_t capacity) : samples_ms_(capacity, 0.0) {}

void ArrivalWindow::add(Duration interval) {
  if (samples_ms_.empty()) return;
  const double ms = std::max(0.0, to_ms(interval));
  if (count_ == samples_ms_.size()) {
    const double old = samples_ms_[next_];
    sum_ -= old;
    sum_sq_ -= old * old;
  } else {
    ++count_;
  }
  samples_ms_[next_] = ms;
  sum_ += ms;
  sum_sq_ += ms * ms;
  next_ = (next_ + 1) % samples_ms_.size();
  // Running sums drift with floating-point subtraction; start afresh once per lap.
  if (next_ == 0) recompute_sums();
}

void ArrivalWindow::recompute_sums() {
  sum_ = sum_sq_ = 0;
  for (std::size_t i = 0; i < count_; ++i) {
    sum_ += samples_ms_[i];
    sum_sq_ += samples_ms_[i] * samples_ms_[i];
  }
}

double ArrivalWindow::mean_ms() const {
  return count_ == 0 ? 0.0 : sum_ / count_;
}

double ArrivalWindow::std_dev_ms() const {
  if (count_ == 0) return 0.0;
  const double mean = mean_ms();
  return std::sqrt(std::max(0.0, sum_sq_ / count_ - mean * mean));
}

PhiAccrual::PhiAccrual(PhiAccrualParams params)
    : params_(params), threshold_z_(z_for_phi(params.threshold)) {
  if (!(params.threshold > 0)) throw std::invalid_argument("PhiAccrual: threshold must be > 0");
  if (params.window == 0) throw std::invalid_argument("PhiAccrual: window must be >= 1");
  if (params.min_std_dev <= Duration::zero())
    throw std::invalid_argument("PhiAccrual: min_std_dev must be > 0");
  if (params.first_interval_estimate <= Duration::zero())
    throw std::invalid_argument("PhiAccrual: first_interval_estimate must be > 0");
}

PhiAccrual::Fit PhiAccrual::fit(const ArrivalWindow& window) const {
  double mean, sd;
  if (window.size() == 0) {
    // No interval seen yet (one heartbeat at most): assume the configured interval with a
    // quarter of it as spread, as Akka seeds its history.
    mean = to_ms(params_.first_interval_estimate);
    sd = mean / 4;
  } else {
    mean = window.mean_ms();
    sd = window.std_dev_ms();
  }
  return {mean + to_ms(params_.acceptable_pause), std::max(sd, to_ms(params_.min_std_dev))};
}

double PhiAccrual::phi(const ArrivalWindow& window, Duration elapsed) const {
  const Fit f = fit(window);
  const double e = std::max(0.0, to_ms(elapsed));
  return std::max(0.0, phi_of_z((e - f.mean_ms) / f.std_dev_ms));
}

Deadlines PhiAccrual::deadlines(const ArrivalWindow& window) const {
  const Fit f = fit(window);
  const Duration suspect = from_ms_ceil(f.mean_ms + threshold_z_ * f.std_dev_ms);
  return {suspect, suspect + params_.suspicion_timeout};
}

ArrivalHistory::ArrivalHistory(std::size_t window_capacity) : intervals_(window_capacity) {}

void ArrivalHistory::heartbeat(TimePoint at) {
  if (last_seen_) {
    if (at <= *last_seen_) return;
    intervals_.add(at - *last_seen_);
  }
  last_seen_ = at;
}

Deadlines DetectionPolicy::deadlines(const ArrivalHistory& h) const {
  return std::visit(
      [&](const auto& p) -> Deadlines {
        if constexpr (std::is_same_v<std::decay_t<decltype(p)>, PhiAccrual>) {
          return p.deadlines(h.intervals());
        } else {
          return p.deadlines();
        }
      },
      policy_);
}

Verdict DetectionPolicy::judge(const ArrivalHistory& h, TimePoint now) const {
  if (!h.last_seen()) return Verdict::dead;
  return membership::judge(deadlines(h), now - *h.last_seen());
}

std::optional<TimePoint> DetectionPolicy::next_change(const ArrivalHistory& h,
                                                      TimePoint now) const {
  if (!h.last_seen()) return std::nullopt;
  const Deadlines d = deadlines(h);
  switch (membership::judge(d, now - *h.last_seen())) {
    case Verdict::alive:
      return *h.last_seen() + d.suspect_after;
    case Verdict::suspect:
      return *h.last_seen() + d.dead_after;
    case Verdict::dead:
      return std::nullopt;
  }
  return std::nullopt;
}

std::size_t DetectionPolicy::window_capacity() const {
  if (const auto* phi = std::get_if<PhiAccrual>(&policy_)) return phi->params().window;
  return 0;
}

}  // namespace heartbeatd::membership
