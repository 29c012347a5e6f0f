// User online/offline changes on Redis (issue #16), with redis::Presence instances in this
// process against real redis-servers on loopback, standalone and a Redis Cluster of 3 masters
// and 3 replicas: one instance writes, another watches and must see every transition,
// offline within timeout + 1 s when the heartbeats stop; the sweeper's lease moves when its
// holder stops; racing sweepers publish an expiry once; the subscriber comes back after its
// connection is killed and after Redis restarts; garbage on a channel is ignored and counted.
// Every wait has a deadline.
#include "transport/presence/redis_presence.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <set>

#include <fmt/format.h>

#include "tests/support/redis_cluster.h"
#include "tests/support/redis_server.h"
#include "tests/support/test_util.h"

namespace heartbeatd::transport::redis {
namespace {

using namespace std::chrono_literals;
using heartbeatd::test::eventually;
using heartbeatd::test::IoThreads;
using heartbeatd::test::RedisCluster;
using heartbeatd::test::RedisServer;
using SteadyClock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kTimeout{1000};

std::int64_t wall_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
std::int64_t wall_ms() { return wall_us() / 1000; }

std::string resp(const std::vector<std::string>& args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (const auto& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return out;
}

// ---- the message format, as a pure function ---------------------------------------------------

TEST(UserChangeMessages, WellFormedMessagesParseInOrder) {
  const auto c = parse_user_changes("+7:1700000000000 -8:1699999999000 -9: +0:0");
  ASSERT_TRUE(c);
  const std::vector<UserChange> expected = {{7, true, 1700000000000},
                                            {8, false, 1699999999000},
                                            {9, false, std::nullopt},
                                            {0, true, 0}};
  EXPECT_EQ(*c, expected);
  EXPECT_TRUE(parse_user_changes("+18446744073709551615:1"));
}

TEST(UserChangeMessages, AnythingMalformedIsRefusedWhole) {
  for (const std::string& bad : std::vector<std::string>{
           "", " ", "garbage", "+", "+:", "+7", "+7:", "*7:1", "7:1", "+7:1 ", " +7:1", "+7:1  -8:2",
        "+-7:1", "+7:-1", "+07:1", "+7:01", "+7:1x", "+7x:1", "+18446744073709551616:1",
        "+7:99999999999999999999", "+7:1 garbage", "+7:1\n-8:2", std::string("+7:1\0", 5)}) {
    EXPECT_FALSE(parse_user_changes(bad)) << "'" << bad << "'";
  }
  EXPECT_FALSE(parse_user_changes("+1:1 +2:2 +3:3", 2)) << "more changes than allowed";
}

// ---- against Redis ----------------------------------------------------------------------------

// What a listener received, with the wall time of each arrival.
class Recorder {
 public:
  struct Seen {
    UserChange change;
    std::int64_t at_ms;
  };
  std::function<void(const std::vector<UserChange>&)> listener() {
    return [this](const std::vector<UserChange>& changes) {
      std::lock_guard lock(mu_);
      for (const auto& c : changes) seen_.push_back({c, wall_ms()});
    };
  }
  std::vector<Seen> of(std::uint64_t user) const {
    std::lock_guard lock(mu_);
    std::vector<Seen> out;
    for (const auto& s : seen_) {
      if (s.change.user == user) out.push_back(s);
    }
    return out;
  }
  std::vector<Seen> all() const {
    std::lock_guard lock(mu_);
    return seen_;
  }
  // Waits (deadline) for a change of `user` to `online` after the first `after` of its
  // changes; that change, or nullopt.
  std::optional<Seen> wait(std::uint64_t user, bool online, std::size_t after = 0,
                           std::chrono::milliseconds deadline = 10s) const {
    std::optional<Seen> found;
    eventually(
        [&] {
          const auto mine = of(user);
          for (std::size_t i = after; i < mine.size(); ++i) {
            if (mine[i].change.online == online) {
              found = mine[i];
              return true;
            }
          }
          return false;
        },
        deadline);
    return found;
  }

 private:
  mutable std::mutex mu_;
  std::vector<Seen> seen_;
};

double metric(const Presence& p, const std::string& name) {
  MetricsWriter w;
  p.write_metrics(w);
  const std::string& text = w.text();
  const auto at = text.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + name.size() + 2));
}

class RedisEvents : public ::testing::Test {
 protected:
  void SetUp() override {
    if (RedisServer::binary().empty()) GTEST_SKIP() << "redis-server is not installed";
  }

  static PresenceOptions options(std::vector<NodeAddress> nodes, bool cluster,
                                 const std::string& name) {
    PresenceOptions o;
    o.nodes = std::move(nodes);
    o.cluster = cluster;
    o.shards = 8;
    o.timeout = kTimeout;
    o.forget_after = 1h;
    o.dedup_window = 0ms;  // every heartbeat of these tests is written
    o.node_name = name;
    o.command_timeout = 4s;  // a loaded machine running the suite in parallel
    o.request_deadline = 4s;
    return o;
  }
  Presence& make(PresenceOptions o, Recorder* recorder = nullptr) {
    instances_.push_back(std::make_unique<Presence>(loop_.io, std::move(o), wall_us));
    if (recorder) instances_.back()->set_change_listener(recorder->listener());
    return *instances_.back();
  }

  static Failure heartbeat(Presence& p, std::vector<std::uint64_t> ids) {
    auto promise = std::make_shared<std::promise<Failure>>();
    auto f = promise->get_future();
    p.heartbeat(std::move(ids), [promise](Failure r) { promise->set_value(std::move(r)); });
    if (f.wait_for(10s) != std::future_status::ready) return {{}, "no answer within 10 s"};
    return f.get();
  }
  static Failure logout(Presence& p, std::uint64_t id) {
    auto promise = std::make_shared<std::promise<Failure>>();
    auto f = promise->get_future();
    p.logout(id, [promise](Failure r) { promise->set_value(std::move(r)); });
    if (f.wait_for(10s) != std::future_status::ready) return {{}, "no answer within 10 s"};
    return f.get();
  }
  static std::optional<PresenceCounts> counts(Presence& p) {
    auto promise = std::make_shared<std::promise<std::optional<PresenceCounts>>>();
    auto f = promise->get_future();
    p.counts([promise](Failure r, PresenceCounts c) {
      promise->set_value(r ? std::nullopt : std::optional(c));
    });
    if (f.wait_for(10s) != std::future_status::ready) return std::nullopt;
    return f.get();
  }
  static bool counts_are(Presence& p, std::uint64_t online, std::uint64_t tracked) {
    const auto c = counts(p);
    return c && c->online == online && c->tracked == tracked;
  }
  static std::string counts_text(Presence& p) {
    const auto c = counts(p);
    return c ? fmt::format("online {} tracked {}", c->online, c->tracked) : "no counts";
  }
  static bool subscribed(const Presence& p) {
    return metric(p, "heartbeatd_redis_subscriber_connected") == 1;
  }

  // The story every backend must tell: B, watching u, sees u come online from heartbeats sent
  // to A, go offline within timeout + 1 s of the last one, come back, go offline at once on a
  // logout; A's counts follow at each step.
  void watcher_sees_every_transition(Presence& a, Presence& b, const Recorder& seen,
                                     std::uint64_t u) {
    ASSERT_TRUE(eventually([&] { return subscribed(b); })) << "B's subscriber never connected";
    // Watching starts with the user's state, once every writer publishes for its shard.
    ASSERT_TRUE(eventually([&] { return seen.of(u).size() == 1; })) << "no initial state";
    EXPECT_FALSE(seen.of(u)[0].change.online);
    EXPECT_FALSE(seen.of(u)[0].change.last_seen_ms);
    const std::size_t base = 1;
    ASSERT_TRUE(eventually([&] { return counts_are(a, 0, 0); })) << counts_text(a);

    const std::int64_t before = wall_ms();
    ASSERT_FALSE(heartbeat(a, {u})) << "heartbeat";
    const std::int64_t after = wall_ms();
    const auto online = seen.wait(u, true, base);
    ASSERT_TRUE(online) << "B never saw u come online";
    ASSERT_TRUE(online->change.last_seen_ms);
    EXPECT_GE(*online->change.last_seen_ms, before);
    EXPECT_LE(*online->change.last_seen_ms, after + 1);
    EXPECT_TRUE(counts_are(a, 1, 1)) << counts_text(a);
    EXPECT_TRUE(counts_are(b, 1, 1)) << counts_text(b);

    // Heartbeats stop: offline within timeout + 1 s of the last one, with its time.
    const auto offline = seen.wait(u, false, base, kTimeout + 5s);
    ASSERT_TRUE(offline) << "B never saw u go offline";
    EXPECT_EQ(offline->change.last_seen_ms, online->change.last_seen_ms);
    const std::int64_t late = offline->at_ms - *online->change.last_seen_ms;
    std::printf("[ measured ] offline seen %lld ms after the last heartbeat (timeout %lld ms)\n",
                static_cast<long long>(late), static_cast<long long>(kTimeout.count()));
    EXPECT_GE(late, kTimeout.count());
    EXPECT_LE(late, kTimeout.count() + 1000);
    EXPECT_TRUE(counts_are(a, 0, 1)) << counts_text(a);

    // Back online, then a logout on A: offline at once, not at the timeout.
    const std::size_t so_far = seen.of(u).size();
    ASSERT_FALSE(heartbeat(a, {u}));
    ASSERT_TRUE(seen.wait(u, true, so_far)) << "B never saw u come back";
    EXPECT_TRUE(counts_are(a, 1, 1)) << counts_text(a);
    const std::int64_t logged_out = wall_ms();
    ASSERT_FALSE(logout(a, u));
    const auto gone = seen.wait(u, false, so_far);
    ASSERT_TRUE(gone) << "B never saw the logout";
    EXPECT_LT(gone->at_ms - logged_out, kTimeout.count() / 2) << "not at once";
    EXPECT_TRUE(counts_are(a, 0, 1)) << counts_text(a);
    // Exactly: online, offline, online, offline.
    const auto mine = seen.of(u);
    ASSERT_EQ(mine.size(), base + 4);
    EXPECT_TRUE(mine[1].change.online && !mine[2].change.online && mine[3].change.online &&
                !mine[4].change.online);
  }

  IoThreads loop_;
  std::vector<std::unique_ptr<Presence>> instances_;  // before the loop stops
};

TEST_F(RedisEvents, AWatcherSeesOnlineOfflineAndLogoutFromAnotherNode) {
  RedisServer redis;
  ASSERT_TRUE(redis.start());
  const std::vector<NodeAddress> nodes = {{"127.0.0.1", redis.port()}};
  Recorder seen;
  Presence& a = make(options(nodes, false, "A"));
  Presence& b = make(options(nodes, false, "B"), &seen);
  const std::uint64_t u = 42;
  b.watch(std::span(&u, 1));
  a.start();
  b.start();
  ASSERT_NO_FATAL_FAILURE(watcher_sees_every_transition(a, b, seen, u));

  // Unwatched: nothing more about u. Redis delivers one connection's messages in publishing
  // order, so once a change of v (another shard, still watched) arrives, one of u would have.
  std::uint64_t v = 43;
  while (a.key_of(v) == a.key_of(u)) ++v;
  b.watch(std::span(&v, 1));
  ASSERT_TRUE(eventually([&] {
    return redis.command(resp({"PUBSUB", "NUMSUB", a.key_of(v) + ":changes"})).find(":1\r\n") !=
           std::string::npos;
  }));
  b.unwatch(std::span(&u, 1));
  ASSERT_TRUE(eventually([&] {
    return redis.command(resp({"PUBSUB", "NUMSUB", a.key_of(u) + ":changes"})).find(":0\r\n") !=
           std::string::npos;
  }));
  ASSERT_TRUE(eventually([&] { return seen.of(v).size() == 1; })) << "v's initial state";
  const std::size_t before = seen.of(u).size();
  ASSERT_FALSE(heartbeat(a, {u}));
  ASSERT_FALSE(heartbeat(a, {v}));
  ASSERT_TRUE(seen.wait(v, true));
  EXPECT_EQ(seen.of(u).size(), before) << "a change of an unwatched shard arrived";
  EXPECT_TRUE(counts_are(a, 2, 2)) << counts_text(a);
  EXPECT_EQ(metric(b, "heartbeatd_redis_user_change_messages_rejected_total"), 0);
}

TEST_F(RedisEvents, AWatcherSeesEveryTransitionOnARedisCluster) {
  RedisCluster cluster(3, 1);
  ASSERT_TRUE(cluster.start()) << cluster.failure_reason();
  std::vector<NodeAddress> seeds;
  for (const auto port : cluster.master_ports()) seeds.push_back({"127.0.0.1", port});
  Recorder seen;
  Presence& a = make(options(seeds, true, "A"));
  // B knows one seed only. Its subscriber connects to one node; the changes are published
  // on the masters of the users' shards, all three below, so most cross the cluster bus.
  Presence& b = make(options({seeds.back()}, true, "B"), &seen);
  const std::uint64_t u = 1;
  b.watch(std::span(&u, 1));
  a.start();
  b.start();
  ASSERT_NO_FATAL_FAILURE(watcher_sees_every_transition(a, b, seen, u));
  // Many users over every shard (and so every master), in one batch.
  std::vector<std::uint64_t> many;
  for (std::uint64_t id = 1000; id < 1100; ++id) many.push_back(id);
  b.watch(many);
  ASSERT_TRUE(eventually([&] {
    return metric(b, "heartbeatd_redis_subscriber_channels") == 8 && subscribed(b);
  }));
  // Their initial state, then one batch: each comes online, then goes offline.
  ASSERT_TRUE(eventually([&] {
    return std::all_of(many.begin(), many.end(), [&](auto id) { return seen.of(id).size() == 1; });
  }));
  ASSERT_FALSE(heartbeat(a, many));
  for (const auto id : many) ASSERT_TRUE(seen.wait(id, true, 1)) << id;
  EXPECT_TRUE(counts_are(a, 100, 101)) << counts_text(a);
  for (const auto id : many) {
    ASSERT_TRUE(seen.wait(id, false, 2, kTimeout + 5s)) << id;
  }
  EXPECT_TRUE(counts_are(a, 0, 101)) << counts_text(a);
}

// The shard's expiry sweep is led by one node; when it stops, another takes the lease over
// and the offline change still comes within timeout + 1 s.
TEST_F(RedisEvents, TheSweeperLeaseMovesWhenItsHolderStops) {
  RedisServer redis;
  ASSERT_TRUE(redis.start());
  const std::vector<NodeAddress> nodes = {{"127.0.0.1", redis.port()}};
  Recorder seen;
  Presence& a = make(options(nodes, false, "A"));
  Presence& b = make(options(nodes, false, "B"));
  auto watcher_options = options(nodes, false, "W");
  watcher_options.expiry_interval = 1h;  // the watcher never sweeps
  Presence& w = make(watcher_options, &seen);
  const std::uint64_t u = 7;
  w.watch(std::span(&u, 1));
  a.start();
  b.start();
  w.start();
  ASSERT_TRUE(eventually([&] { return subscribed(w) && seen.of(u).size() == 1; }));
  const std::string lease_key = a.key_of(u) + ":sweeper";

  for (int round = 0; round < 2; ++round) {
    const std::size_t so_far = seen.of(u).size();
    Presence& writer = round == 0 ? a : b;
    ASSERT_FALSE(heartbeat(writer, {u}));
    const auto online = seen.wait(u, true, so_far);
    ASSERT_TRUE(online);
    std::string holder;
    ASSERT_TRUE(eventually([&] {
      holder = redis.command(resp({"GET", lease_key}));
      return holder.find("A/") != std::string::npos || holder.find("B/") != std::string::npos;
    })) << holder;
    Presence& leader = holder.find("A/") != std::string::npos ? a : b;
    Presence& other = &leader == &a ? b : a;
    EXPECT_GE(metric(leader, "heartbeatd_redis_sweeper_leases"), 1);
    const double other_expired = metric(other, "heartbeatd_redis_users_expired_total");
    const double both_expired = other_expired + metric(leader, "heartbeatd_redis_users_expired_total");
    if (round == 1) {
      // The leader stops (as if it died: it does not hand the lease back).
      leader.stop();
    }
    const auto offline = seen.wait(u, false, so_far, kTimeout + 5s);
    ASSERT_TRUE(offline) << "round " << round;
    const std::int64_t late = offline->at_ms - *online->change.last_seen_ms;
    std::printf("[ measured ] round %d: offline seen %lld ms after the last heartbeat\n", round,
                static_cast<long long>(late));
    EXPECT_LE(late, kTimeout.count() + 1000);
    if (round == 1) {
      // The stopped leader's lease ran out and the other node published the expiry.
      EXPECT_EQ(metric(other, "heartbeatd_redis_users_expired_total"), other_expired + 1);
    } else {
      EXPECT_EQ(metric(a, "heartbeatd_redis_users_expired_total") +
                    metric(b, "heartbeatd_redis_users_expired_total"),
                both_expired + 1);
    }
  }
  EXPECT_EQ(seen.of(u).size(), 5u);
}

// Two nodes sweeping at once (leases so short that both always take them) still publish each
// expiry once: the script that takes a deadline out is the one that publishes it.
TEST_F(RedisEvents, RacingSweepersPublishEachExpiryOnce) {
  RedisServer redis;
  ASSERT_TRUE(redis.start());
  const std::vector<NodeAddress> nodes = {{"127.0.0.1", redis.port()}};
  Recorder seen;
  auto racing = [&](const std::string& name) {
    auto o = options(nodes, false, name);
    o.sweeper_lease = 1ms;
    o.expiry_interval = 20ms;
    return o;
  };
  Presence& a = make(racing("A"));
  Presence& b = make(racing("B"));
  Presence& c = make(racing("C"));
  auto watcher_options = options(nodes, false, "W");
  watcher_options.expiry_interval = 1h;
  Presence& w = make(watcher_options, &seen);
  std::vector<std::uint64_t> users;
  for (std::uint64_t id = 1; id <= 500; ++id) users.push_back(id);
  w.watch(users);
  a.start();
  b.start();
  c.start();
  w.start();
  ASSERT_TRUE(eventually([&] { return subscribed(w) && seen.all().size() == users.size(); }));
  const std::size_t base = users.size();  // the initial states
  // One heartbeat at a time: the deadlines spread over many sweeps, so the sweepers race.
  for (const auto id : users) ASSERT_FALSE(heartbeat(a, {id}));
  ASSERT_TRUE(eventually([&] { return seen.all().size() >= base + users.size(); }));
  ASSERT_TRUE(eventually(
      [&] {
        const auto all = seen.all();
        std::size_t offline = 0;
        for (std::size_t i = base; i < all.size(); ++i) offline += all[i].change.online ? 0 : 1;
        return offline >= users.size();
      },
      kTimeout + 10s));
  // The last heartbeat batch's changes have all arrived; anything late would come now.
  ASSERT_TRUE(eventually([&] { return counts_are(a, 0, users.size()); }));
  std::map<std::uint64_t, int> offline;
  const auto all = seen.all();
  for (std::size_t i = base; i < all.size(); ++i) {
    if (!all[i].change.online) ++offline[all[i].change.user];
  }
  for (const auto id : users) EXPECT_EQ(offline[id], 1) << id;
  const double expired = metric(a, "heartbeatd_redis_users_expired_total") +
                         metric(b, "heartbeatd_redis_users_expired_total") +
                         metric(c, "heartbeatd_redis_users_expired_total");
  EXPECT_EQ(expired, static_cast<double>(users.size()));
  std::printf("[ measured ] expiries by A / B / C: %.0f / %.0f / %.0f\n",
              metric(a, "heartbeatd_redis_users_expired_total"),
              metric(b, "heartbeatd_redis_users_expired_total"),
              metric(c, "heartbeatd_redis_users_expired_total"));
}

TEST_F(RedisEvents, TheSubscriberComesBackAfterItsConnectionIsKilledAndAfterARestart) {
  RedisServer redis;
  ASSERT_TRUE(redis.start());
  const std::vector<NodeAddress> nodes = {{"127.0.0.1", redis.port()}};
  Recorder seen;
  auto o = options(nodes, false, "A");
  o.timeout = 1h;  // only logouts take users offline here
  Presence& a = make(o);
  auto wo = options(nodes, false, "W");
  wo.timeout = 1h;
  wo.subscriber_ping_interval = 500ms;
  Presence& w = make(wo, &seen);
  const std::uint64_t u = 5;
  w.watch(std::span(&u, 1));
  a.start();
  w.start();
  ASSERT_TRUE(eventually([&] { return subscribed(w) && seen.of(u).size() == 1; }));
  ASSERT_FALSE(heartbeat(a, {u}));
  ASSERT_TRUE(seen.wait(u, true));

  // Killed by an operator: reconnected, re-subscribed, and u's state read again.
  EXPECT_EQ(redis.command(resp({"CLIENT", "KILL", "TYPE", "pubsub"})), ":1\r\n");
  ASSERT_TRUE(eventually([&] {
    return metric(w, "heartbeatd_redis_subscriber_connects_total") >= 2 && subscribed(w);
  }));
  ASSERT_TRUE(eventually([&] { return metric(w, "heartbeatd_redis_watch_resyncs_total") >= 1; }));
  ASSERT_TRUE(eventually([&] { return seen.of(u).size() >= 2; }));
  EXPECT_TRUE(seen.of(u).back().change.online) << "the re-read state";
  std::size_t so_far = seen.of(u).size();
  ASSERT_FALSE(logout(a, u));
  ASSERT_TRUE(seen.wait(u, false, so_far)) << "changes did not resume";

  // Redis restarts (empty: the test's server has no persistence).
  redis.stop();
  ASSERT_TRUE(redis.start());
  ASSERT_TRUE(eventually(
      [&] { return metric(w, "heartbeatd_redis_subscriber_connects_total") >= 3 && subscribed(w); },
      15s));
  so_far = seen.of(u).size();
  // A's pool reconnects within its backoff; its scripts are sent whole once (NOSCRIPT). The
  // restarted Redis lost the watched flags until W sets them again (within a second), and A
  // may write plainly until its next sweep sees them: so logout and heartbeat again until
  // the change comes.
  ASSERT_TRUE(eventually(
      [&] {
        if (logout(a, u) || heartbeat(a, {u})) return false;
        return seen.wait(u, true, so_far, 500ms).has_value();
      },
      15s))
      << "changes did not resume after the restart";
  EXPECT_GE(metric(a, "heartbeatd_redis_noscript_total"), 1);
}

// Anyone with access to Redis can publish on the channels: what is not a well-formed message
// about the shard's own users is ignored and counted; real changes keep coming.
TEST_F(RedisEvents, GarbageOnAChannelIsIgnoredAndCounted) {
  RedisServer redis;
  ASSERT_TRUE(redis.start());
  const std::vector<NodeAddress> nodes = {{"127.0.0.1", redis.port()}};
  Recorder seen;
  Presence& a = make(options(nodes, false, "A"));
  Presence& w = make(options(nodes, false, "W"), &seen);
  const std::uint64_t u = 11;
  w.watch(std::span(&u, 1));
  a.start();
  w.start();
  ASSERT_TRUE(eventually([&] { return subscribed(w) && seen.of(u).size() == 1; }));
  std::uint64_t stranger = u + 1;  // a user of another shard
  while (a.key_of(stranger) == a.key_of(u)) ++stranger;
  const std::string channel = a.key_of(u) + ":changes";
  const std::vector<std::string> garbage = {
      "",
      "garbage",
      "+11:",
      "+abc:1",
      "+11:1 ",
      "-11:-5",
      "+" + std::to_string(stranger) + ":1",
      std::string(1 << 20, '+'),
      std::string("+11:1\0\xff", 7),
      "+18446744073709551616:1",
  };
  for (const auto& g : garbage) {
    EXPECT_EQ(redis.command(resp({"PUBLISH", channel, g})), ":1\r\n");
  }
  ASSERT_TRUE(eventually([&] {
    return metric(w, "heartbeatd_redis_user_change_messages_rejected_total") ==
           static_cast<double>(garbage.size());
  })) << metric(w, "heartbeatd_redis_user_change_messages_rejected_total");
  ASSERT_FALSE(heartbeat(a, {u}));
  ASSERT_TRUE(seen.wait(u, true));
  EXPECT_EQ(seen.all().size(), 2u) << "something of the garbage reached the listener";
  EXPECT_TRUE(subscribed(w));
}

}  // namespace
}  // namespace heartbeatd::transport::redis
