// The /v1/users routes over any PresenceStore: heartbeats (one user or a batch), status (one
// user or a batch), explicit offline, and the online/tracked counts. One set of routes for
// every store: each answers when its store does (at once for the embedded table, after a
// round trip for a remote one). What a store cannot answer is a 503 with Retry-After, never a
// guessed "offline"; new users beyond presence.max_users are a 507.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "transport/api/http_router.h"
#include "transport/presence/store.h"

namespace heartbeatd::transport {

// Totals for /metrics.
struct PresenceCounters {
  std::atomic<std::uint64_t> heartbeats{0};  // user heartbeats accepted (a batch counts each)
  std::atomic<std::uint64_t> logouts{0};
};

struct PresenceApi {
  PresenceStore* store;
  std::size_t max_batch;
  std::shared_ptr<PresenceCounters> counters = nullptr;  // made by add_presence_routes() if null
};

void add_presence_routes(Router& router, PresenceApi api);

}  // namespace heartbeatd::transport
