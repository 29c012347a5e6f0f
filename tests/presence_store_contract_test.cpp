// The PresenceStore contract (transport/presence/store.h), one suite run against every store:
// the embedded table, a standalone Redis, a Redis Cluster of 3 masters and 3 replicas (real
// redis-server processes on loopback), and DynamoDB (dynalite, an implementation no one here
// wrote, on loopback). Every store reads its clocks through the test: the table a manual
// monotonic clock and a manual wall clock moved together, Redis and DynamoDB a manual wall
// clock, so every boundary is tested to the millisecond without sleeping. Completions
// and change reports are awaited with a deadline (a remote store answers from its threads).
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "base/wall_clock.h"
#include "tests/support/dynalite_server.h"
#include "tests/support/redis_cluster.h"
#include "tests/support/redis_server.h"
#include "transport/presence/dynamodb_store.h"
#include "transport/presence/memory_store.h"
#include "transport/presence/redis_store.h"

namespace heartbeatd::test {
namespace {

using namespace std::chrono_literals;
using transport::PresenceStore;
using transport::StoreFailure;
using transport::UserChange;
using transport::UserCounts;
using transport::UserStatus;

constexpr auto kTimeout = 1s;
constexpr auto kForgetAfter = 1h;
constexpr auto kWait = 10s;  // bound on any one answer or change report

enum class Kind { memory, redis, redis_cluster, dynamodb };

// A store, its clocks, and what it needs to run (servers, threads).
class StoreUnderTest {
 public:
  explicit StoreUnderTest(Kind kind) {
    if (kind == Kind::memory) {
      memory_ = std::make_unique<transport::MemoryPresenceStore>(
          threads_.io, membership::PresenceOptions{kTimeout, kForgetAfter, 1000}, mono_,
          std::make_shared<std::atomic<std::int64_t>>(0), wall_);
      store_ = memory_.get();
      return;
    }
    if (kind == Kind::dynamodb) {
      start_dynamodb();
      return;
    }
    if (RedisServer::binary().empty()) {
      failure_ = "redis-server is not installed (scripts/setup)";
      return;
    }
    transport::redis::PresenceOptions o;
    if (kind == Kind::redis) {
      server_ = std::make_unique<RedisServer>();
      if (!server_->start()) failure_ = "redis-server did not start";
      o.nodes = {{"127.0.0.1", server_->port()}};
    } else {
      cluster_ = std::make_unique<RedisCluster>(3, 1);
      if (!cluster_->start()) failure_ = "Redis Cluster: " + cluster_->failure_reason();
      for (const auto port : cluster_->master_ports()) o.nodes.push_back({"127.0.0.1", port});
      o.cluster = true;
    }
    o.shards = 8;
    o.dedup_window = 0ms;  // every heartbeat written: the contract is about the store
    o.timeout = kTimeout;
    o.forget_after = kForgetAfter;
    redis_ = std::make_unique<transport::RedisPresenceStore>(threads_.io, std::move(o),
                                                             [this] { return wall_.unix_us(); });
    store_ = redis_.get();
  }
  ~StoreUnderTest() {
    if (store_) store_->stop();
  }

  void start_dynamodb() {
    dynalite_ = std::make_unique<DynaliteServer>();
    if (!dynalite_->start()) {
      failure_ = "dynalite did not start: " + DynaliteServer::problem() + dynalite_->log();
      return;
    }
    transport::DynamoPresenceOptions o;
    o.table = "contract";
    o.client.region = "us-east-1";
    std::string why;
    o.client.pool.endpoint = transport::aws::Endpoint::parse(dynalite_->endpoint(), &why);
    o.client.pool.min = 1;
    o.client.pool.max = 8;
    o.credentials = {"AKIDTEST", "secret", "", std::nullopt, "test"};
    o.dedup_window = 0ms;  // every heartbeat written: the contract is about the store
    o.watch_interval = 100ms;
    o.count_interval = 0ms;  // every counts() reads the table
    o.request_deadline = 2s;
    o.timeout = kTimeout;
    o.forget_after = kForgetAfter;
    o.create_table = true;
    const auto check = transport::prepare_dynamodb_table(o, 10s);
    if (!check.error.empty()) {
      failure_ = check.error;
      return;
    }
    dynamo_ = std::make_unique<transport::DynamoPresenceStore>(threads_.io, std::move(o),
                                                               [this] { return wall_.unix_us(); });
    store_ = dynamo_.get();
  }

  const std::string& failure() const { return failure_; }
  PresenceStore& store() { return *store_; }
  // Moves every clock the store reads; the table's watch is told at once (its timer waits in
  // steady time), a remote store's expiry runs on its own.
  void advance(membership::Duration d) {
    mono_.advance(d);
    wall_.advance(std::chrono::duration_cast<std::chrono::microseconds>(d));
    if (memory_) memory_->expire_watched();
  }
  std::int64_t now_ms() const { return wall_.unix_us() / 1000; }
  // Runs the store's forgetting now: a user past forget_after is never reported (status), but
  // is counted as tracked until the sweep removes it (the table sweeps one shard of 256 every
  // 100 ms; Redis every presence.redis.sweep_interval).
  void sweep() {
    if (memory_) memory_->local_table()->sweep(mono_.now(), membership::PresenceTable::kShards);
  }

 private:
  membership::ManualClock mono_;
  ManualWallClock wall_;
  IoThreads threads_;
  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<RedisCluster> cluster_;
  std::unique_ptr<transport::MemoryPresenceStore> memory_;
  std::unique_ptr<transport::RedisPresenceStore> redis_;
  std::unique_ptr<DynaliteServer> dynalite_;
  std::unique_ptr<transport::DynamoPresenceStore> dynamo_;
  PresenceStore* store_ = nullptr;
  std::string failure_;
};

// Collects what the listener reports.
class Changes {
 public:
  PresenceStore::ChangeListener listener() {
    return [this](std::span<const UserChange> changes) {
      std::lock_guard lock(mu_);
      seen_.insert(seen_.end(), changes.begin(), changes.end());
      cv_.notify_all();
    };
  }
  // The next report about `user` (others are skipped), within kWait.
  std::optional<UserChange> next(std::uint64_t user) {
    std::unique_lock lock(mu_);
    std::optional<UserChange> found;
    cv_.wait_for(lock, kWait, [&] {
      for (; read_ < seen_.size(); ++read_) {
        if (seen_[read_].user == user) {
          found = seen_[read_++];
          return true;
        }
      }
      return false;
    });
    return found;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<UserChange> seen_;
  std::size_t read_ = 0;
};

class PresenceStoreContract : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    if (!sut_.failure().empty()) GTEST_FAIL() << sut_.failure();
    sut_.store().set_listener(changes_.listener());
    sut_.store().start();
    // A remote store is ready once it answers.
    ASSERT_TRUE(eventually_answers()) << "the store never answered counts()";
  }

  bool eventually_answers() {
    const auto until = std::chrono::steady_clock::now() + kWait;
    while (std::chrono::steady_clock::now() < until) {
      if (counts_or_failure().first.kind == StoreFailure::Kind::none) return true;
    }
    return false;
  }

  void heartbeat(std::vector<std::uint64_t> ids, StoreFailure::Kind expect = {}) {
    std::promise<StoreFailure> p;
    auto f = p.get_future();
    sut_.store().heartbeat(ids, [&p](StoreFailure r) { p.set_value(std::move(r)); });
    ASSERT_EQ(f.wait_for(kWait), std::future_status::ready);
    const auto r = f.get();
    EXPECT_EQ(r.kind, expect) << r.message;
  }
  void logout(std::uint64_t id) {
    std::promise<StoreFailure> p;
    auto f = p.get_future();
    sut_.store().logout(id, [&p](StoreFailure r) { p.set_value(std::move(r)); });
    ASSERT_EQ(f.wait_for(kWait), std::future_status::ready);
    EXPECT_FALSE(f.get());
  }
  std::vector<UserStatus> status(std::vector<std::uint64_t> ids) {
    std::promise<std::vector<UserStatus>> p;
    auto f = p.get_future();
    sut_.store().status(ids, [&p](StoreFailure r, std::span<const UserStatus> st) {
      EXPECT_FALSE(r) << r.message;
      p.set_value(std::vector<UserStatus>(st.begin(), st.end()));
    });
    EXPECT_EQ(f.wait_for(kWait), std::future_status::ready);
    return f.get();
  }
  UserStatus status(std::uint64_t id) { return status(std::vector<std::uint64_t>{id}).at(0); }
  std::pair<StoreFailure, UserCounts> counts_or_failure() {
    std::promise<std::pair<StoreFailure, UserCounts>> p;
    auto f = p.get_future();
    sut_.store().counts([&p](StoreFailure r, UserCounts c) { p.set_value({std::move(r), c}); });
    EXPECT_EQ(f.wait_for(kWait), std::future_status::ready);
    return f.get();
  }
  UserCounts counts() {
    auto [f, c] = counts_or_failure();
    EXPECT_FALSE(f) << f.message;
    return c;
  }

  StoreUnderTest sut_{GetParam()};
  Changes changes_;
};

TEST_P(PresenceStoreContract, AnUnknownUserIsOfflineWithoutLastSeen) {
  const auto st = status(424242);
  EXPECT_FALSE(st.online);
  EXPECT_FALSE(st.last_seen_ms);
}

TEST_P(PresenceStoreContract, OnlineFromAHeartbeatUntilExactlyTheTimeout) {
  const auto at = sut_.now_ms();
  heartbeat({7});
  auto st = status(7);
  EXPECT_TRUE(st.online);
  EXPECT_EQ(st.last_seen_ms, at);
  sut_.advance(kTimeout - 1ms);
  EXPECT_TRUE(status(7).online);
  sut_.advance(1ms);
  st = status(7);
  EXPECT_FALSE(st.online);
  EXPECT_EQ(st.last_seen_ms, at);  // kept until forget_after
}

TEST_P(PresenceStoreContract, ALogoutIsOfflineAtOnceAndKeepsTheLastSeenTime) {
  const auto at = sut_.now_ms();
  heartbeat({8});
  sut_.advance(10ms);
  logout(8);
  auto st = status(8);
  EXPECT_FALSE(st.online);
  EXPECT_EQ(st.last_seen_ms, at);
  logout(999);  // unknown: no error, still unknown
  EXPECT_FALSE(status(999).last_seen_ms);
  sut_.advance(10ms);
  heartbeat({8});
  EXPECT_TRUE(status(8).online);
}

TEST_P(PresenceStoreContract, BatchesKeepTheirOrderAndDuplicatesCountOnce) {
  heartbeat({1, 2, 2, 3});
  const auto st = status(std::vector<std::uint64_t>{3, 4, 1, 1});
  ASSERT_EQ(st.size(), 4u);
  EXPECT_TRUE(st[0].online);
  EXPECT_FALSE(st[1].online);
  EXPECT_FALSE(st[1].last_seen_ms);
  EXPECT_TRUE(st[2].online);
  EXPECT_TRUE(st[3].online);
  const auto c = counts();
  EXPECT_EQ(c.online, 3u);
  EXPECT_EQ(c.tracked, 3u);
}

TEST_P(PresenceStoreContract, CountsFollowTheTimeoutLogoutsAndForgetAfter) {
  heartbeat({1, 2, 3});
  sut_.advance(500ms);
  heartbeat({4});
  logout(2);
  auto c = counts();
  EXPECT_EQ(c.online, 3u);  // 1, 3 and 4; 2 logged out
  EXPECT_EQ(c.tracked, 4u);
  sut_.advance(500ms);  // 1 and 3 time out
  c = counts();
  EXPECT_EQ(c.online, 1u);
  EXPECT_EQ(c.tracked, 4u);
  sut_.advance(kForgetAfter);  // everyone forgotten
  EXPECT_FALSE(status(4).last_seen_ms);
  sut_.sweep();
  c = counts();
  EXPECT_EQ(c.online, 0u);
  EXPECT_EQ(c.tracked, 0u);
  EXPECT_FALSE(status(4).last_seen_ms);
}

TEST_P(PresenceStoreContract, ANewTimeoutAppliesToEveryoneAtOnce) {
  heartbeat({5});
  sut_.advance(600ms);
  sut_.store().set_timeout(500ms);
  EXPECT_FALSE(status(5).online);
  sut_.store().set_timeout(2s);
  EXPECT_TRUE(status(5).online);
  sut_.store().set_timeout(kTimeout);
}

TEST_P(PresenceStoreContract, AWatchedUserReportsOnlineOfflineAndLogout) {
  const std::uint64_t u = 77;
  sut_.store().watch(std::span(&u, 1));
  const auto at = sut_.now_ms();
  heartbeat({u});
  auto c = changes_.next(u);
  ASSERT_TRUE(c) << "no online report";
  EXPECT_TRUE(c->online);
  EXPECT_EQ(c->last_seen_ms, at);
  sut_.advance(kTimeout);
  c = changes_.next(u);
  ASSERT_TRUE(c) << "no offline report at the timeout";
  EXPECT_FALSE(c->online);
  EXPECT_EQ(c->last_seen_ms, at);
  sut_.advance(5ms);
  heartbeat({u});
  c = changes_.next(u);
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->online);
  logout(u);
  c = changes_.next(u);
  ASSERT_TRUE(c) << "no report of the logout";
  EXPECT_FALSE(c->online);
  sut_.store().unwatch(std::span(&u, 1));
}

TEST_P(PresenceStoreContract, HealthNamesTheStore) {
  const auto h = sut_.store().health();
  EXPECT_TRUE(h.ok) << h.problem;
  EXPECT_EQ(h.backend, GetParam() == Kind::memory     ? "memory"
                      : GetParam() == Kind::dynamodb ? "dynamodb"
                                                     : "redis");
}

INSTANTIATE_TEST_SUITE_P(EveryStore, PresenceStoreContract,
                         ::testing::Values(Kind::memory, Kind::redis, Kind::redis_cluster,
                                           Kind::dynamodb),
                         [](const auto& info) {
                           switch (info.param) {
                             case Kind::memory:
                               return "memory";
                             case Kind::redis:
                               return "redis";
                             case Kind::redis_cluster:
                               return "redis_cluster";
                             case Kind::dynamodb:
                               return "dynamodb";
                           }
                           return "unknown";
                         });

}  // namespace
}  // namespace heartbeatd::test
