// RedisCluster: a real Redis Cluster for integration tests, masters with replicas, made of
// RedisServer nodes on free loopback ports and joined with `redis-cli --cluster create`.
// Nodes can be killed (SIGKILL) and restarted on the same port with their nodes.conf, and
// wait_healthy() waits for the cluster to settle after that (a replica promoted, a restarted
// node back as a replica). Every wait has a deadline; failure_reason() says what was missing.
//
// What the class reports about the cluster (master_ports(), master_for_slot()) is what the
// cluster itself says in CLUSTER NODES, asked of a node that was not killed.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "tests/support/redis_server.h"

namespace heartbeatd::test {

class RedisCluster {
 public:
  // A node that misses pings this long is marked failing, and its replica is promoted a
  // second or two later: short, so failover tests take seconds.
  static constexpr std::chrono::milliseconds kNodeTimeout{1000};

  explicit RedisCluster(int masters = 3, int replicas_per_master = 1);
  ~RedisCluster();  // kills every node
  RedisCluster(const RedisCluster&) = delete;
  RedisCluster& operator=(const RedisCluster&) = delete;

  // Starts masters * (1 + replicas_per_master) nodes, creates the cluster and waits until
  // every node says cluster_state:ok and knows every other node, all 16384 slots are served,
  // the given number of masters serve them and every replica's link to its master is up.
  // False (see failure_reason()) otherwise, or when redis-server/redis-cli are not installed.
  bool start(std::chrono::milliseconds deadline = std::chrono::seconds(30));

  std::vector<std::uint16_t> ports() const;  // every node, killed or not, in creation order
  // The masters that hold slots and are not flagged fail or fail?, by port; empty if no live
  // node answers.
  std::vector<std::uint16_t> master_ports() const;
  // The master the cluster gives `slot` to (a killed one, until its replica is promoted); 0
  // if no live node answers or the slot is unassigned.
  std::uint16_t master_for_slot(std::uint16_t slot) const;

  // SIGKILLs the node on `port` (not one of ours: nothing); it stays down until restart().
  void kill(std::uint16_t port);
  // Brings a killed node back on its port with its nodes.conf, and waits (deadline) until it
  // answers and wait_healthy() holds: a killed master whose replica was promoted meanwhile
  // rejoins as a replica of the new master, its link up.
  bool restart(std::uint16_t port, std::chrono::milliseconds deadline = std::chrono::seconds(20));

  // Waits until every live node says cluster_state:ok, every slot is served by a master that
  // is alive and not flagged as failing, all live nodes agree on which master serves each
  // slot, and every live replica's link to its master is up (after a kill(), the promotion
  // of a replica). False, with failure_reason(), at the deadline.
  bool wait_healthy(std::chrono::milliseconds deadline);

  // One command (its arguments, encoded here) to the node on `port`, on a fresh connection:
  // the raw RESP reply, or "" when the node does not answer within two seconds.
  std::string command(std::uint16_t port, const std::vector<std::string>& args) const;
  // Commands pipelined on one connection: the raw replies, concatenated ("" unless all come
  // back). A WAIT must follow its write this way: it counts replicas' acknowledgements of
  // its own connection's writes, so on a fresh connection it returns at once.
  std::string pipeline(std::uint16_t port,
                       const std::vector<std::vector<std::string>>& commands) const;

  const std::string& failure_reason() const { return failure_; }

 private:
  // "" when healthy (see wait_healthy()), else the first thing found wrong.
  std::string health_problem() const;
  // start()'s extra conditions: the topology it was asked for, as every node sees it.
  std::string topology_problem() const;
  bool alive(std::uint16_t port) const { return down_.count(port) == 0; }
  RedisServer* node(std::uint16_t port) const;

  int masters_;
  int replicas_;
  std::vector<std::unique_ptr<RedisServer>> nodes_;
  std::set<std::uint16_t> down_;  // killed and not restarted
  std::string failure_;
};

}  // namespace heartbeatd::test
