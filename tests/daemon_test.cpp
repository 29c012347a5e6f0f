// The real build/bin/heartbeatd as a process: health over TCP and the Unix socket, bad input,
// SIGHUP with a changed and an invalid config, SIGTERM, socket-file ownership, sd_notify.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json/parse.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/daemon_process.h"

namespace heartbeatd::test {
namespace {

using namespace std::chrono_literals;

void expect_healthy(const HttpResult& r, const std::string& node = "test-node") {
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  const auto body = boost::json::parse(r.body).as_object();
  EXPECT_EQ(body.at("status"), "ok");
  EXPECT_EQ(body.at("node"), node.c_str());
  EXPECT_TRUE(body.at("version").is_string());
  EXPECT_GE(body.at("uptime_ms").as_int64(), 0);
}

TEST(Daemon, HealthOverTcpAndUnixSocket) {
  DaemonProcess d(DaemonProcess::Keys{{"node.name", "alpha-1"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  expect_healthy(http_tcp(d.port(), "GET", "/v1/health"), "alpha-1");
  expect_healthy(http_unix(d.socket_path(), "GET", "/v1/health"), "alpha-1");
  EXPECT_EQ(std::filesystem::status(d.socket_path()).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                std::filesystem::perms::group_read | std::filesystem::perms::group_write);
}

TEST(Daemon, BadRequestsGetClearErrorsAndDaemonStaysHealthy) {
  DaemonProcess d(DaemonProcess::Keys{{"api.max_body_bytes", "1024"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();

  auto garbage = d.tcp_client();
  ASSERT_TRUE(garbage.send_raw("\x16\x03\x01 this is not HTTP\r\n\r\n"));
  EXPECT_EQ(garbage.read_response().status, 400);
  EXPECT_TRUE(garbage.wait_closed());

  const auto big = d.unix_client().request("POST", "/v1/health", std::string(4096, '{'));
  EXPECT_EQ(big.status, 413) << big.error;
  EXPECT_NE(big.body.find("\"error\":\"payload_too_large\""), std::string::npos);

  const auto unknown = http_tcp(d.port(), "GET", "/v1/nothing-here");
  EXPECT_EQ(unknown.status, 404);
  const auto wrong_method = http_unix(d.socket_path(), "DELETE", "/v1/health");
  EXPECT_EQ(wrong_method.status, 405);
  EXPECT_EQ(wrong_method.header("allow"), "GET");

  expect_healthy(http_tcp(d.port(), "GET", "/v1/health"));
  expect_healthy(http_unix(d.socket_path(), "GET", "/v1/health"));
}

TEST(Daemon, SighupAppliesRuntimeKeysAndReportsRestartKeys) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.failure_reason();
  const std::size_t before = d.notifications().size();
  d.write_config({{"presence.timeout", "5s"}, {"api.max_connections", "10"}});
  d.signal(SIGHUP);
  EXPECT_TRUE(d.wait_log("SIGHUP: applied presence.timeout: 30s -> 5s")) << d.log();
  EXPECT_TRUE(d.wait_log("SIGHUP: needs a restart, not applied: api.max_connections: 1024 -> 10"))
      << d.log();
  EXPECT_TRUE(d.wait_notification("RELOADING=1", 5s, before));
  EXPECT_TRUE(d.wait_notification("READY=1", 5s, before));
  expect_healthy(http_tcp(d.port(), "GET", "/v1/health"));

  // log.level is live: at warning, info lines stop.
  d.write_config({{"presence.timeout", "5s"}, {"log.level", "warning"}});
  d.signal(SIGHUP);
  EXPECT_TRUE(d.wait_log("SIGHUP: applied log.level: debug -> warning")) << d.log();
  d.signal(SIGTERM);
  ASSERT_EQ(d.wait_exit(), 0);
  EXPECT_EQ(d.log().find("SIGTERM received"), std::string::npos)
      << "info lines must be filtered after the reload:\n"
      << d.log();
}

TEST(Daemon, SighupWithInvalidConfigKeepsTheRunningOne) {
  DaemonProcess d(DaemonProcess::Keys{{"node.name", "keeper"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  d.write_config_text("api:\n  threads: lots\n");
  d.signal(SIGHUP);
  EXPECT_TRUE(d.wait_log("new config rejected, the running config stays in force")) << d.log();
  EXPECT_TRUE(d.wait_log("api.threads: expected an integer")) << d.log();
  expect_healthy(http_unix(d.socket_path(), "GET", "/v1/health"), "keeper");
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait_exit(), 0);
}

TEST(Daemon, SigtermExitsZeroWithin2sAndRemovesTheSocket) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.failure_reason();
  // An idle keep-alive connection and a half-sent request must not hold the stop up.
  auto idle = d.tcp_client();
  ASSERT_EQ(idle.request("GET", "/v1/health").status, 200);
  auto half = d.unix_client();
  ASSERT_TRUE(half.send_raw("POST /v1/health HTTP/1.1\r\nContent-Length: 100\r\n\r\n{"));
  ASSERT_TRUE(std::filesystem::exists(d.socket_path()));

  d.signal(SIGTERM);
  EXPECT_EQ(d.wait_exit(2s), 0) << d.log();
  EXPECT_FALSE(std::filesystem::exists(d.socket_path()));
  EXPECT_TRUE(d.wait_notification("STOPPING=1", 1s));
  EXPECT_TRUE(idle.wait_closed(1s));
}

TEST(Daemon, SigintAlsoStopsGracefully) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.failure_reason();
  d.signal(SIGINT);
  EXPECT_EQ(d.wait_exit(2s), 0);
}

TEST(Daemon, SocketOfALiveDaemonIsNotTakenOver) {
  DaemonProcess first;
  ASSERT_TRUE(first.start()) << first.failure_reason();
  DaemonProcess second(DaemonProcess::Keys{{"api.unix_socket", first.socket_path()}});
  EXPECT_FALSE(second.start());
  EXPECT_EQ(second.wait_exit(), 1);
  EXPECT_NE(second.log().find("api.unix_socket: cannot listen on unix:" + first.socket_path() +
                              ": socket is in use by a running process"),
            std::string::npos)
      << second.log();
  expect_healthy(http_unix(first.socket_path(), "GET", "/v1/health"));
}

TEST(Daemon, StaleSocketAfterKill9IsReplaced) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.failure_reason();
  d.signal(SIGKILL);
  EXPECT_EQ(d.wait_exit(), -SIGKILL);
  ASSERT_TRUE(std::filesystem::exists(d.socket_path())) << "kill -9 leaves the socket file";
  ASSERT_TRUE(d.start()) << d.failure_reason();
  EXPECT_TRUE(d.wait_log("removed stale socket"));
  expect_healthy(http_unix(d.socket_path(), "GET", "/v1/health"));
}

TEST(Daemon, TcpPortInUseExits1) {
  DaemonProcess first;
  ASSERT_TRUE(first.start()) << first.failure_reason();
  TempDir dir;
  dir.write("c.yaml", "api:\n  http: 127.0.0.1:" + std::to_string(first.port()) +
                          "\n  unix_socket: \"\"\nnode:\n  data_dir: " + dir.file("data") + "\n");
  const auto r = run_heartbeatd({"--config", dir.file("c.yaml")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("api.http: cannot listen on 127.0.0.1:" + std::to_string(first.port()) +
                          ": Address already in use"),
            std::string::npos)
      << r.output;
}

TEST(Daemon, UnusableDataDirExits3) {
  TempDir dir;
  dir.write("file", "x");
  const auto r = run_heartbeatd(
      {"--config", [&] {
         dir.write("c.yaml", "api:\n  http: \"\"\n  unix_socket: " + dir.file("s.sock") +
                                 "\nnode:\n  data_dir: " + dir.file("file/sub") + "\n");
         return dir.file("c.yaml");
       }()});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.output.find("node.data_dir " + dir.file("file/sub") +
                          ": cannot look at it: Not a "
                          "directory"),
            std::string::npos)
      << r.output;
}

// The value of `series` in /metrics, read over the Unix socket (TCP may be what is full).
double unix_metric(const DaemonProcess& d, const std::string& series) {
  const auto r = http_unix(d.socket_path(), "GET", "/metrics");
  const std::string needle = "\n" + series + " ";
  const auto at = r.body.find(needle);
  return at == std::string::npos ? -1 : std::stod(r.body.substr(at + needle.size()));
}

// The lock-out, with the real daemon: one client holding its share of idle keep-alive
// connections, then TCP clients from many addresses holding all TCP may take. The one is told
// 503 naming its limit, others are served meanwhile, and the Unix socket keeps its reserve.
TEST(Daemon, ConnectionLimitsPerClientAndTheUnixReserve) {
  DaemonProcess d(DaemonProcess::Keys{{"api.max_connections", "20"},
                                      {"api.max_connections_per_client", "3"},
                                      {"api.unix_reserved_connections", "5"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  const std::string over_limit = "heartbeatd_api_refused_total{reason=\"over_limit\"}";
  EXPECT_EQ(unix_metric(d, over_limit), 0);

  std::vector<HttpClient> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(HttpClient::tcp(d.port()));
    ASSERT_EQ(held.back().request("GET", "/v1/health").status, 200) << i;
  }
  const auto refused = http_tcp(d.port(), "GET", "/v1/health");
  EXPECT_EQ(refused.status, 503) << refused.error;
  EXPECT_EQ(refused.header("retry-after"), "1");
  EXPECT_NE(refused.body.find("api.max_connections_per_client: 3"), std::string::npos)
      << refused.body;
  expect_healthy(HttpClient::tcp_from("127.0.0.2", d.port()).request("GET", "/v1/health"));
  expect_healthy(http_unix(d.socket_path(), "GET", "/v1/health"));
  EXPECT_EQ(unix_metric(d, over_limit), 1);
  EXPECT_TRUE(d.wait_log("API: refused 127.0.0.1 (over_limit): too many connections from "
                         "127.0.0.1"))
      << d.log();

  // Twelve more from four other addresses: TCP's allowance (20 - 5) is taken.
  for (int i = 0; i < 12; ++i) {
    held.push_back(HttpClient::tcp_from("127.0.0." + std::to_string(10 + i / 3), d.port()));
    ASSERT_EQ(held.back().request("GET", "/v1/health").status, 200) << i;
  }
  const auto flood = HttpClient::tcp_from("127.0.0.30", d.port()).request("GET", "/v1/health");
  EXPECT_EQ(flood.status, 503) << flood.error;
  EXPECT_NE(flood.body.find("api.unix_reserved_connections: 5"), std::string::npos) << flood.body;
  std::vector<HttpClient> local;  // two: this test's uid has a share of three, like any client
  for (int i = 0; i < 2; ++i) {
    local.push_back(d.unix_client());
    expect_healthy(local.back().request("GET", "/v1/health"));
  }
  EXPECT_EQ(unix_metric(d, over_limit), 2);
  for (auto& c : held) EXPECT_EQ(c.request("GET", "/v1/health").status, 200);
}

// The socket's directory: heartbeatd runs on a Unix socket only, so only the directory
// decides; run to completion, expecting exit 3 and a message naming the path and the fix.
RunResult run_with_socket(const TempDir& dir, const std::string& socket) {
  dir.write("c.yaml", "api:\n  http: \"\"\n  unix_socket: " + socket +
                          "\nnode:\n  data_dir: " + dir.file("data") +
                          "\ncluster:\n  bind: 127.0.0.1:" + std::to_string(free_udp_port()) +
                          "\n");
  return run_heartbeatd({"--config", dir.file("c.yaml")});
}

TEST(Daemon, SocketDirectoryOfAnotherUserIsRefusedWithExit3) {
  ASSERT_EQ(geteuid(), 0u) << "needs root to make a directory another user owns";
  TempDir dir;
  const std::string taken = dir.file("taken");
  ASSERT_EQ(mkdir(taken.c_str(), 0700), 0);
  ASSERT_EQ(chown(taken.c_str(), 65534, 65534), 0);  // nobody pre-created it
  const auto r = run_with_socket(dir, taken + "/heartbeatd.sock");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("directory " + taken + " is owned by uid 65534, not by heartbeatd's "
                          "user (uid 0)"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("chown 0 " + taken), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(taken + "/heartbeatd.sock"));
  EXPECT_FALSE(std::filesystem::exists(dir.file("data"))) << "refused before the store opens";
}

TEST(Daemon, SocketDirectoryWritableByOthersIsRefusedWithExit3) {
  TempDir dir;
  const std::string open = dir.file("open");
  ASSERT_EQ(mkdir(open.c_str(), 0700), 0);
  ASSERT_EQ(chmod(open.c_str(), 0777), 0);
  const auto r = run_with_socket(dir, open + "/heartbeatd.sock");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("directory " + open + " has mode 0777"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("chmod 0750 " + open), std::string::npos) << r.output;
}

TEST(Daemon, SocketDirectoryThatIsASymlinkIsRefusedWithExit3) {
  TempDir dir;
  ASSERT_EQ(mkdir(dir.file("real").c_str(), 0700), 0);  // even one we own: we did not plant it
  const std::string link = dir.file("link");
  ASSERT_EQ(symlink(dir.file("real").c_str(), link.c_str()), 0);
  const auto r = run_with_socket(dir, link + "/heartbeatd.sock");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("directory " + link + " is a symbolic link"), std::string::npos)
      << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir.file("real/heartbeatd.sock")));
}

TEST(Daemon, SocketUnderADirectoryAnotherUserOwnsIsRefusedWithExit3) {
  TempDir dir;
  const std::string theirs = dir.file("theirs");
  ASSERT_EQ(mkdir(theirs.c_str(), 0755), 0);
  ASSERT_EQ(chown(theirs.c_str(), 65534, 65534), 0);  // they could rename "mine" away
  ASSERT_EQ(mkdir((theirs + "/mine").c_str(), 0700), 0);
  const auto r = run_with_socket(dir, theirs + "/mine/heartbeatd.sock");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("lies under " + theirs + " (owner uid 65534"), std::string::npos)
      << r.output;
}

// Missing directories are created 0750 whatever the umask: the group reaches the 0660 socket.
TEST(Daemon, MissingSocketDirectoryIsCreated0750) {
  TempDir run;
  const std::string socket = run.file("a/b/heartbeatd.sock");
  DaemonProcess d(DaemonProcess::Keys{{"api.unix_socket", socket}});
  const mode_t umask_before = umask(077);
  const bool started = d.start();
  umask(umask_before);
  ASSERT_TRUE(started) << d.failure_reason();
  for (const auto* sub : {"a", "a/b"}) {
    struct stat st {};
    ASSERT_EQ(lstat(run.file(sub).c_str(), &st), 0) << sub;
    EXPECT_TRUE(S_ISDIR(st.st_mode)) << sub;
    EXPECT_EQ(st.st_mode & 07777, 0750u) << sub;
    EXPECT_EQ(st.st_uid, geteuid()) << sub;
  }
  expect_healthy(http_unix(socket, "GET", "/v1/health"));
}

// Directly in a sticky shared directory such as /tmp (the default when the socket path would
// be too long): others cannot remove or rename the socket there, so it is accepted.
TEST(Daemon, SocketDirectlyInAStickySharedDirectoryIsAccepted) {
  TempDir dir;
  const std::string shared = dir.file("shared");
  ASSERT_EQ(mkdir(shared.c_str(), 0700), 0);
  ASSERT_EQ(chmod(shared.c_str(), 01777), 0);
  DaemonProcess d(DaemonProcess::Keys{{"api.unix_socket", shared + "/heartbeatd.sock"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  expect_healthy(http_unix(shared + "/heartbeatd.sock", "GET", "/v1/health"));
}

TEST(Daemon, NotifyProtocolReadyWatchdogCadenceAndStopping) {
  // The daemon speaks sd_notify to a NOTIFY_SOCKET datagram socket this test owns; messages
  // carry the kernel's arrival time, so the cadence is measured, not the test's polling.
  DaemonProcess d;
  d.env()["WATCHDOG_USEC"] = "400000";
  ASSERT_TRUE(d.start()) << d.failure_reason();
  // READY=1 is the first message, and the API answers by then (no retry).
  ASSERT_FALSE(d.notifications().empty());
  EXPECT_EQ(d.notifications()[0].rfind("READY=1", 0), 0u) << d.notifications()[0];
  expect_healthy(http_tcp(d.port(), "GET", "/v1/health"));

  auto watchdogs = [&] {
    std::vector<std::chrono::system_clock::time_point> at;
    const auto msgs = d.notifications();
    const auto times = d.notification_times();
    for (std::size_t i = 0; i < msgs.size(); ++i) {
      if (msgs[i] == "WATCHDOG=1") at.push_back(times[i]);
    }
    return at;
  };
  ASSERT_TRUE(eventually([&] { return watchdogs().size() >= 8; }, 10s)) << watchdogs().size();
  // Every 200 ms (half of WATCHDOG_USEC), on a fixed-rate schedule: the mean gap within
  // 20 %, and no gap reaching the 400 ms at which systemd would kill the daemon.
  const auto at = watchdogs();
  std::vector<double> gaps;
  for (std::size_t i = 1; i < at.size(); ++i) {
    gaps.push_back(std::chrono::duration<double, std::milli>(at[i] - at[i - 1]).count());
  }
  const double mean = std::accumulate(gaps.begin(), gaps.end(), 0.0) / static_cast<double>(gaps.size());
  std::printf("[ measured ] WATCHDOG=1 every %.1f ms on average (max %.1f ms)\n", mean,
              *std::max_element(gaps.begin(), gaps.end()));
  EXPECT_NEAR(mean, 200.0, 40.0);
  EXPECT_LT(*std::max_element(gaps.begin(), gaps.end()), 400.0);

  // SIGTERM: STOPPING=1, and no keep-alive after it.
  const std::size_t before = d.notifications().size();
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait_exit(), 0);
  const auto msgs = d.notifications();
  std::size_t stopping = msgs.size();
  for (std::size_t i = before; i < msgs.size(); ++i) {
    if (msgs[i].find("STOPPING=1") != std::string::npos) {
      stopping = i;
      break;
    }
  }
  ASSERT_LT(stopping, msgs.size()) << "no STOPPING=1";
  for (std::size_t i = stopping + 1; i < msgs.size(); ++i) EXPECT_NE(msgs[i], "WATCHDOG=1");
}

TEST(Daemon, NoWatchdogWhenTheManagerDidNotAskForIt) {
  DaemonProcess d;
  d.env()["WATCHDOG_USEC"] = "200000";
  d.env()["WATCHDOG_PID"] = "1";  // meant for another process
  ASSERT_TRUE(d.start()) << d.failure_reason();
  // Given 1 s, a watchdog at 100 ms would have sent several.
  EXPECT_FALSE(d.wait_notification("WATCHDOG=1", 1s));
}

TEST(Daemon, JournalLinesCarryPriorityPrefixes) {
  DaemonProcess d;
  // journald's contract: $JOURNAL_STREAM names the device and inode of our stderr.
  d.dir().write("stderr.log", "");
  struct stat st {};
  ASSERT_EQ(stat(d.dir().file("stderr.log").c_str(), &st), 0);
  d.env()["JOURNAL_STREAM"] = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  ASSERT_TRUE(d.start()) << d.failure_reason();
  EXPECT_EQ(d.log().rfind("<6>heartbeatd ", 0), 0u) << d.log();
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait_exit(), 0);
}

TEST(Daemon, ReadyComesAfterListenersAreBound) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.failure_reason();
  // start() returned on READY=1; the API must already answer, with no retry.
  expect_healthy(http_tcp(d.port(), "GET", "/v1/health"));
  expect_healthy(http_unix(d.socket_path(), "GET", "/v1/health"));
}

}  // namespace
}  // namespace heartbeatd::test

namespace heartbeatd::test {
namespace {

using namespace std::chrono_literals;

// Secure defaults: refused before anything is bound, so no test ever listens beyond loopback.
TEST(Daemon, APublicApiWithoutTlsAndTokensExits2NamingTheFix) {
  for (const std::string http : {"0.0.0.0:7700", "\"[::]:7700\"", "10.1.2.3:7700"}) {
    DaemonProcess d({{"api.http", http}});
    EXPECT_FALSE(d.start(5s));
    EXPECT_EQ(d.wait_exit(), 2) << http;
    EXPECT_NE(d.log().find("is not a loopback address and the API there would have no TLS "
                           "(api.tls.cert_file and api.tls.key_file) and tokens "
                           "(api.tokens_file)"),
              std::string::npos)
        << d.log();
    EXPECT_NE(d.log().find("or set api.insecure: true"), std::string::npos) << d.log();
  }
}

}  // namespace
}  // namespace heartbeatd::test
