// hooks.on_member_change / hooks.on_user_change against the real daemon: the event reaches
// the executable in HEARTBEATD_* variables; only hooks.users run the user hook, on Redis too
// for heartbeats sent to another node; a hook that
// hangs is killed at hooks.timeout while detection goes on; concurrency is bounded; a full
// queue drops (and counts) instead of growing; failures are logged with their output; and
// bad hook settings stop the daemon at start with a clear message. Waits have deadlines.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "tests/support/daemon_process.h"
#include "tests/support/redis_server.h"
#include "tests/support/test_util.h"

namespace heartbeatd::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Writes an executable shell script.
std::string script(const TempDir& dir, const std::string& name, const std::string& body) {
  dir.write(name, "#!/bin/sh\n" + body);
  chmod(dir.file(name).c_str(), 0755);
  return dir.file(name);
}

// Each run of the recording hook leaves one file: its HEARTBEATD_* variables, one per line.
std::vector<std::map<std::string, std::string>> runs(const std::string& out_dir) {
  std::vector<std::pair<std::string, std::map<std::string, std::string>>> found;
  for (const auto& entry : fs::directory_iterator(out_dir)) {
    if (entry.path().extension() != ".env") continue;
    std::map<std::string, std::string> vars;
    const std::string text = read_file(entry.path());
    std::size_t start = 0;
    while (start < text.size()) {
      const std::size_t nl = text.find('\n', start);
      const std::string line = text.substr(start, nl - start);
      start = nl == std::string::npos ? text.size() : nl + 1;
      const auto eq = line.find('=');
      if (eq != std::string::npos) vars[line.substr(0, eq)] = line.substr(eq + 1);
    }
    found.emplace_back(entry.path().filename().string(), std::move(vars));
  }
  std::sort(found.begin(), found.end());  // names start with a nanosecond timestamp
  std::vector<std::map<std::string, std::string>> out;
  for (auto& [_, v] : found) out.push_back(std::move(v));
  return out;
}

const char* kRecord =
    "f=\"$HOOK_OUT/$(date +%s%N)-$$\"\n"
    "env | grep '^HEARTBEATD_' > \"$f.tmp\" && mv \"$f.tmp\" \"$f.env\"\n";

TEST(Hooks, MemberChangesRunTheHookWithTheEventInItsEnvironment) {
  TempDir out;
  TempDir bin;
  const std::string hook = script(bin, "member.sh", kRecord);
  DaemonProcess a(DaemonProcess::Keys{{"node.name", "node-a"},
                                      {"hooks.on_member_change", hook}});
  a.env()["HOOK_OUT"] = out.path();
  a.env()["HEARTBEATD_MEMBER_NAME"] = "stale";  // the daemon's own HEARTBEATD_* are not passed
  ASSERT_TRUE(a.start()) << a.failure_reason();
  DaemonProcess b(DaemonProcess::Keys{{"node.name", "node-b"},
                                      {"node.tags", "{role: db}"},
                                      {"cluster.seeds", "[" + a.cluster_address() + "]"}});
  ASSERT_TRUE(b.start()) << b.failure_reason();

  auto has = [&](const std::string& state) {
    for (const auto& r : runs(out.path())) {
      if (r.count("HEARTBEATD_MEMBER_NAME") && r.at("HEARTBEATD_MEMBER_NAME") == "node-b" &&
          r.at("HEARTBEATD_MEMBER_STATE") == state) {
        return true;
      }
    }
    return false;
  };
  ASSERT_TRUE(eventually([&] { return has("alive"); }, 10s)) << a.log();
  b.signal(SIGKILL);
  b.wait_exit();
  ASSERT_TRUE(eventually([&] { return has("dead"); }, 10s)) << a.log();

  // In order, one subject: joined (no previous state) first, dead last, right after a
  // suspicion. (A loaded machine may add a refuted suspicion in between.)
  std::vector<std::map<std::string, std::string>> about_b;
  for (auto& r : runs(out.path())) {
    if (r["HEARTBEATD_MEMBER_NAME"] == "node-b") about_b.push_back(r);
  }
  ASSERT_GE(about_b.size(), 3u);
  EXPECT_EQ(about_b.front()["HEARTBEATD_MEMBER_STATE"], "alive");
  EXPECT_EQ(about_b.front()["HEARTBEATD_MEMBER_PREVIOUS_STATE"], "");
  const auto& dead = about_b.back();
  EXPECT_EQ(dead.at("HEARTBEATD_MEMBER_STATE"), "dead");
  EXPECT_EQ(dead.at("HEARTBEATD_MEMBER_PREVIOUS_STATE"), "suspect");
  EXPECT_EQ(about_b[about_b.size() - 2]["HEARTBEATD_MEMBER_STATE"], "suspect");
  EXPECT_EQ(dead.at("HEARTBEATD_EVENT"), "member");
  EXPECT_EQ(dead.at("HEARTBEATD_NODE"), "node-a");
  EXPECT_EQ(dead.at("HEARTBEATD_MEMBER_ADDRESS"), b.cluster_address());
  EXPECT_FALSE(dead.at("HEARTBEATD_MEMBER_INCARNATION").empty());
  EXPECT_EQ(dead.at("HEARTBEATD_MEMBER_TAGS"), R"({"role":"db"})");
  EXPECT_GT(std::stoll(dead.at("HEARTBEATD_TIME_MS")), 1'700'000'000'000LL);
  EXPECT_TRUE(eventually(
      [&] {
        return metric(a, R"(heartbeatd_hook_runs_total{hook="on_member_change",result="ok"})") ==
               static_cast<double>(runs(out.path()).size());
      },
      5s));
}

TEST(Hooks, AHookGetsNoneOfTheDaemonsSockets) {
  TempDir out;
  TempDir bin;
  // Lists what its descriptors point to: a listener or a connection would show as socket:[N].
  const std::string hook = script(
      bin, "fds.sh",
      "for f in /proc/$$/fd/*; do readlink \"$f\"; done > \"$HOOK_OUT/fds.tmp\"\n"
      "mv \"$HOOK_OUT/fds.tmp\" \"$HOOK_OUT/fds\"\n");
  DaemonProcess d(DaemonProcess::Keys{{"hooks.on_user_change", hook}, {"hooks.users", "[1]"}});
  d.env()["HOOK_OUT"] = out.path();
  ASSERT_TRUE(d.start()) << d.failure_reason();
  auto keep_open = HttpClient::tcp(d.port());  // a client connection exists meanwhile
  ASSERT_EQ(http_tcp(d.port(), "POST", "/v1/users/1/heartbeat").status, 204);
  ASSERT_TRUE(eventually([&] { return fs::exists(out.file("fds")); }, 5s)) << d.log();
  const std::string fds = read_file(out.file("fds"));
  EXPECT_EQ(fds.find("socket:"), std::string::npos) << fds;
  EXPECT_NE(fds.find("/dev/null"), std::string::npos) << fds;  // stdin
  EXPECT_NE(fds.find("pipe:"), std::string::npos) << fds;      // stdout, stderr
}

TEST(Hooks, OnlyTheListedUsersRunTheUserHook) {
  TempDir out;
  TempDir bin;
  const std::string hook = script(bin, "user.sh", kRecord);
  DaemonProcess d(DaemonProcess::Keys{{"presence.timeout", "300ms"},
                                      {"hooks.on_user_change", hook},
                                      {"hooks.users", "[7, 18446744073709551615]"}});
  d.env()["HOOK_OUT"] = out.path();
  ASSERT_TRUE(d.start()) << d.failure_reason();
  // User 8 (not listed) first: were it watched, its transitions would come before or
  // beside user 7's.
  ASSERT_EQ(http_tcp(d.port(), "POST", "/v1/users/8/heartbeat").status, 204);
  ASSERT_EQ(http_tcp(d.port(), "POST", "/v1/users/7/heartbeat").status, 204);
  ASSERT_TRUE(eventually([&] { return runs(out.path()).size() >= 2; }, 5s)) << d.log();
  EXPECT_EQ(metric(d, "heartbeatd_event_watched_users"), 2);  // 7 and 2^64-1, not 8
  const auto r = runs(out.path());
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].at("HEARTBEATD_EVENT"), "user");
  EXPECT_EQ(r[0].at("HEARTBEATD_USER_ID"), "7");
  EXPECT_EQ(r[0].at("HEARTBEATD_USER_STATE"), "online");
  EXPECT_EQ(r[1].at("HEARTBEATD_USER_STATE"), "offline");
  EXPECT_EQ(r[0].at("HEARTBEATD_USER_LAST_SEEN_MS"), r[1].at("HEARTBEATD_USER_LAST_SEEN_MS"));
  // The largest id goes through too.
  ASSERT_EQ(http_tcp(d.port(), "POST", "/v1/users/18446744073709551615/heartbeat").status, 204);
  ASSERT_TRUE(eventually([&] { return runs(out.path()).size() >= 3; }, 5s));
  EXPECT_EQ(runs(out.path())[2].at("HEARTBEATD_USER_ID"), "18446744073709551615");
}

// With presence on Redis the user hook runs on the node that watches, whichever node the
// heartbeats went to: node B's hook hears of user 7 coming online and going offline at A.
TEST(Hooks, OnRedisTheUserHookRunsForHeartbeatsSentToAnotherNode) {
  if (RedisServer::binary().empty()) GTEST_SKIP() << "redis-server is not installed";
  RedisServer redis;
  ASSERT_TRUE(redis.start());
  const DaemonProcess::Keys shared{
      {"presence.backend", "redis"},
      {"presence.redis.nodes", "[127.0.0.1:" + std::to_string(redis.port()) + "]"},
      {"presence.redis.dedup_window", "0"},
      {"presence.timeout", "1s"}};
  TempDir out;
  TempDir bin;
  auto b_keys = shared;
  b_keys["hooks.on_user_change"] = script(bin, "user.sh", kRecord);
  b_keys["hooks.users"] = "[7]";
  DaemonProcess a(shared), b(b_keys);
  b.env()["HOOK_OUT"] = out.path();
  ASSERT_TRUE(a.start()) << a.failure_reason();
  ASSERT_TRUE(b.start()) << b.failure_reason();
  // A publishes the transitions of user 7's shard once it knows B watches it.
  ASSERT_TRUE(eventually([&] { return metric(a, "heartbeatd_redis_watched_shards") == 1; }))
      << a.log();
  ASSERT_EQ(http_tcp(a.port(), "POST", "/v1/users/7/heartbeat").status, 204);
  ASSERT_TRUE(eventually([&] { return runs(out.path()).size() >= 2; }, 10s)) << b.log();
  const auto r = runs(out.path());
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].at("HEARTBEATD_USER_ID"), "7");
  EXPECT_EQ(r[0].at("HEARTBEATD_USER_STATE"), "online");
  EXPECT_EQ(r[1].at("HEARTBEATD_USER_STATE"), "offline");
  EXPECT_EQ(r[0].at("HEARTBEATD_USER_LAST_SEEN_MS"), r[1].at("HEARTBEATD_USER_LAST_SEEN_MS"));
}

TEST(Hooks, AHungHookIsKilledAtTheTimeoutAndDetectionGoesOn) {
  TempDir bin;
  TempDir out;
  // It leaves a child behind in its process group: the timeout kills the group.
  const std::string hook = script(bin, "hang.sh",
                                  "sleep 60 &\necho \"started $$\"\necho $! > \"$HOOK_OUT/child\"\n"
                                  "exec sleep 60\n");
  DaemonProcess d(DaemonProcess::Keys{{"presence.timeout", "200ms"},
                                      {"hooks.on_user_change", hook},
                                      {"hooks.users", "[1]"},
                                      {"hooks.timeout", "1s"}});
  d.env()["HOOK_OUT"] = out.path();
  ASSERT_TRUE(d.start()) << d.failure_reason();
  ASSERT_EQ(http_tcp(d.port(), "POST", "/v1/users/1/heartbeat").status, 204);
  ASSERT_TRUE(d.wait_log("killed after hooks.timeout (1000 ms); output: started", 5s)) << d.log();
  // The hook of the offline transition (queued behind the hung one) runs and is killed too:
  // detection did not wait for either.
  ASSERT_TRUE(eventually(
      [&] { return metric(d, R"(heartbeatd_hook_runs_total{hook="on_user_change",result="timeout"})") == 2; },
      5s));
  EXPECT_EQ(http_tcp(d.port(), "GET", "/v1/users/1").body.find("\"online\":false") !=
                std::string::npos,
            true);
  const std::string child = read_file(out.file("child"));
  ASSERT_FALSE(child.empty());
  // Gone, or a zombie waiting for whoever reaps orphans here.
  auto gone = [&] {
    const std::string stat = read_file("/proc/" + child.substr(0, child.find('\n')) + "/stat");
    const auto paren = stat.rfind(')');
    return stat.empty() || (paren != std::string::npos && stat.substr(paren + 2, 1) == "Z");
  };
  EXPECT_TRUE(eventually(gone, 5s)) << "the hook's child survived";
}

TEST(Hooks, ConcurrencyIsBoundedAndAFullQueueDrops) {
  TempDir bin;
  TempDir out;
  // Each run marks its start, then waits for the test to release it.
  const std::string hook = script(
      bin, "block.sh",
      "touch \"$HOOK_OUT/start-$HEARTBEATD_USER_ID-$HEARTBEATD_USER_STATE\"\n"
      "while [ ! -e \"$HOOK_OUT/release\" ]; do sleep 0.02; done\n");
  DaemonProcess d(DaemonProcess::Keys{{"hooks.on_user_change", hook},
                                      {"hooks.users", "[1, 2, 3, 4, 5, 6, 7, 8]"},
                                      {"hooks.max_concurrent", "2"},
                                      {"hooks.max_queue", "4"},
                                      {"hooks.timeout", "30s"}});
  d.env()["HOOK_OUT"] = out.path();
  ASSERT_TRUE(d.start()) << d.failure_reason();
  ASSERT_EQ(http_tcp(d.port(), "POST", "/v1/users/heartbeat", R"({"users":[1,2,3,4,5,6,7,8]})")
                .status,
            200);
  auto started = [&] {
    int n = 0;
    for (const auto& e : fs::directory_iterator(out.path())) {
      n += e.path().filename().string().starts_with("start-");
    }
    return n;
  };
  ASSERT_TRUE(eventually([&] { return started() == 2; }, 5s));
  // 8 events: 2 running, 4 queued (2 per worker), so at least 2 dropped — and no third run
  // starts while the first two block.
  ASSERT_TRUE(eventually(
      [&] { return metric(d, R"(heartbeatd_hook_events_dropped_total{hook="on_user_change"})") >= 2; },
      5s));
  EXPECT_FALSE(eventually([&] { return started() > 2; }, 500ms));
  EXPECT_TRUE(d.wait_log("queue full (hooks.max_queue 4)", 1s));
  // The API does not wait for hooks.
  EXPECT_EQ(http_tcp(d.port(), "GET", "/v1/health").status, 200);
  out.write("release", "");
  EXPECT_TRUE(eventually(
      [&] {
        return metric(d, R"(heartbeatd_hook_runs_total{hook="on_user_change",result="ok"})") +
                   metric(d, R"(heartbeatd_hook_events_dropped_total{hook="on_user_change"})") ==
               8;
      },
      10s));
}

TEST(Hooks, AFailingHookIsLoggedWithItsOutput) {
  TempDir bin;
  const std::string hook = script(bin, "fail.sh", "echo \"cannot page $HEARTBEATD_USER_ID\" >&2\nexit 3\n");
  DaemonProcess d(DaemonProcess::Keys{{"hooks.on_user_change", hook}, {"hooks.users", "[5]"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  ASSERT_EQ(http_tcp(d.port(), "POST", "/v1/users/5/heartbeat").status, 204);
  EXPECT_TRUE(d.wait_log("exit status 3", 5s)) << d.log();
  EXPECT_TRUE(d.wait_log("output: cannot page 5", 1s)) << d.log();
  EXPECT_TRUE(eventually(
      [&] { return metric(d, R"(heartbeatd_hook_runs_total{hook="on_user_change",result="failed"})") == 1; },
      5s));
}

TEST(Hooks, BadHookSettingsStopTheDaemonAtStart) {
  TempDir bin;
  bin.write("plain.txt", "not a program");
  const std::string ok = script(bin, "ok.sh", "exit 0\n");
  struct Case {
    DaemonProcess::Keys keys;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{{"hooks.on_member_change", bin.file("missing.sh")}}, "No such file or directory"},
      {{{"hooks.on_member_change", bin.file("plain.txt")}}, "not an executable file"},
      {{{"hooks.on_member_change", "relative.sh"}}, "an absolute path"},
      {{{"hooks.on_user_change", ok}}, "hooks.users is empty"},
      {{{"hooks.users", "[1, x]"}}, "hooks.users[1]"},
      {{{"hooks.users", "[1, 2]"}, {"events.max_watched_users", "1"}},
       "more than events.max_watched_users"},
  };
  for (const auto& c : cases) {
    DaemonProcess d(c.keys);
    EXPECT_FALSE(d.start());
    EXPECT_EQ(d.wait_exit(), 2) << c.expected;
    EXPECT_NE(d.log().find(c.expected), std::string::npos) << d.log();
  }
}

}  // namespace
}  // namespace heartbeatd::test
