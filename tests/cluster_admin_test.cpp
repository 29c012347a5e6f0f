// Run-time join and force-leave with real heartbeatd processes on loopback (issue 19):
// POST /v1/join and heartbeatctl join; POST /v1/members/{name}/leave and heartbeatctl
// force-leave [--prune], with the refusals. Every wait is for a condition with a deadline.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/daemon_process.h"
#include "tests/support/event_stream.h"
#include "tests/support/test_util.h"

namespace heartbeatd::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// The join's wait for answers (transport/api/cluster_routes.h, 2 s at the defaults), plus
// scheduling slack on a shared machine.
constexpr auto kJoinBound = 2000ms + 1500ms;

std::optional<std::string> state_of(const DaemonProcess& d, const std::string& name) {
  auto r = http_tcp(d.port(), "GET", "/v1/members/" + name);
  if (r.status != 200) return std::nullopt;
  return std::string(boost::json::parse(r.body).at("state").as_string());
}

bool listed(const DaemonProcess& d, const std::string& name) {
  auto r = http_tcp(d.port(), "GET", "/v1/members");
  if (r.status != 200) return true;  // cannot tell: not gone
  const auto v = boost::json::parse(r.body);
  for (const auto& m : v.at("members").as_array()) {
    if (m.at("name").as_string() == name) return true;
  }
  return false;
}

std::string error_code(const HttpResult& r) {
  boost::json::error_code ec;
  auto v = boost::json::parse(r.body, ec);
  if (ec || !v.is_object() || !v.as_object().contains("error")) return "";
  return std::string(v.at("error").as_string());
}

std::string join_body(const std::vector<std::string>& addresses) {
  boost::json::array a;
  for (const auto& s : addresses) a.emplace_back(s);
  return boost::json::serialize(boost::json::object{{"addresses", std::move(a)}});
}

ProgramResult ctl(const DaemonProcess& d, std::vector<std::string> args) {
  args.insert(args.begin(), {"--http", "127.0.0.1:" + std::to_string(d.port())});
  ProgramOptions o;
  o.deadline = 10s;
  return run_program(HEARTBEATCTL_BINARY, args, o);
}

TEST(ClusterAdmin, ForceLeaveMarksADeadMemberLeftEverywhereAndPruneForgetsIt) {
  std::vector<std::unique_ptr<DaemonProcess>> n;
  for (int i = 0; i < 3; ++i) {
    DaemonProcess::Keys keys{{"node.name", "node-" + std::to_string(i)}};
    if (i > 0) keys["cluster.seeds"] = "[" + n[0]->cluster_address() + "]";
    n.push_back(std::make_unique<DaemonProcess>(keys));
    ASSERT_TRUE(n.back()->start()) << n.back()->failure_reason();
  }
  auto everyone_sees = [&](const std::string& name, const std::string& state) {
    for (const auto& d : n) {
      if (!d->running()) continue;
      if (state_of(*d, name) != state) return false;
    }
    return true;
  };
  ASSERT_TRUE(eventually(
      [&] {
        return everyone_sees("node-0", "alive") && everyone_sees("node-1", "alive") &&
               everyone_sees("node-2", "alive");
      },
      10s));

  n[2]->signal(SIGKILL);
  ASSERT_TRUE(n[2]->wait_exit(5s));
  ASSERT_TRUE(eventually([&] { return everyone_sees("node-2", "dead"); }, 10s))
      << "node-0: " << state_of(*n[0], "node-2").value_or("?")
      << ", node-1: " << state_of(*n[1], "node-2").value_or("?");

  // Refusals change nothing.
  auto r = http_tcp(n[0]->port(), "POST", "/v1/members/node-1/leave");
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_EQ(error_code(r), "member_alive") << r.body;
  r = http_tcp(n[0]->port(), "POST", "/v1/members/node-0/leave");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("systemctl stop"), std::string::npos) << r.body;
  r = http_tcp(n[0]->port(), "POST", "/v1/members/nobody/leave");
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_EQ(error_code(r), "unknown_member");
  r = http_tcp(n[0]->port(), "POST", "/v1/members/node-2/leave?prune=maybe");
  EXPECT_EQ(r.status, 400) << r.body;
  const auto refused = ctl(*n[1], {"force-leave", "node-0"});
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("member_alive"), std::string::npos) << refused.err;
  EXPECT_EQ(state_of(*n[0], "node-1"), "alive");
  EXPECT_EQ(state_of(*n[1], "node-0"), "alive");
  EXPECT_EQ(state_of(*n[0], "node-2"), "dead");
  EXPECT_EQ(metric(*n[0], "heartbeatd_force_leaves_total"), 0);

  // The dead one: left on every node; another node's event stream reports the change.
  auto events = EventStream::tcp(n[1]->port(), "/v1/events?members=node-2");
  ASSERT_EQ(events.status(), 200);
  r = http_tcp(n[0]->port(), "POST", "/v1/members/node-2/leave");
  ASSERT_EQ(r.status, 200) << r.body;
  auto body = boost::json::parse(r.body).as_object();
  EXPECT_EQ(body.at("member").as_string(), "node-2");
  EXPECT_EQ(body.at("state").as_string(), "left");
  EXPECT_EQ(body.at("previous_state").as_string(), "dead");
  EXPECT_FALSE(body.at("forgotten").as_bool());
  EXPECT_TRUE(eventually([&] { return everyone_sees("node-2", "left"); }, 3s))
      << "node-1: " << state_of(*n[1], "node-2").value_or("?");
  EXPECT_EQ(metric(*n[0], "heartbeatd_force_leaves_total"), 1);
  const auto change = events.next_matching(
      "member", [](const boost::json::object& e) { return e.at("state").as_string() == "left"; },
      3s);
  ASSERT_TRUE(change);
  EXPECT_EQ(change->json().at("previous").as_string(), "dead");

  // Pruned through heartbeatctl on another node: gone from every node's list.
  const auto pruned = ctl(*n[1], {"force-leave", "node-2", "--prune"});
  EXPECT_EQ(pruned.exit_code, 0) << pruned.out << pruned.err;
  EXPECT_EQ(pruned.out, "node-2 left and forgotten (was left)\n");
  EXPECT_TRUE(eventually([&] { return !listed(*n[0], "node-2") && !listed(*n[1], "node-2"); }, 3s));
  EXPECT_EQ(http_tcp(n[0]->port(), "GET", "/v1/members/node-2").status, 404);
  EXPECT_TRUE(n[0]->wait_log("forgetting member node-2 (force-left with prune)", 1s));
  EXPECT_EQ(state_of(*n[0], "node-1"), "alive");
  EXPECT_EQ(state_of(*n[1], "node-0"), "alive");
}

TEST(ClusterAdmin, ALoneDaemonJoinsAnotherAtRunTime) {
  DaemonProcess a(DaemonProcess::Keys{{"node.name", "lone-a"}});
  DaemonProcess b(DaemonProcess::Keys{{"node.name", "lone-b"}});
  ASSERT_TRUE(a.start()) << a.failure_reason();
  ASSERT_TRUE(b.start()) << b.failure_reason();
  EXPECT_FALSE(state_of(a, "lone-b"));

  // Bad input is a 400 naming what is wrong; nothing is sent.
  auto r = http_tcp(a.port(), "POST", "/v1/join", join_body({}));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("empty"), std::string::npos) << r.body;
  r = http_tcp(a.port(), "POST", "/v1/join",
               join_body(std::vector<std::string>(17, "127.0.0.1:1")));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("at most 16"), std::string::npos) << r.body;
  r = http_tcp(a.port(), "POST", "/v1/join", join_body({b.cluster_address(), "no-port"}));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("addresses[1] 'no-port'"), std::string::npos) << r.body;
  r = http_tcp(a.port(), "POST", "/v1/join", R"({"addresses":"x"})");
  EXPECT_EQ(r.status, 400) << r.body;
  const auto t0 = Clock::now();
  r = http_tcp(a.port(), "POST", "/v1/join", join_body({"no-such-node.invalid:7701"}));
  EXPECT_LT(Clock::now() - t0, kJoinBound);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(error_code(r), "unresolvable") << r.body;
  EXPECT_NE(r.body.find("no-such-node.invalid"), std::string::npos) << r.body;
  EXPECT_FALSE(state_of(a, "lone-b"));

  // A name, as cluster.seeds take them.
  const std::string by_name = "localhost:" + std::to_string(b.cluster_port());
  r = http_tcp(a.port(), "POST", "/v1/join", join_body({by_name}));
  ASSERT_EQ(r.status, 200) << r.body;
  auto body = boost::json::parse(r.body).as_object();
  ASSERT_EQ(body.at("joined").as_array().size(), 1u) << r.body;
  EXPECT_EQ(body.at("joined").as_array()[0].at("address").as_string(), by_name);
  EXPECT_EQ(body.at("joined").as_array()[0].at("member").as_string(), "lone-b");
  EXPECT_TRUE(body.at("failed").as_array().empty());
  EXPECT_TRUE(eventually(
      [&] { return state_of(a, "lone-b") == "alive" && state_of(b, "lone-a") == "alive"; }, 5s));
}

TEST(ClusterAdmin, AJoinToAnAddressWhereNothingListensFailsWithinTheBound) {
  DaemonProcess a(DaemonProcess::Keys{{"node.name", "joiner"}});
  DaemonProcess b(DaemonProcess::Keys{{"node.name", "other"}});
  ASSERT_TRUE(a.start()) << a.failure_reason();
  ASSERT_TRUE(b.start()) << b.failure_reason();
  const std::string nobody = "127.0.0.1:" + std::to_string(free_udp_port());

  auto t0 = Clock::now();
  auto r = http_tcp(a.port(), "POST", "/v1/join", join_body({nobody}));
  EXPECT_LT(Clock::now() - t0, kJoinBound);
  EXPECT_EQ(r.status, 502) << r.body;
  EXPECT_EQ(error_code(r), "join_failed") << r.body;
  EXPECT_NE(r.body.find("no address joined: " + nobody + ": no answer within 2000 ms"),
            std::string::npos)
      << r.body;

  // One answers, one does not: 200 with both, and heartbeatctl exits 1 saying which failed.
  t0 = Clock::now();
  const auto mixed = ctl(a, {"join", b.cluster_address(), nobody});
  EXPECT_LT(Clock::now() - t0, kJoinBound + 1s);
  EXPECT_EQ(mixed.exit_code, 1) << mixed.out << mixed.err;
  EXPECT_EQ(mixed.out, "joined " + b.cluster_address() + " (member other)\n");
  EXPECT_NE(mixed.err.find("join " + nobody + " failed: no answer within"), std::string::npos)
      << mixed.err;
  EXPECT_TRUE(eventually([&] { return state_of(b, "joiner") == "alive"; }, 5s));
}

}  // namespace
}  // namespace heartbeatd::test
