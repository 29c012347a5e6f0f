// The /v1 routes that describe the daemon itself. Each group of routes gets its own
// add_*_routes() so the daemon wires the API in one place (daemon/daemon.cpp).
#pragma once

#include <string>

#include "membership/clock.h"
#include "transport/http_router.h"

namespace heartbeatd::transport {

struct HealthInfo {
  std::string node;
  const membership::Clock* clock;  // uptime is measured on the monotonic clock
  membership::TimePoint started;
};

// GET /v1/health -> {"status":"ok","node":NAME,"version":VERSION,"uptime_ms":N}
void add_health_routes(Router& router, HealthInfo info);

}  // namespace heartbeatd::transport
