// PresenceTable on a manual clock: the timeout boundary to the millisecond, logout, forget,
// limits, timeout changes, 64-bit ids, memory per user, a model-checked random run, and
// concurrent use from several threads (also run under ThreadSanitizer by scripts/test).
#include "membership/presence_table.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <thread>
#include <vector>

#include "tests/support/test_util.h"

namespace heartbeatd::membership {
namespace {

using namespace std::chrono_literals;

struct Fixture {
  explicit Fixture(PresenceOptions o = {}) : table(o, clock.now()) {}
  ManualClock clock;
  PresenceTable table;
  bool online(UserId id) { return table.status(id, clock.now()).online; }
  std::size_t online_count() { return table.counts(clock.now()).online; }
};

TEST(PresenceTable, NeverSeenIsOfflineWithoutLastSeen) {
  Fixture f;
  const auto st = f.table.status(42, f.clock.now());
  EXPECT_FALSE(st.online);
  EXPECT_FALSE(st.last_seen);
  EXPECT_EQ(f.table.counts(f.clock.now()).tracked, 0u);
}

TEST(PresenceTable, OnlineUntilExactlyTheTimeout) {
  Fixture f;
  f.clock.advance(5s);
  const TimePoint t0 = f.clock.now();
  ASSERT_EQ(f.table.heartbeat(7, t0), PresenceTable::HeartbeatResult::ok);
  EXPECT_TRUE(f.online(7));
  EXPECT_EQ(f.table.status(7, t0).last_seen, t0);
  EXPECT_EQ(f.online_count(), 1u);

  f.clock.set(t0 + 30s - 1ms);
  EXPECT_TRUE(f.online(7));
  EXPECT_EQ(f.online_count(), 1u);
  f.clock.set(t0 + 30s);
  EXPECT_FALSE(f.online(7)) << "exactly at the timeout the user is offline";
  EXPECT_EQ(f.online_count(), 0u) << "and the count agrees at the same millisecond";
  EXPECT_EQ(f.table.status(7, f.clock.now()).last_seen, t0) << "last-seen survives";
  f.clock.advance(1ms);
  EXPECT_FALSE(f.online(7));
  EXPECT_EQ(f.table.counts(f.clock.now()).tracked, 1u);
}

// A heartbeat stamped with a time the window has already left (its thread read the clock,
// then stalled for longer than the timeout) is not online, and must not be counted as
// online either: neither in a millisecond advance() expired with users in it, nor in one it
// expired empty, nor in one set_timeout() left behind. (CountStaysExactUnderConcurrentUse
// caught these as a count one too high, rarely, under load.)
TEST(PresenceTable, ALateHeartbeatForAnExpiredMillisecondIsNotCounted) {
  Fixture f({.timeout = 1s, .forget_after = 1h});
  const auto t0 = f.clock.now();
  f.table.heartbeat(1, t0 + 3500ms);  // counted, then expired below
  f.table.advance(t0 + 5s);           // the window is (t0+4s, t0+5s]
  EXPECT_EQ(f.table.counts(t0 + 5s).online, 0u);
  f.table.heartbeat(2, t0 + 3500ms);  // late, into a millisecond expired with a user in it
  f.table.heartbeat(3, t0 + 3700ms);  // late, into a millisecond expired empty
  EXPECT_FALSE(f.table.status(2, t0 + 5s).online);
  EXPECT_FALSE(f.table.status(3, t0 + 5s).online);
  EXPECT_EQ(f.table.counts(t0 + 5s).online, 0u);
  f.table.set_timeout(2s, t0 + 6s);   // the window is (t0+4s, t0+6s]
  f.table.heartbeat(4, t0 + 3900ms);  // late, before the new window
  EXPECT_EQ(f.table.counts(t0 + 6s).online, 0u);
  f.table.heartbeat(5, t0 + 5s);  // inside it: counted
  EXPECT_EQ(f.table.counts(t0 + 6s).online, 1u);
  EXPECT_EQ(f.table.counts(t0 + 7s).online, 0u);
}

// The daemon's table: an epoch a day before the start (restored users keep their last-seen
// times), its window starting at the start. A late heartbeat from before the start is not
// counted, and the count follows heartbeats as in a table whose epoch is now. (Without
// `now`, the first advance walked the whole hour-long ring: seconds under TSan, with SIGTERM
// waiting behind it on the daemon's strand.)
TEST(PresenceTable, AnEpochLongBeforeTheStartCountsFromTheStart) {
  ManualClock clock;
  const TimePoint start = clock.now() + 25h;
  PresenceTable table({.timeout = 1h, .forget_after = 24h}, clock.now(), start);
  table.heartbeat(1, start - 1h);  // as old as the timeout at the start: never online
  EXPECT_EQ(table.counts(start).online, 0u);
  table.heartbeat(2, start - 1h + 1ms);  // online for one more millisecond
  table.heartbeat(3, start + 10ms);
  EXPECT_EQ(table.counts(start).online, 2u);
  EXPECT_EQ(table.counts(start + 1ms).online, 1u);
  EXPECT_EQ(table.counts(start + 1h + 9ms).online, 1u);
  EXPECT_EQ(table.counts(start + 1h + 10ms).online, 0u);
}

TEST(PresenceTable, HeartbeatExtendsOnlineAndCountsOnce) {
  Fixture f;
  f.table.heartbeat(1, f.clock.now());
  for (int i = 0; i < 10; ++i) {
    f.clock.advance(20s);
    f.table.heartbeat(1, f.clock.now());
    EXPECT_EQ(f.online_count(), 1u);
  }
  f.clock.advance(30s);
  EXPECT_EQ(f.online_count(), 0u);
}

TEST(PresenceTable, SubMillisecondTimesFloorToTheTick) {
  Fixture f;
  const TimePoint t0 = f.clock.now() + 10ms + 700us;
  f.table.heartbeat(1, t0);
  EXPECT_EQ(f.table.status(1, t0).last_seen, f.clock.now() + 10ms);
}

TEST(PresenceTable, LogoutIsOfflineAtOnceAndKeepsLastSeen) {
  Fixture f;
  const TimePoint t0 = f.clock.now();
  f.table.heartbeat(5, t0);
  f.table.heartbeat(6, t0);
  f.clock.advance(1s);
  EXPECT_TRUE(f.table.logout(5, f.clock.now()));
  EXPECT_FALSE(f.online(5));
  EXPECT_EQ(f.table.status(5, f.clock.now()).last_seen, t0);
  EXPECT_EQ(f.online_count(), 1u);
  EXPECT_TRUE(f.table.logout(5, f.clock.now())) << "twice is harmless";
  EXPECT_EQ(f.online_count(), 1u);
  EXPECT_FALSE(f.table.logout(99, f.clock.now())) << "unknown user";
  f.table.heartbeat(5, f.clock.now());
  EXPECT_TRUE(f.online(5)) << "a heartbeat after logout brings the user back";
  EXPECT_EQ(f.online_count(), 2u);
}

TEST(PresenceTable, ForgottenAfterForgetAfterAndSlotReused) {
  Fixture f({.timeout = 30s, .forget_after = 1h, .max_users = 10});
  f.table.heartbeat(1, f.clock.now());
  f.clock.advance(1h - 1ms);
  EXPECT_TRUE(f.table.status(1, f.clock.now()).last_seen);
  f.clock.advance(1ms);
  EXPECT_FALSE(f.table.status(1, f.clock.now()).last_seen) << "forgotten before any sweep";
  EXPECT_EQ(f.table.sweep(f.clock.now(), PresenceTable::kShards), 1u);
  EXPECT_EQ(f.table.counts(f.clock.now()).tracked, 0u);
  EXPECT_EQ(f.table.heartbeat(1, f.clock.now()), PresenceTable::HeartbeatResult::ok);
}

TEST(PresenceTable, MaxUsersRefusesNewUsersOnly) {
  Fixture f({.timeout = 30s, .forget_after = 24h, .max_users = 3});
  for (UserId id : {1, 2, 3})
    ASSERT_EQ(f.table.heartbeat(id, f.clock.now()), PresenceTable::HeartbeatResult::ok);
  EXPECT_EQ(f.table.heartbeat(4, f.clock.now()), PresenceTable::HeartbeatResult::table_full);
  EXPECT_EQ(f.table.heartbeat(2, f.clock.now()), PresenceTable::HeartbeatResult::ok);
  EXPECT_FALSE(f.table.status(4, f.clock.now()).last_seen);
  EXPECT_EQ(f.table.counts(f.clock.now()).tracked, 3u);
}

TEST(PresenceTable, DuplicatesInABatchCountOnce) {
  Fixture f;
  f.table.heartbeat(2, f.clock.now());
  f.table.logout(2, f.clock.now());
  const std::vector<UserId> batch{1, 2, 3, 2, 1, 1ULL << 40, 1ULL << 40};
  EXPECT_EQ(f.table.heartbeat_batch(batch, f.clock.now()).accepted, batch.size());
  EXPECT_EQ(f.online_count(), 4u);
  f.clock.advance(1ms);
  EXPECT_EQ(f.table.heartbeat_batch(batch, f.clock.now()).accepted, batch.size());
  EXPECT_EQ(f.online_count(), 4u);
  f.clock.advance(30s);
  EXPECT_EQ(f.online_count(), 0u);
}

TEST(PresenceTable, EmptyBatchesDoNothing) {
  Fixture f;
  EXPECT_EQ(f.table.heartbeat_batch({}, f.clock.now()).accepted, 0u);
  f.table.status_batch({}, f.clock.now(), {});
  f.table.online_batch({}, f.clock.now(), {});
  EXPECT_EQ(f.table.counts(f.clock.now()).tracked, 0u);
}

TEST(PresenceTable, BatchThatDoesNotFitChangesNothing) {
  Fixture f({.timeout = 30s, .forget_after = 24h, .max_users = 4});
  f.table.heartbeat(1, f.clock.now());
  f.clock.advance(1s);
  const std::vector<UserId> batch{1, 2, 3, 4, 5};
  const auto r = f.table.heartbeat_batch(batch, f.clock.now());
  EXPECT_EQ(r.accepted, 0u);
  EXPECT_EQ(r.rejected_new, 1u);
  EXPECT_EQ(f.table.counts(f.clock.now()).tracked, 1u);
  EXPECT_EQ(f.table.status(1, f.clock.now()).last_seen, f.clock.now() - 1s) << "untouched";
  const std::vector<UserId> fits{1, 2, 3, 4};
  EXPECT_EQ(f.table.heartbeat_batch(fits, f.clock.now()).accepted, 4u);
  EXPECT_EQ(f.online_count(), 4u);
}

TEST(PresenceTable, WideIdsLiveBesideNarrowOnes) {
  Fixture f;
  const UserId big = std::numeric_limits<UserId>::max();
  const UserId narrow_twin = big & 0xffffffffu;  // same low 32 bits
  f.table.heartbeat(big, f.clock.now());
  EXPECT_TRUE(f.online(big));
  EXPECT_FALSE(f.online(narrow_twin));
  f.table.heartbeat(narrow_twin, f.clock.now());
  f.table.heartbeat(0, f.clock.now());
  EXPECT_EQ(f.table.counts(f.clock.now()).tracked, 3u);
  EXPECT_EQ(f.online_count(), 3u);
}

// export_shard copies a shard's tables into per-thread buffers under the lock and walks the
// copy: one thread exporting a large table, then a smaller one, then an empty one, must see
// exactly each table's own users (nothing left over from the previous copy).
TEST(PresenceTable, ExportShardSeesExactlyEachTablesUsers) {
  const auto export_all = [](PresenceTable& table, TimePoint now) {
    std::map<UserId, PresenceTable::Record> out;
    std::vector<PresenceTable::Record> shard;
    for (std::size_t i = 0; i < PresenceTable::kShards; ++i) {
      shard.clear();
      table.export_shard(i, now, shard);
      for (const auto& r : shard) EXPECT_TRUE(out.emplace(r.id, r).second) << "twice: " << r.id;
    }
    return out;
  };
  Fixture large({.timeout = 30s, .forget_after = 1h, .max_users = 100000});
  const TimePoint t0 = large.clock.now();
  for (UserId id = 0; id < 50000; ++id) large.table.heartbeat(id, t0);
  large.table.heartbeat(UserId{1} << 40, t0);
  large.clock.advance(1h - 1s);
  for (UserId id = 0; id < 50000; id += 2) large.table.heartbeat(id, large.clock.now());
  large.table.logout(4, large.clock.now());
  large.clock.advance(1s);  // odd ids and the wide one: last seen 1 h ago, forgotten
  const auto big = export_all(large.table, large.clock.now());
  ASSERT_EQ(big.size(), 25000u);
  for (const auto& [id, r] : big) {
    EXPECT_EQ(id % 2, 0u);
    EXPECT_EQ(r.last_seen, large.clock.now() - 1s);
    EXPECT_EQ(r.logged_out, id == 4) << id;
  }

  Fixture small;
  small.table.heartbeat(7, small.clock.now());
  small.table.heartbeat(UserId{1} << 40, small.clock.now());
  const auto few = export_all(small.table, small.clock.now());
  ASSERT_EQ(few.size(), 2u);
  EXPECT_TRUE(few.count(7) && few.count(UserId{1} << 40));

  Fixture empty;
  EXPECT_TRUE(export_all(empty.table, empty.clock.now()).empty());
}

TEST(PresenceTable, NewTimeoutAppliesToEveryoneAtOnce) {
  Fixture f;
  f.table.heartbeat(1, f.clock.now());
  f.clock.advance(20s);
  f.table.heartbeat(2, f.clock.now());
  f.clock.advance(5s);  // ages: 25s and 5s
  EXPECT_EQ(f.online_count(), 2u);
  f.table.set_timeout(10s, f.clock.now());
  EXPECT_FALSE(f.online(1));
  EXPECT_TRUE(f.online(2));
  EXPECT_EQ(f.online_count(), 1u);
  f.table.set_timeout(60s, f.clock.now());
  EXPECT_TRUE(f.online(1)) << "a longer timeout brings a recent user back online";
  EXPECT_EQ(f.online_count(), 2u);
  f.clock.advance(35s);  // ages 60s and 40s
  EXPECT_EQ(f.online_count(), 1u);
}

TEST(PresenceTable, LongIdleGapExpiresEverything) {
  Fixture f;
  for (UserId id = 0; id < 100; ++id) f.table.heartbeat(id, f.clock.now());
  f.clock.advance(10h);
  EXPECT_EQ(f.online_count(), 0u);
  f.table.heartbeat(1, f.clock.now());
  EXPECT_EQ(f.online_count(), 1u);
}

TEST(PresenceTable, RejectsUnsupportedTimes) {
  ManualClock clock;
  EXPECT_THROW(PresenceTable({.timeout = 2h, .forget_after = 24h}, clock.now()),
               std::invalid_argument);
  EXPECT_THROW(PresenceTable({.timeout = 30s, .forget_after = 10s}, clock.now()),
               std::invalid_argument);
  EXPECT_THROW(PresenceTable({.timeout = 30s, .forget_after = 24h * 21}, clock.now()),
               std::invalid_argument);
}

TEST(PresenceTable, ManyUsersAllFoundAndUnderTenBytesEach) {
  Fixture f;
  constexpr UserId kUsers = 1'000'000;
  for (UserId id = 0; id < kUsers; ++id)
    f.table.heartbeat(id * 4001, f.clock.now());  // all below 2^32
  for (UserId id = 0; id < kUsers; id += 997) EXPECT_TRUE(f.online(id * 4001)) << id;
  EXPECT_FALSE(f.online(1));
  EXPECT_EQ(f.table.counts(f.clock.now()).tracked, kUsers);
  const double per_user = static_cast<double>(f.table.memory_bytes()) / kUsers;
  EXPECT_LE(per_user, 10.0);
  RecordProperty("bytes_per_user", std::to_string(per_user));
}

TEST(PresenceTable, SixtyFourBitIdsUnderSixteenBytesEach) {
  Fixture f;
  auto rng = test::seeded_rng();
  constexpr std::size_t kUsers = 1'000'000;
  for (std::size_t i = 0; i < kUsers; ++i) f.table.heartbeat(rng() | (1ULL << 63), f.clock.now());
  EXPECT_LE(static_cast<double>(f.table.memory_bytes()) / kUsers, 16.0);
}

TEST(PresenceTable, BatchOperationsMatchOneByOne) {
  auto rng = test::seeded_rng();
  Fixture f;
  std::vector<UserId> ids;
  for (int i = 0; i < 3000; ++i) ids.push_back(rng() % 2 ? rng() % 5000 : rng());
  ASSERT_EQ(f.table.heartbeat_batch(std::span(ids).first(1500), f.clock.now()).accepted, 1500u);
  f.clock.advance(10s);
  f.table.logout(ids[3], f.clock.now());
  std::vector<PresenceTable::Status> out(ids.size());
  f.table.status_batch(ids, f.clock.now(), out);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const auto one = f.table.status(ids[i], f.clock.now());
    ASSERT_EQ(out[i].online, one.online) << i;
    ASSERT_EQ(out[i].last_seen, one.last_seen) << i;
    if (i < 1500 && ids[i] != ids[3]) {
      EXPECT_TRUE(out[i].online) << i;
    }
  }
  // online_batch: the same verdicts as bits, request order; the unused high bits stay 0.
  std::vector<std::uint8_t> bits((ids.size() + 7) / 8 + 1, 0);
  f.table.online_batch(std::span(ids).first(ids.size() - 3), f.clock.now(), bits);
  for (std::size_t i = 0; i < ids.size() - 3; ++i) {
    ASSERT_EQ((bits[i / 8] >> (i % 8)) & 1, out[i].online ? 1 : 0) << i;
  }
  EXPECT_EQ(bits[(ids.size() - 3) / 8] >> ((ids.size() - 3) % 8), 0) << "bits past n";
  EXPECT_EQ(bits.back(), 0);
}

// Random operations against a plain map model: every status and count must agree.
TEST(PresenceTable, AgreesWithAModelUnderRandomOperations) {
  auto rng = test::seeded_rng();
  PresenceOptions o{.timeout = 2s, .forget_after = 5s, .max_users = 400};
  Fixture f(o);
  struct Model {
    TimePoint seen;
    bool out;
  };
  std::map<UserId, Model> model;
  const TimePoint epoch = f.clock.now();
  std::uniform_int_distribution<UserId> user(0, 500);
  std::uniform_int_distribution<int> op(0, 9), step_us(0, 400'000);
  for (int i = 0; i < 20000; ++i) {
    f.clock.advance(std::chrono::microseconds(step_us(rng)));
    const TimePoint now = f.clock.now();
    const TimePoint tick = epoch + std::chrono::floor<std::chrono::milliseconds>(now - epoch);
    // Forget what the model says is forgotten, as sweep() would.
    for (auto it = model.begin(); it != model.end();) {
      it = tick - it->second.seen >= o.forget_after ? model.erase(it) : std::next(it);
    }
    if (op(rng) == 0) f.table.sweep(now, PresenceTable::kShards);
    const UserId id = user(rng);
    switch (op(rng)) {
      case 0:
        f.table.logout(id, now);
        if (model.count(id)) model[id].out = true;
        break;
      case 1: {
        // A small batch, duplicates likely; only when it surely fits, to keep the model simple.
        const std::vector<UserId> batch{id, user(rng) % 8, id};
        if (f.table.counts(now).tracked + batch.size() <= o.max_users) {
          ASSERT_EQ(f.table.heartbeat_batch(batch, now).accepted, batch.size());
          for (UserId b : batch) model[b] = {tick, false};
        }
        break;
      }
      default:
        if (f.table.heartbeat(id, now) == PresenceTable::HeartbeatResult::ok) {
          model[id] = {tick, false};
        } else {
          EXPECT_FALSE(model.count(id));
        }
    }
    std::size_t online = 0;
    for (const auto& [uid, m] : model) online += !m.out && tick - m.seen < o.timeout;
    ASSERT_EQ(f.table.counts(now).online, online) << "step " << i;
    const UserId probe = user(rng);
    const auto st = f.table.status(probe, now);
    const auto it = model.find(probe);
    ASSERT_EQ(st.last_seen.has_value(), it != model.end()) << probe;
    if (it != model.end()) {
      ASSERT_EQ(*st.last_seen, it->second.seen);
      ASSERT_EQ(st.online, !it->second.out && tick - it->second.seen < o.timeout);
    }
    if (i % 97 == 0) {
      // Every user at once as bits: logged out, timed out and forgotten (swept or not) are 0.
      std::vector<UserId> all(501);
      for (UserId u = 0; u <= 500; ++u) all[u] = u;
      std::vector<std::uint8_t> bits((all.size() + 7) / 8, 0);
      f.table.online_batch(all, now, bits);
      for (UserId u = 0; u <= 500; ++u) {
        const auto m = model.find(u);
        const bool want = m != model.end() && !m->second.out && tick - m->second.seen < o.timeout;
        ASSERT_EQ((bits[u / 8] >> (u % 8)) & 1, want ? 1 : 0) << "step " << i << " user " << u;
      }
    }
  }
}

// Several threads at once: heartbeats, logouts, lookups, counts, sweeps; at the end the
// maintained count equals the users that status() calls online.
TEST(PresenceTableConcurrency, CountStaysExactUnderConcurrentUse) {
  Fixture f({.timeout = 1s, .forget_after = 3s, .max_users = 1'000'000});
  constexpr int kThreads = 4;
  constexpr UserId kUsers = 5000;
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      for (int i = 0; i < 20000; ++i) {
        const UserId id = rng() % kUsers | (t % 2 ? (1ULL << 40) : 0);
        const TimePoint now = f.clock.now();
        switch (rng() % 8) {
          case 0:
            f.table.logout(id, now);
            break;
          case 1:
            (void)f.table.status(id, now);
            break;
          case 2:
            (void)f.table.counts(now);
            break;
          case 3:
            f.table.sweep(now, 2);
            break;
          case 4: {  // a batch spans shards: set_timeout() may run between two of them
            const UserId batch[] = {id, id ^ 1, id ^ 2, id ^ 3, id ^ 4, id ^ 5, id ^ 6, id ^ 7};
            f.table.heartbeat_batch(batch, now);
            break;
          }
          default:
            f.table.heartbeat(id, now);
        }
      }
    });
  }
  std::thread ticker([&] {
    for (int n = 0; !stop; ++n) {
      f.clock.advance(1ms);
      f.table.advance(f.clock.now());
      if (n % 500 == 0) f.table.set_timeout(n % 10000 ? 2s : 1s, f.clock.now());
      std::this_thread::yield();
    }
  });
  for (auto& th : threads) th.join();
  stop = true;
  ticker.join();

  const TimePoint now = f.clock.now();
  std::size_t online = 0;
  for (UserId id = 0; id < kUsers; ++id) {
    online += f.table.status(id, now).online + f.table.status(id | (1ULL << 40), now).online;
  }
  EXPECT_EQ(f.table.counts(now).online, online);
}

}  // namespace
}  // namespace heartbeatd::membership
