// Config loading and validation: defaults, every kind of bad value with its key and line,
// the parsing helpers, SIGHUP reload planning, and the example file matching the key table.
#include "daemon/config.h"

#include <gtest/gtest.h>

#include <variant>

#include "tests/support/test_util.h"

namespace heartbeatd {
namespace {

using namespace std::chrono_literals;

Config load_ok(const std::string& yaml) {
  auto r = load_config_text(yaml, "test.yaml");
  if (auto* e = std::get_if<ConfigError>(&r)) {
    ADD_FAILURE() << e->message;
    return default_config();
  }
  return std::get<Config>(r);
}

std::string load_error(const std::string& yaml) {
  auto r = load_config_text(yaml, "test.yaml");
  if (auto* e = std::get_if<ConfigError>(&r)) return e->message;
  ADD_FAILURE() << "expected an error for:\n" << yaml;
  return "";
}

TEST(Config, EmptyFileMeansDefaults) {
  const Config c = load_ok("");
  ASSERT_TRUE(c.api.http);
  EXPECT_EQ(c.api.http->to_string(), "127.0.0.1:7700");
  EXPECT_FALSE(c.api.unix_socket.empty());
  EXPECT_FALSE(c.node.data_dir.empty());
  EXPECT_FALSE(c.node.name.empty());
  EXPECT_EQ(c.presence.timeout, 30s);
  EXPECT_EQ(c.cluster.bind.port, 7701);
  EXPECT_GE(c.api.threads, 1u);
}

TEST(Config, ReadsEveryKindOfValue) {
  const Config c = load_ok(R"(
node:
  name: db-3
api:
  http: "[::1]:8000"
  unix_socket: ""
  threads: 3
  max_body_bytes: 2MiB
cluster:
  seeds: [10.0.0.1:7701, "node-b.example:7701"]
membership:
  reap_after: 1h30m
  detector: phi_accrual
  phi:
    threshold: 12.5
presence:
  timeout: 45s
log:
  level: debug
)");
  EXPECT_EQ(c.node.name, "db-3");
  EXPECT_EQ(c.api.http->host, "::1");
  EXPECT_EQ(c.api.http->to_string(), "[::1]:8000");
  EXPECT_TRUE(c.api.unix_socket.empty());
  EXPECT_EQ(c.api.threads, 3u);
  EXPECT_EQ(c.api.max_body_bytes, 2u << 20);
  ASSERT_EQ(c.cluster.seeds.size(), 2u);
  EXPECT_EQ(c.cluster.seeds[1].host, "node-b.example");
  EXPECT_EQ(c.membership.reap_after, 90min);
  EXPECT_EQ(c.membership.detector, MachineDetector::phi_accrual);
  EXPECT_DOUBLE_EQ(c.membership.phi.threshold, 12.5);
  EXPECT_EQ(c.presence.timeout, 45s);
  EXPECT_EQ(c.log.level, LogLevel::debug);
}

TEST(ConfigErrors, UnknownKeyNamesKeyLineAndSuggestion) {
  const std::string e = load_error("api:\n  threads: 2\n  thread: 4\n");
  EXPECT_EQ(e, "test.yaml:3: unknown key api.thread (did you mean api.threads?)");
}

TEST(ConfigErrors, UnknownSection) {
  EXPECT_EQ(load_error("node:\n  name: a\nfoo:\n  bar: 1\n"), "test.yaml:3: unknown key foo");
}

TEST(ConfigErrors, WrongType) {
  EXPECT_EQ(load_error("api:\n  threads:\n    - 1\n"),
            "test.yaml:2: api.threads: expected an integer from 1 to 256, got a list");
  EXPECT_EQ(load_error("api: 5\n"), "test.yaml:1: api: expected a mapping, got \"5\"");
  EXPECT_EQ(load_error("- a\n- b\n"),
            "test.yaml:1: the file: expected a mapping of sections, got a list");
}

TEST(ConfigErrors, OutOfRange) {
  EXPECT_EQ(load_error("api:\n  threads: 0\n"),
            "test.yaml:2: api.threads: expected an integer from 1 to 256, got \"0\"");
  EXPECT_EQ(load_error("\n\npresence:\n  timeout: 50ms\n"),
            "test.yaml:4: presence.timeout: expected a duration from 100ms to 1h (such as 250ms, "
            "30s, 2m), got \"50ms\"");
  EXPECT_NE(load_error("api:\n  max_body_bytes: 10\n").find("api.max_body_bytes"),
            std::string::npos);
}

TEST(ConfigErrors, UnparsableDuration) {
  const std::string e = load_error("membership:\n  interval: fast\n");
  EXPECT_NE(e.find("test.yaml:2: membership.interval: expected a duration"), std::string::npos)
      << e;
  EXPECT_NE(e.find("got \"fast\""), std::string::npos);
  EXPECT_NE(load_error("membership:\n  interval: 200\n").find("membership.interval"),
            std::string::npos)
      << "a bare number has no unit";
}

TEST(ConfigErrors, UnparsableAddress) {
  const std::string e = load_error("api:\n  http: localhost\n");
  EXPECT_EQ(e,
            "test.yaml:2: api.http: expected an address host:port (such as 127.0.0.1:7700 or "
            "[::1]:7700) (missing :port), got \"localhost\"");
  EXPECT_NE(load_error("api:\n  http: 127.0.0.1:99999\n").find("port must be 1 to 65535"),
            std::string::npos);
  EXPECT_NE(load_error("api:\n  http: ::1:80\n").find("brackets"), std::string::npos);
}

TEST(ConfigErrors, BadSeedNamesItsIndexAndLine) {
  const std::string e = load_error("cluster:\n  seeds:\n    - 10.0.0.1:7701\n    - nope\n");
  EXPECT_NE(e.find("test.yaml:4: cluster.seeds[1]: expected an address"), std::string::npos) << e;
}

TEST(ConfigErrors, BadEnum) {
  EXPECT_EQ(load_error("log:\n  level: loud\n"),
            "test.yaml:2: log.level: expected one of debug, info, warning, error, got \"loud\"");
}

TEST(ConfigErrors, DuplicateKey) {
  EXPECT_EQ(load_error("api:\n  threads: 2\n  threads: 3\n"),
            "test.yaml:3: duplicate key api.threads");
}

TEST(ConfigErrors, InvalidYaml) {
  const std::string e = load_error("api:\n  http: [127.0.0.1:7700\n");
  EXPECT_NE(e.find("not valid YAML"), std::string::npos) << e;
  EXPECT_EQ(e.rfind("test.yaml:", 0), 0u) << e;
}

TEST(ConfigErrors, NoListenerAtAll) {
  EXPECT_NE(load_error("api:\n  http: \"\"\n  unix_socket: \"\"\n").find("enable at least one"),
            std::string::npos);
}

TEST(ConfigErrors, ForgetAfterShorterThanTimeout) {
  EXPECT_EQ(load_error("presence:\n  timeout: 1m\n  forget_after: 30s\n"),
            "test.yaml: presence.forget_after (30s) must not be shorter than presence.timeout "
            "(1m): online users would be forgotten");
}

TEST(ConfigErrors, MissingFile) {
  auto r = load_config_file("/nonexistent/heartbeatd.yaml");
  ASSERT_TRUE(std::holds_alternative<ConfigError>(r));
  EXPECT_NE(std::get<ConfigError>(r).message.find("/nonexistent/heartbeatd.yaml: cannot read"),
            std::string::npos);
}

TEST(Duration, ParsesUnitsAndCompounds) {
  EXPECT_EQ(parse_duration("250ms"), 250ms);
  EXPECT_EQ(parse_duration("30s"), 30s);
  EXPECT_EQ(parse_duration("2m"), 2min);
  EXPECT_EQ(parse_duration("24h"), 24h);
  EXPECT_EQ(parse_duration("1d"), 24h);
  EXPECT_EQ(parse_duration("1m30s"), 90s);
  EXPECT_EQ(parse_duration("0"), 0ms);
  for (const char* bad : {"", "s", "10", "-5s", "1.5s", "10 s", "5x", "1sms", "9999999999999s"}) {
    EXPECT_FALSE(parse_duration(bad)) << bad;
  }
}

TEST(Duration, FormatsTheShortestExactUnit) {
  EXPECT_EQ(format_duration(250ms), "250ms");
  EXPECT_EQ(format_duration(30s), "30s");
  EXPECT_EQ(format_duration(90s), "90s");
  EXPECT_EQ(format_duration(2min), "2m");
  EXPECT_EQ(format_duration(24h), "1d");
  EXPECT_EQ(format_duration(0ms), "0s");
}

TEST(HostPort, ParsesAndRejects) {
  std::string why;
  EXPECT_EQ(parse_host_port("127.0.0.1:7700", &why), (HostPort{"127.0.0.1", 7700}));
  EXPECT_EQ(parse_host_port("[::1]:1", &why), (HostPort{"::1", 1}));
  EXPECT_EQ(parse_host_port("db-3.internal:7701", &why), (HostPort{"db-3.internal", 7701}));
  for (const char* bad : {"", ":7700", "host", "host:", "host:0", "host:x", "[::1", "[zz]:1",
                          "bad_name:1", "-a:1", "1.2.3.4:65536"}) {
    EXPECT_FALSE(parse_host_port(bad, &why)) << bad;
  }
}

TEST(Reload, AppliesRuntimeKeysAndReportsTheRest) {
  const Config current = load_ok("log:\n  level: info\npresence:\n  timeout: 30s\n");
  const Config next =
      load_ok("log:\n  level: debug\npresence:\n  timeout: 10s\napi:\n  http: 127.0.0.1:7800\n");
  const ReloadPlan plan = plan_reload(current, next);
  EXPECT_EQ(plan.effective.log.level, LogLevel::debug);
  EXPECT_EQ(plan.effective.presence.timeout, 10s);
  EXPECT_EQ(plan.effective.api.http->port, 7700) << "listener changes wait for a restart";
  EXPECT_EQ(plan.applied,
            (std::vector<std::string>{"presence.timeout: 30s -> 10s", "log.level: info -> debug"}));
  EXPECT_EQ(plan.needs_restart,
            (std::vector<std::string>{"api.http: 127.0.0.1:7700 -> 127.0.0.1:7800"}));
}

TEST(Reload, RejectsARuntimeChangeThatBreaksARestartOnlyKey) {
  // Valid on its own, but forget_after needs a restart: the running 1m would be shorter than
  // the new timeout, which the presence table cannot hold.
  const Config current = load_ok("presence:\n  timeout: 30s\n  forget_after: 1m\n");
  const Config next = load_ok("presence:\n  timeout: 2m\n  forget_after: 1h\n");
  const ReloadPlan plan = plan_reload(current, next);
  ASSERT_TRUE(plan.error);
  EXPECT_NE(plan.error->find("presence.forget_after (1m) must not be shorter than "
                             "presence.timeout (2m)"),
            std::string::npos)
      << *plan.error;
}

TEST(Reload, UnchangedConfigChangesNothing) {
  const Config c = load_ok("");
  const ReloadPlan plan = plan_reload(c, c);
  EXPECT_TRUE(plan.applied.empty());
  EXPECT_TRUE(plan.needs_restart.empty());
}

// examples/heartbeatd.yaml documents every key, and its values are the defaults.
TEST(ExampleConfig, ListsEveryKeyWithItsDefault) {
  const std::string path = std::string(HEARTBEATD_SOURCE_DIR) + "/examples/heartbeatd.yaml";
  const std::string text = test::read_file(path);
  ASSERT_FALSE(text.empty()) << path;
  auto r = load_config_file(path);
  ASSERT_TRUE(std::holds_alternative<Config>(r)) << std::get<ConfigError>(r).message;
  const auto example = describe(std::get<Config>(r));
  const auto defaults = describe(default_config());
  ASSERT_EQ(example.size(), defaults.size());
  for (std::size_t i = 0; i < example.size(); ++i) {
    const std::string& key = example[i].first;
    const std::string leaf = key.substr(key.rfind('.') + 1);
    EXPECT_NE(text.find(leaf + ":"), std::string::npos) << key << " is not documented";
    EXPECT_EQ(example[i].second, defaults[i].second) << key << " differs from its default";
  }
}

}  // namespace
}  // namespace heartbeatd
