#include "tests/support/redis_cluster.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <functional>
#include <optional>

#include "tests/support/daemon_process.h"

namespace heartbeatd::test {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kSlots = 16384;

std::string redis_cli() {
  // Beside redis-server, so both come from the same installation.
  const std::string server = RedisServer::binary();
  const std::string cli = server.substr(0, server.rfind('/') + 1) + "redis-cli";
  return access(cli.c_str(), X_OK) == 0 ? cli : "";
}

std::chrono::milliseconds left(Clock::time_point until) {
  return std::max(0ms, std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()));
}

// Like eventually(), but keeps the last reason `check` gave ("" when it holds). Every check
// opens a few connections per node, so it runs every 25 ms rather than eventually()'s 10.
bool settle(const std::function<std::string()>& check, std::chrono::milliseconds deadline,
            std::string* reason) {
  const auto until = Clock::now() + deadline;
  while (true) {
    *reason = check();
    if (reason->empty()) return true;
    if (Clock::now() >= until) return false;
    poll(nullptr, 0, 25);
  }
}

// The text of a bulk string reply; nullopt for anything else (no answer, an error).
std::optional<std::string> bulk(const std::string& reply) {
  const std::size_t eol = reply.find("\r\n");
  if (reply.empty() || reply[0] != '$' || eol == std::string::npos) return std::nullopt;
  const long long n = std::strtoll(reply.c_str() + 1, nullptr, 10);
  if (n < 0 || reply.size() < eol + 2 + static_cast<std::size_t>(n)) return std::nullopt;
  return reply.substr(eol + 2, static_cast<std::size_t>(n));
}

bool has_line(const std::string& text, const std::string& line) {
  const std::size_t at = text.find(line);
  return at != std::string::npos && (at == 0 || text[at - 1] == '\n') &&
         text.compare(at + line.size(), 2, "\r\n") == 0;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0, end;
  while ((end = s.find(sep, start)) != std::string::npos) {
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  out.push_back(s.substr(start));
  return out;
}

// One line of CLUSTER NODES: "<id> <ip:port@cport[,hostname]> <flags> <master id> <ping sent>
// <pong received> <config epoch> <link state> <slot or range>...".
struct ClusterNode {
  std::string id;
  std::uint16_t port = 0;
  bool master = false;
  bool failing = false;   // "fail" (agreed) or "fail?" (suspected by this node)
  std::string master_id;  // of a replica
  std::vector<std::pair<int, int>> slots;
};

// One node's view of the cluster; empty when the node does not answer.
std::vector<ClusterNode> parse_cluster_nodes(const std::string& reply) {
  std::vector<ClusterNode> out;
  const auto text = bulk(reply);
  if (!text) return out;
  for (const auto& line : split(*text, '\n')) {
    const auto f = split(line, ' ');
    if (f.size() < 8) continue;
    ClusterNode n;
    n.id = f[0];
    const std::string address = f[1].substr(0, f[1].find('@'));
    n.port = static_cast<std::uint16_t>(std::atoi(address.c_str() + address.rfind(':') + 1));
    for (const auto& flag : split(f[2], ',')) {
      if (flag == "master") n.master = true;
      if (flag == "fail" || flag == "fail?") n.failing = true;
    }
    if (f[3] != "-") n.master_id = f[3];
    for (std::size_t i = 8; i < f.size(); ++i) {
      if (f[i].empty() || f[i][0] == '[') continue;  // a slot being migrated or imported
      const std::size_t dash = f[i].find('-');
      const int first = std::atoi(f[i].c_str());
      const int last = dash == std::string::npos ? first : std::atoi(f[i].c_str() + dash + 1);
      n.slots.emplace_back(first, last);
    }
    out.push_back(std::move(n));
  }
  return out;
}

// Which port serves each slot in one view (0: nobody).
std::array<std::uint16_t, kSlots> slot_owners(const std::vector<ClusterNode>& view) {
  std::array<std::uint16_t, kSlots> owner{};
  for (const auto& n : view) {
    if (!n.master) continue;
    for (const auto& [first, last] : n.slots) {
      for (int s = std::max(first, 0); s <= last && s < kSlots; ++s) {
        owner[static_cast<std::size_t>(s)] = n.port;
      }
    }
  }
  return owner;
}

std::string resp(const std::vector<std::string>& args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (const auto& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return out;
}

std::string resp(const std::vector<std::vector<std::string>>& commands) {
  std::string out;
  for (const auto& c : commands) out += resp(c);
  return out;
}

}  // namespace

RedisCluster::RedisCluster(int masters, int replicas_per_master)
    : masters_(masters), replicas_(replicas_per_master) {}

RedisCluster::~RedisCluster() {
  for (auto& n : nodes_) n->stop();
}

bool RedisCluster::start(std::chrono::milliseconds deadline) {
  const auto until = Clock::now() + deadline;
  failure_.clear();
  if (RedisServer::binary().empty() || redis_cli().empty()) {
    failure_ = "redis-server or redis-cli is not installed (scripts/setup)";
    return false;
  }
  if (!nodes_.empty()) {
    failure_ = "start() was called already";
    return false;
  }
  if (masters_ < 1 || replicas_ < 0) {
    failure_ = "bad shape: " + std::to_string(masters_) + " masters, " + std::to_string(replicas_) +
               " replicas per master";
    return false;
  }

  std::vector<std::string> create = {"--cluster", "create"};
  std::set<std::uint16_t> taken;  // client and bus ports: each picked once
  for (int i = 0; i < masters_ * (1 + replicas_); ++i) {
    std::unique_ptr<RedisServer> n;
    bool up = false;
    for (int attempt = 0; attempt < 100 && !up && Clock::now() < until; ++attempt) {
      // The bus port is explicit: Redis's default (port + 10000) can fall beyond 65535 for
      // the high ports the system hands out.
      const std::uint16_t bus = free_tcp_port();
      if (taken.count(bus)) continue;
      n = std::make_unique<RedisServer>(std::vector<std::string>{
          "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
          "--cluster-node-timeout", std::to_string(kNodeTimeout.count()), "--cluster-port",
          std::to_string(bus),
          // A replica's full sync starts at once rather than after the default 5 s that
          // diskless sync waits for more replicas to share it: start() and restart() wait
          // for replicas' links.
          "--repl-diskless-sync-delay", "0"});
      if (taken.count(n->port()) || n->port() == bus) {
        n.reset();
        continue;
      }
      taken.insert(bus);
      up = n->start(left(until));
      taken.insert(n->port());  // start() moves to a fresh port if another process took it
      // A node that exited at once lost a port (its bus port, likely) to another process
      // between free_tcp_port() and its bind, as tests run in parallel: fresh ports, again.
      if (!up && !n->exited()) break;
    }
    if (!n) {
      failure_ = "no two free ports for node " + std::to_string(i);
      return false;
    }
    nodes_.push_back(std::move(n));
    if (!up) {
      failure_ = "node on port " + std::to_string(nodes_.back()->port()) + " did not answer PING";
      return false;
    }
    create.push_back("127.0.0.1:" + std::to_string(nodes_.back()->port()));
  }

  // redis-cli makes the first `masters_` nodes masters and the others their replicas.
  create.insert(create.end(), {"--cluster-replicas", std::to_string(replicas_), "--cluster-yes"});
  ProgramOptions options;
  options.deadline = left(until);
  options.merge_output = true;
  const ProgramResult made = run_program(redis_cli(), create, options);
  if (made.exit_code != 0) {
    // -1: killed by a signal, or still running at the deadline.
    failure_ = "redis-cli --cluster create exited with " + std::to_string(made.exit_code) + ":\n" +
               made.out;
    return false;
  }

  const auto ready = [this] {
    const std::string p = health_problem();
    return p.empty() ? topology_problem() : p;
  };
  std::string problem;
  if (!settle(ready, left(until), &problem)) {
    failure_ = "cluster not ready within " + std::to_string(deadline.count()) + " ms: " + problem;
    return false;
  }
  return true;
}

std::vector<std::uint16_t> RedisCluster::ports() const {
  std::vector<std::uint16_t> out;
  for (const auto& n : nodes_) out.push_back(n->port());
  return out;
}

std::vector<std::uint16_t> RedisCluster::master_ports() const {
  for (const auto& n : nodes_) {
    if (!alive(n->port())) continue;
    const auto view = parse_cluster_nodes(command(n->port(), {"CLUSTER", "NODES"}));
    if (view.empty()) continue;
    std::vector<std::uint16_t> out;
    for (const auto& m : view) {
      if (m.master && !m.failing && !m.slots.empty()) out.push_back(m.port);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  return {};
}

std::uint16_t RedisCluster::master_for_slot(std::uint16_t slot) const {
  if (slot >= kSlots) return 0;
  for (const auto& n : nodes_) {
    if (!alive(n->port())) continue;
    const auto view = parse_cluster_nodes(command(n->port(), {"CLUSTER", "NODES"}));
    if (!view.empty()) return slot_owners(view)[slot];
  }
  return 0;
}

void RedisCluster::kill(std::uint16_t port) {
  if (RedisServer* n = node(port)) {
    n->stop();
    down_.insert(port);
  }
}

bool RedisCluster::restart(std::uint16_t port, std::chrono::milliseconds deadline) {
  const auto until = Clock::now() + deadline;
  failure_.clear();
  RedisServer* n = node(port);
  if (!n || alive(port)) {
    failure_ = "no killed node on port " + std::to_string(port);
    return false;
  }
  if (!n->start(left(until))) {
    n->stop();  // whatever was started, so a later restart() starts from scratch
    failure_ = "node on port " + std::to_string(port) + " did not answer PING after restart";
    return false;
  }
  down_.erase(port);
  return wait_healthy(left(until));
}

bool RedisCluster::wait_healthy(std::chrono::milliseconds deadline) {
  failure_.clear();
  std::string problem;
  if (settle([&] { return health_problem(); }, deadline, &problem)) return true;
  failure_ = "cluster not healthy within " + std::to_string(deadline.count()) + " ms: " + problem;
  return false;
}

std::string RedisCluster::command(std::uint16_t port, const std::vector<std::string>& args) const {
  const RedisServer* n = node(port);
  return n ? n->command(resp(args)) : "";
}

std::string RedisCluster::pipeline(std::uint16_t port,
                                   const std::vector<std::vector<std::string>>& commands) const {
  const RedisServer* n = node(port);
  if (!n || commands.empty()) return "";
  return n->command(resp(commands), static_cast<int>(commands.size()));
}

std::string RedisCluster::health_problem() const {
  std::optional<std::array<std::uint16_t, kSlots>> agreed;
  std::uint16_t agreed_by = 0;
  for (const auto& n : nodes_) {
    const std::uint16_t p = n->port();
    if (!alive(p)) continue;
    const std::string at = "node " + std::to_string(p) + ": ";
    const auto info = bulk(command(p, {"CLUSTER", "INFO"}));
    if (!info) return at + "no answer to CLUSTER INFO";
    if (!has_line(*info, "cluster_state:ok")) return at + "cluster_state is not ok";

    const auto view = parse_cluster_nodes(command(p, {"CLUSTER", "NODES"}));
    if (view.empty()) return at + "no answer to CLUSTER NODES";
    std::set<std::uint16_t> failing;
    for (const auto& m : view) {
      if (m.failing) failing.insert(m.port);
    }
    const auto owners = slot_owners(view);
    for (std::size_t s = 0; s < owners.size(); ++s) {
      const std::uint16_t owner = owners[s];
      if (owner != 0 && alive(owner) && failing.count(owner) == 0) continue;
      const std::string slot = at + "slot " + std::to_string(s) + " ";
      if (owner == 0) return slot + "is not assigned";
      return slot + "is served by " + (alive(owner) ? "failing " : "killed ") +
             std::to_string(owner);
    }
    if (agreed && *agreed != owners) {
      return at + "disagrees with node " + std::to_string(agreed_by) + " on slot owners";
    }
    agreed = owners;
    agreed_by = p;

    const auto replication = bulk(command(p, {"INFO", "replication"}));
    if (!replication) return at + "no answer to INFO replication";
    if (has_line(*replication, "role:slave") && !has_line(*replication, "master_link_status:up")) {
      return at + "replica whose link to its master is not up";
    }
  }
  return "";
}

std::string RedisCluster::topology_problem() const {
  const std::string nodes = std::to_string(nodes_.size());
  for (const auto& n : nodes_) {
    const std::string at = "node " + std::to_string(n->port()) + ": ";
    const auto info = bulk(command(n->port(), {"CLUSTER", "INFO"}));
    if (!info || !has_line(*info, "cluster_known_nodes:" + nodes)) {
      return at + "does not know all " + nodes + " nodes yet";
    }
    const auto view = parse_cluster_nodes(command(n->port(), {"CLUSTER", "NODES"}));
    for (const auto& m : view) {
      if (!m.master) continue;
      const auto replicas = std::count_if(
          view.begin(), view.end(), [&](const ClusterNode& r) { return r.master_id == m.id; });
      if (replicas != replicas_) {
        return at + "sees " + std::to_string(replicas) + " replicas of master " +
               std::to_string(m.port) + ", not " + std::to_string(replicas_);
      }
    }
    const auto masters =
        std::count_if(view.begin(), view.end(), [](const ClusterNode& m) { return m.master; });
    if (masters != masters_) {
      return at + "sees " + std::to_string(masters) + " masters, not " + std::to_string(masters_);
    }
  }
  return "";
}

RedisServer* RedisCluster::node(std::uint16_t port) const {
  for (const auto& n : nodes_) {
    if (n->port() == port) return n.get();
  }
  return nullptr;
}

}  // namespace heartbeatd::test
