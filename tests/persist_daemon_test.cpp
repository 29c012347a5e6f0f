// Persistence on the real binary: users and members come back after a graceful restart and
// after kill -9 (in a loop, killing at varied moments, many of them inside a snapshot), and
// every bad data directory gives its message and exit code without touching the data.
// Every wait is for a condition with a deadline.
#include <gtest/gtest.h>
#include <signal.h>

#include <rocksdb/db.h>
#include <boost/json.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "persist/format.h"
#include "tests/support/daemon_process.h"
#include "tests/support/test_util.h"

namespace heartbeatd::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string ids_json(std::uint64_t from, std::uint64_t count) {
  std::string s = "{\"users\":[";
  for (std::uint64_t i = 0; i < count; ++i) {
    if (i) s += ',';
    s += std::to_string(from + i);
  }
  return s + "]}";
}

struct UserView {
  bool online = false;
  std::optional<std::int64_t> last_seen_ms;
  bool operator==(const UserView&) const = default;
};

// POST /v1/users/status for [from, from+count): id -> view.
std::map<std::uint64_t, UserView> statuses(const DaemonProcess& d, std::uint64_t from,
                                           std::uint64_t count) {
  std::map<std::uint64_t, UserView> out;
  auto r = http_tcp(d.port(), "POST", "/v1/users/status", ids_json(from, count));
  EXPECT_EQ(r.status, 200) << r.body;
  if (r.status != 200) return out;
  const auto parsed = boost::json::parse(r.body);
  for (const auto& u : parsed.at("users").as_array()) {
    UserView v;
    v.online = u.at("online").as_bool();
    if (!u.at("last_seen_ms").is_null())
      v.last_seen_ms = u.at("last_seen_ms").to_number<std::int64_t>();
    out[u.at("user").to_number<std::uint64_t>()] = v;
  }
  return out;
}

std::pair<std::int64_t, std::int64_t> counts(const DaemonProcess& d) {
  auto r = http_tcp(d.port(), "GET", "/v1/users");
  EXPECT_EQ(r.status, 200);
  if (r.status != 200) return {-1, -1};
  auto o = boost::json::parse(r.body).as_object();
  return {o.at("online").to_number<std::int64_t>(), o.at("tracked").to_number<std::int64_t>()};
}

boost::json::object persistence(const DaemonProcess& d) {
  auto r = http_tcp(d.port(), "GET", "/v1/health");
  if (r.status != 200) return {};
  auto o = boost::json::parse(r.body).as_object();
  if (!o.contains("persistence")) return {};
  auto p = o.at("persistence").as_object();
  p["status"] = o.at("status");
  return p;
}

std::optional<std::int64_t> last_snapshot_ms(const DaemonProcess& d) {
  auto p = persistence(d);
  if (p.empty() || p.at("last_snapshot_ms").is_null()) return std::nullopt;
  return p.at("last_snapshot_ms").to_number<std::int64_t>();
}

void heartbeat(const DaemonProcess& d, std::uint64_t from, std::uint64_t count) {
  auto r = http_tcp(d.port(), "POST", "/v1/users/heartbeat", ids_json(from, count));
  ASSERT_EQ(r.status, 200) << r.body;
}

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST(PersistDaemon, UsersComeBackAfterAGracefulRestartWithTheSameLastSeen) {
  DaemonProcess d({{"presence.timeout", "10m"}, {"persist.presence_interval", "1h"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  EXPECT_FALSE(last_snapshot_ms(d));  // none yet: the interval is an hour
  heartbeat(d, 1, 2000);
  heartbeat(d, 5'000'000'000ULL, 10);  // 64-bit ids too
  ASSERT_EQ(http_tcp(d.port(), "DELETE", "/v1/users/7").status, 204);
  const auto before = statuses(d, 0, 2010);
  const auto before_wide = statuses(d, 5'000'000'000ULL, 11);
  const auto before_counts = counts(d);
  ASSERT_EQ(before_counts.second, 2010);
  ASSERT_FALSE(before.at(7).online);
  ASSERT_TRUE(before.at(7).last_seen_ms);

  // SIGTERM right away: only the snapshot of the stop can have these users.
  d.signal(SIGTERM);
  ASSERT_EQ(d.wait_exit(), 0) << d.log();
  EXPECT_NE(d.log().find("final snapshot: 2010 users"), std::string::npos) << d.log();

  ASSERT_TRUE(d.start()) << d.failure_reason();
  EXPECT_EQ(statuses(d, 0, 2010), before);
  EXPECT_EQ(statuses(d, 5'000'000'000ULL, 11), before_wide);
  EXPECT_EQ(counts(d), before_counts);
  EXPECT_NE(d.log().find("restored 0 members"), std::string::npos) << d.log();
}

TEST(PersistDaemon, HealthShowsTheLastSnapshot) {
  DaemonProcess d(DaemonProcess::Keys{{"persist.presence_interval", "100ms"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  heartbeat(d, 1, 500);
  const auto after = unix_ms_now();
  ASSERT_TRUE(eventually([&] {
    auto p = persistence(d);
    return !p.empty() && !p.at("last_snapshot_ms").is_null() &&
           p.at("last_snapshot_ms").to_number<std::int64_t>() >= after &&
           p.at("last_snapshot_users").to_number<std::int64_t>() == 500;
  }));
  auto p = persistence(d);
  EXPECT_EQ(p.at("status").as_string(), "ok");
  EXPECT_EQ(p.at("data_dir").as_string(), d.dir().file("data"));
  EXPECT_GT(p.at("last_snapshot_bytes").to_number<std::int64_t>(), 500);
  EXPECT_GT(p.at("disk_bytes").to_number<std::int64_t>(),
            p.at("last_snapshot_bytes").to_number<std::int64_t>());
  EXPECT_TRUE(p.at("last_error").is_null());
  EXPECT_EQ(p.at("failures").to_number<std::int64_t>(), 0);
}

// SIGHUP with a shorter persist.presence_interval applies at once, not at the end of the
// interval that was running.
TEST(PersistDaemon, AShorterIntervalOnReloadAppliesAtOnce) {
  DaemonProcess d(DaemonProcess::Keys{{"persist.presence_interval", "1h"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  heartbeat(d, 1, 10);
  d.write_config({{"persist.presence_interval", "100ms"}});
  d.signal(SIGHUP);
  ASSERT_TRUE(d.wait_log("SIGHUP: applied persist.presence_interval: 1h -> 100ms")) << d.log();
  EXPECT_TRUE(eventually([&] { return last_snapshot_ms(d).has_value(); }, 5s)) << d.log();
}

// kill -9 at varied moments, many inside a snapshot: every restart must come back with a
// complete snapshot (the start fails on a torn one), holding at least everything a snapshot
// had confirmed before the kill, with the last-seen times read before the kill, and nothing
// that was never sent.
TEST(PersistDaemon, KillNineInALoopAlwaysRecoversACompleteSnapshot) {
  auto rng = seeded_rng();
  constexpr std::uint64_t kBase = 100'000;  // users every snapshot holds: makes it last a while
  constexpr std::uint64_t kBatch = 1000;
  DaemonProcess d({{"presence.timeout", "10m"},
                   {"persist.presence_interval", "100ms"},
                   {"presence.max_batch", "20000"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  for (std::uint64_t from = 0; from < kBase; from += 20'000) heartbeat(d, from, 20'000);

  std::map<std::uint64_t, UserView> durable;  // confirmed by a snapshot before some kill
  std::uint64_t next_id = 10'000'000;         // users sent after the base, in batches
  int kills = 0, inside_snapshot = 0;
  for (int round = 0; round < 80 && (kills < 20 || inside_snapshot < 5); ++round) {
    // 1. A batch that a later snapshot confirms.
    const std::uint64_t confirmed_from = next_id;
    heartbeat(d, confirmed_from, kBatch);
    next_id += kBatch;
    // A snapshot that began after the batch was answered: the second to complete from now
    // (the first may have begun before). Counted by the daemon's own snapshot times, so no
    // clock is compared with another.
    const auto seen = last_snapshot_ms(d).value_or(0);
    std::int64_t next = 0;
    ASSERT_TRUE(eventually([&] { return (next = last_snapshot_ms(d).value_or(0)) != seen; }))
        << "no snapshot after the batch; log:\n"
        << d.log();
    ASSERT_TRUE(eventually([&] { return last_snapshot_ms(d).value_or(0) != next; }))
        << "no second snapshot after the batch; log:\n"
        << d.log();
    for (const auto& [id, v] : statuses(d, confirmed_from, kBatch)) durable[id] = v;
    // 2. More batches, which may or may not make it; then the kill, at one of two kinds of
    // moment: right after a snapshot begins, or after a random number of batches.
    const auto extra = rng() % 6;
    for (std::uint64_t i = 0; i < extra; ++i) {
      heartbeat(d, next_id, kBatch);
      next_id += kBatch;
    }
    if (round % 2 == 0) {
      // Wait for a snapshot to begin that had not begun before (log.level is debug).
      const auto seen = d.log().size();
      ASSERT_TRUE(
          eventually([&] { return d.log().find(" started", seen) != std::string::npos; }, 5s));
    }
    d.signal(SIGKILL);
    ASSERT_EQ(d.wait_exit(), -SIGKILL);
    ++kills;
    const std::string log = d.log();
    const auto last_started = log.rfind(" started");
    const auto last_written = log.rfind(" written");
    if (last_started != std::string::npos &&
        (last_written == std::string::npos || last_started > last_written)) {
      ++inside_snapshot;
    }
    // 3. Restart and check.
    ASSERT_TRUE(d.start()) << "restart " << kills << " failed: " << d.failure_reason();
    const auto [online, tracked] = counts(d);
    EXPECT_GE(tracked, static_cast<std::int64_t>(kBase + durable.size())) << "restart " << kills;
    EXPECT_LE(tracked, static_cast<std::int64_t>(kBase + (next_id - 10'000'000)));
    EXPECT_EQ(online, tracked);  // all younger than the 10 min timeout
    // Every confirmed user, with its last-seen time unchanged.
    for (std::uint64_t from = 10'000'000; from < next_id; from += 10 * kBatch) {
      const auto now = statuses(d, from, std::min<std::uint64_t>(10 * kBatch, next_id - from));
      for (const auto& [id, v] : now) {
        if (auto it = durable.find(id); it != durable.end()) {
          ASSERT_EQ(v, it->second) << "user " << id << " after restart " << kills;
        }
      }
    }
    ASSERT_EQ(statuses(d, next_id, 1).at(next_id).last_seen_ms, std::nullopt);
    if (HasFatalFailure()) return;
  }
  EXPECT_GE(kills, 20);
  EXPECT_GE(inside_snapshot, 5) << "too few kills landed inside a snapshot to test it";
  std::cout << kills << " kills, " << inside_snapshot << " inside a snapshot\n";
}

TEST(PersistDaemon, MembersComeBackAndANodeWithoutSeedsRejoinsThroughThem) {
  // a is the seed of b and c; a itself has no seeds, so after a restart only its persisted
  // members can bring it back into the cluster (b and c see it as left, and do not look for
  // it).
  DaemonProcess a({{"node.name", "a"}, {"persist.presence_interval", "1h"}});
  ASSERT_TRUE(a.start()) << a.failure_reason();
  DaemonProcess b({{"node.name", "b"}, {"cluster.seeds", "[" + a.cluster_address() + "]"}});
  DaemonProcess c({{"node.name", "c"}, {"cluster.seeds", "[" + a.cluster_address() + "]"}});
  ASSERT_TRUE(b.start()) << b.failure_reason();
  ASSERT_TRUE(c.start()) << c.failure_reason();
  auto state_of = [](const DaemonProcess& at,
                     const std::string& name) -> std::pair<std::string, std::int64_t> {
    auto r = http_tcp(at.port(), "GET", "/v1/members/" + name);
    if (r.status != 200) return {"", -1};
    auto o = boost::json::parse(r.body).as_object();
    return {std::string(o.at("state").as_string()), o.at("incarnation").to_number<std::int64_t>()};
  };
  auto everyone_alive = [&] {
    for (const auto* at : {&a, &b, &c}) {
      for (const char* n : {"a", "b", "c"}) {
        if (state_of(*at, n).first != "alive") return false;
      }
    }
    return true;
  };
  ASSERT_TRUE(eventually(everyone_alive, 10s));
  const auto incarnation = state_of(b, "a").second;

  a.signal(SIGTERM);
  ASSERT_EQ(a.wait_exit(), 0) << a.log();
  ASSERT_TRUE(eventually([&] { return state_of(b, "a").first == "left"; }, 5s));
  ASSERT_TRUE(a.start()) << a.failure_reason();
  EXPECT_NE(a.log().find("restored 2 members"), std::string::npos) << a.log();
  ASSERT_TRUE(eventually(everyone_alive, 10s)) << a.log();
  const auto after_restart = state_of(b, "a").second;
  EXPECT_GT(after_restart, incarnation);

  // A refutation is persisted as it happens (a's snapshots are an hour apart): stall a
  // until b suspects it, let it refute, and kill it -9 once the write is logged; it must
  // come back above the refuted incarnation, not at it.
  a.signal(SIGSTOP);
  const bool suspected = eventually([&] { return state_of(b, "a").first != "alive"; }, 10s);
  a.signal(SIGCONT);
  ASSERT_TRUE(suspected) << "b:\n" << b.log() << "\na:\n" << a.log();
  std::int64_t refuted = 0;
  ASSERT_TRUE(eventually(
      [&] {
        const auto [state, inc] = state_of(b, "a");
        refuted = inc;
        return state == "alive" && inc > after_restart;
      },
      10s))
      << a.log();
  ASSERT_TRUE(a.wait_log("persist: membership written: incarnation " + std::to_string(refuted)))
      << a.log();
  a.signal(SIGKILL);
  ASSERT_EQ(a.wait_exit(), -SIGKILL);
  ASSERT_TRUE(a.start()) << a.failure_reason();
  ASSERT_TRUE(eventually(everyone_alive, 10s)) << a.log();
  EXPECT_EQ(state_of(c, "a").second, refuted + 1) << a.log();
}

// ---- bad data directories ------------------------------------------------------------

// Runs the daemon to its exit (it must not start) and returns the exit code and log.
struct Refusal {
  std::optional<int> exit_code;
  std::string log;
};
Refusal refused(DaemonProcess& d) {
  EXPECT_FALSE(d.start(10s)) << "the daemon started; log:\n" << d.log();
  return {d.wait_exit(5s), d.log()};
}

// Every file under `dir` with its bytes: to show a refused start changed nothing.
std::map<std::string, std::string> contents(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().filename() != "heartbeatd.lock") {
      out[e.path().string()] = read_file(e.path().string());
    }
  }
  return out;
}

// Puts the daemon in a user and mount namespace of its own with a tmpfs at `mount_point`
// (size in KiB), prepared by `prepare` (shell). Skips the test where namespaces are not
// available.
bool wrap_in_tmpfs(DaemonProcess& d, const std::string& mount_point, int kib,
                   const std::string& prepare) {
  if (std::system("unshare -rm true >/dev/null 2>&1") != 0) return false;
  fs::create_directories(mount_point);
  d.wrapper() = {"unshare", "-rm", "sh", "-c",
                 "mount -t tmpfs -o size=" + std::to_string(kib) + "k tmpfs '" + mount_point +
                     "' && " + prepare + " && exec \"$0\" \"$@\""};
  return true;
}

TEST(PersistDaemon, MissingParentExits3NamingIt) {
  TempDir scratch;
  DaemonProcess d(DaemonProcess::Keys{{"node.data_dir", scratch.file("no/such/dir")}});
  auto r = refused(d);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.log.find("node.data_dir " + scratch.file("no/such/dir") + ": its parent directory " +
                       scratch.file("no/such") + " does not exist"),
            std::string::npos)
      << r.log;
  EXPECT_FALSE(fs::exists(scratch.file("no")));
}

TEST(PersistDaemon, ReadOnlyDirectoryExits3) {
  TempDir scratch;
  const auto mnt = scratch.file("ro");
  DaemonProcess d(DaemonProcess::Keys{{"node.data_dir", mnt + "/data"}});
  if (!wrap_in_tmpfs(d, mnt, 1024,
                     "mkdir '" + mnt + "/data' && mount -o remount,ro '" + mnt + "'")) {
    GTEST_SKIP() << "no user namespaces here (unshare -rm)";
  }
  auto r = refused(d);
  EXPECT_EQ(r.exit_code, 3) << r.log;
  EXPECT_NE(r.log.find("node.data_dir " + mnt + "/data: not writable: Read-only file system"),
            std::string::npos)
      << r.log;
}

TEST(PersistDaemon, FullDiskAtStartExits3) {
  TempDir scratch;
  const auto mnt = scratch.file("full");
  DaemonProcess d(DaemonProcess::Keys{{"node.data_dir", mnt + "/data"}});
  if (!wrap_in_tmpfs(d, mnt, 256,
                     "(dd if=/dev/zero of='" + mnt + "/filler' bs=4k 2>/dev/null || true)")) {
    GTEST_SKIP() << "no user namespaces here (unshare -rm)";
  }
  auto r = refused(d);
  EXPECT_EQ(r.exit_code, 3) << r.log;
  EXPECT_NE(r.log.find("node.data_dir " + mnt + "/data"), std::string::npos) << r.log;
  EXPECT_NE(r.log.find("No space left on device"), std::string::npos) << r.log;
}

// The same with a database already there: RocksDB itself finds no room to open it.
TEST(PersistDaemon, FullDiskWithAnExistingDatabaseExits3) {
  DaemonProcess first;
  ASSERT_TRUE(first.start()) << first.failure_reason();
  heartbeat(first, 1, 100);
  first.signal(SIGTERM);
  ASSERT_EQ(first.wait_exit(), 0);
  TempDir scratch;
  const auto mnt = scratch.file("full");
  DaemonProcess d(DaemonProcess::Keys{{"node.data_dir", mnt + "/data"}});
  if (!wrap_in_tmpfs(d, mnt, 1024,
                     "cp -a '" + first.dir().file("data") + "' '" + mnt + "/data' && (dd " +
                         "if=/dev/zero of='" + mnt + "/filler' bs=4k 2>/dev/null || true)")) {
    GTEST_SKIP() << "no user namespaces here (unshare -rm)";
  }
  auto r = refused(d);
  EXPECT_EQ(r.exit_code, 3) << r.log;
  EXPECT_NE(r.log.find("node.data_dir " + mnt +
                       "/data/db: cannot open the database for "
                       "writing: the disk is full"),
            std::string::npos)
      << r.log;
}

// A disk that fills up while the daemon runs: snapshots fail, the daemon says so in
// /v1/health and goes on serving, and recovers by itself once there is room again.
TEST(PersistDaemon, FullDiskWhileRunningIsReportedAndRecoveredFrom) {
  TempDir scratch;
  const auto mnt = scratch.file("fills");
  DaemonProcess d({{"node.data_dir", mnt + "/data"}, {"persist.presence_interval", "100ms"}});
  if (!wrap_in_tmpfs(d, mnt, 32 << 10, "true")) GTEST_SKIP() << "no user namespaces here";
  ASSERT_TRUE(d.start()) << d.failure_reason();
  heartbeat(d, 1, 1000);
  ASSERT_TRUE(eventually([&] { return last_snapshot_ms(d).has_value(); }));
  // Fill the daemon's tmpfs through its view of the file system.
  const std::string filler = "/proc/" + std::to_string(d.pid()) + "/root" + mnt + "/filler";
  ASSERT_EQ(std::system(
                ("dd if=/dev/zero of='" + filler + "' bs=64k 2>/dev/null; test -f '" + filler + "'")
                    .c_str()),
            0);
  heartbeat(d, 5000, 5000);
  ASSERT_TRUE(eventually(
      [&] {
        auto p = persistence(d);
        return !p.empty() && p.at("status").as_string() == "degraded" &&
               !p.at("last_error").is_null();
      },
      10s))
      << d.log();
  const auto p = persistence(d);
  const std::string error(p.at("last_error").as_string());
  EXPECT_NE(error.find("No space left on device"), std::string::npos) << error;
  EXPECT_NE(error.find(mnt + "/data/db"), std::string::npos) << error;
  EXPECT_EQ(counts(d).second, 6000);  // still serving
  fs::remove(filler);
  const auto freed = unix_ms_now();
  ASSERT_TRUE(eventually(
      [&] {
        auto q = persistence(d);
        return !q.empty() && q.at("status").as_string() == "ok" &&
               last_snapshot_ms(d).value_or(0) > freed &&
               q.at("last_snapshot_users").to_number<std::int64_t>() == 6000;
      },
      10s))
      << d.log();
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait_exit(), 0) << d.log();
}

TEST(PersistDaemon, ASecondDaemonOnTheSameDirectoryExits4NamingTheFirst) {
  DaemonProcess first;
  ASSERT_TRUE(first.start()) << first.failure_reason();
  heartbeat(first, 1, 10);
  DaemonProcess second(DaemonProcess::Keys{{"node.data_dir", first.dir().file("data")}});
  auto r = refused(second);
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_NE(r.log.find("node.data_dir " + first.dir().file("data") +
                       ": in use by another heartbeatd (pid " + std::to_string(first.pid()) + ";"),
            std::string::npos)
      << r.log;
  // The first one is unaffected.
  EXPECT_EQ(counts(first).second, 10);
}

// Stops a daemon that wrote some state, so the test can damage it.
std::string stopped_with_state(DaemonProcess& d) {
  EXPECT_TRUE(d.start()) << d.failure_reason();
  heartbeat(d, 1, 3000);
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait_exit(), 0);
  return d.dir().file("data");
}

TEST(PersistDaemon, DamagedFilesExit5AndAreLeftAsTheyWere) {
  DaemonProcess d;
  const auto data = stopped_with_state(d);
  // Damage the middle of every table file (where the snapshot's blocks are).
  for (const auto& e : fs::directory_iterator(data + "/db")) {
    if (e.path().extension() != ".sst") continue;
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    const auto size = fs::file_size(e.path());
    f.seekp(static_cast<std::streamoff>(size / 4));
    const std::string junk(size / 4, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  const auto before = contents(data);
  auto r = refused(d);
  EXPECT_EQ(r.exit_code, 5) << r.log;
  EXPECT_NE(r.log.find("node.data_dir " + data + "/db"), std::string::npos) << r.log;
  EXPECT_NE(r.log.find("does not start over data it cannot read"), std::string::npos) << r.log;
  EXPECT_EQ(contents(data), before);
}

TEST(PersistDaemon, AMissingCurrentFileExits5) {
  DaemonProcess d;
  const auto data = stopped_with_state(d);
  fs::remove(data + "/db/CURRENT");
  const auto before = contents(data);
  auto r = refused(d);
  EXPECT_EQ(r.exit_code, 5) << r.log;
  EXPECT_NE(r.log.find(data + "/db: holds files but no CURRENT file"), std::string::npos) << r.log;
  EXPECT_EQ(contents(data), before);
}

TEST(PersistDaemon, ANewerFormatExits6AndIsLeftAsItWas) {
  DaemonProcess d;
  const auto data = stopped_with_state(d);
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), data + "/db", &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), std::string(persist::kKeyFormat),
                        persist::encode_format(persist::kFormatVersion + 1))
                    .ok());
  }
  const auto before = contents(data);
  auto r = refused(d);
  EXPECT_EQ(r.exit_code, 6) << r.log;
  EXPECT_NE(r.log.find("written in format " + std::to_string(persist::kFormatVersion + 1) +
                       " by a newer heartbeatd"),
            std::string::npos)
      << r.log;
  EXPECT_EQ(contents(data), before);
}

}  // namespace
}  // namespace heartbeatd::test
