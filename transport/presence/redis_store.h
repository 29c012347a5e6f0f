// RedisPresenceStore: presence.backend redis, the PresenceStore over redis::Presence
// (transport/presence/redis_presence.h: the data model, the Redis Cluster routing and the pools).
// Everything Redis cannot answer is a StoreFailure of kind `unavailable`; presence.max_users
// does not apply (Redis's maxmemory does), so there is never a `full`.
//
// The heartbeatd_users_online/tracked gauges: /metrics is answered at once, so they show
// the counts of the last counts() that Redis answered (GET /v1/users, or the previous
// scrape, which asks again: O(log n) per shard, nothing scanned); absent until one did.
//
// Thread safety: every call from any thread; completions run on the pools' threads.
#pragma once

#include <atomic>
#include <memory>

#include "transport/presence/redis_presence.h"
#include "transport/presence/store.h"

namespace heartbeatd::transport {

class RedisPresenceStore final : public PresenceStore {
 public:
  RedisPresenceStore(boost::asio::io_context& io, redis::PresenceOptions options,
                     redis::Presence::Clock wall_us);

  void start() override;
  void stop() override;
  void heartbeat(std::span<const UserId> ids, Done done) override;
  void logout(UserId id, Done done) override;
  void status(std::span<const UserId> ids, StatusDone done) override;
  void counts(CountsDone done) override;
  void set_timeout(membership::Duration timeout) override;
  void set_listener(ChangeListener listener) override;
  void watch(std::span<const UserId> ids) override;
  void unwatch(std::span<const UserId> ids) override;
  StoreHealth health() const override;
  void write_metrics(MetricsWriter& w) const override;

  redis::Presence& presence() { return presence_; }

 private:
  redis::Presence presence_;
  // The last counts Redis answered, for the gauges; shared with answers still in flight.
  struct LastCounts {
    std::atomic<std::uint64_t> online{0};  // (online << 1) | 1; 0: none yet
    std::atomic<std::uint64_t> tracked{0};
  };
  std::shared_ptr<LastCounts> last_ = std::make_shared<LastCounts>();
};

}  // namespace heartbeatd::transport
