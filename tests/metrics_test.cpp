// GET /metrics: the output is parsed line by line against the Prometheus text format
// (0.0.4) — HELP/TYPE before a family's samples, valid names and labels, numeric values,
// counters named _total, contiguous families, no duplicate series, histograms with
// cumulative buckets ending in +Inf == _count — and the values follow what happened:
// heartbeats, API requests by route and status, datagrams dropped by reason, members, a
// dead peer's detection time. promtool (Debian's prometheus package) checks a live scrape
// too, lint included.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/daemon_process.h"
#include "tests/support/redis_server.h"
#include "tests/support/test_util.h"
#include "base/metrics.h"

namespace heartbeatd::test {
namespace {

using namespace std::chrono_literals;

struct Exposition {
  std::vector<std::string> errors;
  std::map<std::string, double> samples;     // "name{labels}" -> value
  std::map<std::string, std::string> types;  // family -> type
};

// A strict reader of the text format, as far as heartbeatd uses it.
Exposition parse_exposition(const std::string& text) {
  static const std::regex help(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$)");
  static const std::regex type(
      R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
  static const std::regex sample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*")*)?\})? ([-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?|[-+]?Inf|NaN)$)");
  Exposition out;
  std::string family, helped;
  std::set<std::string> finished;
  std::size_t n = 0;
  auto err = [&](const std::string& line, const std::string& why) {
    out.errors.push_back("line " + std::to_string(n) + " (" + line + "): " + why);
  };
  if (text.empty() || text.back() != '\n') out.errors.push_back("does not end with a newline");
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t nl = text.find('\n', start);
    const std::string line = text.substr(start, nl - start);
    start = nl == std::string::npos ? text.size() : nl + 1;
    ++n;
    std::smatch m;
    if (std::regex_match(line, m, help)) {
      if (finished.count(m[1])) err(line, "family appears twice");
      helped = m[1];
    } else if (std::regex_match(line, m, type)) {
      if (m[1] != helped) err(line, "TYPE without HELP just before");
      if (!family.empty()) finished.insert(family);
      family = m[1];
      out.types[family] = m[2];
      if (m[2] == "counter" && !family.ends_with("_total")) err(line, "counter not named _total");
    } else if (std::regex_match(line, m, sample)) {
      const std::string name = m[1];
      const std::string series = name + std::string(m[2]);
      bool belongs = name == family;
      if (out.types[family] == "histogram") {
        belongs =
            name == family + "_bucket" || name == family + "_sum" || name == family + "_count";
      }
      if (!belongs) err(line, "sample outside its family (last TYPE: " + family + ")");
      if (out.samples.count(series)) err(line, "duplicate series");
      out.samples[series] = std::stod(m[7] == "+Inf" ? "inf" : std::string(m[7]));
      if (out.types[family] == "counter" && out.samples[series] < 0) err(line, "negative counter");
    } else {
      err(line, "not a HELP, TYPE or sample line");
    }
  }
  // Histograms: per label set, counts non-decreasing as "le" grows, and the +Inf bucket
  // equal to _count.
  static const std::regex le_label(R"re(^(.*?),?le="([^"]*)"\}$)re");
  for (const auto& [fam, t] : out.types) {
    if (t != "histogram") continue;
    std::map<std::string, std::vector<std::pair<double, double>>> buckets;  // labels -> (le, n)
    for (const auto& [series, v] : out.samples) {
      std::smatch m;
      const std::string prefix = fam + "_bucket{";
      if (!series.starts_with(prefix)) continue;
      const std::string rest = series.substr(prefix.size());
      if (!std::regex_match(rest, m, le_label)) {
        out.errors.push_back(series + ": bucket without le");
        continue;
      }
      const double le = m[2] == "+Inf" ? INFINITY : std::stod(m[2]);
      buckets[m[1]].emplace_back(le, v);
    }
    for (auto& [labels, values] : buckets) {
      std::sort(values.begin(), values.end());
      for (std::size_t i = 1; i < values.size(); ++i) {
        if (values[i].second < values[i - 1].second) {
          out.errors.push_back(fam + "{" + labels + "}: buckets not cumulative");
        }
      }
      const std::string count_key = fam + "_count" + (labels.empty() ? "" : "{" + labels + "}");
      if (values.back().first != INFINITY || !out.samples.count(count_key) ||
          values.back().second != out.samples[count_key]) {
        out.errors.push_back(fam + "{" + labels + "}: +Inf bucket missing or not _count");
      }
    }
  }
  return out;
}

TEST(MetricsFormat, TheCheckerRejectsWhatIsWrong) {
  EXPECT_TRUE(
      parse_exposition("# HELP a_total x\n# TYPE a_total counter\na_total 1\n").errors.empty());
  EXPECT_FALSE(parse_exposition("a_total 1\n").errors.empty());  // no TYPE
  EXPECT_FALSE(parse_exposition("# HELP a x\n# TYPE a counter\na 1\n").errors.empty());
  EXPECT_FALSE(parse_exposition("# HELP a x\n# TYPE a gauge\na{b=\"1} 1\n").errors.empty());
  EXPECT_FALSE(parse_exposition("# HELP a x\n# TYPE a gauge\na 1\na 2\n").errors.empty());
  EXPECT_FALSE(parse_exposition("# HELP a x\n# TYPE a gauge\na one\n").errors.empty());
  EXPECT_FALSE(parse_exposition("# HELP a x\n# TYPE a gauge\na 1").errors.empty());
  EXPECT_FALSE(parse_exposition("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
                                "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n")
                   .errors.empty());
  EXPECT_FALSE(parse_exposition("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"0.5\"} 2\n"
                                "h_bucket{le=\"10\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\n"
                                "h_count 2\n")
                   .errors.empty());  // 10 sorts before 0.5 as text: numeric order is checked
  EXPECT_TRUE(parse_exposition("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\n"
                               "h_bucket{le=\"10\"} 2\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\n"
                               "h_count 2\n")
                  .errors.empty());
}

TEST(MetricsFormat, APlainHistogramIsCumulativeWithItsOwnBounds) {
  PlainHistogram h({0.5, 2, 30});
  h.observe(0.1);
  h.observe(0.5);  // on a bound: counted in that bucket (le is "less or equal")
  h.observe(1.5);
  h.observe(45);
  MetricsWriter w;
  w.family("d_seconds", "histogram", "help");
  h.write(w, "d_seconds", {{"from", "x"}});
  const auto e = parse_exposition(w.text());
  for (const auto& error : e.errors) ADD_FAILURE() << error << "\n" << w.text();
  EXPECT_EQ(e.samples.at(R"(d_seconds_bucket{from="x",le="0.5"})"), 2);
  EXPECT_EQ(e.samples.at(R"(d_seconds_bucket{from="x",le="2"})"), 3);
  EXPECT_EQ(e.samples.at(R"(d_seconds_bucket{from="x",le="30"})"), 3);
  EXPECT_EQ(e.samples.at(R"(d_seconds_bucket{from="x",le="+Inf"})"), 4);
  EXPECT_EQ(e.samples.at(R"(d_seconds_count{from="x"})"), 4);
  EXPECT_DOUBLE_EQ(e.samples.at(R"(d_seconds_sum{from="x"})"), 47.1);
}

TEST(MetricsFormat, WriterEscapesLabelsAndHistogramsAreCumulative) {
  MetricsWriter w;
  w.family("x", "gauge", "help");
  w.sample("x", {{"path", "a\"b\\c\nd"}}, 1.5);
  LatencyHistogram h;
  h.observe(std::chrono::microseconds(50));
  h.observe(std::chrono::milliseconds(3));
  h.observe(std::chrono::seconds(2));
  w.family("lat_seconds", "histogram", "help");
  h.write(w, "lat_seconds", {{"route", "/r"}});
  const auto e = parse_exposition(w.text());
  for (const auto& error : e.errors) ADD_FAILURE() << error << "\n" << w.text();
  EXPECT_EQ(e.samples.at(R"(x{path="a\"b\\c\nd"})"), 1.5);
  EXPECT_EQ(e.samples.at(R"(lat_seconds_bucket{route="/r",le="0.0001"})"), 1);
  EXPECT_EQ(e.samples.at(R"(lat_seconds_bucket{route="/r",le="0.0025"})"), 1);
  EXPECT_EQ(e.samples.at(R"(lat_seconds_bucket{route="/r",le="0.005"})"), 2);
  EXPECT_EQ(e.samples.at(R"(lat_seconds_bucket{route="/r",le="1"})"), 2);
  EXPECT_EQ(e.samples.at(R"(lat_seconds_bucket{route="/r",le="+Inf"})"), 3);
  EXPECT_NEAR(e.samples.at(R"(lat_seconds_sum{route="/r"})"), 2.00305, 1e-9);
}

void send_udp(std::uint16_t port, const std::string& bytes) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  sendto(fd, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  close(fd);
}

// Every family of `e` is a row of docs/API.md's metric table, with its type.
void expect_documented(const Exposition& e) {
  const std::string api = read_file(std::string(HEARTBEATD_SOURCE_DIR) + "/docs/API.md");
  const auto table = api.find("## Metrics");
  ASSERT_NE(table, std::string::npos);
  const std::string section = api.substr(table, api.find("\n## ", table + 1) - table);
  for (const auto& [family, type] : e.types) {
    EXPECT_NE(section.find("| `" + family + "` | " + type + " |"), std::string::npos)
        << family << " (" << type << ") is not in docs/API.md's metric table";
  }
}

bool have_promtool() { return run_program("promtool", {"--version"}).exit_code != 127; }

// promtool's own reading of a scrape, its lint included: no line of output at all.
void expect_promtool_silent(const std::string& body) {
  TempDir dir;
  dir.write("scrape.txt", body);
  ProgramOptions o;
  o.merge_output = true;
  const auto check =
      run_program("sh", {"-c", "exec promtool check metrics < \"$0\"", dir.file("scrape.txt")}, o);
  std::istringstream lines(check.out);
  for (std::string line; std::getline(lines, line);) ADD_FAILURE() << "promtool: " << line;
  EXPECT_EQ(check.exit_code, 0) << check.out;
}

TEST(Metrics, RealDaemonOutputIsValidAndFollowsWhatHappened) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.failure_reason();
  for (int i = 1; i <= 3; ++i) {
    ASSERT_EQ(http_tcp(d.port(), "POST", "/v1/users/" + std::to_string(i) + "/heartbeat").status,
              204);
  }
  ASSERT_EQ(http_tcp(d.port(), "POST", "/v1/users/heartbeat", R"({"users":[3,4,5,6,7]})").status,
            200);
  ASSERT_EQ(http_unix(d.socket_path(), "GET", "/v1/users/1").status, 200);
  ASSERT_EQ(http_tcp(d.port(), "GET", "/v1/users/1").status, 200);
  ASSERT_EQ(http_tcp(d.port(), "GET", "/v1/users/x").status, 400);
  ASSERT_EQ(http_tcp(d.port(), "GET", "/nowhere").status, 404);
  ASSERT_EQ(http_tcp(d.port(), "DELETE", "/v1/users/2").status, 204);
  // Datagrams that are not ours: too short (malformed), and a wrong version.
  send_udp(d.cluster_port(), "x");
  ASSERT_TRUE(eventually(
      [&] {
        auto e = parse_exposition(http_tcp(d.port(), "GET", "/metrics").body);
        return e.samples["heartbeatd_datagrams_dropped_total{reason=\"malformed\"}"] >= 1;
      },
      5s));

  const auto r = http_tcp(d.port(), "GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const auto e = parse_exposition(r.body);
  for (const auto& error : e.errors) ADD_FAILURE() << error;
  auto at = [&](const std::string& series) {
    auto it = e.samples.find(series);
    if (it == e.samples.end()) {
      ADD_FAILURE() << "missing " << series;
      return -1.0;
    }
    return it->second;
  };
  EXPECT_EQ(at("heartbeatd_user_heartbeats_received_total"), 8);
  EXPECT_EQ(at("heartbeatd_user_logouts_total"), 1);
  EXPECT_EQ(at("heartbeatd_users_tracked"), 7);
  EXPECT_EQ(at("heartbeatd_users_online"), 6);
  EXPECT_EQ(at(R"(heartbeatd_members{state="alive"})"), 1);
  EXPECT_EQ(at(R"(heartbeatd_members{state="dead"})"), 0);
  EXPECT_EQ(at(R"(heartbeatd_datagrams_dropped_total{reason="malformed"})"), 1);
  EXPECT_EQ(at(R"(heartbeatd_datagrams_dropped_total{reason="bad_tag"})"), 0);
  EXPECT_EQ(at("heartbeatd_datagrams_received_total"), 1);
  EXPECT_EQ(
      at(R"(heartbeatd_api_requests_total{route="/v1/users/{id}/heartbeat",method="POST",code="204"})"),
      3);
  EXPECT_EQ(at(R"(heartbeatd_api_requests_total{route="/v1/users/{id}",method="GET",code="200"})"),
            2);
  EXPECT_EQ(at(R"(heartbeatd_api_requests_total{route="/v1/users/{id}",method="GET",code="400"})"),
            1);
  EXPECT_EQ(at(R"(heartbeatd_api_requests_total{route="unmatched",method="",code="404"})"), 1);
  EXPECT_EQ(
      at(R"(heartbeatd_api_request_duration_seconds_count{route="/v1/users/{id}",method="GET"})"),
      3);
  EXPECT_EQ(e.types.at("heartbeatd_api_request_duration_seconds"), "histogram");
  for (const char* family :
       {"heartbeatd_suspicions_raised_total", "heartbeatd_suspicions_refuted_total",
        "heartbeatd_deaths_declared_total", "heartbeatd_membership_refused_total",
        "heartbeatd_local_health_score", "heartbeatd_datagrams_sent_total",
        "heartbeatd_snapshot_duration_seconds", "heartbeatd_snapshot_size_bytes",
        "heartbeatd_snapshots_total"}) {
    EXPECT_TRUE(e.types.count(family)) << family;
  }

  // A request refused before routing is counted too.
  auto raw = HttpClient::tcp(d.port());
  ASSERT_TRUE(raw.send_raw("NOT HTTP\r\n\r\n"));
  EXPECT_EQ(raw.read_response().status, 400);
  const auto after = parse_exposition(http_tcp(d.port(), "GET", "/metrics").body);
  EXPECT_EQ(
      after.samples.at(R"(heartbeatd_api_requests_total{route="unrouted",method="",code="400"})"),
      1);
}

TEST(Metrics, SnapshotFiguresAppearAfterASnapshot) {
  DaemonProcess d(DaemonProcess::Keys{{"persist.presence_interval", "100ms"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  ASSERT_EQ(http_tcp(d.port(), "POST", "/v1/users/heartbeat", R"({"users":[1,2,3]})").status, 200);
  Exposition e;
  ASSERT_TRUE(eventually(
      [&] {
        e = parse_exposition(http_tcp(d.port(), "GET", "/metrics").body);
        return e.samples["heartbeatd_snapshot_users"] == 3;
      },
      5s));
  EXPECT_GE(e.samples["heartbeatd_snapshots_total"], 1);
  EXPECT_GT(e.samples["heartbeatd_snapshot_size_bytes"], 0);
  EXPECT_GT(e.samples["heartbeatd_snapshot_timestamp_seconds"], 1.7e9);
  EXPECT_GT(e.samples["heartbeatd_data_dir_size_bytes"], 0);
}

// With presence on Redis: the output is still valid, the users gauges show what Redis last
// counted, and the Redis families follow what happened (writes, deduplicated heartbeats, the
// pool).
TEST(Metrics, TheRedisBackendsFamiliesAreValidAndFollowWhatHappened) {
  if (RedisServer::binary().empty()) GTEST_SKIP() << "redis-server is not installed";
  RedisServer redis;
  ASSERT_TRUE(redis.start());
  const std::string node = "127.0.0.1:" + std::to_string(redis.port());
  DaemonProcess d({{"presence.backend", "redis"},
                   {"presence.redis.nodes", "[" + node + "]"},
                   {"presence.redis.pool.min", "2"},
                   {"presence.redis.dedup_window", "1m"},
                   {"presence.timeout", "1h"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  // The first heartbeat is written; the next two, within the window, are not.
  ASSERT_TRUE(eventually([&] {
    return http_tcp(d.port(), "POST", "/v1/users/1/heartbeat").status == 204;
  })) << d.log();
  ASSERT_EQ(http_tcp(d.port(), "POST", "/v1/users/1/heartbeat").status, 204);
  ASSERT_EQ(http_tcp(d.port(), "POST", "/v1/users/heartbeat", R"({"users":[1]})").status, 200);
  // The gauges show the last count Redis answered (this one): /metrics does not wait for it.
  ASSERT_EQ(http_tcp(d.port(), "GET", "/v1/users").status, 200);

  const auto body = http_tcp(d.port(), "GET", "/metrics").body;
  if (have_promtool()) expect_promtool_silent(body);
  const auto e = parse_exposition(body);
  for (const auto& error : e.errors) ADD_FAILURE() << error;
  const auto at = [&](const std::string& series) {
    const auto it = e.samples.find(series);
    EXPECT_NE(it, e.samples.end()) << "missing " << series;
    return it == e.samples.end() ? -1.0 : it->second;
  };
  EXPECT_EQ(at("heartbeatd_users_online"), 1.0);
  EXPECT_EQ(at("heartbeatd_users_tracked"), 1.0);
  EXPECT_EQ(at("heartbeatd_redis_heartbeats_deduplicated_total"), 2.0);
  EXPECT_GE(at("heartbeatd_redis_commands_total"), 1.0);
  EXPECT_EQ(at("heartbeatd_redis_failed_requests_total"), 0.0);
  EXPECT_EQ(at("heartbeatd_redis_redirects_total{kind=\"moved\"}"), 0.0);
  const double open = at("heartbeatd_redis_pool_connections{node=\"" + node + "\",state=\"open\"}");
  EXPECT_TRUE(open >= 1 && open <= 2) << open << ": pool.min 2 (the second may be connecting)";
  EXPECT_EQ(at("heartbeatd_redis_pool_waiting{node=\"" + node + "\"}"), 0.0);
  EXPECT_EQ(at("heartbeatd_redis_pool_exhausted_total{node=\"" + node + "\",reason=\"wait\"}"),
            0.0);
  EXPECT_EQ(at("heartbeatd_user_heartbeats_received_total"), 3.0);
  expect_documented(e);  // the Redis families too
}

TEST(Metrics, PromtoolFindsNothingToSayAboutALiveScrape) {
  if (!have_promtool()) GTEST_SKIP() << "promtool is not installed (Debian: prometheus)";
  DaemonProcess d(DaemonProcess::Keys{{"hooks.on_member_change", "/bin/true"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  ASSERT_EQ(http_tcp(d.port(), "POST", "/v1/users/1/heartbeat").status, 204);
  ASSERT_EQ(http_tcp(d.port(), "GET", "/nowhere").status, 404);
  const auto r = http_tcp(d.port(), "GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  expect_promtool_silent(r.body);
}

// Every family a live daemon exports is a row of docs/API.md's metric table (the dashboard
// and alert checks, tests/dashboard_metrics_test.py, rely on that table).
TEST(Metrics, EveryExportedFamilyIsDocumented) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.failure_reason();
  const auto e = parse_exposition(http_tcp(d.port(), "GET", "/metrics").body);
  ASSERT_GT(e.types.size(), 40u);
  expect_documented(e);
}

// Two real nodes; one is killed: the other times the detection (from the suspicion, and
// from the last datagram it heard), and counts the probe that failed. The figures of the
// process and the split between user heartbeats and membership messages are checked on the
// way.
TEST(Metrics, AKilledPeersDetectionIsTimedAndTheProtocolsCountersAreExported) {
  DaemonProcess a(DaemonProcess::Keys{{"node.name", "node-a"}});
  ASSERT_TRUE(a.start()) << a.failure_reason();
  DaemonProcess b({{"node.name", "node-b"}, {"cluster.seeds", "[" + a.cluster_address() + "]"}});
  ASSERT_TRUE(b.start()) << b.failure_reason();
  ASSERT_TRUE(eventually([&] { return metric(a, R"(heartbeatd_members{state="alive"})") == 2; }))
      << a.log();
  ASSERT_TRUE(eventually([&] { return metric(a, "heartbeatd_membership_messages_received_total") > 0; }));
  EXPECT_EQ(metric(a, "heartbeatd_user_heartbeats_received_total"), 0);
  EXPECT_GT(metric(a, "heartbeatd_membership_messages_sent_total"), 0);
  EXPECT_EQ(metric(a, R"(heartbeatd_member_detection_seconds_count{from="suspect"})"), 0);

  b.signal(SIGKILL);
  ASSERT_TRUE(eventually([&] { return metric(a, R"(heartbeatd_members{state="dead"})") == 1; }))
      << a.log();
  const auto e = parse_exposition(http_tcp(a.port(), "GET", "/metrics").body);
  for (const auto& error : e.errors) ADD_FAILURE() << error;
  const auto at = [&](const std::string& series) {
    const auto it = e.samples.find(series);
    EXPECT_NE(it, e.samples.end()) << "missing " << series;
    return it == e.samples.end() ? -1.0 : it->second;
  };
  EXPECT_EQ(e.types.at("heartbeatd_member_detection_seconds"), "histogram");
  for (const std::string from : {"suspect", "last_heard"}) {
    EXPECT_EQ(at("heartbeatd_member_detection_seconds_count{from=\"" + from + "\"}"), 1) << from;
    const double sum = at("heartbeatd_member_detection_seconds_sum{from=\"" + from + "\"}");
    EXPECT_GT(sum, 0) << from;
    EXPECT_LT(sum, 30) << from;
  }
  // The suspicion is part of the silence: last heard -> dead takes longer.
  EXPECT_GT(at(R"(heartbeatd_member_detection_seconds_sum{from="last_heard"})"),
            at(R"(heartbeatd_member_detection_seconds_sum{from="suspect"})"));
  EXPECT_GE(at("heartbeatd_probes_total"), 1);
  EXPECT_GE(at("heartbeatd_probes_failed_total"), 1);
  EXPECT_EQ(at("heartbeatd_deaths_declared_total"), 1);
  EXPECT_EQ(at("heartbeatd_indirect_probes_total"), 0);  // no third member to help
  EXPECT_EQ(at("heartbeatd_name_conflicts_total"), 0);
  EXPECT_EQ(at("heartbeatd_hook_queue_depth"), 0);
  EXPECT_TRUE(e.types.count("heartbeatd_local_pauses_total"));
  EXPECT_TRUE(e.types.count("heartbeatd_indirect_probes_served_total"));

  // The process: figures of this very daemon, within what the system allows.
  EXPECT_GT(at("process_resident_memory_bytes"), 1e6);
  EXPECT_GE(at("process_virtual_memory_bytes"), at("process_resident_memory_bytes"));
  EXPECT_GE(at("process_cpu_seconds_total"), 0);
  EXPECT_GT(at("process_open_fds"), 3);
  EXPECT_LE(at("process_open_fds"), at("process_max_fds"));
  const double now = std::chrono::duration<double>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  const double started = at("process_start_time_seconds");
  EXPECT_LE(started, now + 1);
  EXPECT_GT(started, now - 300) << "the daemon started in this test";
}

}  // namespace
}  // namespace heartbeatd::test
