// SteadyClock: the production membership::Clock, backed by std::chrono::steady_clock.
// Lives in daemon/ because membership/ never reads a clock itself.
#pragma once

#include "membership/clock.h"

namespace heartbeatd {

class SteadyClock final : public membership::Clock {
 public:
  membership::TimePoint now() const override { return std::chrono::steady_clock::now(); }
};

}  // namespace heartbeatd
