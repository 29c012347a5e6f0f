// The /v1 routes that describe the daemon itself. Each group of routes gets its own
// add_*_routes() so the daemon wires the API in one place (daemon/daemon.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "membership/clock.h"
#include "transport/api/http_router.h"
#include "transport/presence/store.h"

namespace heartbeatd::transport {

// The state of persistence, as /v1/health reports it (persist/ fills it in).
struct PersistenceHealth {
  std::string data_dir;
  std::optional<std::int64_t> last_snapshot_ms;  // Unix ms; nullopt: none since start
  std::uint64_t last_snapshot_users = 0;
  std::uint64_t last_snapshot_bytes = 0;
  std::uint64_t last_snapshot_duration_ms = 0;
  std::uint64_t disk_bytes = 0;
  std::uint64_t failures = 0;
  std::optional<std::string> last_error;  // set while snapshots fail
};

// The presence backend, when it is not the embedded table (presence.backend: redis).
struct HealthInfo {
  std::string node;
  const membership::Clock* clock;  // uptime is measured on the monotonic clock
  membership::TimePoint started;
  std::function<PersistenceHealth()> persistence;  // empty: not reported
  // What runs unprotected by choice (cluster.plaintext); always reported, [] when none.
  std::function<std::vector<std::string>()> warnings;
  std::function<StoreHealth()> presence;  // empty: not reported
  // presence.max_batch, in the presence object: clients split their batches by it.
  std::size_t presence_max_batch = 0;
};

// GET /v1/health -> {"status":"ok"|"degraded","node":NAME,"version":VERSION,"uptime_ms":N,
//                    "warnings":[TEXT,...], "persistence":{...}, "presence":{...}} —
//                    "degraded" while snapshots fail
//                    or the presence backend (Redis) cannot be reached (docs/API.md).
void add_health_routes(Router& router, HealthInfo info);

// GET /metrics -> the Prometheus text format (version 0.0.4); `collect` writes every family
// but the API's own (the router adds those).
void add_metrics_route(Router& router, std::function<void(MetricsWriter&)> collect);

}  // namespace heartbeatd::transport
