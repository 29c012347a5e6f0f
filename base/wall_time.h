// WallTime: converts monotonic times to wall-clock Unix milliseconds at the API edge, through
// one offset shared by all handlers of a route group, so that a subject's last_seen_ms reads
// the same in every answer. The offset follows the wall clock only when it has been stepped
// by more than a second (NTP step, VM resume).
//
// The wall clock is read through a WallClock (base/wall_clock.h): the system clock unless one
// is passed, so a test can step it.
//
// Thread safety: the anchor is atomic; a WallTime is a per-request value.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>

#include "base/wall_clock.h"

namespace heartbeatd {

class WallTime {
 public:
  // A monotonic time point (membership::TimePoint is this type).
  using MonoTime = std::chrono::steady_clock::time_point;

  WallTime(MonoTime mono_now, std::atomic<std::int64_t>& anchor,
           const WallClock& wall_clock = SystemWallClock::instance()) {
    const std::int64_t wall = wall_clock.unix_us() / 1000;
    const std::int64_t mono =
        std::chrono::duration_cast<std::chrono::milliseconds>(mono_now.time_since_epoch()).count();
    offset_ = anchor.load(std::memory_order_relaxed);
    if (offset_ == 0 || std::abs(wall - mono - offset_) > 1000) {
      offset_ = wall - mono;
      anchor.store(offset_, std::memory_order_relaxed);
    }
  }
  std::int64_t unix_ms(MonoTime t) const {
    return offset_ +
           std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  }
  // The inverse, exact for whole-millisecond time points: unix_ms(mono_of(u)) == u.
  MonoTime mono_of(std::int64_t unix_ms) const {
    return MonoTime(std::chrono::milliseconds(unix_ms - offset_));
  }

 private:
  std::int64_t offset_;
};

}  // namespace heartbeatd

