// Config loading and validation: defaults, every kind of bad value with its key and line,
// the parsing helpers, SIGHUP reload planning, and the example file matching the key table.
#include "daemon/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <variant>

#include "tests/support/test_util.h"
#include "transport/api/event_hub.h"
#include "transport/presence/redis_presence.h"

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
  EXPECT_FALSE(c.api.http) << "no TCP listener unless asked for: the socket serves this host";
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
  EXPECT_EQ(c.api.limits.max_body_bytes, 2u << 20);
  ASSERT_EQ(c.cluster.seeds.size(), 2u);
  EXPECT_EQ(c.cluster.seeds[1].host, "node-b.example");
  EXPECT_EQ(c.membership.timings.reap_after, 90min);
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

TEST(ConfigErrors, HistoryKeysAreBounded) {
  EXPECT_NE(load_error("presence:\n  history:\n    interval: 10ms\n").find(
                "presence.history.interval: expected a duration from 100ms to 1h"),
            std::string::npos);
  EXPECT_NE(load_error("presence:\n  history:\n    points: 0\n").find("presence.history.points"),
            std::string::npos);
  const Config c = load_ok("presence:\n  history: {interval: 1m, points: 60}\n");
  EXPECT_EQ(c.presence.history.interval, 1min);
  EXPECT_EQ(c.presence.history.points, 60u);
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

// The per-client share and the Unix reserve follow max_connections until set, so a small
// max_connections (tests, tiny nodes) stays valid without naming them.
TEST(Config, ConnectionSharesDefaultToFitMaxConnections) {
  const Config d = load_ok("");
  EXPECT_EQ(d.api.connections_per_client(), 64u);
  EXPECT_EQ(d.api.unix_reserve(), 128u);
  const Config small = load_ok("api:\n  max_connections: 10\n");
  EXPECT_EQ(small.api.connections_per_client(), 10u);
  EXPECT_EQ(small.api.unix_reserve(), 2u);
  const Config set = load_ok(
      "api:\n  max_connections: 100\n  max_connections_per_client: 7\n"
      "  unix_reserved_connections: 0\n");
  EXPECT_EQ(set.api.connections_per_client(), 7u);
  EXPECT_EQ(set.api.unix_reserve(), 0u);
  auto shown = describe(small);
  EXPECT_NE(std::find(shown.begin(), shown.end(),
                      std::pair<std::string, std::string>{"api.max_connections_per_client", "10"}),
            shown.end());
}

// What the server runs with: the limits read from api.* and events.keepalive, with the two
// connection shares in force.
TEST(Config, ServerLimitsCarryTheSharesInForceAndTheKeepalive) {
  const Config c = load_ok("api:\n  max_connections: 10\n  idle_timeout: 5s\n"
                           "events:\n  keepalive: 2s\n");
  const transport::HttpServerLimits l = c.api.server_limits();
  EXPECT_EQ(l.max_connections, 10u);
  EXPECT_EQ(l.max_connections_per_client, 10u);
  EXPECT_EQ(l.unix_reserved_connections, 2u);
  EXPECT_EQ(l.idle_timeout, 5s);
  EXPECT_EQ(l.stream_keepalive, 2s);
}

// The protocol gets phi accrual parameters only with detector: phi_accrual, and then with
// membership.suspicion_timeout as their suspect-to-dead time.
TEST(Config, ProtocolTimingsFollowTheDetector) {
  const std::string phi_keys =
      "membership:\n  suspicion_timeout: 1500ms\n  suspicion_max_timeout: 6s\n"
      "  phi:\n    threshold: 10\n    window: 50\n";
  const Config fixed = load_ok(phi_keys);
  EXPECT_FALSE(fixed.membership.protocol_timings().phi);
  const Config phi = load_ok(phi_keys + "  detector: phi_accrual\n");
  const auto t = phi.membership.protocol_timings();
  ASSERT_TRUE(t.phi);
  EXPECT_DOUBLE_EQ(t.phi->threshold, 10);
  EXPECT_EQ(t.phi->window, 50u);
  EXPECT_EQ(t.phi->suspicion_timeout, 1500ms);
  EXPECT_EQ(t.suspicion_timeout, 1500ms);
  EXPECT_EQ(t.suspicion_max_timeout, 6s);
}

// Config holds api.limits, membership.timings, membership.phi and hooks as the components'
// own structs and takes presence's defaults from membership::PresenceOptions, so those
// cannot drift. The event hub's and the Redis backend's options are still mirrored: until
// Config holds them too, their defaults must equal the config's (whose are documented).
TEST(Config, MirroredComponentDefaultsEqualTheConfigs) {
  const Config c = default_config();
  const transport::EventHubOptions hub;
  EXPECT_EQ(hub.max_subscribers, c.events.max_subscribers);
  EXPECT_EQ(hub.max_watched_users, c.events.max_watched_users);
  EXPECT_EQ(hub.max_queue_bytes, c.events.max_queue_bytes);
  const transport::redis::PresenceOptions redis;
  EXPECT_EQ(redis.key_prefix, c.presence.redis.key_prefix);
  EXPECT_EQ(redis.shards, c.presence.redis.shards);
  EXPECT_EQ(redis.command_timeout, c.presence.redis.timeout);
  EXPECT_EQ(redis.dedup_window, c.presence.redis.dedup_window);
  EXPECT_EQ(redis.sweep_interval, c.presence.redis.sweep_interval);
  EXPECT_EQ(redis.timeout, c.presence.timeout);
  EXPECT_EQ(redis.forget_after, c.presence.forget_after);
  EXPECT_EQ(redis.pool.wait, c.presence.redis.pool.wait);
  EXPECT_EQ(redis.pool.idle_timeout, c.presence.redis.pool.idle_timeout);
  EXPECT_EQ(redis.pool.max_waiters, c.presence.redis.pool.max_waiters);
  // Not pool.min and pool.max: transport::redis::PoolOptions's 1 and 8 are a bare pool's;
  // presence.redis.pool's 2 and 16 are chosen for the presence load (examples/heartbeatd.yaml).
}

TEST(ConfigErrors, ConnectionSharesMustFitMaxConnections) {
  EXPECT_EQ(load_error("api:\n  max_connections: 10\n  max_connections_per_client: 11\n"),
            "test.yaml: api.max_connections_per_client (11) is above api.max_connections (10)");
  EXPECT_NE(load_error("api:\n  max_connections_per_client: 0\n")
                .find("api.max_connections_per_client: expected an integer from 1 to 1000000"),
            std::string::npos);
  EXPECT_EQ(load_error("api:\n  http: 127.0.0.1:7700\n  max_connections: 10\n"
                       "  unix_reserved_connections: 10\n"),
            "test.yaml: api.unix_reserved_connections (10) leaves none of api.max_connections "
            "(10) for TCP: lower it, or disable api.http");
  // Without a TCP listener there is nobody to reserve against.
  load_ok("api:\n  http: \"\"\n  max_connections: 10\n  unix_reserved_connections: 10\n");
}

// Secure defaults: the API beyond loopback needs TLS and tokens, or an explicit insecure.
TEST(ConfigErrors, APublicApiWithoutTlsAndTokensIsRefusedNamingTheFix) {
  for (const char* host : {"0.0.0.0:7700", "[::]:7700", "192.0.2.10:7700"}) {
    const std::string e = load_error(std::string("api:\n  http: \"") + host + "\"\n");
    EXPECT_NE(e.find("is not a loopback address"), std::string::npos) << e;
    EXPECT_NE(e.find("api.tls.cert_file"), std::string::npos) << e;
    EXPECT_NE(e.find("api.tokens_file"), std::string::npos) << e;
    EXPECT_NE(e.find("api.insecure: true"), std::string::npos) << e;
  }
  const Config insecure = load_ok("api:\n  http: 0.0.0.0:7700\n  insecure: true\n");
  EXPECT_EQ(security_warnings(insecure),
            (std::vector<std::string>{"API on 0.0.0.0:7700 without TLS and tokens (api.insecure)"}));
  for (const char* host : {"127.0.0.1:7700", "127.0.0.2:7700", "[::1]:7700", "localhost:7700"}) {
    load_ok(std::string("api:\n  http: \"") + host + "\"\n");
  }
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
  const Config current =
      load_ok("log:\n  level: info\npresence:\n  timeout: 30s\napi:\n  http: 127.0.0.1:7700\n");
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

// The TLS files are re-read and may change on reload; TLS itself cannot come or go.
TEST(Reload, TlsFilesChangeButTlsOnOrOffNeedsARestart) {
  const Config plain = load_ok("api:\n  http: 127.0.0.1:7700\n");
  Config with_tls = plain;
  with_tls.api.tls = {"/a.pem", "/a.key", ""};
  ReloadPlan plan = plan_reload(plain, with_tls);
  EXPECT_FALSE(plan.error);
  EXPECT_FALSE(plan.effective.api.tls.enabled());
  EXPECT_TRUE(plan.applied.empty());
  EXPECT_EQ(plan.needs_restart,
            (std::vector<std::string>{"api.tls.cert_file:  -> /a.pem", "api.tls.key_file:  -> /a.key"}));

  Config rotated = with_tls;
  rotated.api.tls = {"/b.pem", "/b.key", "/ca.pem"};
  plan = plan_reload(with_tls, rotated);
  EXPECT_FALSE(plan.error);
  EXPECT_EQ(plan.effective.api.tls.cert_file, "/b.pem");
  EXPECT_EQ(plan.effective.api.tls.client_ca_file, "/ca.pem");
  EXPECT_EQ(plan.applied.size(), 3u);
  EXPECT_TRUE(plan.needs_restart.empty());

  plan = plan_reload(with_tls, plain);
  EXPECT_TRUE(plan.effective.api.tls.enabled());
  EXPECT_EQ(plan.needs_restart.size(), 2u);
}

TEST(ConfigErrors, TlsNeedsBothFilesAndTheTcpListener) {
  EXPECT_EQ(load_error("api:\n  tls:\n    cert_file: /a.pem\n"),
            "test.yaml: api.tls.cert_file is set but api.tls.key_file is not: TLS needs both the "
            "certificate and its private key");
  EXPECT_EQ(load_error("api:\n  tls:\n    client_ca_file: /ca.pem\n"),
            "test.yaml: api.tls.client_ca_file is set but api.tls.cert_file and api.tls.key_file "
            "are not: client certificates need TLS");
  EXPECT_NE(load_error("api:\n  http: \"\"\n  tls:\n    cert_file: /a\n    key_file: /b\n")
                .find("api.tls is set but api.http is disabled"),
            std::string::npos);
  EXPECT_NE(load_error("api:\n  http: 127.0.0.1:7700\n  tls:\n    cert_file: /nonexistent.pem\n"
                       "    key_file: /nonexistent.key\n")
                .find("api.tls.key_file /nonexistent.key: No such file or directory"),
            std::string::npos);
}

// Cluster security: a key file, the two sealing flags, and the loopback-only default.
class ClusterKeys : public ::testing::Test {
 protected:
  ClusterKeys() { dir_.write("key", std::string(64, 'a') + "\n"); }
  std::string key() const { return dir_.file("key"); }
  std::string with_key(const std::string& more = "") const {
    return "cluster:\n  key_file: " + key() + "\n" + more;
  }
  test::TempDir dir_;
};

TEST_F(ClusterKeys, DefaultsFollowTheKey) {
  const Config plain = load_ok("");
  EXPECT_EQ(plain.cluster.bind.to_string(), "127.0.0.1:7701") << "loopback without a key";
  EXPECT_FALSE(plain.cluster.sends_sealed());
  EXPECT_FALSE(plain.cluster.requires_sealed());
  EXPECT_FALSE(plain.cluster.plaintext);
  const Config keyed = load_ok(with_key());
  EXPECT_TRUE(keyed.cluster.sends_sealed());
  EXPECT_TRUE(keyed.cluster.requires_sealed());
  const Config migrating =
      load_ok(with_key("  seal_outgoing: false\n  require_sealed: false\n  bind: 0.0.0.0:7701\n"));
  EXPECT_FALSE(migrating.cluster.sends_sealed());
  EXPECT_FALSE(migrating.cluster.requires_sealed());
  const Config half = load_ok(with_key("  require_sealed: false\n"));
  EXPECT_TRUE(half.cluster.sends_sealed());
  EXPECT_FALSE(half.cluster.requires_sealed());
  for (const auto& [key, value] : describe(migrating)) {
    if (key == "cluster.seal_outgoing" || key == "cluster.require_sealed") {
      EXPECT_EQ(value, "false") << key;
    }
  }
  for (const auto& [key, value] : describe(keyed)) {
    if (key == "cluster.seal_outgoing" || key == "cluster.require_sealed") {
      EXPECT_EQ(value, "true") << key;
    }
  }
}

TEST_F(ClusterKeys, SealingWithoutAKeyIsAnError) {
  EXPECT_EQ(load_error("cluster:\n  seal_outgoing: true\n"),
            "test.yaml: cluster.seal_outgoing is true but cluster.key_file is not set: there is "
            "no key to seal with");
  EXPECT_EQ(load_error("cluster:\n  require_sealed: true\n"),
            "test.yaml: cluster.require_sealed is true but cluster.key_file is not set: there is "
            "no key to seal with");
  load_ok("cluster:\n  seal_outgoing: false\n  require_sealed: false\n");
  EXPECT_EQ(load_error("cluster:\n  seal_outgoing: yes\n"),
            "test.yaml:2: cluster.seal_outgoing: expected true or false, got \"yes\"");
  EXPECT_NE(load_error(with_key("  seal_outgoing: false\n"))
                .find("cluster.require_sealed is true but cluster.seal_outgoing is false"),
            std::string::npos);
}

TEST_F(ClusterKeys, ABadKeyFileIsAnErrorNamingItsLine) {
  dir_.write("bad", std::string(64, 'a') + "\n" + std::string(64, 'a') + "\n");
  EXPECT_EQ(load_error("cluster:\n  key_file: " + dir_.file("bad") + "\n"),
            "test.yaml: cluster.key_file " + dir_.file("bad") +
                ":2: the same key as line 1: remove one of them");
  EXPECT_NE(load_error("cluster:\n  key_file: " + dir_.file("none") + "\n")
                .find("cluster.key_file " + dir_.file("none") + ": cannot read"),
            std::string::npos);
}

TEST_F(ClusterKeys, NonLoopbackBindNeedsAKeyOrPlaintext) {
  for (const char* bind :
       {"0.0.0.0:7701", "\"[::]:7701\"", "10.0.0.5:7701", "\"[2001:db8::5]:7701\""}) {
    const std::string yaml = std::string("cluster:\n  bind: ") + bind + "\n";
    const std::string e = load_error(yaml);
    EXPECT_NE(e.find("is not a loopback address and there is no cluster.key_file"),
              std::string::npos)
        << e;
    EXPECT_NE(e.find("set cluster.key_file, or cluster.plaintext: true to accept an "
                     "unauthenticated cluster"),
              std::string::npos)
        << e;
    load_ok(yaml + "  plaintext: true\n");
    load_ok(yaml + "  key_file: " + key() + "\n");
  }
  EXPECT_EQ(load_error("cluster:\n  bind: 0.0.0.0:7701\n"),
            "test.yaml: cluster.bind 0.0.0.0:7701 is not a loopback address and there is no "
            "cluster.key_file: anyone who can reach it could forge heartbeats; set "
            "cluster.key_file, or cluster.plaintext: true to accept an unauthenticated cluster");
  for (const char* bind : {"127.0.0.1:7701", "127.0.0.5:9", "\"[::1]:7701\""}) {
    load_ok(std::string("cluster:\n  bind: ") + bind + "\n");
  }
}

TEST_F(ClusterKeys, LoopbackAndWarnings) {
  EXPECT_TRUE(is_loopback("127.0.0.1"));
  EXPECT_TRUE(is_loopback("127.255.0.3"));
  EXPECT_TRUE(is_loopback("::1"));
  EXPECT_TRUE(is_loopback("::ffff:127.0.0.1"));
  for (const char* no :
       {"0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "localhost", "::ffff:10.0.0.1"}) {
    EXPECT_FALSE(is_loopback(no)) << no;
  }
  EXPECT_TRUE(security_warnings(load_ok("")).empty());
  EXPECT_EQ(
      security_warnings(load_ok("cluster:\n  bind: 0.0.0.0:7701\n  plaintext: true\n")),
      std::vector<std::string>{"cluster is unauthenticated on 0.0.0.0:7701 (cluster.plaintext)"});
  EXPECT_TRUE(security_warnings(load_ok(with_key("  bind: 0.0.0.0:7701\n"))).empty());
  EXPECT_EQ(security_warnings(load_ok(with_key("  bind: 0.0.0.0:7701\n  require_sealed: false\n"))),
            std::vector<std::string>{"cluster accepts unauthenticated datagrams on 0.0.0.0:7701 "
                                     "(cluster.require_sealed: false)"});
}

TEST_F(ClusterKeys, ReloadAppliesTheKeysAndFlags) {
  // Step (a) of turning encryption on: a key file on a running plaintext node, both flags off.
  const Config current = load_ok("cluster:\n  bind: 0.0.0.0:7701\n  plaintext: true\n");
  const Config step_a =
      load_ok(with_key("  bind: 0.0.0.0:7701\n  plaintext: true\n  seal_outgoing: false\n  "
                       "require_sealed: false\n"));
  ReloadPlan plan = plan_reload(current, step_a);
  ASSERT_FALSE(plan.error) << *plan.error;
  EXPECT_EQ(plan.effective.cluster.key_file, key());
  EXPECT_FALSE(plan.effective.cluster.sends_sealed())
      << "an explicit false equal to the old default";
  EXPECT_FALSE(plan.effective.cluster.requires_sealed());
  EXPECT_EQ(plan.applied, (std::vector<std::string>{"cluster.key_file:  -> " + key()}));
  EXPECT_TRUE(plan.needs_restart.empty());

  // Steps (b) and (c): the flags turn on.
  const Config step_b = load_ok(with_key("  bind: 0.0.0.0:7701\n  require_sealed: false\n"));
  plan = plan_reload(plan.effective, step_b);
  ASSERT_FALSE(plan.error) << *plan.error;
  EXPECT_TRUE(plan.effective.cluster.sends_sealed());
  EXPECT_EQ(plan.applied, (std::vector<std::string>{"cluster.seal_outgoing: false -> true",
                                                    "cluster.plaintext: true -> false"}));
  const Config step_c = load_ok(with_key("  bind: 0.0.0.0:7701\n"));
  plan = plan_reload(plan.effective, step_c);
  ASSERT_FALSE(plan.error) << *plan.error;
  EXPECT_TRUE(plan.effective.cluster.requires_sealed());
  EXPECT_EQ(plan.applied, (std::vector<std::string>{"cluster.require_sealed: false -> true"}));

  // Dropping the key of a node bound beyond loopback is refused (bind needs a restart).
  plan = plan_reload(step_c, load_ok(""));
  ASSERT_TRUE(plan.error);
  EXPECT_NE(plan.error->find("cluster.bind 0.0.0.0:7701 is not a loopback address"),
            std::string::npos)
      << *plan.error;
  EXPECT_EQ(plan.needs_restart,
            (std::vector<std::string>{"cluster.bind: 0.0.0.0:7701 -> 127.0.0.1:7701"}));
}

TEST(Config, NodeTagsAreCheckedByTheProtocolsRuleAndReloadable) {
  const Config c = load_ok("node:\n  tags: {role: db, zone: b, empty: , n: 3, note: \"a: b\"}\n");
  EXPECT_EQ(c.node.tags, (membership::Tags{
                             {"empty", ""}, {"n", "3"}, {"note", "a: b"}, {"role", "db"}, {"zone", "b"}}));
  EXPECT_TRUE(load_ok("").node.tags.empty());
  EXPECT_TRUE(load_ok("node:\n  tags: {}\n").node.tags.empty());
  EXPECT_EQ(load_error("node:\n  tags: [a, b]\n"),
            "test.yaml:2: node.tags: expected a mapping such as {role: db, zone: b}, got a list");
  EXPECT_EQ(load_error("node:\n  tags:\n    ro le: db\n"),
            "test.yaml:3: node.tags: tag key \"ro le\": a key is 1 to 64 letters, digits, '.', '-' "
            "or '_'");
  EXPECT_EQ(load_error("node:\n  tags:\n    role: \"d\\tb\"\n"),
            "test.yaml:3: node.tags: tag role: a value is at most 128 printable ASCII characters "
            "(space to '~')");
  EXPECT_NE(load_error("node:\n  tags:\n    role: [a]\n").find("node.tags.role: expected a string"),
            std::string::npos);
  std::string many = "node:\n  tags:\n";
  for (int i = 0; i < 17; ++i) many += "    k" + std::to_string(i) + ": v\n";
  EXPECT_EQ(load_error(many), "test.yaml:2: node.tags: 17 tags: at most 16 are allowed");
  std::string big = "node:\n  tags:\n";
  for (int i = 0; i < 4; ++i) big += "    k" + std::to_string(i) + ": " + std::string(127, 'x') + "\n";
  EXPECT_NE(load_error(big).find("node.tags: the tags take 525 bytes encoded"), std::string::npos);
  // A change is applied by SIGHUP (the node announces it at a new incarnation).
  const ReloadPlan plan = plan_reload(load_ok(""), load_ok("node:\n  tags: {role: db}\n"));
  EXPECT_EQ(plan.applied, (std::vector<std::string>{"node.tags: {} -> {role: db}"}));
  EXPECT_EQ(plan.effective.node.tags, (membership::Tags{{"role", "db"}}));
}

TEST(ApiAccess, UnixScopesResolveIdsNamesAndOthers) {
  const Config c = load_ok(
      "api:\n  unix_scopes:\n    uid:1000: [read]\n    gid:50: read,write\n"
      "    user:root: [admin, metrics]\n    group:root: []\n    others: [read]\n");
  using Kind = transport::UnixScopeRule::Kind;
  ASSERT_EQ(c.api.unix_scopes.size(), 5u);
  EXPECT_EQ(c.api.unix_scopes[0], (transport::UnixScopeRule{Kind::uid, 1000, 1, "uid:1000"}));
  EXPECT_EQ(c.api.unix_scopes[1], (transport::UnixScopeRule{Kind::gid, 50, 3, "gid:50"}));
  EXPECT_EQ(c.api.unix_scopes[2], (transport::UnixScopeRule{Kind::uid, 0, 12, "user:root"}));
  EXPECT_EQ(c.api.unix_scopes[3], (transport::UnixScopeRule{Kind::gid, 0, 0, "group:root"}));
  EXPECT_EQ(c.api.unix_scopes[4].kind, Kind::others);
  bool shown = false;
  for (const auto& [key, value] : describe(c)) {
    if (key != "api.unix_scopes") continue;
    shown = true;
    EXPECT_EQ(value, "uid:1000: [read]; gid:50: [read,write]; user:root: [admin,metrics]; "
                     "group:root: []; others: [read]");
  }
  EXPECT_TRUE(shown);
}

TEST(ApiAccess, BadUnixScopesNameTheKey) {
  EXPECT_EQ(load_error("api:\n  unix_scopes:\n    uid:1000: [read, wirte]\n"),
            "test.yaml:3: api.unix_scopes.uid:1000: unknown scope \"wirte\" (known: read, "
            "write, admin, metrics)");
  EXPECT_EQ(load_error("api:\n  unix_scopes:\n    uid:x: [read]\n"),
            "test.yaml:3: api.unix_scopes.uid:x: uid must be a number");
  EXPECT_EQ(load_error("api:\n  unix_scopes:\n    user:no-such-user-hb: [read]\n"),
            "test.yaml:3: api.unix_scopes.user:no-such-user-hb: no user named no-such-user-hb "
            "on this system");
  EXPECT_EQ(load_error("api:\n  unix_scopes:\n    group:no-such-group-hb: [read]\n"),
            "test.yaml:3: api.unix_scopes.group:no-such-group-hb: no group named "
            "no-such-group-hb on this system");
  EXPECT_NE(load_error("api:\n  unix_scopes:\n    root: [read]\n").find("expected a key uid:N"),
            std::string::npos);
  EXPECT_EQ(load_error("api:\n  unix_scopes:\n    uid:0: [read]\n    user:root: [write]\n"),
            "test.yaml:4: api.unix_scopes.user:root: the same user as uid:0");
  EXPECT_NE(load_error("api:\n  unix_scopes: [read]\n").find("api.unix_scopes: expected a "
                                                            "mapping"),
            std::string::npos);
}

TEST(ApiAccess, RateLimitKeys) {
  const Config c = load_ok("api:\n  rate_limit:\n    requests_per_second: 2.5\n");
  EXPECT_EQ(c.api.rate_limit.requests_per_second, 2.5);
  EXPECT_EQ(c.api.rate_limit.effective_burst(), 3.0);
  EXPECT_EQ(load_ok("api:\n  rate_limit:\n    requests_per_second: 100\n    burst: 400\n")
                .api.rate_limit.effective_burst(),
            400.0);
  EXPECT_EQ(default_config().api.rate_limit.requests_per_second, 0);
  EXPECT_NE(load_error("api:\n  rate_limit:\n    burst: 10\n").find("requests_per_second is 0"),
            std::string::npos);
  EXPECT_NE(load_error("api:\n  rate_limit:\n    requests_per_second: -1\n")
                .find("api.rate_limit.requests_per_second: expected a number from 0"),
            std::string::npos);
}

TEST(ApiAccess, ATokensFileOthersCanReadIsAConfigError) {
  test::TempDir dir;
  dir.write("tokens", "gw read,write 0123456789abcdef0123\n");
  const std::string path = dir.file("tokens");
  chmod(path.c_str(), 0600);
  EXPECT_EQ(load_ok("api:\n  tokens_file: " + path + "\n").api.tokens_file, path);
  chmod(path.c_str(), 0604);
  EXPECT_EQ(load_error("api:\n  tokens_file: " + path + "\n"),
            "test.yaml: api.tokens_file " + path + ": readable or writable by others (mode "
            "0604); it holds API credentials: chmod o-rwx " + path);
  chmod(path.c_str(), 0600);
  dir.write("tokens", "gw read,write\n");
  EXPECT_EQ(load_error("api:\n  tokens_file: " + path + "\n"),
            "test.yaml: api.tokens_file " + path +
                ":1: expected NAME SCOPE[,SCOPE...] SECRET, got 2 fields");
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
