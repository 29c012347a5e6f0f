// The /v1/users routes over any PresenceStore: heartbeats (one user or a batch), status (one
// user or a batch), explicit offline, and the online/tracked counts. One set of routes for
// every store: each answers when its store does (at once for the embedded table, after a
// round trip for a remote one). What a store cannot answer is a 503 with Retry-After, never a
// guessed "offline"; new users beyond presence.max_users are a 507. Routes that answer with
// user ids write them as numbers, or as strings with ?ids=string (transport/api/query.h).
// Batch status can instead answer one bit per id (?format=bits, docs/API.md), with the number
// of ids in the kCountHeader header. Batch bodies are {"users":[...]}, or with Content-Type
// application/octet-stream 8 bytes per id, little-endian (base/user_ids.h).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "transport/api/http_router.h"
#include "transport/presence/store.h"

namespace heartbeatd::transport {

// Totals for /metrics.
struct PresenceCounters {
  std::atomic<std::uint64_t> heartbeats{0};  // user heartbeats accepted (a batch counts each)
  std::atomic<std::uint64_t> logouts{0};
};

// The online and tracked counts over the last `points` samples, one every `interval`
// (GET /v1/users/history: the status page's chart). Thread-safe: the daemon's sampling timer
// adds, API threads read.
class CountHistory {
 public:
  CountHistory(std::chrono::milliseconds interval, std::size_t points);

  // A sample taken at wall-clock `time_ms`; the oldest goes once `points` are kept.
  void add(std::int64_t time_ms, UserCounts counts);
  // {"interval_ms":N,"points":[{"time_ms":T,"online":N,"tracked":N},...]}, oldest first.
  std::string json() const;
  std::chrono::milliseconds interval() const { return interval_; }

 private:
  struct Point {
    std::int64_t time_ms;
    UserCounts counts;
  };
  const std::chrono::milliseconds interval_;
  const std::size_t capacity_;
  mutable std::mutex mu_;
  std::deque<Point> points_;  // guarded by mu_
};

struct PresenceApi {
  PresenceStore* store;
  std::size_t max_batch;
  std::shared_ptr<PresenceCounters> counters = nullptr;  // made by add_presence_routes() if null
  std::shared_ptr<const CountHistory> history = nullptr;  // null: no /v1/users/history
};

// POST /v1/users/status?format=bits: the number of ids answered (the bits' count, which the
// body's length only gives to within 8).
inline constexpr std::string_view kCountHeader = "X-Heartbeatd-Count";

void add_presence_routes(Router& router, PresenceApi api);

}  // namespace heartbeatd::transport
