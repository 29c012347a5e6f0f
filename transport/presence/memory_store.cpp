#include "transport/presence/memory_store.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <mutex>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "base/wall_time.h"
#include "membership/user_watch.h"

namespace heartbeatd::transport {

namespace asio = boost::asio;
using membership::PresenceTable;
using membership::TimePoint;

namespace {

// The online count follows users across the timeout, and one shard of 256 is swept for
// users past forget_after (the whole table every 25.6 s).
constexpr std::chrono::milliseconds kTick{100};

StoreFailure table_full(std::size_t max_users, std::size_t accepted, std::size_t refused) {
  StoreFailure f;
  f.kind = StoreFailure::Kind::full;
  f.accepted = accepted;
  f.refused = refused;
  f.message = accepted == 0
                  ? fmt::format(
                        "presence.max_users ({}) users are tracked; {} new user(s) refused until "
                        "others are forgotten (presence.forget_after)",
                        max_users, refused)
                  // Lost a race for the last free places with another batch: say what was kept.
                  : fmt::format(
                        "{} heartbeats accepted, {} new user(s) refused: presence.max_users ({}) "
                        "reached",
                        accepted, refused, max_users);
  return f;
}

}  // namespace

struct MemoryPresenceStore::Core : std::enable_shared_from_this<Core> {
  Core(asio::io_context& io, membership::PresenceOptions o, const membership::Clock& c,
       std::shared_ptr<std::atomic<std::int64_t>> anchor, const WallClock& w)
      : options(o),
        clock(c),
        wall_anchor(std::move(anchor)),
        wall_clock(w),
        // The epoch lies forget_after (and a minute) before now: users restored from a
        // snapshot keep last-seen times from before the restart.
        table(o,
              std::chrono::floor<std::chrono::milliseconds>(c.now()) - o.forget_after -
                  std::chrono::minutes(1),
              c.now()),
        strand(asio::make_strand(io)),
        tick_timer(strand),
        deadline_timer(strand),
        watch(o.timeout) {}

  WallTime wall_time(TimePoint now) const { return WallTime(now, *wall_anchor, wall_clock); }
  std::int64_t unix_ms(TimePoint t) const { return wall_time(clock.now()).unix_ms(t); }

  // With watch_mu held: hands the transitions to the listener, and makes sure the deadline
  // timer fires no later than the watch's earliest deadline.
  void publish_locked() {
    if (!transitions.empty()) {
      changes.clear();
      for (const auto& t : transitions) {
        changes.push_back(
            {t.user, t.online, t.last_seen ? std::optional(unix_ms(*t.last_seen)) : std::nullopt});
      }
      transitions.clear();
      if (listener) listener(changes);
    }
    const auto next = watch.next_deadline();
    if (!next || stopped || (armed && *armed <= *next)) return;
    armed = next;
    asio::post(strand, [self = shared_from_this()] { self->do_arm_deadline(); });
  }

  void expire_watched() {
    std::lock_guard lock(watch_mu);
    watch.expire(clock.now(), transitions);
    armed.reset();
    publish_locked();
  }

  // On the strand.
  void do_arm_deadline() {
    std::optional<TimePoint> next;
    {
      std::lock_guard lock(watch_mu);
      if (stopped) return;
      next = watch.next_deadline();
      armed = next;
    }
    if (!next) return;
    // The clock may be a test's manual clock: wait for the difference, in steady time.
    deadline_timer.expires_after(std::max(membership::Duration::zero(), *next - clock.now()));
    deadline_timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec) return;  // re-armed for an earlier deadline, or stopping
      self->expire_watched();
    });
  }

  // On the strand; re-armed from its expiry, not from now, so that it does not drift.
  void do_tick() {
    tick_timer.expires_at(tick_timer.expiry() + kTick);
    tick_timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      const auto now = self->clock.now();
      self->table.advance(now);
      self->table.sweep(now, 1);
      self->do_tick();
    });
  }

  const membership::PresenceOptions options;
  const membership::Clock& clock;
  const std::shared_ptr<std::atomic<std::int64_t>> wall_anchor;
  const WallClock& wall_clock;
  PresenceTable table;
  asio::strand<asio::io_context::executor_type> strand;
  asio::steady_timer tick_timer;      // on strand
  asio::steady_timer deadline_timer;  // on strand

  std::atomic<bool> any_watched{false};
  std::mutex watch_mu;
  membership::UserWatch watch;                                 // guarded by watch_mu
  ChangeListener listener;                                     // guarded by watch_mu
  std::vector<membership::UserWatch::Transition> transitions;  // guarded by watch_mu
  std::vector<UserChange> changes;                             // guarded by watch_mu
  std::optional<TimePoint> armed;  // guarded by watch_mu: the deadline timer's expiry
  bool stopped = false;            // guarded by watch_mu
};

MemoryPresenceStore::MemoryPresenceStore(asio::io_context& io, membership::PresenceOptions options,
                                         const membership::Clock& clock,
                                         std::shared_ptr<std::atomic<std::int64_t>> wall_anchor,
                                         const WallClock& wall_clock)
    : core_(std::make_shared<Core>(io, options, clock, std::move(wall_anchor), wall_clock)) {}

MemoryPresenceStore::~MemoryPresenceStore() {
  stop();
}

void MemoryPresenceStore::start() {
  asio::dispatch(core_->strand, [core = core_] {
    core->tick_timer.expires_after(std::chrono::milliseconds(0));
    core->do_tick();
    core->do_arm_deadline();
  });
}

void MemoryPresenceStore::stop() {
  {
    std::lock_guard lock(core_->watch_mu);
    if (std::exchange(core_->stopped, true)) return;
  }
  asio::post(core_->strand, [core = core_] {
    core->tick_timer.cancel();
    core->deadline_timer.cancel();
  });
}

membership::PresenceTable* MemoryPresenceStore::local_table() {
  return &core_->table;
}

void MemoryPresenceStore::heartbeat(std::span<const UserId> ids, Done done) {
  Core& c = *core_;
  const TimePoint now = c.clock.now();
  if (ids.size() == 1) {
    if (c.table.heartbeat(ids[0], now) == PresenceTable::HeartbeatResult::table_full) {
      return done(table_full(c.options.max_users, 0, 1));
    }
  } else {
    const auto r = c.table.heartbeat_batch(ids, now);
    if (r.rejected_new > 0)
      return done(table_full(c.options.max_users, r.accepted, r.rejected_new));
  }
  if (c.any_watched.load(std::memory_order_relaxed)) {
    std::lock_guard lock(c.watch_mu);
    for (const UserId id : ids) c.watch.heartbeat(id, now, c.transitions);
    c.publish_locked();
  }
  done({});
}

void MemoryPresenceStore::logout(UserId id, Done done) {
  Core& c = *core_;
  c.table.logout(id, c.clock.now());  // unknown user: already offline, no error
  if (c.any_watched.load(std::memory_order_relaxed)) {
    std::lock_guard lock(c.watch_mu);
    c.watch.logout(id, c.transitions);
    c.publish_locked();
  }
  done({});
}

void MemoryPresenceStore::status(std::span<const UserId> ids, StatusDone done) {
  Core& c = *core_;
  const TimePoint now = c.clock.now();
  const WallTime wall = c.wall_time(now);
  auto convert = [&](const PresenceTable::Status& st) {
    UserStatus s;
    s.online = st.online;
    if (st.last_seen) s.last_seen_ms = wall.unix_ms(*st.last_seen);
    return s;
  };
  if (ids.size() == 1) {
    const UserStatus one = convert(c.table.status(ids[0], now));
    return done({}, std::span(&one, 1));
  }
  std::vector<PresenceTable::Status> statuses(ids.size());
  c.table.status_batch(ids, now, statuses);
  std::vector<UserStatus> out(ids.size());
  std::transform(statuses.begin(), statuses.end(), out.begin(), convert);
  done({}, out);
}

void MemoryPresenceStore::online_bits(std::span<const UserId> ids, OnlineBitsDone done) {
  Core& c = *core_;
  std::string bits((ids.size() + 7) / 8, '\0');
  c.table.online_batch(
      ids, c.clock.now(),
      std::span(reinterpret_cast<std::uint8_t*>(bits.data()), bits.size()));
  done({}, std::move(bits));
}

void MemoryPresenceStore::counts(CountsDone done) {
  const auto c = core_->table.counts(core_->clock.now());
  done({}, {c.online, c.tracked});
}

void MemoryPresenceStore::set_timeout(membership::Duration timeout) {
  Core& c = *core_;
  c.table.set_timeout(timeout, c.clock.now());
  std::lock_guard lock(c.watch_mu);
  c.watch.set_timeout(timeout);
  c.armed.reset();  // the deadlines moved, earlier or later
  c.publish_locked();
}

void MemoryPresenceStore::set_listener(ChangeListener listener) {
  std::lock_guard lock(core_->watch_mu);
  core_->listener = std::move(listener);
}

void MemoryPresenceStore::watch(std::span<const UserId> ids) {
  if (ids.empty()) return;
  Core& c = *core_;
  const TimePoint now = c.clock.now();
  std::lock_guard lock(c.watch_mu);
  // Before reading the table: a heartbeat that this read misses sees the flag (the shard's
  // lock orders the two), and reaches the watch after this call.
  c.any_watched.store(true, std::memory_order_relaxed);
  for (const UserId id : ids) {
    if (c.watch.watching(id)) {
      c.watch.add(id, false, std::nullopt);  // one more reference; its state is known
      continue;
    }
    const auto st = c.table.status(id, now);
    c.watch.add(id, st.online, st.last_seen);
  }
  c.publish_locked();
}

void MemoryPresenceStore::unwatch(std::span<const UserId> ids) {
  std::lock_guard lock(core_->watch_mu);
  for (const UserId id : ids) core_->watch.remove(id);
  core_->any_watched.store(core_->watch.size() > 0, std::memory_order_relaxed);
}

void MemoryPresenceStore::expire_watched() {
  core_->expire_watched();
}

StoreHealth MemoryPresenceStore::health() const {
  return {"memory", true, "", {}};
}

void MemoryPresenceStore::write_metrics(MetricsWriter& w) const {
  const auto c = core_->table.counts(core_->clock.now());
  w.gauge("heartbeatd_users_online", "Users online now (heartbeat younger than presence.timeout).",
          static_cast<double>(c.online));
  w.gauge("heartbeatd_users_tracked",
          "Users tracked: online, or offline and seen within presence.forget_after.",
          static_cast<double>(c.tracked));
}

}  // namespace heartbeatd::transport
