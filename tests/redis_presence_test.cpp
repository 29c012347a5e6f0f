// Presence on Redis (presence.backend: redis), on the real binary against real redis-servers
// on loopback: what happens when Redis goes away and comes back, when the pool is exhausted,
// when a Redis Cluster master is killed and its replica takes over, with AUTH, and every bad
// setting. The API's behaviour itself is presence_api_test's, run against every backend.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "membership/hash.h"
#include "tests/support/daemon_process.h"
#include "tests/support/event_stream.h"
#include "tests/support/redis_cluster.h"
#include "tests/support/redis_server.h"

namespace heartbeatd::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string resp(const std::vector<std::string>& args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (const auto& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return out;
}

DaemonProcess::Keys redis_keys(std::uint16_t port) {
  return {{"presence.backend", "redis"},
          {"presence.redis.nodes", "[127.0.0.1:" + std::to_string(port) + "]"}};
}

std::string health_status(const DaemonProcess& d) {
  const auto r = http_tcp(d.port(), "GET", "/v1/health");
  if (r.status != 200) return "";
  return std::string(boost::json::parse(r.body).at("status").as_string());
}

// Starts the daemon and waits until its Redis pools answer.
void start_served(DaemonProcess& d) {
  ASSERT_TRUE(d.start()) << d.failure_reason();
  ASSERT_TRUE(eventually([&] { return http_tcp(d.port(), "GET", "/v1/users").status == 200; }))
      << d.log();
}

void expect_unavailable(const HttpResult& r, const std::string& what) {
  EXPECT_EQ(r.status, 503) << what << ": " << r.body << r.error;
  EXPECT_EQ(r.header("retry-after"), "1") << what;
  EXPECT_NE(r.body.find("\"error\":\"presence_unavailable\""), std::string::npos)
      << what << ": " << r.body;
}

// INFO replication of a master: its replica has acknowledged everything written so far.
bool replica_caught_up(const RedisCluster& cluster, std::uint16_t master) {
  const std::string info = cluster.command(master, {"INFO", "replication"});
  auto field = [&](const std::string& name) -> std::string {
    const auto at = info.find(name);
    if (at == std::string::npos) return "";
    const auto end = info.find_first_of(",\r\n", at + name.size());
    return info.substr(at + name.size(), end - at - name.size());
  };
  const std::string master_offset = field("master_repl_offset:");
  return !master_offset.empty() && field(",offset=") == master_offset;
}

class RedisPresence : public ::testing::Test {
 protected:
  void SetUp() override {
    if (RedisServer::binary().empty()) GTEST_SKIP() << "redis-server is not installed";
  }
};

TEST_F(RedisPresence, RedisDownIs503NeverOfflineAndRecoveryIsAutomatic) {
  RedisServer redis;
  ASSERT_TRUE(redis.start());
  auto keys = redis_keys(redis.port());
  keys["presence.timeout"] = "1h";
  DaemonProcess d(keys);
  ASSERT_TRUE(d.start()) << d.failure_reason();
  ASSERT_TRUE(eventually([&] { return http_tcp(d.port(), "POST", "/v1/users/7/heartbeat").status == 204; }));
  EXPECT_TRUE(eventually([&] { return health_status(d) == "ok"; })) << d.log();

  redis.stop();
  // Every presence route answers 503 with Retry-After: never a guessed "offline".
  EXPECT_TRUE(eventually([&] { return http_tcp(d.port(), "GET", "/v1/users/7").status == 503; }));
  expect_unavailable(http_tcp(d.port(), "GET", "/v1/users/7"), "status");
  expect_unavailable(http_unix(d.socket_path(), "POST", "/v1/users/status", R"({"users":[7,8]})"),
                     "batch status");
  // (Users not written within presence.redis.dedup_window: 7's heartbeat would be answered
  // from the deduplication memory, rightly: it is in Redis already.)
  expect_unavailable(http_tcp(d.port(), "POST", "/v1/users/8/heartbeat"), "heartbeat");
  expect_unavailable(http_tcp(d.port(), "POST", "/v1/users/heartbeat", R"({"users":[9]})"),
                     "batch heartbeat");
  expect_unavailable(http_tcp(d.port(), "DELETE", "/v1/users/7"), "logout");
  expect_unavailable(http_tcp(d.port(), "GET", "/v1/users"), "counts");
  // Fails fast rather than waiting for a connection that cannot come.
  const auto t0 = Clock::now();
  EXPECT_EQ(http_tcp(d.port(), "GET", "/v1/users/7").status, 503);
  EXPECT_LT(Clock::now() - t0, 1500ms);
  EXPECT_TRUE(eventually([&] { return health_status(d) == "degraded"; })) << d.log();
  const auto health = http_tcp(d.port(), "GET", "/v1/health").body;
  EXPECT_NE(health.find("\"backend\":\"redis\""), std::string::npos) << health;
  EXPECT_NE(health.find("unreachable"), std::string::npos) << health;
  // Bad input is still a 400, without Redis.
  EXPECT_EQ(http_tcp(d.port(), "GET", "/v1/users/abc").status, 400);

  // Back on the same port (empty: no persistence in the test's Redis): served again, with
  // no restart of heartbeatd.
  ASSERT_TRUE(redis.start());
  const auto back = Clock::now();
  EXPECT_TRUE(eventually([&] { return http_tcp(d.port(), "POST", "/v1/users/8/heartbeat").status == 204; }, 15s))
      << d.log();
  std::printf("[ measured ] served again %lld ms after Redis answered\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         Clock::now() - back)
                                         .count()));
  EXPECT_NE(http_tcp(d.port(), "GET", "/v1/users/8").body.find("\"online\":true"),
            std::string::npos);
  EXPECT_TRUE(eventually([&] { return health_status(d) == "ok"; })) << d.log();
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait_exit(), 0) << d.log();
}

TEST_F(RedisPresence, AnExhaustedPoolAnswers503WithinItsWaitThenRecovers) {
  RedisServer redis;
  ASSERT_TRUE(redis.start());
  auto keys = redis_keys(redis.port());
  keys["presence.redis.pool.min"] = "1";
  keys["presence.redis.pool.max"] = "1";
  keys["presence.redis.pool.wait"] = "100ms";
  keys["presence.redis.timeout"] = "4s";
  keys["api.threads"] = "2";
  DaemonProcess d(keys);
  ASSERT_NO_FATAL_FAILURE(start_served(d));

  // Redis stops answering clients for 3 s: the one connection stays busy with the first
  // request, every other request waits 100 ms for it and gets a 503. (Requests that reach
  // the daemon only after the pause, on a slow machine, are served: 204.)
  ASSERT_NE(redis.command(resp({"CLIENT", "PAUSE", "3000", "ALL"})).find("+OK"), std::string::npos);
  std::atomic<int> ok{0}, unavailable{0}, other{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&, i] {
      const auto t0 = Clock::now();
      const auto r = http_tcp(d.port(), "POST", "/v1/users/" + std::to_string(i) + "/heartbeat");
      const auto took = Clock::now() - t0;
      if (r.status == 204) {
        ++ok;
      } else if (r.status == 503 && r.header("retry-after") == "1" &&
                 r.body.find("presence.redis.pool.wait") != std::string::npos && took < 2500ms) {
        ++unavailable;
      } else {
        ++other;
        ADD_FAILURE() << r.status << " " << r.body << r.error;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_GE(unavailable.load(), 1);
  EXPECT_EQ(other.load(), 0);
  EXPECT_GE(metric(d, R"(heartbeatd_redis_pool_exhausted_total{node="127.0.0.1:)" +
                          std::to_string(redis.port()) + R"(",reason="wait"})"),
            1.0);
  // The pause ends: everything is served again, nothing leaked or stuck.
  EXPECT_TRUE(eventually([&] {
    return http_tcp(d.port(), "POST", "/v1/users/heartbeat", R"({"users":[1,2,3]})").status == 200;
  }, 10s));
  // Eventually: each scrape also asks Redis for the next scrape's counts, and with one
  // connection the previous scrape's may still hold it (a waiter for a moment, not stuck).
  EXPECT_TRUE(eventually([&] {
    return metric(d, R"(heartbeatd_redis_pool_waiting{node="127.0.0.1:)" +
                         std::to_string(redis.port()) + R"("})") == 0.0;
  }, 5s));
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait_exit(), 0) << d.log();
}

TEST_F(RedisPresence, AuthWithAPasswordFileAndAWrongPasswordIsAClearDegradedState) {
  RedisServer redis;
  ASSERT_TRUE(redis.start());  // (its readiness check is a PING without AUTH)
  ASSERT_NE(redis.command(resp({"CONFIG", "SET", "requirepass", "s3cret"})).find("+OK"),
            std::string::npos);
  TempDir secrets;
  secrets.write("good", "s3cret\n");
  secrets.write("bad", "wrong\n");
  auto keys = redis_keys(redis.port());
  keys["presence.redis.password_file"] = secrets.file("good");
  {
    DaemonProcess d(keys);
    ASSERT_TRUE(d.start()) << d.failure_reason();
    EXPECT_TRUE(eventually([&] { return http_tcp(d.port(), "POST", "/v1/users/1/heartbeat").status == 204; }))
        << d.log();
  }
  keys["presence.redis.password_file"] = secrets.file("bad");
  DaemonProcess d(keys);
  ASSERT_TRUE(d.start()) << d.failure_reason();
  EXPECT_TRUE(eventually([&] {
    const auto body = http_tcp(d.port(), "GET", "/v1/health").body;
    return body.find("AUTH") != std::string::npos && body.find("degraded") != std::string::npos;
  })) << http_tcp(d.port(), "GET", "/v1/health").body;
  expect_unavailable(http_tcp(d.port(), "GET", "/v1/users/1"), "status with a wrong password");
}

// A user's heartbeats within presence.redis.dedup_window are written once; a logout clears
// the memory so the next heartbeat is written; users past forget_after read as unknown at
// once and are swept out of Redis by the next sweep.
TEST_F(RedisPresence, DeduplicationLogoutAndForgettingOnRedis) {
  RedisServer redis;
  ASSERT_TRUE(redis.start());
  auto keys = redis_keys(redis.port());
  keys["presence.timeout"] = "2s";
  keys["presence.forget_after"] = "2s";
  keys["presence.redis.dedup_window"] = "500ms";
  keys["presence.redis.sweep_interval"] = "200ms";
  DaemonProcess d(keys);
  ASSERT_NO_FATAL_FAILURE(start_served(d));
  const auto count = [&] { return metric(d, "heartbeatd_redis_heartbeats_deduplicated_total"); };
  const auto last_seen = [&](int id) {
    return boost::json::parse(http_tcp(d.port(), "GET", "/v1/users/" + std::to_string(id)).body)
        .at("last_seen_ms");
  };

  // A heartbeat written, then one within the window: the second is answered from memory.
  // (A batch's own duplicates are all written: the memory is filled after the write.) An
  // attempt slower than the window is repeated.
  ASSERT_TRUE(eventually([&] {
    const auto t0 = Clock::now();
    EXPECT_EQ(http_tcp(d.port(), "POST", "/v1/users/5/heartbeat").status, 204);
    const double before = count();
    EXPECT_EQ(http_tcp(d.port(), "POST", "/v1/users/5/heartbeat").status, 204);
    const bool in_window = Clock::now() - t0 < 400ms;
    EXPECT_TRUE(count() == before + 1 || !in_window) << "not deduplicated";
    return in_window;
  }));
  // A logout clears the memory: a heartbeat right after it (within the window of the one
  // before) is written, so the user is online again. Without the clearing it would be skipped
  // and the user would stay logged out. A fresh user per attempt; an attempt slower than the
  // window proves nothing and is repeated.
  int user = 100;
  ASSERT_TRUE(eventually([&] {
    const std::string path = "/v1/users/" + std::to_string(++user);
    const auto t0 = Clock::now();
    EXPECT_EQ(http_tcp(d.port(), "POST", path + "/heartbeat").status, 204);
    EXPECT_EQ(http_tcp(d.port(), "DELETE", path).status, 204);
    EXPECT_EQ(http_tcp(d.port(), "POST", path + "/heartbeat").status, 204);
    const bool in_window = Clock::now() - t0 < 400ms;
    const bool online =
        boost::json::parse(http_tcp(d.port(), "GET", path).body).at("online") == true;
    EXPECT_TRUE(online || !in_window) << "the heartbeat after the logout was not written";
    return in_window;
  }));

  // Forgotten forget_after after the last heartbeat: unknown in answers and in the counts, and
  // removed from Redis by the sweep (the shard's key goes when it empties).
  EXPECT_TRUE(eventually([&] { return last_seen(5).is_null() && last_seen(user).is_null(); }, 8s));
  EXPECT_NE(http_tcp(d.port(), "GET", "/v1/users").body.find(R"("tracked":0)"), std::string::npos);
  EXPECT_TRUE(eventually([&] { return redis.command(resp({"DBSIZE"})) == ":0\r\n"; }, 8s))
      << redis.command(resp({"DBSIZE"}));
}

// Two daemons share one Redis presence space: a subscriber on B follows a user whose
// heartbeats go to A. B learns of each transition from Redis (docs/REDIS.md, "User events"),
// the offline one within a second of the timeout, though no request reaches B meanwhile.
void watch_on_b_heartbeats_to_a(const DaemonProcess::Keys& redis) {
  auto keys = redis;
  keys["presence.timeout"] = "1s";
  keys["presence.redis.dedup_window"] = "0";
  DaemonProcess a(keys), b(keys);
  start_served(a);
  start_served(b);
  // A writes as if every shard were watched until it has asked Redis which are (a node
  // that cannot tell must not miss a transition); then none is.
  const auto watched_at_a = [&] { return metric(a, "heartbeatd_redis_watched_shards"); };
  ASSERT_TRUE(eventually([&] { return watched_at_a() == 0; })) << a.log();
  auto s = EventStream::tcp(b.port(), "/v1/events?users=31&members=");
  ASSERT_EQ(s.status(), 200) << s.head() << s.body_so_far();
  auto initial = s.next();
  ASSERT_TRUE(initial) << b.log();
  EXPECT_TRUE(initial->json().at("initial").as_bool());
  EXPECT_FALSE(initial->json().at("online").as_bool());
  // B's watch flags user 31's shard in Redis; A learns it at its next expiry round (200 ms)
  // and from then on publishes that shard's transitions. A transition before that reaches B
  // only as the state B re-reads 3 s after watching (docs/REDIS.md, "User changes").
  ASSERT_TRUE(eventually([&] { return watched_at_a() == 1; })) << a.log();

  ASSERT_EQ(http_tcp(a.port(), "POST", "/v1/users/31/heartbeat").status, 204);
  auto on = s.next(5s);
  ASSERT_TRUE(on) << "B never heard that user 31 came online at A\n" << b.log();
  EXPECT_TRUE(on->json().at("online").as_bool());
  const auto last_seen = on->json().at("last_seen_ms").to_number<std::int64_t>();

  auto off = s.next(5s);
  const auto received = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  ASSERT_TRUE(off) << "B never heard that user 31 went offline\n" << b.log();
  EXPECT_FALSE(off->json().at("online").as_bool());
  EXPECT_EQ(off->json().at("last_seen_ms").to_number<std::int64_t>(), last_seen);
  const std::int64_t due = last_seen + 1000;
  EXPECT_GE(received, due);
  EXPECT_LE(received - due, 1000) << "the offline event reached B " << received - due
                                  << " ms after the timeout passed";
  std::printf("[ measured ] offline event at B %lld ms after the timeout passed\n",
              static_cast<long long>(received - due));

  // A logout at A is offline at B at once.
  ASSERT_EQ(http_tcp(a.port(), "POST", "/v1/users/31/heartbeat").status, 204);
  ASSERT_TRUE(s.next(5s));
  ASSERT_EQ(http_tcp(a.port(), "DELETE", "/v1/users/31").status, 204);
  auto out = s.next(2s);
  ASSERT_TRUE(out) << "B never heard of the logout at A";
  EXPECT_FALSE(out->json().at("online").as_bool());
}

TEST_F(RedisPresence, AWatcherOnOneNodeSeesUsersWhoseHeartbeatsGoToAnother) {
  RedisServer redis;
  ASSERT_TRUE(redis.start());
  watch_on_b_heartbeats_to_a(redis_keys(redis.port()));
}

TEST_F(RedisPresence, AWatcherOnOneNodeSeesUsersWhoseHeartbeatsGoToAnotherInACluster) {
  RedisCluster cluster(3, 1);
  ASSERT_TRUE(cluster.start()) << cluster.failure_reason();
  std::string seeds;
  for (const auto port : cluster.master_ports()) {
    seeds += (seeds.empty() ? "" : ", ") + std::string("127.0.0.1:") + std::to_string(port);
  }
  watch_on_b_heartbeats_to_a(
      {{"presence.backend", "redis"}, {"presence.redis.cluster", "true"},
       {"presence.redis.nodes", "[" + seeds + "]"}});
}

TEST_F(RedisPresence, BadSettingsStopTheDaemonAtStartWithAClearMessage) {
  TempDir dir;
  dir.write("empty", "\n");
  struct Case {
    DaemonProcess::Keys keys;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{{"presence.backend", "redis"}}, "presence.redis.nodes is empty"},
      {{{"presence.backend", "redis"}, {"presence.redis.nodes", "[127.0.0.1:1, 127.0.0.1:2]"}},
       "presence.redis.cluster is false"},
      {{{"presence.backend", "redis"}, {"presence.redis.nodes", "[127.0.0.1:1]"},
        {"presence.redis.pool.min", "5"}, {"presence.redis.pool.max", "2"}},
       "presence.redis.pool.min (5) is above presence.redis.pool.max (2)"},
      {{{"presence.backend", "redis"}, {"presence.redis.nodes", "[127.0.0.1:1]"},
        {"presence.timeout", "2s"}, {"presence.redis.dedup_window", "1s"}},
       "at most a quarter of presence.timeout"},
      {{{"presence.backend", "redis"}, {"presence.redis.nodes", "[127.0.0.1:1]"},
        {"presence.redis.password_file", dir.file("missing")}},
       "No such file or directory"},
      {{{"presence.backend", "redis"}, {"presence.redis.nodes", "[127.0.0.1:1]"},
        {"presence.redis.password_file", dir.file("empty")}},
       "the first line is empty"},
      {{{"presence.backend", "redis"}, {"presence.redis.nodes", "[127.0.0.1:1]"},
        {"presence.redis.key_prefix", "\"a{b}\""}},
       "presence.redis.key_prefix"},
      {{{"presence.backend", "redis"}, {"presence.redis.nodes", "[127.0.0.1:1]"},
        {"api.read_timeout", "1s"}},
       "must be at most half of api.read_timeout"},
      {{{"presence.backend", "redis"}, {"presence.redis.nodes", "[127.0.0.1:1]"},
        {"presence.redis.pool.min", "0"}},
       "presence.redis.pool.min"},
      {{{"presence.backend", "mongodb"}}, "presence.backend"},
      {{{"presence.backend", "redis"}, {"presence.redis.nodes", "[nohost]"}},
       "presence.redis.nodes"},
      {{{"presence.backend", "redis"}, {"presence.redis.nodes", "[127.0.0.1:1]"},
        {"presence.redis.cluster", "maybe"}},
       "presence.redis.cluster"},
  };
  for (const auto& c : cases) {
    DaemonProcess d(c.keys);
    EXPECT_FALSE(d.start());
    EXPECT_EQ(d.wait_exit(), 2) << c.expected;
    EXPECT_NE(d.log().find(c.expected), std::string::npos) << c.expected << "\n" << d.log();
  }
}

// A Redis Cluster of 3 masters and 3 replicas; the master serving some users is killed. Their
// requests fail (503) until the cluster promotes the replica and heartbeatd follows; then
// every user is served again, with what the replica had.
TEST_F(RedisPresence, AClusterMasterKilledIsFollowedToItsReplica) {
  RedisCluster cluster(3, 1);
  ASSERT_TRUE(cluster.start()) << cluster.failure_reason();
  const auto masters = cluster.master_ports();
  ASSERT_EQ(masters.size(), 3u);
  DaemonProcess d({{"presence.backend", "redis"},
                   {"presence.timeout", "1h"},
                   {"presence.redis.cluster", "true"},
                   {"presence.redis.dedup_window", "0"},
                   {"presence.redis.nodes",
                    "[127.0.0.1:" + std::to_string(masters[0]) + ", 127.0.0.1:" +
                        std::to_string(masters[1]) + "]"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  std::string all = R"({"users":[)";
  for (int i = 1; i <= 200; ++i) all += (i > 1 ? "," : "") + std::to_string(i);
  all += "]}";
  ASSERT_TRUE(eventually([&] {
    return http_tcp(d.port(), "POST", "/v1/users/heartbeat", all).status == 200;
  })) << d.log();
  // Replicated before the kill, so that the replica has them: the master's replication
  // offset acknowledged by its replica. (WAIT only counts its own connection's writes.)
  ASSERT_TRUE(eventually([&] { return replica_caught_up(cluster, masters[2]); })) << d.log();
  EXPECT_TRUE(eventually([&] { return health_status(d) == "ok"; })) << d.log();

  const std::uint16_t victim = masters[2];
  cluster.kill(victim);
  const auto killed = Clock::now();
  // 64 shards over 3 masters: some users live on the victim; their batch fails meanwhile.
  bool saw_503 = false;
  std::string last;
  const bool served = eventually(
      [&] {
        const auto r = http_tcp(d.port(), "POST", "/v1/users/status", all);
        if (r.status == 503) {
          saw_503 = true;
          EXPECT_EQ(r.header("retry-after"), "1");
          return false;
        }
        last = std::to_string(r.status) + " " + r.body + r.error;
        if (r.status != 200) return false;
        const auto users = boost::json::parse(r.body).at("users").as_array();
        return std::all_of(users.begin(), users.end(),
                           [](const auto& u) { return u.at("online").as_bool(); });
      },
      30s);
  const auto took = Clock::now() - killed;
  EXPECT_TRUE(saw_503) << "requests for the dead master's slots fail while it is down";
  ASSERT_TRUE(served) << last << "\n" << d.log();
  std::printf("[ measured ] every user served again %lld ms after the master was killed\n",
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));
  EXPECT_TRUE(eventually([&] {
    return http_tcp(d.port(), "POST", "/v1/users/heartbeat", all).status == 200;
  }));
  EXPECT_TRUE(eventually([&] { return health_status(d) == "ok"; }, 15s))
      << http_tcp(d.port(), "GET", "/v1/health").body;
  EXPECT_GE(metric(d, "heartbeatd_redis_topology_refreshes_total"), 2.0);
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait_exit(), 0) << d.log();
}

// The payload of a RESP bulk-string or simple-string reply.
std::string resp_text(const std::string& reply) {
  if (reply.starts_with("+")) return reply.substr(1, reply.find('\r') - 1);
  const auto start = reply.find("\r\n");
  if (!reply.starts_with("$") || start == std::string::npos) return "";
  return reply.substr(start + 2, reply.find("\r\n", start + 2) - start - 2);
}

// A slot resharded while heartbeatd serves it, the way redis-cli --cluster reshard does it:
// while the slot is migrating, a key already moved is answered ASK (followed for that command);
// once the slot belongs to the new master, the old one answers MOVED (the map is updated).
// Every answer stays right throughout.
TEST_F(RedisPresence, ASlotMovedByReshardingIsFollowedThroughAskThenMoved) {
  RedisCluster cluster(3, 0);
  ASSERT_TRUE(cluster.start()) << cluster.failure_reason();
  const auto masters = cluster.master_ports();
  ASSERT_EQ(masters.size(), 3u);
  DaemonProcess d({{"presence.backend", "redis"},
                   {"presence.timeout", "1h"},
                   {"presence.redis.cluster", "true"},
                   {"presence.redis.dedup_window", "0"},
                   {"presence.redis.nodes", "[127.0.0.1:" + std::to_string(masters[0]) + "]"}});
  ASSERT_NO_FATAL_FAILURE(start_served(d));
  // Settled: the daemon knows that no shard is watched, so its heartbeats are plain ZADDs. (A
  // script's keys must all be on one node: the shard's swept edge, absent in an unwatched
  // shard, would make a script's heartbeat answer TRYAGAIN while the slot moves.)
  ASSERT_TRUE(eventually([&] { return metric(d, "heartbeatd_redis_watched_shards") == 0; }));

  // User 42's shard key, its slot, and the master that has it (docs/REDIS.md: the key is
  // "<prefix>:{<shard>}", shard = mix64(id) mod shards).
  const std::string key = "hb:{" + std::to_string(membership::mix64(42) % 64) + "}";
  ASSERT_EQ(http_tcp(d.port(), "POST", "/v1/users/42/heartbeat").status, 204);
  const std::string slot_reply = cluster.command(masters[0], {"CLUSTER", "KEYSLOT", key});
  ASSERT_TRUE(slot_reply.starts_with(":")) << slot_reply;
  const auto slot = static_cast<std::uint16_t>(std::stoi(slot_reply.substr(1)));
  const std::uint16_t from = cluster.master_for_slot(slot);
  const std::uint16_t to = from == masters[0] ? masters[1] : masters[0];
  const std::string from_id = resp_text(cluster.command(from, {"CLUSTER", "MYID"}));
  const std::string to_id = resp_text(cluster.command(to, {"CLUSTER", "MYID"}));
  ASSERT_EQ(from_id.size(), 40u);
  ASSERT_EQ(to_id.size(), 40u);
  // (Requests made before the slot map was first read count as failed: from here on, none.)
  const double failed_before = metric(d, "heartbeatd_redis_failed_requests_total");
  const auto online = [&] {
    const auto r = http_tcp(d.port(), "GET", "/v1/users/42");
    EXPECT_EQ(r.status, 200) << r.body;
    return r.body.find("\"online\":true") != std::string::npos;
  };
  const auto redirects = [&](const std::string& kind) {
    return metric(d, "heartbeatd_redis_redirects_total{kind=\"" + kind + "\"}");
  };

  // Migrating, the key already on the importing node: the old master answers ASK.
  ASSERT_NE(cluster.command(to, {"CLUSTER", "SETSLOT", std::to_string(slot), "IMPORTING", from_id})
                .find("+OK"),
            std::string::npos);
  ASSERT_NE(cluster.command(from, {"CLUSTER", "SETSLOT", std::to_string(slot), "MIGRATING", to_id})
                .find("+OK"),
            std::string::npos);
  // Every key of the slot, as resharding moves them (the shard's set, its deadline index
  // and its sweeper lease share the hash tag): a script on a slot whose keys are split
  // between the nodes would be answered TRYAGAIN.
  const std::string in_slot =
      cluster.command(from, {"CLUSTER", "GETKEYSINSLOT", std::to_string(slot), "100"});
  std::vector<std::string> migrate = {"MIGRATE", "127.0.0.1", std::to_string(to), "", "0",
                                      "5000", "KEYS"};
  for (std::size_t at = in_slot.find("\r\n$"); at != std::string::npos;
       at = in_slot.find("\r\n$", at + 1)) {
    const auto start = in_slot.find("\r\n", at + 2) + 2;
    migrate.push_back(in_slot.substr(start, in_slot.find("\r\n", start) - start));
  }
  ASSERT_NE(std::find(migrate.begin(), migrate.end(), key), migrate.end()) << in_slot;
  const std::string migrated = cluster.command(from, migrate);
  ASSERT_NE(migrated.find("+OK"), std::string::npos) << migrated;
  EXPECT_TRUE(online()) << "served through ASK";
  EXPECT_GE(redirects("ask"), 1.0);
  const auto written = http_tcp(d.port(), "POST", "/v1/users/42/heartbeat");
  EXPECT_EQ(written.status, 204) << written.body;

  // The slot now belongs to the new master, as every node is told: MOVED, then the map.
  for (const auto port : masters) {
    cluster.command(port, {"CLUSTER", "SETSLOT", std::to_string(slot), "NODE", to_id});
  }
  EXPECT_TRUE(online()) << "served through MOVED";
  EXPECT_GE(redirects("moved"), 1.0);
  const double moved = redirects("moved");
  EXPECT_TRUE(online());
  EXPECT_EQ(redirects("moved"), moved) << "the map was updated: no more redirections";
  EXPECT_EQ(metric(d, "heartbeatd_redis_failed_requests_total"), failed_before);
}

}  // namespace
}  // namespace heartbeatd::test
