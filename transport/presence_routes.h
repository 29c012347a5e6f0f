// The /v1/users routes: heartbeats (one user or a batch), status (one user or a batch),
// explicit offline, and the online/tracked counts, over a membership::PresenceTable.
// Times are monotonic inside; last_seen_ms is converted to wall-clock Unix milliseconds
// here, at the edge.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>

#include "membership/clock.h"
#include "membership/presence_table.h"
#include "transport/http_router.h"
#include "transport/redis_presence.h"

namespace heartbeatd::transport {

// Totals for /metrics.
struct PresenceCounters {
  std::atomic<std::uint64_t> heartbeats{0};  // user heartbeats accepted (a batch counts each)
  std::atomic<std::uint64_t> logouts{0};
};

struct PresenceApi {
  membership::PresenceTable* table;
  const membership::Clock* clock;
  std::size_t max_batch;
  std::size_t max_users;  // for the 507 message
  // Offset from the monotonic clock to Unix milliseconds, shared by the handlers; set up by
  // add_presence_routes().
  std::shared_ptr<std::atomic<std::int64_t>> wall_anchor = nullptr;
  std::shared_ptr<PresenceCounters> counters = nullptr;  // set up by add_presence_routes()
};

void add_presence_routes(Router& router, PresenceApi api);

// The same routes over Redis (presence.backend: redis), answering asynchronously. What Redis
// cannot answer (unreachable, pool exhausted, cluster failing over) is a 503 with Retry-After,
// never a guessed "offline". presence.max_users does not apply: Redis's maxmemory does.
struct RedisPresenceApi {
  redis::Presence* presence;
  std::size_t max_batch;
  std::shared_ptr<PresenceCounters> counters = nullptr;
};
void add_presence_routes(Router& router, RedisPresenceApi api);

}  // namespace heartbeatd::transport
