// Real heartbeatd processes forming a cluster on loopback: join through a seed, kill -9,
// SIGSTOP shorter and longer than the detection time, SIGTERM (left), restart, and the
// sealed envelope (a node with another key or cluster name stays out). Every wait is for a
// condition with a deadline.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/daemon_process.h"
#include "tests/support/test_util.h"

namespace heartbeatd::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Defaults: interval 200ms x miss_threshold 4 + probe_timeout 200ms + suspicion_timeout
// 800ms (docs/PROTOCOL.md, "Detection time"). Real processes on a shared 2-core machine
// add scheduling delay and the time to poll four daemons; allow 700 ms for that.
constexpr auto kDetectionBound = 1800ms;
constexpr auto kSlack = 700ms;

struct MemberView {
  std::string state;
  std::uint64_t incarnation = 0;
};

std::optional<MemberView> view(const DaemonProcess& d, const std::string& name) {
  auto r = http_tcp(d.port(), "GET", "/v1/members/" + name);
  if (r.status != 200) return std::nullopt;
  auto o = boost::json::parse(r.body).as_object();
  return MemberView{std::string(o.at("state").as_string()),
                    static_cast<std::uint64_t>(o.at("incarnation").to_number<std::int64_t>())};
}

class Cluster {
 public:
  // Node 0 is everyone else's seed.
  explicit Cluster(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      DaemonProcess::Keys keys{{"node.name", name(i)}};
      if (i > 0) keys["cluster.seeds"] = "[" + nodes_[0]->cluster_address() + "]";
      nodes_.push_back(std::make_unique<DaemonProcess>(keys));
    }
  }
  static std::string name(std::size_t i) { return "node-" + std::to_string(i); }
  DaemonProcess& operator[](std::size_t i) { return *nodes_[i]; }
  std::size_t size() const { return nodes_.size(); }

  // A restart keeps the UDP port: DaemonProcess chose it once.
  bool start(std::size_t i) { return nodes_[i]->start(); }
  // Does every running node other than `subject` report `subject` in `state`?
  bool all_report(std::size_t subject, const std::string& state,
                  std::optional<std::uint64_t> min_incarnation = std::nullopt) {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (i == subject || !nodes_[i]->running()) continue;
      auto v = view(*nodes_[i], name(subject));
      if (!v || v->state != state) return false;
      if (min_incarnation && v->incarnation < *min_incarnation) return false;
    }
    return true;
  }
  // Every running node's view of `subject`, for a failure message: "node-0: left/3, ...".
  std::string views(std::size_t subject) {
    std::string out;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (i == subject || !nodes_[i]->running()) continue;
      const auto v = view(*nodes_[i], name(subject));
      out += (out.empty() ? "" : ", ") + name(i) + ": " +
             (v ? v->state + "/" + std::to_string(v->incarnation) : std::string("unknown"));
    }
    return out;
  }
  bool anyone_reports(std::size_t subject, const std::string& state) {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (i == subject || !nodes_[i]->running()) continue;
      auto v = view(*nodes_[i], name(subject));
      if (v && v->state == state) return true;
    }
    return false;
  }

 private:
  std::vector<std::unique_ptr<DaemonProcess>> nodes_;
};

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

TEST(Cluster, FiveProcessesDetectCrashesStallsLeavesAndRestarts) {
  Cluster c(5);
  for (std::size_t i = 0; i < c.size(); ++i) ASSERT_TRUE(c.start(i)) << c[i].failure_reason();
  ASSERT_TRUE(eventually(
      [&] {
        for (std::size_t i = 0; i < c.size(); ++i) {
          if (!c.all_report(i, "alive")) return false;
        }
        return true;
      },
      10s))
      << "the five nodes did not all see each other alive";

  // GET /v1/members lists everyone, self marked.
  auto list = http_tcp(c[0].port(), "GET", "/v1/members");
  ASSERT_EQ(list.status, 200);
  auto members = boost::json::parse(list.body).at("members").as_array();
  ASSERT_EQ(members.size(), 5u);
  EXPECT_EQ(members[0].at("name").as_string(), "node-0");
  EXPECT_TRUE(members[0].at("self").as_bool());
  EXPECT_EQ(members[0].at("address").as_string(), c[0].cluster_address());
  EXPECT_EQ(http_tcp(c[0].port(), "GET", "/v1/members/nobody").status, 404);
  EXPECT_EQ(http_tcp(c[0].port(), "GET", "/v1/members/bad%20name").status, 400);

  // kill -9: every other node reports it dead within the documented bound.
  auto t0 = Clock::now();
  c[3].signal(SIGKILL);
  c[3].wait_exit();
  ASSERT_TRUE(eventually([&] { return c.all_report(3, "dead"); }, 10s));
  const double detect_ms = ms_since(t0);
  std::printf("[ measured ] kill -9 reported dead everywhere after %.0f ms\n", detect_ms);
  const std::chrono::duration<double, std::milli> bound = kDetectionBound + kSlack;
  EXPECT_LE(detect_ms, bound.count());

  // Restarted with the same name and address: alive again everywhere.
  ASSERT_TRUE(c.start(3)) << c[3].failure_reason();
  ASSERT_TRUE(eventually([&] { return c.all_report(3, "alive"); }, 10s));

  // SIGSTOP until a peer suspects it, then SIGCONT: it refutes before anyone convicts.
  const auto before = view(c[0], "node-1")->incarnation;
  c[1].signal(SIGSTOP);
  bool suspected = eventually([&] { return c.anyone_reports(1, "suspect"); }, 5s);
  c[1].signal(SIGCONT);
  ASSERT_TRUE(suspected);
  ASSERT_TRUE(eventually([&] { return c.all_report(1, "alive", before + 1); }, 5s));
  for (std::size_t i = 0; i < c.size(); ++i) {
    EXPECT_EQ(c[i].log().find("member node-1 is dead"), std::string::npos)
        << "node " << i << " convicted a node stopped for less than the detection time";
  }

  // SIGSTOP until everyone reports it dead, then SIGCONT: alive again, higher incarnation.
  const auto before2 = view(c[0], "node-2")->incarnation;
  c[2].signal(SIGSTOP);
  bool convicted = eventually([&] { return c.all_report(2, "dead"); }, 10s);
  c[2].signal(SIGCONT);
  ASSERT_TRUE(convicted);
  ASSERT_TRUE(eventually([&] { return c.all_report(2, "alive", before2 + 1); }, 10s));
  EXPECT_NE(c[2].log().find("did not run for"), std::string::npos);

  // SIGTERM: peers report "left" (not "dead") within about one interval.
  t0 = Clock::now();
  c[4].signal(SIGTERM);
  // (A clean-clone TSan run once saw this fail, cause not yet known: the views say who
  // missed the leave and what it believed instead.)
  ASSERT_TRUE(eventually([&] { return c.all_report(4, "left"); }, 5s)) << c.views(4);
  std::printf("[ measured ] SIGTERM reported left everywhere after %.0f ms\n", ms_since(t0));
  EXPECT_LE(ms_since(t0), 200.0 + kSlack.count());
  EXPECT_EQ(c[4].wait_exit(), 0) << c[4].log();
}

TEST(Cluster, AnotherKeyOrClusterNameStaysOut) {
  TempDir keys;
  keys.write("a.key", std::string(64, 'a') + "\n");
  keys.write("b.key", std::string(64, 'b') + "\n");
  DaemonProcess a({{"node.name", "a"}, {"cluster.key_file", keys.file("a.key")}});
  ASSERT_TRUE(a.start()) << a.failure_reason();
  const std::string seed = "[" + a.cluster_address() + "]";
  DaemonProcess b(
      {{"node.name", "b"}, {"cluster.key_file", keys.file("a.key")}, {"cluster.seeds", seed}});
  DaemonProcess wrong_key(
      {{"node.name", "c"}, {"cluster.key_file", keys.file("b.key")}, {"cluster.seeds", seed}});
  DaemonProcess wrong_cluster({{"node.name", "d"},
                               {"cluster.name", "other"},
                               {"cluster.key_file", keys.file("a.key")},
                               {"cluster.seeds", seed}});
  ASSERT_TRUE(b.start()) << b.failure_reason();
  ASSERT_TRUE(wrong_key.start()) << wrong_key.failure_reason();
  ASSERT_TRUE(wrong_cluster.start()) << wrong_cluster.failure_reason();
  ASSERT_TRUE(eventually([&] { return view(a, "b") && view(b, "a"); }, 10s));
  // The outsiders' join requests reach a and are dropped, each for its own reason.
  EXPECT_TRUE(a.wait_log("dropped a datagram from 127.0.0.1: bad_tag"));
  EXPECT_TRUE(a.wait_log("dropped a datagram from 127.0.0.1: foreign_cluster"));
  EXPECT_FALSE(view(a, "c"));
  EXPECT_FALSE(view(a, "d"));
  auto list = http_tcp(a.port(), "GET", "/v1/members");
  EXPECT_EQ(boost::json::parse(list.body).at("members").as_array().size(), 2u);
  EXPECT_TRUE(a.running());
}

// The same detection on IPv6 loopback: bind, advertise (derived from the socket), seeds and
// the members' addresses in the API are all [::1]:port.
TEST(Cluster, ThreeProcessesOnIPv6LoopbackDetectAKill) {
  std::vector<std::unique_ptr<DaemonProcess>> nodes;
  std::vector<std::string> v6;  // a free port checked on 127.0.0.1 is almost surely free on ::1
  for (std::size_t i = 0; i < 3; ++i) v6.push_back("[::1]:" + std::to_string(free_udp_port()));
  for (std::size_t i = 0; i < 3; ++i) {
    DaemonProcess::Keys keys{{"node.name", Cluster::name(i)},
                             {"cluster.bind", "\"" + v6[i] + "\""}};
    if (i > 0) keys["cluster.seeds"] = "[\"" + v6[0] + "\"]";
    nodes.push_back(std::make_unique<DaemonProcess>(keys));
  }
  for (auto& n : nodes) ASSERT_TRUE(n->start()) << n->failure_reason();
  auto state = [&](std::size_t observer, std::size_t subject) -> std::string {
    auto v = view(*nodes[observer], Cluster::name(subject));
    return v ? v->state : "";
  };
  ASSERT_TRUE(eventually(
      [&] {
        for (std::size_t i = 0; i < 3; ++i) {
          for (std::size_t j = 0; j < 3; ++j) {
            if (i != j && state(i, j) != "alive") return false;
          }
        }
        return true;
      },
      10s))
      << nodes[1]->log();
  auto list = http_tcp(nodes[1]->port(), "GET", "/v1/members");
  const auto parsed = boost::json::parse(list.body);
  for (const auto& m : parsed.at("members").as_array()) {
    EXPECT_TRUE(std::string(m.at("address").as_string()).starts_with("[::1]:")) << list.body;
  }

  const auto t0 = Clock::now();
  nodes[2]->signal(SIGKILL);
  nodes[2]->wait_exit();
  ASSERT_TRUE(eventually([&] { return state(0, 2) == "dead" && state(1, 2) == "dead"; }, 10s));
  const double detect_ms = ms_since(t0);
  std::printf("[ measured ] IPv6: kill -9 reported dead everywhere after %.0f ms\n", detect_ms);
  const std::chrono::duration<double, std::milli> bound = kDetectionBound + kSlack;
  EXPECT_LE(detect_ms, bound.count());
}

// A seed given as a DNS name (resolved again while the node is alone), not only as an IP.
TEST(Cluster, ASeedGivenAsAHostNameIsJoined) {
  DaemonProcess a(DaemonProcess::Keys{{"node.name", "a"}});
  ASSERT_TRUE(a.start()) << a.failure_reason();
  DaemonProcess b({{"node.name", "b"},
                   {"cluster.seeds", "[localhost:" + std::to_string(a.cluster_port()) + "]"}});
  ASSERT_TRUE(b.start()) << b.failure_reason();
  ASSERT_TRUE(eventually([&] { return view(a, "b") && view(b, "a"); }, 10s)) << b.log();
  EXPECT_TRUE(b.wait_log("cluster.seeds: localhost is 127.0.0.1:")) << b.log();
}

TEST(Cluster, AnUnreadableKeyFileIsAConfigError) {
  TempDir dir;
  dir.write("short.key", "abcd\n");
  for (const auto& path : {dir.file("missing.key"), dir.file("short.key")}) {
    DaemonProcess d({{"cluster.key_file", path}});
    EXPECT_FALSE(d.start(5s));
    EXPECT_EQ(d.wait_exit(), 2);
    EXPECT_NE(d.log().find("cluster.key_file " + path), std::string::npos) << d.log();
  }
}

TEST(Cluster, ABusyClusterPortIsARuntimeError) {
  DaemonProcess first;
  ASSERT_TRUE(first.start()) << first.failure_reason();
  DaemonProcess second({{"cluster.bind", first.cluster_address()}});
  EXPECT_FALSE(second.start(5s));
  EXPECT_EQ(second.wait_exit(), 1);
  EXPECT_NE(second.log().find("cannot bind UDP " + first.cluster_address()), std::string::npos)
      << second.log();
}

}  // namespace
}  // namespace heartbeatd::test
