#include "transport/presence/redis_store.h"

#include <vector>

namespace heartbeatd::transport {

namespace {

StoreFailure unavailable(const redis::Failure& f) {
  return StoreFailure::unavailable(f.message);
}

}  // namespace

RedisPresenceStore::RedisPresenceStore(boost::asio::io_context& io, redis::PresenceOptions options,
                                       redis::Presence::Clock wall_us)
    : presence_(io, std::move(options), std::move(wall_us)) {}

void RedisPresenceStore::start() {
  presence_.start();
}

void RedisPresenceStore::stop() {
  presence_.stop();
}

void RedisPresenceStore::heartbeat(std::span<const UserId> ids, Done done) {
  presence_.heartbeat(
      std::vector<std::uint64_t>(ids.begin(), ids.end()),
      [done = std::move(done)](redis::Failure f) { done(f ? unavailable(f) : StoreFailure{}); });
}

void RedisPresenceStore::logout(UserId id, Done done) {
  presence_.logout(id, [done = std::move(done)](redis::Failure f) {
    done(f ? unavailable(f) : StoreFailure{});
  });
}

void RedisPresenceStore::status(std::span<const UserId> ids, StatusDone done) {
  presence_.status(std::vector<std::uint64_t>(ids.begin(), ids.end()),
                   [done = std::move(done)](redis::Failure f, std::vector<UserStatus> st) {
                     if (f) return done(unavailable(f), {});
                     done({}, st);
                   });
}

void RedisPresenceStore::counts(CountsDone done) {
  presence_.counts([last = last_, done = std::move(done)](redis::Failure f, UserCounts c) {
    if (f) return done(unavailable(f), {});
    last->tracked.store(c.tracked, std::memory_order_relaxed);
    last->online.store(c.online << 1 | 1, std::memory_order_relaxed);
    done({}, c);
  });
}

void RedisPresenceStore::set_timeout(membership::Duration timeout) {
  presence_.set_timeout(std::chrono::duration_cast<std::chrono::milliseconds>(timeout));
}

void RedisPresenceStore::set_listener(ChangeListener listener) {
  if (!listener) return presence_.set_change_listener(nullptr);
  presence_.set_change_listener([listener = std::move(listener)](
                                    const std::vector<UserChange>& changes) { listener(changes); });
}

void RedisPresenceStore::watch(std::span<const UserId> ids) {
  presence_.watch(ids);
}

void RedisPresenceStore::unwatch(std::span<const UserId> ids) {
  presence_.unwatch(ids);
}

StoreHealth RedisPresenceStore::health() const {
  const auto h = presence_.health();
  return {"redis", h.ok, h.problem, h.masters};
}

void RedisPresenceStore::write_metrics(MetricsWriter& w) const {
  if (const auto online = last_->online.load(std::memory_order_relaxed)) {
    w.gauge("heartbeatd_users_online",
            "Users online (heartbeat younger than presence.timeout), as Redis last counted.",
            static_cast<double>(online >> 1));
    w.gauge("heartbeatd_users_tracked",
            "Users tracked: online, or offline and seen within presence.forget_after, as Redis "
            "last counted.",
            static_cast<double>(last_->tracked.load(std::memory_order_relaxed)));
  }
  // For the next scrape.
  const_cast<RedisPresenceStore*>(this)->counts([](StoreFailure, UserCounts) {});
  presence_.write_metrics(w);
}

}  // namespace heartbeatd::transport
