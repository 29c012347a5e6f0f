// log.format: json on real processes: every line a daemon writes to stderr is one JSON object
// with ts, level and msg, and a member's death in a two-node cluster is a line with member
// and state fields; so do a watched user's change, a failed hook, a refused request and a
// rejected reload. log.format is applied on SIGHUP. Every wait is for a condition with a
// deadline.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>

#include <chrono>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/daemon_process.h"
#include "tests/support/test_util.h"

namespace heartbeatd::test {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

// The first line of `log` that is an object whose fields include all of `want`.
std::optional<boost::json::object> find_line(
    const std::string& log, const std::vector<std::pair<std::string, std::string>>& want) {
  for (const auto& line : lines(log)) {
    boost::system::error_code ec;
    auto v = boost::json::parse(line, ec);
    if (ec || !v.is_object()) continue;
    const auto& o = v.as_object();
    bool all = true;
    for (const auto& [k, value] : want) {
      const auto* f = o.if_contains(k);
      all = all && f && f->is_string() && f->as_string() == value;
    }
    if (all) return o;
  }
  return std::nullopt;
}

TEST(JsonLogs, EveryLineIsAnObjectAndAMemberDeathHasItsFields) {
  const DaemonProcess::Keys a_keys{{"node.name", "node-a"}, {"log.format", "json"}};
  DaemonProcess a(a_keys);
  ASSERT_TRUE(a.start()) << a.failure_reason();
  DaemonProcess b({{"node.name", "node-b"}, {"cluster.seeds", "[" + a.cluster_address() + "]"}});
  ASSERT_TRUE(b.start()) << b.failure_reason();

  ASSERT_TRUE(eventually(
      [&] {
        return find_line(a.log(), {{"member", "node-b"}, {"state", "alive"}}).has_value();
      },
      10s))
      << a.log();
  b.signal(SIGKILL);
  std::optional<boost::json::object> dead;
  ASSERT_TRUE(eventually(
      [&] {
        return (dead = find_line(a.log(), {{"member", "node-b"}, {"state", "dead"}})).has_value();
      },
      10s))
      << a.log();
  EXPECT_EQ(dead->at("level").as_string(), "info");
  EXPECT_NE(std::string(dead->at("msg").as_string()).find("member node-b is dead"),
            std::string::npos);
  EXPECT_TRUE(dead->contains("previous_state")) << boost::json::serialize(*dead);
  EXPECT_TRUE(dead->at("incarnation").is_number()) << boost::json::serialize(*dead);

  const std::regex ts(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
  const auto all = lines(a.log());
  ASSERT_GT(all.size(), 3u);
  for (const auto& line : all) {
    boost::system::error_code ec;
    const auto v = boost::json::parse(line, ec);
    ASSERT_FALSE(ec) << "not JSON: " << line;
    ASSERT_TRUE(v.is_object()) << line;
    const auto& o = v.as_object();
    ASSERT_TRUE(o.contains("ts") && o.at("ts").is_string()) << line;
    EXPECT_TRUE(std::regex_match(std::string(o.at("ts").as_string()), ts)) << line;
    ASSERT_TRUE(o.contains("level") && o.at("level").is_string()) << line;
    ASSERT_TRUE(o.contains("msg") && o.at("msg").is_string()) << line;
  }

  // Reloadable: the reload's own lines are still JSON, the next ones text.
  auto text_keys = a_keys;
  text_keys["log.format"] = "text";
  a.write_config(text_keys);
  a.signal(SIGHUP);
  ASSERT_TRUE(eventually(
      [&] {
        return find_line(a.log(), {{"reload", "applied"}, {"config_key", "log.format"}})
            .has_value();
      },
      10s))
      << a.log();
  a.signal(SIGHUP);
  EXPECT_TRUE(a.wait_log("info: SIGHUP: config unchanged")) << a.log();
}

TEST(JsonLogs, UserChangesHookFailuresRefusalsAndRejectedReloadsHaveTheirFields) {
  const DaemonProcess::Keys keys{{"log.format", "json"},
                                 {"log.level", "debug"},
                                 {"hooks.on_user_change", "/bin/false"},
                                 {"hooks.users", "[42]"},
                                 {"api.rate_limit.requests_per_second", "1"},
                                 {"api.rate_limit.burst", "1"}};
  DaemonProcess d(keys);
  ASSERT_TRUE(d.start()) << d.failure_reason();
  ASSERT_EQ(http_unix(d.socket_path(), "POST", "/v1/users/42/heartbeat").status, 204);
  ASSERT_TRUE(eventually(
      [&] {
        return find_line(d.log(), {{"user", "42"}, {"state", "online"}}).has_value();
      },
      10s))
      << d.log();
  ASSERT_TRUE(eventually(
      [&] {
        const auto hook = find_line(d.log(), {{"hook", "user"}, {"user", "42"}});
        return hook && hook->at("level").as_string() == "warning";
      },
      10s))
      << d.log();

  // A burst beyond api.rate_limit: refused (429), logged with the client and the reason.
  for (int i = 0; i < 3; ++i) http_unix(d.socket_path(), "GET", "/v1/users/42");
  ASSERT_TRUE(eventually(
      [&] {
        const auto r = find_line(d.log(), {{"refusal", "rate_limited"}});
        return r && r->contains("client");
      },
      10s))
      << d.log();

  d.write_config_text("log:\n  format: xml\n");
  d.signal(SIGHUP);
  ASSERT_TRUE(eventually(
      [&] {
        const auto r = find_line(d.log(), {{"reload", "rejected"}});
        return r && r->at("level").as_string() == "error";
      },
      10s))
      << d.log();
}

TEST(JsonLogs, ABadFormatIsAConfigErrorNamingTheKey) {
  TempDir dir;
  dir.write("bad.yaml", "log:\n  format: xml\n");
  const auto r = run_heartbeatd({"--check-config", dir.file("bad.yaml")});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("log.format: expected one of text, json, got \"xml\""), std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace heartbeatd::test
