// Reload you can see (issue 19): POST /v1/reload and `heartbeatctl reload` against a real
// daemon and its config file. A reloadable key is applied and takes effect, a restart-only
// key is named, a broken file (or a broken file it names) is refused with the reason while
// the daemon keeps serving its old config, an unchanged file says so, and only the admin
// scope may ask. heartbeatctl's exit code follows each case. Files re-read under unchanged
// paths (a rotated key file, a tokens file with a new token) are reported when they changed. `heartbeatd --check-config
// --quiet`, which the systemd unit runs before SIGHUP, refuses the same broken files.
#include <sys/stat.h>

#include <csignal>
#include <cstdlib>
#include <string>
#include <vector>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "tests/support/daemon_process.h"
#include "tests/support/test_util.h"

namespace heartbeatd::test {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

// Every reload tells systemd RELOADING=1 then READY=1 on the helper's notify socket, whose
// queue holds 10 datagrams: read them first, or the daemon's next notification waits (as it
// would for a systemd that stopped reading).
HttpResult reload(DaemonProcess& d) {
  d.notifications();
  return http_unix(d.socket_path(), "POST", "/v1/reload");
}

std::vector<std::string> strings(const json::value& v) {
  std::vector<std::string> out;
  for (const auto& s : v.as_array()) out.emplace_back(s.as_string());
  return out;
}

// The 200 answer: result, applied, needs_restart.
struct Answer {
  std::string result;
  std::vector<std::string> applied, needs_restart;
};
Answer applied_answer(const HttpResult& r) {
  EXPECT_EQ(r.status, 200) << r.error << r.body;
  if (r.status != 200) return {};
  const auto o = json::parse(r.body).as_object();
  EXPECT_EQ(o.size(), 3u) << r.body;
  return {std::string(o.at("result").as_string()), strings(o.at("applied")),
          strings(o.at("needs_restart"))};
}

ProgramResult ctl(DaemonProcess& d, std::vector<std::string> args) {
  d.notifications();
  args.insert(args.begin(), {"--socket", d.socket_path()});
  return run_program(HEARTBEATCTL_BINARY, args);
}

bool online(const DaemonProcess& d, int user) {
  const auto r = http_unix(d.socket_path(), "GET", "/v1/users/" + std::to_string(user));
  return r.status == 200 && json::parse(r.body).as_object().at("online").as_bool();
}

TEST(Reload, AReloadableKeyIsAppliedNamedAndInForce) {
  const DaemonProcess::Keys keys{{"presence.timeout", "10m"}};
  DaemonProcess d(keys);
  ASSERT_TRUE(d.start()) << d.failure_reason();

  auto a = applied_answer(reload(d));
  EXPECT_EQ(a.result, "unchanged");
  EXPECT_TRUE(a.applied.empty());
  EXPECT_TRUE(a.needs_restart.empty());
  auto c = ctl(d, {"reload"});
  EXPECT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(c.out, "unchanged: the file matches the running configuration\n");

  ASSERT_EQ(http_unix(d.socket_path(), "POST", "/v1/users/42/heartbeat").status, 204);
  ASSERT_TRUE(online(d, 42));  // for ten minutes under the running config

  d.write_config({{"presence.timeout", "300ms"}});
  a = applied_answer(reload(d));
  EXPECT_EQ(a.result, "applied");
  EXPECT_EQ(a.applied, std::vector<std::string>{"presence.timeout: 10m -> 300ms"});
  EXPECT_TRUE(a.needs_restart.empty());
  // In force: the user goes offline 300 ms after the heartbeat, not ten minutes.
  EXPECT_TRUE(eventually([&] { return !online(d, 42); }, 10s));
  EXPECT_TRUE(d.wait_log("POST /v1/reload: applied presence.timeout: 10m -> 300ms")) << d.log();

  // The live log level, through heartbeatctl: applied, named, exit 0.
  d.write_config({{"presence.timeout", "300ms"}, {"log.level", "info"}});
  c = ctl(d, {"reload"});
  EXPECT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(c.out, "applied: log.level: debug -> info\n");
  EXPECT_EQ(c.err, "");
  // And SIGHUP still does the same, logged as before.
  d.write_config({{"presence.timeout", "2s"}, {"log.level", "info"}});
  d.signal(SIGHUP);
  EXPECT_TRUE(d.wait_log("SIGHUP: applied presence.timeout: 300ms -> 2s")) << d.log();
  EXPECT_EQ(applied_answer(reload(d)).result, "unchanged") << d.log();
}

TEST(Reload, RestartOnlyKeysAreNamedAndHeartbeatctlExitsFour) {
  DaemonProcess d(DaemonProcess::Keys{{"node.name", "before"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  d.write_config({{"node.name", "after"}, {"presence.max_batch", "500"}, {"log.level", "info"}});
  auto a = applied_answer(reload(d));
  EXPECT_EQ(a.result, "applied");
  EXPECT_EQ(a.applied, std::vector<std::string>{"log.level: debug -> info"});
  EXPECT_EQ(a.needs_restart, (std::vector<std::string>{"node.name: before -> after",
                                                        "presence.max_batch: 10000 -> 500"}));
  const auto health = http_unix(d.socket_path(), "GET", "/v1/health");
  EXPECT_NE(health.body.find("\"node\":\"before\""), std::string::npos) << health.body;

  // Still pending on the next reload: the file and what runs still differ.
  auto c = ctl(d, {"reload"});
  EXPECT_EQ(c.exit_code, 4) << c.err;
  EXPECT_EQ(c.out,
            "needs a restart: node.name: before -> after\n"
            "needs a restart: presence.max_batch: 10000 -> 500\n");
  c = ctl(d, {"--json", "reload"});
  EXPECT_EQ(c.exit_code, 4) << c.err;
  EXPECT_EQ(c.out,
            R"({"result":"applied","applied":[],"needs_restart":["node.name: before -> after",)"
            R"("presence.max_batch: 10000 -> 500"]})"
            "\n");
  EXPECT_TRUE(d.wait_log("POST /v1/reload: needs a restart, not applied: node.name: before -> "
                         "after"))
      << d.log();
}

void expect_rejected(const HttpResult& r, const std::string& reason) {
  EXPECT_EQ(r.status, 422) << r.error << r.body;
  if (r.status != 422) return;
  const auto o = json::parse(r.body).as_object();
  EXPECT_EQ(o.at("error"), "config_rejected");
  EXPECT_EQ(o.at("result"), "rejected");
  EXPECT_NE(std::string(o.at("message").as_string()).find(reason), std::string::npos) << r.body;
}

TEST(Reload, ABrokenFileIsRejectedWithItsReasonAndTheOldConfigStays) {
  const DaemonProcess::Keys keys{{"node.name", "keeper"}, {"presence.timeout", "10m"}};
  DaemonProcess d(keys);
  ASSERT_TRUE(d.start()) << d.failure_reason();
  d.write_config_text("presence:\n  timeout: 300ms\napi:\n  threads: lots\n");
  expect_rejected(reload(d), d.config_path() + ":4: api.threads: expected an integer");
  EXPECT_TRUE(d.wait_log("POST /v1/reload: new config rejected, the running config stays in "
                         "force"))
      << d.log();

  auto c = ctl(d, {"reload"});
  EXPECT_EQ(c.exit_code, 1);
  EXPECT_EQ(c.out, "");
  EXPECT_EQ(c.err.rfind("heartbeatctl: the daemon rejected the new configuration; the running "
                        "one stays in force: 422 config_rejected: " +
                            d.config_path() + ":4: api.threads",
                        0),
            0u)
      << c.err;
  c = ctl(d, {"--json", "reload"});
  EXPECT_EQ(c.exit_code, 1);
  EXPECT_EQ(c.out.rfind(R"({"error":"config_rejected","message":")", 0), 0u) << c.out;
  EXPECT_NE(c.out.find(R"("result":"rejected"})"), std::string::npos) << c.out;

  // Still serving, with the old config: presence.timeout is still ten minutes.
  ASSERT_EQ(http_unix(d.socket_path(), "POST", "/v1/users/7/heartbeat").status, 204);
  const auto health = http_unix(d.socket_path(), "GET", "/v1/health");
  EXPECT_EQ(health.status, 200);
  EXPECT_NE(health.body.find("\"node\":\"keeper\""), std::string::npos) << health.body;
  d.write_config(keys);
  EXPECT_EQ(applied_answer(reload(d)).result, "unchanged");
  EXPECT_TRUE(online(d, 7));
}

// What a reload re-reads besides the config (the key file, the tokens file) is refused by a
// reload and by `heartbeatd --check-config --quiet` alike, naming the key: the unit's
// ExecReload check never passes a file that the reload then rejects.
TEST(Reload, BrokenNamedFilesAreRejectedByTheReloadAndByCheckConfig) {
  TempDir files;
  DaemonProcess d(DaemonProcess::Keys{{"node.name", "keeper"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  auto check = [&] {
    return run_heartbeatd({"--check-config", d.config_path(), "--quiet"});
  };

  files.write("cluster.key", "this is not a key\n");
  chmod(files.file("cluster.key").c_str(), 0600);
  d.write_config({{"node.name", "keeper"}, {"cluster.key_file", files.file("cluster.key")}});
  expect_rejected(reload(d), "cluster.key_file " + files.file("cluster.key") + ":1:");
  auto cc = check();
  EXPECT_EQ(cc.exit_code, 2) << cc.output;
  EXPECT_NE(cc.output.find("cluster.key_file " + files.file("cluster.key") + ":1:"),
            std::string::npos)
      << cc.output;

  files.write("tokens", "ops admin admin-token-0123456789abcdef\n");
  chmod(files.file("tokens").c_str(), 0644);
  d.write_config({{"node.name", "keeper"}, {"api.tokens_file", files.file("tokens")}});
  expect_rejected(reload(d), "api.tokens_file " + files.file("tokens") +
                                 ": readable or writable by others (mode 0644)");
  cc = check();
  EXPECT_EQ(cc.exit_code, 2) << cc.output;
  EXPECT_NE(cc.output.find("api.tokens_file " + files.file("tokens") + ": readable"),
            std::string::npos)
      << cc.output;

  // Fixed: both pass, and the check prints one line, for the journal.
  chmod(files.file("tokens").c_str(), 0600);
  cc = check();
  EXPECT_EQ(cc.exit_code, 0) << cc.output;
  EXPECT_EQ(cc.output, d.config_path() + ": valid\n");
  const auto a = applied_answer(reload(d));
  EXPECT_EQ(a.result, "applied");
  EXPECT_EQ(a.applied, (std::vector<std::string>{
                           "api.tokens_file:  -> " + files.file("tokens"),
                           "api.tokens_file: tokens reloaded, 1 in force (were 0)"}));
}

// Started without --config, the daemon runs on built-in defaults: nothing to re-read, a 409.
TEST(Reload, WithoutAConfigFileThereIsNothingToReload) {
  // The defaults bind the cluster to the fixed 127.0.0.1:7701: in a network namespace of its
  // own the daemon cannot collide with another one. The API is its Unix socket, a file.
  if (std::system("unshare -n true >/dev/null 2>&1") != 0) GTEST_SKIP() << "no unshare -n";
  DaemonProcess d;
  d.env()["RUNTIME_DIRECTORY"] = d.dir().path();
  d.env()["STATE_DIRECTORY"] = d.dir().file("state");
  // exec "$0" alone: the helper's "--config FILE" arguments are dropped.
  d.wrapper() = {"unshare", "-n", "sh", "-c", "ip link set lo up && exec \"$0\""};
  ASSERT_TRUE(d.start()) << d.failure_reason();
  const std::string socket = d.dir().file("heartbeatd.sock");
  const auto r = http_unix(socket, "POST", "/v1/reload");
  EXPECT_EQ(r.status, 409) << r.error << r.body;
  EXPECT_NE(r.body.find(R"("error":"no_config_file")"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("started without --config"), std::string::npos) << r.body;
  const auto c = run_program(HEARTBEATCTL_BINARY, {"--socket", socket, "reload"});
  EXPECT_EQ(c.exit_code, 1);
  EXPECT_NE(c.err.find("409 no_config_file"), std::string::npos) << c.err;
}

std::vector<std::string> key_fingerprints(const DaemonProcess& d) {
  const auto r = http_unix(d.socket_path(), "GET", "/v1/keys");
  std::vector<std::string> fps;
  const auto answer = json::parse(r.body);
  for (const auto& k : answer.as_object().at("keys").as_array()) {
    fps.emplace_back(k.as_object().at("fingerprint").as_string());
  }
  return fps;
}

// A key file rewritten under the same path (a rotation step) is reported by fingerprint,
// the sealing key first, as GET /v1/keys shows them.
TEST(Reload, ARotatedKeyFileIsNamedByFingerprint) {
  TempDir files;
  const std::string key = files.file("cluster.key");
  const std::string a(64, 'a'), b(64, 'b');
  files.write("cluster.key", a + "\n");
  chmod(key.c_str(), 0600);
  const DaemonProcess::Keys keys{{"cluster.key_file", key}};
  DaemonProcess d(keys);
  ASSERT_TRUE(d.start()) << d.failure_reason();
  const auto before = key_fingerprints(d);
  ASSERT_EQ(before.size(), 1u);
  EXPECT_EQ(applied_answer(reload(d)).result, "unchanged");

  files.write("cluster.key", b + "\n" + a + "\n");
  const auto rotated = applied_answer(reload(d));
  const auto after = key_fingerprints(d);
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[1], before[0]);
  EXPECT_EQ(rotated.result, "applied");
  EXPECT_EQ(rotated.applied, std::vector<std::string>{"cluster.key_file: keys " + before[0] +
                                                      " -> " + after[0] + "," + after[1]});
  EXPECT_EQ(applied_answer(reload(d)).result, "unchanged");
}

const std::string kAdmin = "admin-token-0123456789abcdef";
const std::string kRead = "read-token-0123456789abcdef";

TEST(Reload, OnlyTheAdminScopeMayReload) {
  TempDir secrets;
  secrets.write("tokens", "ops admin " + kAdmin + "\nviewer read " + kRead + "\n");
  const std::string tokens = secrets.file("tokens");
  chmod(tokens.c_str(), 0600);
  for (const auto& [name, token] : {std::pair{"admin", kAdmin}, std::pair{"read", kRead}}) {
    secrets.write(name, token + "\n");
    chmod(secrets.file(name).c_str(), 0600);
  }
  DaemonProcess d({{"api.tokens_file", tokens}});
  ASSERT_TRUE(d.start()) << d.failure_reason();

  EXPECT_EQ(http_tcp(d.port(), "POST", "/v1/reload").status, 401);
  auto r = http_tcp_token(d.port(), kRead, "POST", "/v1/reload");
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_NE(r.body.find("\"error\":\"forbidden\""), std::string::npos) << r.body;
  // The tokens file is re-read, and unchanged tokens are not reported as a change.
  EXPECT_EQ(applied_answer(http_tcp_token(d.port(), kAdmin, "POST", "/v1/reload")).result,
            "unchanged");
  r = http_tcp_token(d.port(), kAdmin, "POST", "/v1/reload?now=1");
  EXPECT_EQ(r.status, 400) << r.body;
  r = http_tcp_token(d.port(), kAdmin, "POST", "/v1/reload", "{}");
  EXPECT_EQ(r.status, 400) << r.body;

  const std::string http = "127.0.0.1:" + std::to_string(d.port());
  auto c = run_program(HEARTBEATCTL_BINARY,
                       {"--http", http, "--token-file", secrets.file("read"), "reload"});
  EXPECT_EQ(c.exit_code, 1);
  EXPECT_NE(c.err.find("may not do that: 403 forbidden"), std::string::npos) << c.err;

  // A token added to the file: the reload says the tokens changed, and the new one works.
  secrets.write("tokens", "ops admin " + kAdmin + "\nviewer read " + kRead +
                              "\nlate read,write late-token-0123456789abcdef\n");
  c = run_program(HEARTBEATCTL_BINARY,
                  {"--http", http, "--token-file", secrets.file("admin"), "reload"});
  EXPECT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(c.out, "applied: api.tokens_file: tokens reloaded, 3 in force (were 2)\n");
  EXPECT_EQ(http_tcp_token(d.port(), "late-token-0123456789abcdef", "GET", "/v1/users").status,
            200);
}

}  // namespace
}  // namespace heartbeatd::test
