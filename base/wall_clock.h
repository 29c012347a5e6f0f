// WallClock: where code that needs Unix time gets it. Wall time is never used to detect
// failures (membership/clock.h's monotonic Clock is), only where a time leaves or enters the
// process: last-seen times in API answers and snapshots, log stamps. Like membership::Clock,
// it is passed in: the daemon uses the system clock, tests a ManualWallClock they can step
// (an NTP correction, a VM resume) without touching the machine's clock.
//
// Thread safety: implementations must allow unix_us() from any thread. ManualWallClock's
// set() and advance() may race with unix_us() (the value is atomic).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace heartbeatd {

class WallClock {
 public:
  virtual ~WallClock() = default;
  virtual std::int64_t unix_us() const = 0;  // microseconds since 1970-01-01 UTC
};

// std::chrono::system_clock: what NTP keeps in step across nodes.
class SystemWallClock final : public WallClock {
 public:
  std::int64_t unix_us() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  // Stateless: one shared instance serves every caller that was not given another clock.
  static const SystemWallClock& instance() {
    static const SystemWallClock clock;
    return clock;
  }
};

class ManualWallClock final : public WallClock {
 public:
  // 2026-01-01T00:00:00Z: a plausible present, far from the epoch and from overflow.
  explicit ManualWallClock(std::int64_t unix_us = 1'767'225'600'000'000) : now_(unix_us) {}

  std::int64_t unix_us() const override { return now_.load(std::memory_order_acquire); }
  void advance(std::chrono::microseconds d) { set(unix_us() + d.count()); }
  // Stepping back is allowed on purpose: wall clocks are stepped both ways.
  void set(std::int64_t unix_us) { now_.store(unix_us, std::memory_order_release); }

 private:
  std::atomic<std::int64_t> now_;
};

}  // namespace heartbeatd
