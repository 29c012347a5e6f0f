// Clock: where the detection model gets "now". The daemon passes a clock backed by
// std::chrono::steady_clock (daemon/steady_clock.h); tests and the simulator pass a
// ManualClock that only moves when told to, so every timing rule can be tested at its exact
// boundary without sleeping.
//
// Thread safety: implementations must allow now() from any thread. ManualClock's advance()
// and set() may race with now() (the value is atomic) but tests normally drive it from one
// thread.
#pragma once

#include <atomic>
#include <chrono>

namespace heartbeatd::membership {

// Monotonic time. The epoch is meaningless; only differences are. Wall-clock time is
// converted at the API edge, never used for detection.
using Duration = std::chrono::nanoseconds;
using TimePoint = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
};

class ManualClock final : public Clock {
 public:
  // Starts well away from the epoch so that "now - timeout" never underflows in tests.
  explicit ManualClock(TimePoint start = TimePoint{std::chrono::hours(1000)}) : now_(start) {}

  TimePoint now() const override { return now_.load(std::memory_order_acquire); }
  void advance(Duration d) { set(now() + d); }
  // Setting an earlier time is allowed on purpose: the model must tolerate it.
  void set(TimePoint t) { now_.store(t, std::memory_order_release); }

 private:
  std::atomic<TimePoint> now_;
};

}  // namespace heartbeatd::membership
