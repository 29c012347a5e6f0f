// The /v1/users API on the real binary, over TCP and over the Unix socket alike: every route,
// every kind of bad input, the limits, and the timeout boundary with a short timeout. The same
// suite runs against each presence backend: the embedded table, a standalone Redis, and a
// Redis Cluster of 3 masters and 3 replicas (real redis-server processes on loopback).
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <map>

#include "tests/support/daemon_process.h"
#include "tests/support/dynalite_server.h"
#include "tests/support/redis_cluster.h"
#include "tests/support/redis_server.h"

namespace heartbeatd::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

enum class Via { tcp, unix_socket };
enum class Backend { memory, redis, redis_cluster, dynamodb };

// The Redis servers a backend needs, started (deadline) before the daemon, and the config
// keys that point the daemon at them.
class BackendUnderTest {
 public:
  explicit BackendUnderTest(Backend b) {
    if (b == Backend::memory) return;
    if (b == Backend::dynamodb) {
      dynalite_ = std::make_unique<DynaliteServer>();
      if (!dynalite_->start()) failure_ = "dynalite did not start: " + DynaliteServer::problem() + dynalite_->log();
      keys_ = {{"presence.backend", "dynamodb"},
               {"presence.dynamodb.endpoint", dynalite_->endpoint()},
               {"presence.dynamodb.region", "us-east-1"},
               {"presence.dynamodb.create_table", "true"},
               {"presence.dynamodb.dedup_window", "0"},
               {"presence.dynamodb.count_interval", "1ms"}};
      env_ = dynalite_credentials();
      return;
    }
    keys_ = {{"presence.backend", "redis"},
             // Every heartbeat of these tests must be written: no deduplication window.
             {"presence.redis.dedup_window", "0"}};
    if (RedisServer::binary().empty()) {
      failure_ = "redis-server is not installed (scripts/setup)";
      return;
    }
    if (b == Backend::redis) {
      server_ = std::make_unique<RedisServer>();
      if (!server_->start()) failure_ = "standalone redis-server did not start";
      keys_["presence.redis.nodes"] = "[127.0.0.1:" + std::to_string(server_->port()) + "]";
      return;
    }
    cluster_ = std::make_unique<RedisCluster>(3, 1);
    if (!cluster_->start()) failure_ = "Redis Cluster: " + cluster_->failure_reason();
    std::string seeds;
    for (const auto port : cluster_->master_ports()) {
      seeds += (seeds.empty() ? "" : ", ") + std::string("127.0.0.1:") + std::to_string(port);
    }
    keys_["presence.redis.cluster"] = "true";
    keys_["presence.redis.nodes"] = "[" + seeds + "]";
  }
  const std::string& failure() const { return failure_; }
  const DaemonProcess::Keys& keys() const { return keys_; }
  const std::map<std::string, std::string>& env() const { return env_; }

 private:
  std::unique_ptr<DynaliteServer> dynalite_;
  std::map<std::string, std::string> env_;
  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<RedisCluster> cluster_;
  DaemonProcess::Keys keys_;
  std::string failure_;
};

class PresenceApi : public ::testing::TestWithParam<std::tuple<Backend, Via>> {
 protected:
  static DaemonProcess::Keys base() {
    return {{"presence.timeout", "1s"},
            {"presence.forget_after", "1h"},
            {"presence.max_users", "1000"},
            {"presence.max_batch", "50"}};
  }
  DaemonProcess::Keys keys() const {
    auto k = base();
    for (const auto& [key, value] : backend_.keys()) k[key] = value;
    return k;
  }
  void SetUp() override {
    ASSERT_TRUE(backend_.failure().empty()) << backend_.failure();
    for (const auto& [name, value] : backend_.env()) d_.env()[name] = value;
    ASSERT_TRUE(d_.start()) << d_.failure_reason();
    // Redis: the API answers before the pools have connected; the tests start from a
    // backend that answers.
    ASSERT_TRUE(eventually([&] { return call("GET", "/v1/users").status == 200; }))
        << d_.log();
  }

  HttpResult call(const std::string& method, const std::string& target,
                  const std::string& body = "") {
    return std::get<Via>(GetParam()) == Via::tcp
               ? http_tcp(d_.port(), method, target, body)
               : http_unix(d_.socket_path(), method, target, body);
  }
  boost::json::value json(const std::string& method, const std::string& target,
                          const std::string& body = "", int expect_status = 200) {
    const auto r = call(method, target, body);
    EXPECT_EQ(r.status, expect_status) << method << " " << target << ": " << r.error << r.body;
    if (r.body.empty()) return nullptr;
    return boost::json::parse(r.body);
  }
  void expect_error(const HttpResult& r, int status, const std::string& code,
                    const std::string& message_part) {
    EXPECT_EQ(r.status, status) << r.body;
    const auto body = boost::json::parse(r.body).as_object();
    EXPECT_EQ(body.at("error"), code.c_str()) << r.body;
    EXPECT_NE(std::string(body.at("message").as_string()).find(message_part), std::string::npos)
        << r.body;
  }

  // POST on a fresh connection with the given Content-Type (none when empty), the body as it is.
  HttpResult post_typed(const std::string& target, const std::string& type,
                        const std::string& body) {
    auto c = std::get<Via>(GetParam()) == Via::tcp ? d_.tcp_client() : d_.unix_client();
    HttpResult failed;
    failed.error = c.connected() ? "send failed" : c.connect_error();
    std::string req = "POST " + target + " HTTP/1.1\r\nHost: x\r\n";
    if (!type.empty()) req += "Content-Type: " + type + "\r\n";
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    if (!c.connected() || !c.send_raw(req)) return failed;
    return c.read_response();
  }

  BackendUnderTest backend_{std::get<Backend>(GetParam())};  // before the daemon, after it
  DaemonProcess d_{keys()};
};

TEST_P(PresenceApi, HeartbeatThenStatus) {
  const auto before = wall_ms();
  EXPECT_EQ(call("POST", "/v1/users/42/heartbeat").status, 204);
  const auto after = wall_ms();
  const auto st = json("GET", "/v1/users/42").as_object();
  EXPECT_EQ(st.at("user").as_int64(), 42);
  EXPECT_EQ(st.at("online"), true);
  EXPECT_GE(st.at("last_seen_ms").as_int64(), before - 1);
  EXPECT_LE(st.at("last_seen_ms").as_int64(), after + 1);
}

TEST_P(PresenceApi, UnknownUserIsOfflineWithNullLastSeen) {
  const auto st = json("GET", "/v1/users/18446744073709551615").as_object();
  EXPECT_EQ(st.at("user").as_uint64(), 18446744073709551615ULL);
  EXPECT_EQ(st.at("online"), false);
  EXPECT_TRUE(st.at("last_seen_ms").is_null());
}

TEST_P(PresenceApi, BatchHeartbeatAndBatchStatusInRequestOrder) {
  const auto acc = json("POST", "/v1/users/heartbeat", R"({"users":[1,2,3,2]})").as_object();
  EXPECT_EQ(acc.at("accepted").as_int64(), 4);
  const auto st = json("POST", "/v1/users/status", R"({"users":[3,99,1,3]})")
                      .as_object()
                      .at("users")
                      .as_array();
  ASSERT_EQ(st.size(), 4u);
  const std::int64_t expect_ids[] = {3, 99, 1, 3};
  const bool expect_online[] = {true, false, true, true};
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(st[i].at("user").as_int64(), expect_ids[i]);
    EXPECT_EQ(st[i].at("online").as_bool(), expect_online[i]);
  }
  EXPECT_TRUE(st[1].at("last_seen_ms").is_null());
  const auto counts = json("GET", "/v1/users").as_object();
  EXPECT_EQ(counts.at("online").as_int64(), 3);
  EXPECT_EQ(counts.at("tracked").as_int64(), 3);
}

TEST_P(PresenceApi, BatchStatusAsBitsOnePerIdInRequestOrder) {
  const auto acc = json("POST", "/v1/users/heartbeat", R"({"users":[1,3,8,9]})");
  ASSERT_EQ(acc.at("accepted").as_int64(), 4);
  // Ids 1..9 then 3 again: online 1, 3, 8, 9, 3 are bits 0, 2, 7, 8, 9.
  const auto r = call("POST", "/v1/users/status?format=bits", R"({"users":[1,2,3,4,5,6,7,8,9,3]})");
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_EQ(r.header("content-type"), "application/octet-stream");
  EXPECT_EQ(r.header("x-heartbeatd-count"), "10");
  EXPECT_EQ(r.body, "\x85\x03");
  expect_error(call("POST", "/v1/users/status?format=bits&ids=string", R"({"users":[1]})"), 400,
               "bad_request", "ids: only with format=json");
}

// 8 little-endian bytes per id: the binary batch body.
std::string binary_ids(std::initializer_list<std::uint64_t> ids) {
  std::string out;
  for (std::uint64_t id : ids) {
    for (int b = 0; b < 8; ++b) out += static_cast<char>(id >> (8 * b) & 0xff);
  }
  return out;
}

TEST_P(PresenceApi, BinaryBatchBodiesWithOctetStream) {
  constexpr std::uint64_t kMax = 18446744073709551615u;
  const std::string binary = "application/octet-stream";
  const auto beat = post_typed("/v1/users/heartbeat", binary, binary_ids({1, 3, 8, 9, kMax}));
  ASSERT_EQ(beat.status, 200) << beat.error << beat.body;
  EXPECT_EQ(beat.body, R"({"accepted":5})");
  // Ids 1..9, 3 again, then 2^64-1: online 1, 3, 8, 9, 3, 2^64-1 are bits 0, 2, 7, 8, 9, 10.
  auto r = post_typed("/v1/users/status?format=bits", binary,
                      binary_ids({1, 2, 3, 4, 5, 6, 7, 8, 9, 3, kMax}));
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_EQ(r.header("content-type"), "application/octet-stream");
  EXPECT_EQ(r.header("x-heartbeatd-count"), "11");
  EXPECT_EQ(r.body, "\x85\x07");
  r = post_typed("/v1/users/status?ids=string", binary, binary_ids({kMax, 99}));
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  const auto users = boost::json::parse(r.body).at("users").as_array();
  ASSERT_EQ(users.size(), 2u) << r.body;
  EXPECT_EQ(users[0].at("user").as_string(), "18446744073709551615");
  EXPECT_TRUE(users[0].at("online").as_bool());
  EXPECT_FALSE(users[1].at("online").as_bool());
  EXPECT_TRUE(users[1].at("last_seen_ms").is_null());
  // JSON needs no Content-Type, as before.
  r = post_typed("/v1/users/status?format=bits", "", R"({"users":[9,2]})");
  EXPECT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_EQ(r.body, "\x01");
  expect_error(post_typed("/v1/users/heartbeat", binary, std::string(12, '\x01')), 400,
               "bad_request", "binary body of 12 bytes is not a whole number of ids");
  expect_error(post_typed("/v1/users/status?format=bits", binary, ""), 400, "bad_request",
               "request body is empty");
  std::string many;
  for (std::uint64_t i = 0; i < 51; ++i) many += binary_ids({i});
  expect_error(post_typed("/v1/users/status?format=bits", binary, many), 413, "batch_too_large",
               "more than 50 ids");
  EXPECT_EQ(json("GET", "/v1/users").at("tracked").as_int64(), 5) << "refused bodies wrote nothing";
}

// HTTP/1.1 pipelining on the real daemon: three requests in one write on a kept-alive
// connection, answered in order, each seeing the ones before it (every backend answers later,
// from its own round trip, except the embedded table).
TEST_P(PresenceApi, PipelinedRequestsAreAnsweredInOrder) {
  auto c = std::get<Via>(GetParam()) == Via::tcp ? d_.tcp_client() : d_.unix_client();
  ASSERT_TRUE(c.connected()) << c.connect_error();
  const std::string beat = R"({"users":[11,12]})", status = R"({"users":[11,13,12]})";
  ASSERT_TRUE(c.send_raw(
      "POST /v1/users/heartbeat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: " +
      std::to_string(beat.size()) + "\r\n\r\n" + beat +
      "POST /v1/users/status?format=bits HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: " +
      std::to_string(status.size()) + "\r\n\r\n" + status +
      "GET /v1/users/13 HTTP/1.1\r\nHost: x\r\n\r\n"));
  const auto first = c.read_response(), second = c.read_response(), third = c.read_response();
  EXPECT_EQ(first.status, 200) << first.error;
  EXPECT_EQ(first.body, R"({"accepted":2})");
  EXPECT_EQ(second.status, 200) << second.error << second.body;
  EXPECT_EQ(second.body, "\x05") << "11 and 12 online, 13 not: the heartbeat came first";
  EXPECT_EQ(third.status, 200) << third.error;
  EXPECT_EQ(third.body, R"({"user":13,"online":false,"last_seen_ms":null})");
  EXPECT_FALSE(third.closed);
}

TEST_P(PresenceApi, DeleteIsOfflineAtOnceAndKeepsLastSeen) {
  ASSERT_EQ(call("POST", "/v1/users/7/heartbeat").status, 204);
  const auto seen = json("GET", "/v1/users/7").at("last_seen_ms").as_int64();
  EXPECT_EQ(call("DELETE", "/v1/users/7").status, 204);
  const auto st = json("GET", "/v1/users/7").as_object();
  EXPECT_EQ(st.at("online"), false);
  EXPECT_EQ(st.at("last_seen_ms").as_int64(), seen);
  EXPECT_EQ(json("GET", "/v1/users").at("online").as_int64(), 0);
  EXPECT_EQ(call("DELETE", "/v1/users/12345").status, 204) << "unknown user: already offline";
}

// The boundary on a real clock: every "online" answer came less than the timeout after the
// heartbeat, every "offline" answer at least the timeout after it (client-side bounds that
// the server's times must lie within).
TEST_P(PresenceApi, OfflineExactlyWhenTheTimeoutPasses) {
  const auto t_before = Clock::now();
  ASSERT_EQ(call("POST", "/v1/users/5/heartbeat").status, 204);
  const auto t_after = Clock::now();
  bool went_offline = false;
  const bool finished = eventually(
      [&] {
        // The count first: if the status read after it still says online, the timeout had
        // not passed when the count was taken either (the other order races the boundary).
        const auto q_before = Clock::now();
        const auto count = json("GET", "/v1/users").at("online").as_int64();
        const auto st = json("GET", "/v1/users/5").as_object();
        const auto q_after = Clock::now();
        if (st.at("online").as_bool()) {
          EXPECT_LT(q_before - t_after, 1s) << "online after the timeout";
          EXPECT_EQ(count, 1);
          return false;
        }
        EXPECT_GE(q_after - t_before, 1s) << "offline before the timeout";
        went_offline = true;
        return count == 0;
      },
      10s);
  EXPECT_TRUE(finished && went_offline);
}

TEST_P(PresenceApi, BadIdsAre400NamingTheValue) {
  expect_error(call("POST", "/v1/users/-1/heartbeat"), 400, "bad_request", "-1 (negative)");
  expect_error(call("GET", "/v1/users/abc"), 400, "bad_request", "abc");
  expect_error(call("DELETE", "/v1/users/1.5"), 400, "bad_request", "1.5 (not an integer)");
  expect_error(call("GET", "/v1/users/18446744073709551616"), 400, "bad_request", "above 2^64-1");
  expect_error(call("POST", "/v1/users/heartbeat", R"({"users":[1,"2x",3]})"), 400, "bad_request",
               "users[1]: expected a user id (unsigned 64-bit integer), got the string \"2x\"");
  expect_error(call("POST", "/v1/users/status", R"({"users":[]})"), 400, "bad_request", "empty");
  expect_error(call("POST", "/v1/users/status", ""), 400, "bad_request", "request body is empty");
  expect_error(call("POST", "/v1/users/heartbeat", R"({"users":"1"})"), 400, "bad_request",
               "expected an array");
}

TEST_P(PresenceApi, IdsAboveTwoToThe53RoundTripAsStrings) {
  const std::string big = "18446744073709551615";
  EXPECT_EQ(json("POST", "/v1/users/heartbeat", R"({"users":[")" + big + R"(",7]})")
                .at("accepted")
                .as_int64(),
            2);
  const auto one = json("GET", "/v1/users/" + big + "?ids=string").as_object();
  EXPECT_EQ(one.at("user").as_string(), big);
  EXPECT_TRUE(one.at("online").as_bool());
  const auto many = json("POST", "/v1/users/status?ids=string", R"({"users":["7",")" + big + R"("]})")
                        .at("users")
                        .as_array();
  ASSERT_EQ(many.size(), 2u);
  EXPECT_EQ(many[0].at("user").as_string(), "7");
  EXPECT_EQ(many[1].at("user").as_string(), big);
  EXPECT_TRUE(many[1].at("online").as_bool());
  expect_error(call("GET", "/v1/users/7?ids=float"), 400, "bad_request", "ids: expected");
}

TEST_P(PresenceApi, BatchWithOneBadIdChangesNothing) {
  expect_error(call("POST", "/v1/users/heartbeat", R"({"users":[100,101,-102]})"), 400,
               "bad_request", "users[2]");
  EXPECT_EQ(json("GET", "/v1/users").at("tracked").as_int64(), 0);
  EXPECT_TRUE(json("GET", "/v1/users/100").at("last_seen_ms").is_null());
}

TEST_P(PresenceApi, BatchBeyondMaxBatchIs413) {
  std::string body = R"({"users":[)";
  for (int i = 0; i < 51; ++i) body += (i ? "," : "") + std::to_string(i);
  body += "]}";
  expect_error(call("POST", "/v1/users/heartbeat", body), 413, "batch_too_large",
               "more than 50 ids");
  expect_error(call("POST", "/v1/users/status", body), 413, "batch_too_large",
               "presence.max_batch");
}

TEST_P(PresenceApi, WrongMethodsAre405) {
  const auto r = call("PUT", "/v1/users/5");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.header("allow"), "GET, DELETE");
  EXPECT_EQ(call("GET", "/v1/users/5/heartbeat").status, 405);
  EXPECT_EQ(call("DELETE", "/v1/users").status, 405);
}

INSTANTIATE_TEST_SUITE_P(
    EveryBackendBothListeners, PresenceApi,
    ::testing::Combine(::testing::Values(Backend::memory, Backend::redis, Backend::redis_cluster,
                                         Backend::dynamodb),
                       ::testing::Values(Via::tcp, Via::unix_socket)),
    [](const auto& info) {
      const Backend backend = std::get<0>(info.param);
      const Via via = std::get<1>(info.param);
      const std::string b = backend == Backend::memory     ? "memory"
                            : backend == Backend::redis    ? "redis"
                            : backend == Backend::dynamodb ? "dynamodb"
                                                           : "redis_cluster";
      return b + (via == Via::tcp ? "_tcp" : "_unix_socket");
    });

TEST(PresenceLimits, MaxUsersAnswers507AndKnownUsersKeepWorking) {
  DaemonProcess d(DaemonProcess::Keys{{"presence.max_users", "3"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  EXPECT_EQ(http_tcp(d.port(), "POST", "/v1/users/heartbeat", R"({"users":[1,2,3]})").status, 200);
  const auto full = http_unix(d.socket_path(), "POST", "/v1/users/4/heartbeat");
  EXPECT_EQ(full.status, 507);
  EXPECT_NE(full.body.find("\"error\":\"too_many_users\""), std::string::npos) << full.body;
  EXPECT_NE(full.body.find("presence.max_users (3)"), std::string::npos) << full.body;
  const auto batch = http_tcp(d.port(), "POST", "/v1/users/heartbeat", R"({"users":[1,5]})");
  EXPECT_EQ(batch.status, 507) << "a batch that does not fit is refused whole";
  EXPECT_EQ(http_tcp(d.port(), "POST", "/v1/users/1/heartbeat").status, 204);
  EXPECT_NE(http_tcp(d.port(), "GET", "/v1/users").body.find("\"tracked\":3"), std::string::npos);
}

TEST(PresenceReload, SighupChangesTheTimeoutForEveryone) {
  DaemonProcess d(DaemonProcess::Keys{{"presence.timeout", "1h"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  ASSERT_EQ(http_tcp(d.port(), "POST", "/v1/users/9/heartbeat").status, 204);
  d.write_config({{"presence.timeout", "100ms"}});
  d.signal(SIGHUP);
  ASSERT_TRUE(d.wait_log("applied presence.timeout: 1h -> 100ms")) << d.log();
  EXPECT_TRUE(eventually([&] {
    return http_tcp(d.port(), "GET", "/v1/users").body.find("\"online\":0") != std::string::npos;
  }));
  EXPECT_NE(http_tcp(d.port(), "GET", "/v1/users/9").body.find("\"online\":false"),
            std::string::npos);
}

TEST(PresenceReload, TimeoutBeyondTheRunningForgetAfterIsRejectedNotFatal) {
  DaemonProcess d(
      DaemonProcess::Keys{{"presence.timeout", "30s"}, {"presence.forget_after", "1m"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  d.write_config({{"presence.timeout", "2m"}, {"presence.forget_after", "1h"}});
  d.signal(SIGHUP);
  EXPECT_TRUE(d.wait_log("new config rejected")) << d.log();
  EXPECT_EQ(http_tcp(d.port(), "GET", "/v1/health").status, 200) << d.log();
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait_exit(), 0);
}

}  // namespace
}  // namespace heartbeatd::test
