#include "transport/memory_presence_store.h"

#include <boost/asio/post.hpp>

#include <algorithm>

#include <fmt/format.h>

#include "base/wall_time.h"

namespace heartbeatd::transport {

namespace asio = boost::asio;
using membership::PresenceTable;
using membership::TimePoint;

namespace {

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

MemoryPresenceStore::MemoryPresenceStore(asio::io_context& io, membership::PresenceOptions options,
                                         const membership::Clock& clock,
                                         std::shared_ptr<std::atomic<std::int64_t>> wall_anchor)
    : io_(io),
      options_(options),
      clock_(clock),
      wall_anchor_(std::move(wall_anchor)),
      table_(options,
             std::chrono::floor<std::chrono::milliseconds>(clock.now()) - options.forget_after -
                 std::chrono::minutes(1),
             clock.now()),
      strand_(asio::make_strand(io)),
      tick_timer_(strand_),
      deadline_timer_(strand_),
      watch_(options.timeout) {}

MemoryPresenceStore::~MemoryPresenceStore() = default;

std::int64_t MemoryPresenceStore::unix_ms(TimePoint t) const {
  return WallTime(clock_.now(), *wall_anchor_).unix_ms(t);
}

void MemoryPresenceStore::start() {
  asio::dispatch(strand_, [this] {
    tick_timer_.expires_after(std::chrono::milliseconds(0));
    do_tick();
    do_arm_deadline();
  });
}

void MemoryPresenceStore::stop() {
  {
    std::lock_guard lock(watch_mu_);
    stopped_ = true;
  }
  asio::post(strand_, [this] {
    tick_timer_.cancel();
    deadline_timer_.cancel();
  });
}

// Re-armed from its expiry, not from now, so that it does not drift.
void MemoryPresenceStore::do_tick() {
  tick_timer_.expires_at(tick_timer_.expiry() + kTick);
  tick_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    const auto now = clock_.now();
    table_.advance(now);
    table_.sweep(now, 1);
    do_tick();
  });
}

void MemoryPresenceStore::heartbeat(std::span<const UserId> ids, Done done) {
  const TimePoint now = clock_.now();
  if (ids.size() == 1) {
    if (table_.heartbeat(ids[0], now) == PresenceTable::HeartbeatResult::table_full) {
      return done(table_full(options_.max_users, 0, 1));
    }
  } else {
    const auto r = table_.heartbeat_batch(ids, now);
    if (r.rejected_new > 0) return done(table_full(options_.max_users, r.accepted, r.rejected_new));
  }
  if (any_watched_.load(std::memory_order_relaxed)) {
    std::lock_guard lock(watch_mu_);
    for (const UserId id : ids) watch_.heartbeat(id, now, transitions_);
    publish_locked();
  }
  done({});
}

void MemoryPresenceStore::logout(UserId id, Done done) {
  const TimePoint now = clock_.now();
  table_.logout(id, now);  // unknown user: already offline, no error
  if (any_watched_.load(std::memory_order_relaxed)) {
    std::lock_guard lock(watch_mu_);
    watch_.logout(id, transitions_);
    publish_locked();
  }
  done({});
}

void MemoryPresenceStore::status(std::span<const UserId> ids, StatusDone done) {
  const TimePoint now = clock_.now();
  const WallTime wall(now, *wall_anchor_);
  auto convert = [&](const PresenceTable::Status& st) {
    UserStatus s;
    s.online = st.online;
    if (st.last_seen) s.last_seen_ms = wall.unix_ms(*st.last_seen);
    return s;
  };
  if (ids.size() == 1) {
    const UserStatus one = convert(table_.status(ids[0], now));
    return done({}, std::span(&one, 1));
  }
  std::vector<PresenceTable::Status> statuses(ids.size());
  table_.status_batch(ids, now, statuses);
  std::vector<UserStatus> out(ids.size());
  std::transform(statuses.begin(), statuses.end(), out.begin(), convert);
  done({}, out);
}

void MemoryPresenceStore::counts(CountsDone done) {
  const auto c = table_.counts(clock_.now());
  done({}, {c.online, c.tracked});
}

void MemoryPresenceStore::set_timeout(membership::Duration timeout) {
  table_.set_timeout(timeout, clock_.now());
  std::lock_guard lock(watch_mu_);
  watch_.set_timeout(timeout);
  armed_.reset();  // the deadlines moved, earlier or later
  publish_locked();
}

void MemoryPresenceStore::set_listener(ChangeListener listener) {
  std::lock_guard lock(watch_mu_);
  listener_ = std::move(listener);
}

void MemoryPresenceStore::watch(std::span<const UserId> ids) {
  if (ids.empty()) return;
  const TimePoint now = clock_.now();
  std::lock_guard lock(watch_mu_);
  for (const UserId id : ids) {
    if (watch_.watching(id)) {
      watch_.add(id, false, std::nullopt);  // one more reference; its state is known
      continue;
    }
    // Under watch_mu_: a heartbeat between this read and add() reaches the watch after it.
    const auto st = table_.status(id, now);
    watch_.add(id, st.online, st.last_seen);
  }
  any_watched_.store(true, std::memory_order_relaxed);
  publish_locked();
}

void MemoryPresenceStore::unwatch(std::span<const UserId> ids) {
  std::lock_guard lock(watch_mu_);
  for (const UserId id : ids) watch_.remove(id);
  any_watched_.store(watch_.size() > 0, std::memory_order_relaxed);
}

void MemoryPresenceStore::expire_watched() {
  std::lock_guard lock(watch_mu_);
  watch_.expire(clock_.now(), transitions_);
  armed_.reset();
  publish_locked();
}

void MemoryPresenceStore::publish_locked() {
  if (!transitions_.empty()) {
    changes_.clear();
    for (const auto& t : transitions_) {
      changes_.push_back(
          {t.user, t.online, t.last_seen ? std::optional(unix_ms(*t.last_seen)) : std::nullopt});
    }
    transitions_.clear();
    if (listener_) listener_(changes_);
  }
  const auto next = watch_.next_deadline();
  if (!next || stopped_ || (armed_ && *armed_ <= *next)) return;
  armed_ = next;
  asio::post(strand_, [this] { do_arm_deadline(); });
}

void MemoryPresenceStore::do_arm_deadline() {
  std::optional<TimePoint> next;
  {
    std::lock_guard lock(watch_mu_);
    if (stopped_) return;
    next = watch_.next_deadline();
    armed_ = next;
  }
  if (!next) return;
  // The clock may be a test's manual clock: wait for the difference, in steady time.
  deadline_timer_.expires_after(std::max(membership::Duration::zero(), *next - clock_.now()));
  deadline_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;  // re-armed for an earlier deadline, or stopping
    expire_watched();
  });
}

StoreHealth MemoryPresenceStore::health() const {
  return {"memory", true, "", {}};
}

void MemoryPresenceStore::write_metrics(MetricsWriter& w) const {
  const auto c = table_.counts(clock_.now());
  w.gauge("heartbeatd_users_online", "Users online now (heartbeat younger than presence.timeout).",
          static_cast<double>(c.online));
  w.gauge("heartbeatd_users_tracked",
          "Users tracked: online, or offline and seen within presence.forget_after.",
          static_cast<double>(c.tracked));
}

}  // namespace heartbeatd::transport
