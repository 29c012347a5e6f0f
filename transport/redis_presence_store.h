// RedisPresenceStore: presence.backend redis, the PresenceStore over redis::Presence
// (transport/redis_presence.h: the data model, the Redis Cluster routing and the pools).
// Everything Redis cannot answer is a StoreFailure of kind `unavailable`; presence.max_users
// does not apply (Redis's maxmemory does), so there is never a `full`.
//
// Thread safety: every call from any thread; completions run on the pools' threads.
#pragma once

#include <memory>

#include "transport/presence_store.h"
#include "transport/redis_presence.h"

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
};

}  // namespace heartbeatd::transport
