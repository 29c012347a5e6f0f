#include "persist/snapshotter.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "base/log.h"

namespace heartbeatd::persist {

namespace {

constexpr int kSnapshotNice = 10;  // CFS weight 110 against the API threads' 1024
constexpr std::uint64_t kSnapshotSliceNs = 100'000;  // the shortest slice Linux accepts

// struct sched_attr of sched_setattr(2), its first version (glibc 2.36 declares neither, and
// <linux/sched/types.h> clashes with <sched.h>).
struct SchedAttr {
  std::uint32_t size;
  std::uint32_t sched_policy;
  std::uint64_t sched_flags;
  std::int32_t sched_nice;
  std::uint32_t sched_priority;
  std::uint64_t sched_runtime;
  std::uint64_t sched_deadline;
  std::uint64_t sched_period;
};
static_assert(sizeof(SchedAttr) == 48);

// Snapshots are background work: when the API threads want the CPU, they get it first (a
// snapshot then takes longer; a heartbeat does not). Two settings of the calling thread:
// - nice 10: a tenth of the weight of an API thread, so on a saturated CPU snapshots slow
//   down but still complete (SCHED_IDLE, weight 3, starved them: 6-8 s instead of 0.7 s for
//   10^7 users on a loaded 2-core machine, bench/RESULTS.md);
// - a 0.1 ms time slice (sched_runtime, honoured by the EEVDF scheduler since Linux 6.12,
//   ignored before): an API thread that wakes up (a request came in) preempts the snapshot
//   thread within 0.1 ms, instead of waiting for the end of its default slice, which the
//   scheduler protects from wake-up preemption (se.slice in /proc/PID/task/TID/sched: 1.4 ms
//   on the 2-core machine of bench/RESULTS.md, where heartbeats' p99 during a snapshot was
//   3-4 ms against about 1 ms without; issue #20).
// If sched_setattr is refused, nice 10 alone.
void lower_priority() {
  const auto tid = static_cast<pid_t>(::syscall(SYS_gettid));
  SchedAttr a;
  std::memset(&a, 0, sizeof a);
  a.size = sizeof a;
  a.sched_policy = SCHED_OTHER;
  a.sched_nice = kSnapshotNice;
  a.sched_runtime = kSnapshotSliceNs;
  if (::syscall(SYS_sched_setattr, tid, &a, 0) == 0) return;
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(tid), kSnapshotNice);
}

}  // namespace

using membership::MemberInfo;
using membership::MemberState;
using membership::PresenceTable;
using membership::TimePoint;

RestoredMembership restore_membership(const LoadedState& state, const std::string& self_name,
                                      const WallConverter& wall) {
  RestoredMembership r;
  // Above anything this node may have said before: the persisted incarnation was written
  // before the node could use it.
  if (state.self && state.self->name == self_name) r.incarnation = state.self->incarnation + 1;
  for (const auto& m : state.members) {
    if (m.name == self_name) continue;
    auto address = membership::parse_address(m.address);
    if (!address) {
      ++r.unreadable;
      continue;
    }
    MemberInfo info;
    info.name = m.name;
    info.address = *address;
    info.state = static_cast<MemberState>(m.state);
    info.incarnation = m.incarnation;
    if (m.last_seen_ms != 0) info.last_seen = wall.to_mono(m.last_seen_ms);
    info.state_since = wall.to_mono(m.state_since_ms);
    info.tags.insert(m.tags.begin(), m.tags.end());
    info.tags_at = m.tags_at;
    r.members.push_back(std::move(info));
  }
  return r;
}

std::vector<PresenceTable::Record> to_table_records(const std::vector<UserRecord>& users,
                                                    const WallConverter& wall) {
  std::vector<PresenceTable::Record> out;
  out.reserve(users.size());
  for (const auto& u : users) {
    out.push_back(PresenceTable::Record{u.id, wall.to_mono(u.last_seen_ms), u.logged_out});
  }
  return out;
}

Snapshotter::Snapshotter(Store& store, PresenceTable* table, const membership::Clock& clock,
                         std::shared_ptr<std::atomic<std::int64_t>> wall_anchor,
                         MembershipSource membership, std::chrono::milliseconds interval)
    : store_(store),
      table_(table),
      clock_(clock),
      wall_anchor_(std::move(wall_anchor)),
      membership_(std::move(membership)),
      interval_(interval) {}

Snapshotter::~Snapshotter() {
  stop();
}

void Snapshotter::start() {
  thread_ = std::thread([this] { run(); });
}

void Snapshotter::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  abandon_ = true;  // the final snapshot supersedes it: do not make the stop wait for it
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  abandon_ = false;
}

void Snapshotter::set_interval(std::chrono::milliseconds interval) {
  {
    std::lock_guard lock(mu_);
    interval_ = interval;
    interval_changed_ = true;
  }
  cv_.notify_all();
}

void Snapshotter::request_membership() {
  {
    std::lock_guard lock(mu_);
    membership_wanted_ = true;
  }
  cv_.notify_all();
}

SnapshotStats Snapshotter::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void Snapshotter::run() {
  lower_priority();
  using SteadyClock = std::chrono::steady_clock;
  std::unique_lock lock(mu_);
  // Snapshots begin every interval_ after the previous one began; one that took longer than
  // the interval is followed by the next at once, never by several.
  auto last = SteadyClock::now();
  while (true) {
    const auto due = last + interval_;
    cv_.wait_until(lock, due, [&] {
      return stopping_ || membership_wanted_ || interval_changed_ || SteadyClock::now() >= due;
    });
    if (stopping_) return;
    if (interval_changed_) {  // SIGHUP: the new interval counts from the last snapshot
      interval_changed_ = false;
      continue;
    }
    if (SteadyClock::now() < due) {  // woken for membership only
      membership_wanted_ = false;
      lock.unlock();
      record(write_membership(), false);
      lock.lock();
      continue;
    }
    membership_wanted_ = false;  // the snapshot writes membership too
    last = SteadyClock::now();
    lock.unlock();
    record(snapshot_presence_and_membership(), true);
    lock.lock();
  }
}

std::optional<std::string> Snapshotter::snapshot_on_stop() {
  auto error = snapshot_presence_and_membership();
  record(error, true);
  return error;
}

namespace {

std::vector<MemberRecord> member_records(const MembershipView& view, const WallConverter& wall) {
  std::vector<MemberRecord> out;
  out.reserve(view.members.size());
  for (const auto& m : view.members) {
    if (m.self) continue;
    MemberRecord r;
    r.name = m.name;
    r.address = m.address.to_string();
    r.state = static_cast<std::uint8_t>(m.state);
    r.incarnation = m.incarnation;
    r.last_seen_ms = m.last_seen ? wall.to_unix_ms(*m.last_seen) : 0;
    r.state_since_ms = wall.to_unix_ms(m.state_since);
    r.tags.assign(m.tags.begin(), m.tags.end());
    r.tags_at = m.tags_at;
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

std::optional<std::string> Snapshotter::write_membership() {
  std::lock_guard lock(write_mu_);
  auto view = membership_ ? membership_() : std::nullopt;
  if (!view) return std::nullopt;
  auto err = write_membership_locked(*view, WallConverter(clock_.now(), *wall_anchor_));
  if (!err) {
    log::debug("persist: membership written: incarnation {}, {} members", view->incarnation,
               std::count_if(view->members.begin(), view->members.end(),
                             [](const auto& m) { return !m.self; }));
  }
  return err;
}

std::optional<std::string> Snapshotter::write_membership_locked(const MembershipView& view,
                                                                const WallConverter& wall) {
  return store_.write({SelfRecord{view.self_name, view.incarnation}, member_records(view, wall)});
}

std::optional<std::string> Snapshotter::snapshot_presence_and_membership() {
  const auto started = std::chrono::steady_clock::now();
  const auto now = clock_.now();
  const auto wall = WallConverter(now, *wall_anchor_);
  const std::int64_t base = wall.to_unix_ms(now);
  const auto number = ++attempts_;
  log::debug("persist: snapshot {} started", number);
  std::lock_guard write_lock(write_mu_);
  if (auto view = membership_ ? membership_() : std::nullopt) {
    if (auto err = write_membership_locked(*view, wall)) return err;
  }
  // Shard by shard: the table holds one shard's lock for the time of a copy, and the
  // encoding happens outside every lock.
  std::vector<PresenceTable::Record> shard;
  std::vector<UserRecord> users;
  auto written = store_.write_presence(
      base, static_cast<std::uint32_t>(PresenceTable::kShards),
      [&](std::uint32_t i) -> std::optional<Chunk> {
        if (abandon_) return std::nullopt;
        shard.clear();
        if (table_) table_->export_shard(i, now, shard);
        users.clear();
        users.reserve(shard.size());
        for (const auto& r : shard) {
          users.push_back(UserRecord{r.id, wall.to_unix_ms(r.last_seen), r.logged_out});
        }
        return Chunk{encode_users(users, base), users.size()};
      });
  if (std::holds_alternative<std::monostate>(written)) {
    log::debug("persist: snapshot {} abandoned for the final one", number);
    return std::nullopt;
  }
  if (auto* err = std::get_if<std::string>(&written)) return *err;
  const auto& manifest = std::get<PresenceManifest>(written);
  const auto disk = store_.disk_bytes();
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  log::debug("persist: snapshot {} written: {} users, {} bytes, {} ms", number, manifest.users,
             manifest.bytes, took.count());
  std::lock_guard lock(mu_);
  stats_.last_ms = base;
  stats_.users = manifest.users;
  stats_.bytes = manifest.bytes;
  stats_.disk_bytes = disk;
  stats_.duration = took;
  return std::nullopt;
}

void Snapshotter::record(std::optional<std::string> error, bool presence) {
  std::lock_guard lock(mu_);
  if (error) {
    log::error("persist: {}", *error);
    ++stats_.failures;
    stats_.last_error = std::move(error);
  } else if (presence) {
    if (stats_.last_error) log::info("persist: snapshots succeed again");
    ++stats_.snapshots;
    stats_.last_error.reset();
  }
}

}  // namespace heartbeatd::persist
