// Redis Cluster routing: CRC16 and key slots (checked against Redis's own CLUSTER KEYSLOT),
// hash tags, MOVED/ASK parsing, and the slot map of a real 3-master cluster made with
// `redis-cli --cluster create`, whose nodes accept exactly the keys the map sends them; and a
// 3+3 cluster where a master is killed, its replica takes over its slots with the data, and
// the old master comes back as a replica.
#include "transport/redis/cluster.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <map>
#include <memory>
#include <random>

#include "tests/support/daemon_process.h"
#include "tests/support/redis_cluster.h"
#include "tests/support/redis_server.h"
#include "tests/support/test_util.h"

namespace heartbeatd::transport::redis {
namespace {

using namespace std::chrono_literals;
using boost::system::error_code;
using heartbeatd::test::eventually;
using heartbeatd::test::RedisCluster;
using heartbeatd::test::RedisServer;

TEST(RedisSlots, Crc16AndKeySlotsFollowTheClusterSpec) {
  EXPECT_EQ(crc16("123456789"), 0x31C3);  // the specification's test vector
  EXPECT_EQ(key_slot("foo"), 12182);
  EXPECT_EQ(key_slot("bar"), 5061);
  EXPECT_EQ(key_slot("{user1000}.following"), key_slot("{user1000}.followers"));
  EXPECT_EQ(key_slot("{user1000}.following"), key_slot("user1000"));
  EXPECT_EQ(key_slot("foo{}{bar}"), crc16("foo{}{bar}") % kSlots);  // empty tag: whole key
  EXPECT_EQ(key_slot("foo{{bar}}zap"), key_slot("{bar"));           // the first {...}
  EXPECT_EQ(key_slot("foo{bar}{zap}"), key_slot("bar"));
  EXPECT_EQ(key_slot("no-close{brace"), crc16("no-close{brace") % kSlots);
}

TEST(RedisSlots, RedirectionsAreParsedAndEverythingElseIsNot) {
  auto moved = parse_redirect("MOVED 3999 127.0.0.1:6381");
  ASSERT_TRUE(moved);
  EXPECT_FALSE(moved->ask);
  EXPECT_EQ(moved->slot, 3999);
  EXPECT_EQ(moved->node, (NodeAddress{"127.0.0.1", 6381}));
  auto ask = parse_redirect("ASK 1 ::1:7000");
  ASSERT_TRUE(ask);
  EXPECT_TRUE(ask->ask);
  EXPECT_EQ(ask->node, (NodeAddress{"::1", 7000}));
  for (const char* bad : {"ERR wrong", "MOVED", "MOVED 16384 1.2.3.4:1", "MOVED x 1.2.3.4:1",
                          "MOVED 1 1.2.3.4", "MOVED 1 1.2.3.4:0", "MOVED 1 :80", "ASK 1 h:99999"}) {
    EXPECT_FALSE(parse_redirect(bad)) << bad;
  }
}

Value integer(long long v) {
  Value x;
  x.type = Value::Type::integer;
  x.integer = v;
  return x;
}
Value string(std::string s) {
  Value x;
  x.type = Value::Type::string;
  x.str = std::move(s);
  return x;
}
Value array(std::vector<Value> e) {
  Value x;
  x.type = Value::Type::array;
  x.elements = std::move(e);
  return x;
}

TEST(RedisSlots, TheSlotMapOfACannedReplyAndItsErrors) {
  const Value reply = array({
      array({integer(0), integer(5460), array({string("10.0.0.1"), integer(7000), string("id1")}),
             array({string("10.0.0.4"), integer(7003), string("id4")})}),
      array({integer(5461), integer(16383), array({string("10.0.0.2"), integer(7001)})}),
  });
  std::string why;
  auto m = SlotMap::from_cluster_slots(reply, &why);
  ASSERT_TRUE(m) << why;
  EXPECT_EQ(m->masters().size(), 2u);
  EXPECT_EQ(*m->node_for(0), (NodeAddress{"10.0.0.1", 7000}));
  EXPECT_EQ(*m->node_for(5460), (NodeAddress{"10.0.0.1", 7000}));
  EXPECT_EQ(*m->node_for(5461), (NodeAddress{"10.0.0.2", 7001}));
  m->move(5461, {"10.0.0.3", 7002});
  EXPECT_EQ(*m->node_for(5461), (NodeAddress{"10.0.0.3", 7002}));
  EXPECT_EQ(*m->node_for(5462), (NodeAddress{"10.0.0.2", 7001}));

  auto partial = SlotMap::from_cluster_slots(
      array({array({integer(0), integer(99), array({string("h"), integer(1)})})}), &why);
  ASSERT_TRUE(partial);
  EXPECT_EQ(partial->node_for(100), nullptr);  // unassigned

  EXPECT_FALSE(SlotMap::from_cluster_slots(string("nope"), &why));
  EXPECT_FALSE(SlotMap::from_cluster_slots(
      array({array({integer(5), integer(2), array({string("h"), integer(1)})})}), &why));
  EXPECT_NE(why.find("bad slot range"), std::string::npos) << why;
  EXPECT_FALSE(SlotMap::from_cluster_slots(
      array({array({integer(0), integer(16384), array({string("h"), integer(1)})})}), &why));
  EXPECT_FALSE(SlotMap::from_cluster_slots(array({array({integer(0), integer(1)})}), &why));
  EXPECT_EQ(*SlotMap::single({"h", 1}).node_for(16383), (NodeAddress{"h", 1}));
}

// ---------------------------------------------------------------------------------------------
// Against real cluster-enabled redis-servers.

class RealCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    if (RedisServer::binary().empty()) GTEST_SKIP() << "redis-server is not installed (scripts/setup)";
  }
  RedisServer& node() {
    // The cluster bus port is chosen too: Redis's default (port + 10000) can fall beyond
    // 65535 for the high ports the system hands out.
    nodes.push_back(std::make_unique<RedisServer>(std::vector<std::string>{
        "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
        "--cluster-node-timeout", "2000", "--cluster-port",
        std::to_string(heartbeatd::test::free_tcp_port())}));
    return *nodes.back();
  }
  // One pipeline on `port`, through that node's pool (made on first use).
  std::vector<Value> run(std::uint16_t port, std::vector<Command> cmds) {
    auto& pool = pools[port];
    if (!pool) {
      PoolOptions o;
      o.port = port;
      pool = std::make_unique<Pool>(loop.io, o);
      pool->start();
    }
    auto done = std::make_shared<std::promise<std::vector<Value>>>();
    auto f = done->get_future();
    pool->acquire([done, cmds](error_code ec, Lease l) mutable {
      if (ec) return done->set_value({});
      auto shared = std::make_shared<Lease>(std::move(l));
      shared->exec(cmds, 2s, [done, shared](error_code e, std::vector<Value> r) {
        done->set_value(e ? std::vector<Value>{} : std::move(r));
      });
    });
    EXPECT_EQ(f.wait_for(5s), std::future_status::ready);
    return f.get();
  }

  heartbeatd::test::IoThreads loop;
  std::vector<std::unique_ptr<RedisServer>> nodes;
  std::map<std::uint16_t, std::unique_ptr<Pool>> pools;  // by port; before the loop stops
};

TEST_F(RealCluster, KeySlotsAgreeWithRedisItself) {
  auto& n = node();
  ASSERT_TRUE(n.start());
  std::mt19937_64 rng(42);
  std::vector<Command> cmds;
  std::vector<std::string> keys = {"", "{}", "{a}b", "a{b}c{d}", "hb:u:{17}:123456789"};
  for (int i = 0; i < 300; ++i) {
    std::string k;
    const int len = static_cast<int>(rng() % 24);
    for (int j = 0; j < len; ++j) k += static_cast<char>("ab{}:01xyz\x80\xff"[rng() % 12]);
    keys.push_back(k);
  }
  for (const auto& k : keys) cmds.push_back({"CLUSTER", "KEYSLOT", k});
  auto replies = run(n.port(), cmds);
  ASSERT_EQ(replies.size(), keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(replies[i].integer, key_slot(keys[i])) << "key '" << keys[i] << "'";
  }
}

TEST_F(RealCluster, ThreeMastersServeExactlyTheSlotsTheMapGivesThem) {
  std::vector<std::string> create = {"--cluster", "create"};
  for (int i = 0; i < 3; ++i) {
    auto& n = node();
    ASSERT_TRUE(n.start());
    create.push_back("127.0.0.1:" + std::to_string(n.port()));
  }
  create.insert(create.end(), {"--cluster-replicas", "0", "--cluster-yes"});
  heartbeatd::test::ProgramOptions options;
  options.deadline = 30s;
  options.merge_output = true;
  auto made = heartbeatd::test::run_program("redis-cli", create, options);
  ASSERT_EQ(made.exit_code, 0) << made.out;
  // Every node must see the cluster whole before it serves its slots.
  ASSERT_TRUE(eventually(
      [&] {
        for (const auto& n : nodes) {
          auto r = run(n->port(), {{"CLUSTER", "INFO"}});
          if (r.empty() || r[0].str.find("cluster_state:ok") == std::string::npos) return false;
        }
        return true;
      },
      20s));

  auto slots = run(nodes[0]->port(), {{"CLUSTER", "SLOTS"}});
  ASSERT_EQ(slots.size(), 1u);
  std::string why;
  auto map = SlotMap::from_cluster_slots(slots[0], &why);
  ASSERT_TRUE(map) << why;
  EXPECT_EQ(map->masters().size(), 3u);
  for (std::uint16_t s = 0; s < kSlots; ++s) ASSERT_NE(map->node_for(s), nullptr) << s;

  for (int i = 0; i < 50; ++i) {
    const std::string key = "hb:u:" + std::to_string(i * 7919);
    const NodeAddress* right = map->node_for(key_slot(key));
    auto ok = run(right->port, {{"SET", key, "1"}});
    ASSERT_EQ(ok.size(), 1u);
    EXPECT_EQ(ok[0].str, "OK") << key << " on " << right->to_string() << ": " << ok[0].str;
    // Any other master redirects, to the node the map named.
    for (const auto& other : map->masters()) {
      if (other == *right) continue;
      auto moved = run(other.port, {{"GET", key}});
      ASSERT_EQ(moved.size(), 1u);
      ASSERT_TRUE(moved[0].is_error());
      auto r = parse_redirect(moved[0].str);
      ASSERT_TRUE(r) << moved[0].str;
      EXPECT_FALSE(r->ask);
      EXPECT_EQ(r->slot, key_slot(key));
      EXPECT_EQ(r->node.port, right->port);
    }
  }
}

TEST(RealClusterWithReplicas, AKilledMastersReplicaServesItsSlotsWithItsData) {
  if (RedisServer::binary().empty()) {
    GTEST_SKIP() << "redis-server is not installed (scripts/setup)";
  }
  RedisCluster cluster(3, 1);
  ASSERT_TRUE(cluster.start()) << cluster.failure_reason();
  ASSERT_EQ(cluster.ports().size(), 6u);
  const auto masters = cluster.master_ports();
  ASSERT_EQ(masters.size(), 3u);

  const std::string key = "hb:u:{failover}:1";
  const std::uint16_t slot = key_slot(key);
  const std::uint16_t old_master = cluster.master_for_slot(slot);
  ASSERT_NE(old_master, 0);
  // Acknowledged by the replica before the master dies, so the promoted node has it. The
  // kill follows within a millisecond: with the WAIT on another connection (where it waits
  // for nothing) the write was lost in 7 runs out of 12.
  ASSERT_EQ(cluster.pipeline(old_master, {{"SET", key, "present"}, {"WAIT", "1", "1000"}}),
            "+OK\r\n:1\r\n");

  // Its one replica, from "slave0:ip=127.0.0.1,port=N,state=online,...".
  const std::string info = cluster.command(old_master, {"INFO", "replication"});
  const std::size_t at = info.find("slave0:ip=127.0.0.1,port=");
  ASSERT_NE(at, std::string::npos) << info;
  const int replica = std::atoi(info.c_str() + at + std::strlen("slave0:ip=127.0.0.1,port="));

  const auto killed_at = std::chrono::steady_clock::now();
  cluster.kill(old_master);
  ASSERT_TRUE(cluster.wait_healthy(20s)) << cluster.failure_reason();
  const auto failover = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - killed_at);
  ::testing::Test::RecordProperty("failover_ms", std::to_string(failover.count()));
  std::printf("[ failover ] %lld ms from SIGKILL to a healthy cluster (node timeout %lld ms)\n",
              static_cast<long long>(failover.count()),
              static_cast<long long>(RedisCluster::kNodeTimeout.count()));

  const std::uint16_t new_master = cluster.master_for_slot(slot);
  ASSERT_EQ(new_master, replica);
  EXPECT_EQ(cluster.command(new_master, {"GET", key}), "$7\r\npresent\r\n");
  const auto now_masters = cluster.master_ports();
  EXPECT_EQ(now_masters.size(), 3u);
  EXPECT_EQ(std::count(now_masters.begin(), now_masters.end(), old_master), 0);

  // Back with its nodes.conf, the old master learns it lost its slots and follows the new one.
  ASSERT_TRUE(cluster.restart(old_master)) << cluster.failure_reason();
  const std::string replication = cluster.command(old_master, {"INFO", "replication"});
  EXPECT_NE(replication.find("role:slave"), std::string::npos) << replication;
  EXPECT_NE(replication.find("master_port:" + std::to_string(new_master)), std::string::npos)
      << replication;
  EXPECT_EQ(cluster.master_for_slot(slot), new_master);
}

}  // namespace
}  // namespace heartbeatd::transport::redis
