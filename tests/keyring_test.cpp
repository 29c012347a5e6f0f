// The cluster keyring with real processes: five daemons rotate their key, and a running
// plaintext cluster turns encryption on, each with three SIGHUP steps and no restart. At
// every step the test waits until every node's GET /v1/keys shows every member using the
// new state (proof that it was exercised end to end), and checks that no datagram was
// dropped as bad_tag or unsealed and that nobody suspected anybody. Afterwards a daemon
// without the key, or with another one, cannot join. Every wait is for a condition with a
// deadline.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/json.hpp>

#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "membership/wire_codec.h"
#include "tests/support/daemon_process.h"
#include "tests/support/test_util.h"
#include "transport/cluster/datagram_seal.h"

namespace heartbeatd::test {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

constexpr std::size_t kNodes = 5;
// Keys 'a'... and 'b'... as 64 hex digits, and their fingerprints as the daemon prints them
// (first 8 bytes of BLAKE2b-256 of the 32 key bytes; checked against libsodium in
// datagram_seal_test).
const std::string kKeyA(64, 'a');
const std::string kKeyB(64, 'b');
const std::string kKeyC(64, 'c');

std::string name(std::size_t i) {
  return "node-" + std::to_string(i);
}

// What GET /v1/keys answered, reduced to what the test compares.
struct KeysView {
  std::vector<std::pair<std::string, std::int64_t>> keys;  // fingerprint, members; ring order
  std::string primary;
  std::int64_t plaintext = -1;
  std::int64_t unknown = -1;
  bool seal_outgoing = false;
  bool require_sealed = false;
};

std::optional<KeysView> keys_of(const DaemonProcess& d) {
  const auto r = http_tcp(d.port(), "GET", "/v1/keys");
  if (r.status != 200) return std::nullopt;
  const auto o = json::parse(r.body).as_object();
  KeysView v;
  for (const auto& k : o.at("keys").as_array()) {
    const auto& key = k.as_object();
    v.keys.emplace_back(std::string(key.at("fingerprint").as_string()),
                        key.at("members").to_number<std::int64_t>());
    if (key.at("primary").as_bool()) v.primary = key.at("fingerprint").as_string();
  }
  v.plaintext = o.at("plaintext_members").to_number<std::int64_t>();
  v.unknown = o.at("unknown_members").to_number<std::int64_t>();
  v.seal_outgoing = o.at("seal_outgoing").as_bool();
  v.require_sealed = o.at("require_sealed").as_bool();
  return v;
}

class KeyringCluster {
 public:
  // Five nodes, node 0 the others' seed. monitors 4: every node hears every other one each
  // interval, so "every member uses the new key" is reached within a few intervals. The
  // detection is slowed down (2.5 s of silence before a probe) so that a scheduling stall on
  // a shared machine is not taken for what the test checks: the keys' effect is measured by
  // the drop counters and /v1/keys, which a lost datagram moves at once.
  explicit KeyringCluster(DaemonProcess::Keys cluster_keys) {
    for (std::size_t i = 0; i < kNodes; ++i) {
      DaemonProcess::Keys keys = cluster_keys;
      keys["node.name"] = name(i);
      keys["membership.monitors"] = "4";
      keys["membership.miss_threshold"] = "10";
      keys["membership.probe_timeout"] = "500ms";
      if (i > 0) keys["cluster.seeds"] = "[" + nodes_[0]->cluster_address() + "]";
      nodes_.push_back(std::make_unique<DaemonProcess>(keys));
      base_.push_back(keys);
    }
  }
  DaemonProcess& operator[](std::size_t i) { return *nodes_[i]; }

  void start() {
    for (auto& n : nodes_) ASSERT_TRUE(n->start()) << n->failure_reason();
    ASSERT_TRUE(eventually(
        [&] {
          for (auto& n : nodes_) {
            const auto r = http_tcp(n->port(), "GET", "/v1/members");
            if (r.status != 200) return false;
            const auto list = json::parse(r.body).at("members").as_array();
            if (list.size() != kNodes) return false;
            for (const auto& m : list) {
              if (m.at("state").as_string() != "alive") return false;
            }
          }
          return true;
        },
        15s))
        << "the five nodes did not all see each other alive";
  }

  // Writes `cluster_keys` over each node's starting config and sends SIGHUP, one node at a
  // time as an operator would, waiting for each to report the reload done.
  void reload_all(const DaemonProcess::Keys& cluster_keys) {
    for (std::size_t i = 0; i < kNodes; ++i) {
      DaemonProcess::Keys keys = base_[i];
      for (const auto& [k, v] : cluster_keys) keys[k] = v;
      auto& n = *nodes_[i];
      const std::size_t since = n.notifications().size();
      n.write_config(keys);
      n.signal(SIGHUP);
      ASSERT_TRUE(n.wait_notification("STATUS=config reloaded", 10s, since))
          << name(i) << " did not finish the reload; log:\n"
          << n.log();
    }
  }

  // Waits until every node's /v1/keys matches: `ring` fingerprints in order with the number
  // of members each (all of them on one key), the plaintext count, and the flags.
  void expect_keys(const std::vector<std::pair<std::string, std::int64_t>>& ring,
                   std::int64_t plaintext, bool seal_outgoing, bool require_sealed) {
    std::optional<KeysView> last;
    std::size_t node = 0;
    const bool reached = eventually(
        [&] {
          for (node = 0; node < kNodes; ++node) {
            last = keys_of(*nodes_[node]);
            if (!last || last->keys != ring || last->plaintext != plaintext || last->unknown != 0 ||
                last->seal_outgoing != seal_outgoing || last->require_sealed != require_sealed) {
              return false;
            }
            if (!ring.empty() && last->primary != ring.front().first) return false;
          }
          return true;
        },
        10s);
    if (!reached) {
      std::string seen = last ? "plaintext " + std::to_string(last->plaintext) + ", unknown " +
                                    std::to_string(last->unknown) + ", keys"
                              : "no answer";
      if (last) {
        for (const auto& [fp, n] : last->keys) seen += " " + fp + "=" + std::to_string(n);
      }
      FAIL() << name(node) << " /v1/keys never matched; last: " << seen;
    }
  }

  // No datagram failed authentication or was refused as plain, nobody suspected anybody.
  void expect_no_loss() {
    for (std::size_t i = 0; i < kNodes; ++i) {
      auto& n = *nodes_[i];
      EXPECT_EQ(metric(n, R"(heartbeatd_datagrams_dropped_total{reason="bad_tag"})"), 0) << name(i);
      EXPECT_EQ(metric(n, R"(heartbeatd_datagrams_dropped_total{reason="unsealed"})"), 0)
          << name(i);
      EXPECT_EQ(metric(n, "heartbeatd_suspicions_raised_total"), 0) << name(i);
      EXPECT_EQ(metric(n, "heartbeatd_deaths_declared_total"), 0) << name(i);
      EXPECT_EQ(metric(n, R"(heartbeatd_members{state="alive"})"), kNodes) << name(i);
      EXPECT_EQ(n.log().find(" is suspect"), std::string::npos) << name(i);
      EXPECT_EQ(n.log().find(" is dead"), std::string::npos) << name(i);
    }
  }

  // A sixth daemon seeding itself from node 0 stays out: after node 0 has dropped its
  // datagrams (counted under `reason`), nobody lists it and it lists nobody.
  void expect_outsider_stays_out(DaemonProcess::Keys keys, const std::string& reason) {
    keys["node.name"] = "outsider";
    keys["cluster.seeds"] = "[" + nodes_[0]->cluster_address() + "]";
    DaemonProcess outsider(keys);
    ASSERT_TRUE(outsider.start()) << outsider.failure_reason();
    const std::string series = R"(heartbeatd_datagrams_dropped_total{reason=")" + reason + "\"}";
    ASSERT_TRUE(eventually([&] { return metric(*nodes_[0], series) > 0; }, 10s))
        << "node-0 never dropped the outsider's join request as " << reason;
    for (std::size_t i = 0; i < kNodes; ++i) {
      EXPECT_EQ(http_tcp(nodes_[i]->port(), "GET", "/v1/members/outsider").status, 404) << name(i);
    }
    const auto list = json::parse(http_tcp(outsider.port(), "GET", "/v1/members").body);
    EXPECT_EQ(list.at("members").as_array().size(), 1u) << "the outsider learned of members";
    EXPECT_NE(outsider.log().find("listening on UDP"), std::string::npos);
  }

  const DaemonProcess::Keys& base(std::size_t i) const { return base_[i]; }

 private:
  std::vector<std::unique_ptr<DaemonProcess>> nodes_;
  std::vector<DaemonProcess::Keys> base_;
};

// The fingerprint the daemon reports for a key, read from a one-node answer: the test does
// not reimplement BLAKE2b.
std::string fingerprint_of(const DaemonProcess& d) {
  const auto v = keys_of(d);
  return v && !v->keys.empty() ? v->keys.front().first : "";
}

TEST(Keyring, RotateAKeyOnARunningClusterWithoutAFalseVerdict) {
  TempDir dir;
  const std::string ring = dir.file("cluster.key");
  dir.write("cluster.key", "# A\n" + kKeyA + "\n");
  KeyringCluster c({{"cluster.key_file", ring}});
  c.start();
  if (HasFatalFailure()) return;
  const std::string fp_a = fingerprint_of(c[0]);
  ASSERT_EQ(fp_a.size(), 16u);
  c.expect_keys({{fp_a, kNodes}}, 0, true, true);

  // 1. B added as a second key: accepted everywhere, A still seals.
  dir.write("cluster.key", kKeyA + "\n" + kKeyB + "  # new\n");
  c.reload_all({});
  ASSERT_EQ(keys_of(c[0])->keys.size(), 2u);
  const std::string fp_b = keys_of(c[0])->keys[1].first;
  ASSERT_NE(fp_a, fp_b);
  c.expect_keys({{fp_a, kNodes}, {fp_b, 0}}, 0, true, true);
  c.expect_no_loss();

  // 2. B first: it seals; A, still in the ring, opens what nodes not yet reloaded send.
  dir.write("cluster.key", kKeyB + "\n" + kKeyA + "\n");
  c.reload_all({});
  c.expect_keys({{fp_b, kNodes}, {fp_a, 0}}, 0, true, true);
  c.expect_no_loss();

  // 3. A removed.
  dir.write("cluster.key", kKeyB + "\n");
  c.reload_all({});
  c.expect_keys({{fp_b, kNodes}}, 0, true, true);
  c.expect_no_loss();
  // The same path, a new ring: the file was read again at every step.
  EXPECT_NE(c[0].log().find("cluster: envelope now keyring of 1 (primary " + fp_b),
            std::string::npos)
      << c[0].log();

  // The old key no longer opens anything: a node that kept only A stays out.
  TempDir other;
  other.write("a.key", kKeyA + "\n");
  c.expect_outsider_stays_out({{"cluster.key_file", other.file("a.key")}}, "bad_tag");

  // A broken key file on reload: rejected, the ring in force stays, the cluster goes on.
  dir.write("cluster.key", kKeyB + "\n" + kKeyC.substr(2) + "\n");
  const std::size_t since = c[1].notifications().size();
  c[1].signal(SIGHUP);
  ASSERT_TRUE(c[1].wait_notification("reload rejected", 10s, since)) << c[1].log();
  EXPECT_NE(c[1].log().find("cluster.key_file " + ring + ":2: expected a key of 32 bytes"),
            std::string::npos)
      << c[1].log();
  EXPECT_EQ(c[1].log().find(kKeyC.substr(2)), std::string::npos) << "a key in the log";
  c.expect_keys({{fp_b, kNodes}}, 0, true, true);
}

TEST(Keyring, TurnEncryptionOnInARunningPlaintextCluster) {
  KeyringCluster c({});
  c.start();
  if (HasFatalFailure()) return;
  c.expect_keys({}, kNodes, false, false);

  // (a) A key file on every running node, neither sealing nor requiring: all still plain.
  TempDir dir;
  dir.write("cluster.key", kKeyA + "\n");
  c.reload_all({{"cluster.key_file", dir.file("cluster.key")},
                {"cluster.seal_outgoing", "false"},
                {"cluster.require_sealed", "false"}});
  const std::string fp = fingerprint_of(c[0]);
  ASSERT_EQ(fp.size(), 16u);
  c.expect_keys({{fp, 0}}, kNodes, false, false);
  c.expect_no_loss();

  // (b) Every node seals; plain is still accepted from nodes not yet reloaded.
  c.reload_all({{"cluster.key_file", dir.file("cluster.key")},
                {"cluster.seal_outgoing", "true"},
                {"cluster.require_sealed", "false"}});
  c.expect_keys({{fp, kNodes}}, 0, true, false);
  c.expect_no_loss();

  // (c) Plain refused: the defaults with a key.
  c.reload_all({{"cluster.key_file", dir.file("cluster.key")}});
  c.expect_keys({{fp, kNodes}}, 0, true, true);
  c.expect_no_loss();
  // Loopback bind: nothing to warn about, and the field is there (empty).
  const auto health = json::parse(http_tcp(c[0].port(), "GET", "/v1/health").body);
  EXPECT_TRUE(health.at("warnings").as_array().empty());

  // A node without the key cannot join: its datagrams are plain.
  c.expect_outsider_stays_out({}, "unsealed");
}

// Refused before anything is bound: no test ever listens beyond loopback.
TEST(Keyring, ANonLoopbackBindWithoutAKeyExits2) {
  for (const std::string bind : {"0.0.0.0:7701", "\"[::]:7701\"", "10.1.2.3:7701"}) {
    DaemonProcess d({{"cluster.bind", bind}});
    EXPECT_FALSE(d.start(5s));
    EXPECT_EQ(d.wait_exit(), 2) << bind;
    EXPECT_NE(d.log().find("is not a loopback address and there is no cluster.key_file"),
              std::string::npos)
        << d.log();
    EXPECT_NE(d.log().find("set cluster.key_file, or cluster.plaintext: true to accept an "
                           "unauthenticated cluster"),
              std::string::npos)
        << d.log();
  }
}

// The daemon's receive path checks freshness on sealed datagrams: the test holds the key
// and sends node 0 a heartbeat in node 1's name from an earlier boot of node 1 (what a
// replay of node 1's traffic from before its last start looks like), and one meant for
// node 2. Both are dropped and counted, and nobody's state changes.
TEST(Keyring, ASealedDatagramFromAnEarlierBootOrForAnotherNodeIsDropped) {
  TempDir dir;
  const std::string ring = dir.file("cluster.key");
  dir.write("cluster.key", kKeyA + "\n");
  KeyringCluster c({{"cluster.key_file", ring}});
  c.start();
  if (HasFatalFailure()) return;
  transport::SealKey key;
  key.fill(0xaa);
  const transport::DatagramSeal seal("heartbeatd", transport::Keyring{key}, {});
  auto send = [&](std::uint64_t boot, const std::string& to) {
    membership::Message m;
    m.type = membership::MessageType::heartbeat;
    m.sender = {name(1), membership::Address::v4(0x7f000001, c[1].cluster_port()), 0};
    m.boot = boot;
    m.counter = 1;
    m.to = membership::receiver_tag(to);
    const auto datagram = seal.seal(membership::encode(m));
    boost::asio::io_context io;
    boost::asio::ip::udp::socket socket(io, boost::asio::ip::udp::v4());
    socket.send_to(boost::asio::buffer(datagram),
                   {boost::asio::ip::make_address("127.0.0.1"), c[0].cluster_port()});
  };
  send(1, name(0));
  EXPECT_TRUE(eventually(
      [&] { return metric(c[0], R"(heartbeatd_membership_refused_total{reason="replay"})") >= 1; },
      10s))
      << "a heartbeat from an earlier boot of node-1 was not counted as a replay";
  send(std::numeric_limits<std::uint64_t>::max(), name(2));
  EXPECT_TRUE(eventually(
      [&] {
        return metric(c[0], R"(heartbeatd_membership_refused_total{reason="misdirected"})") >= 1;
      },
      10s))
      << "a datagram meant for node-2 was not counted as misdirected";
  EXPECT_EQ(metric(c[0], R"(heartbeatd_datagrams_dropped_total{reason="bad_tag"})"), 0);
  c.expect_no_loss();
}

}  // namespace
}  // namespace heartbeatd::test
