// Presence on DynamoDB (presence.backend: dynamodb), on the real binary against dynalite (an
// implementation of DynamoDB that no one here wrote, in memory on loopback), through a
// fault-injecting proxy where DynamoDB's bad days are the point: throttling, 5xx,
// UnprocessedItems, the server killed and restarted, credentials missing or expiring, the
// table missing or shaped wrong. The API's behaviour itself is presence_api_test's and the
// store's semantics presence_store_contract_test's, both run against DynamoDB too.
#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>

#include <atomic>
#include <chrono>
#include <ctime>
#include <map>
#include <thread>

#include "tests/support/daemon_process.h"
#include "tests/support/dynalite_server.h"
#include "tests/support/event_stream.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/test_pki.h"

namespace heartbeatd::test {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;

DaemonProcess::Keys dynamo_keys(const std::string& endpoint, const std::string& table = "presence") {
  return {{"presence.backend", "dynamodb"},
          {"presence.dynamodb.endpoint", endpoint},
          {"presence.dynamodb.region", "us-east-1"},
          {"presence.dynamodb.table", table},
          {"presence.dynamodb.create_table", "true"},
          {"presence.dynamodb.dedup_window", "0"},
          {"presence.dynamodb.count_interval", "1ms"},
          {"presence.dynamodb.watch_interval", "100ms"}};
}

void use_test_credentials(DaemonProcess& d) {
  for (const auto& [name, value] : dynalite_credentials()) d.env()[name] = value;
}

std::string health(const DaemonProcess& d) {
  return http_tcp(d.port(), "GET", "/v1/health").body;
}

void expect_unavailable(const HttpResult& r, const std::string& what) {
  EXPECT_EQ(r.status, 503) << what << ": " << r.body << r.error;
  EXPECT_EQ(r.header("retry-after"), "1") << what;
  EXPECT_NE(r.body.find("\"error\":\"presence_unavailable\""), std::string::npos)
      << what << ": " << r.body;
}

bool online(const DaemonProcess& d, std::uint64_t user) {
  const auto r = http_tcp(d.port(), "GET", "/v1/users/" + std::to_string(user));
  return r.status == 200 && r.body.find("\"online\":true") != std::string::npos;
}

class DynamoPresence : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(dynalite_.start()) << DynaliteServer::problem() << dynalite_.log(); }
  DynaliteServer dynalite_;
};

TEST_F(DynamoPresence, TwoNodesShareOneTable) {
  DaemonProcess a(dynamo_keys(dynalite_.endpoint()));
  DaemonProcess b(dynamo_keys(dynalite_.endpoint()));
  use_test_credentials(a);
  use_test_credentials(b);
  ASSERT_TRUE(a.start()) << a.failure_reason();
  ASSERT_TRUE(b.start()) << b.failure_reason();
  EXPECT_TRUE(a.log().find("created DynamoDB table presence") != std::string::npos ||
              b.log().find("created DynamoDB table presence") != std::string::npos)
      << a.log() << b.log();
  EXPECT_EQ(http_tcp(a.port(), "POST", "/v1/users/42/heartbeat").status, 204);
  EXPECT_TRUE(online(b, 42)) << "B does not see A's heartbeat";
  EXPECT_EQ(http_tcp(b.port(), "DELETE", "/v1/users/42").status, 204);
  EXPECT_FALSE(online(a, 42)) << "A does not see B's logout";
  // A batch larger than one BatchWriteItem (25) and one BatchGetItem (100).
  std::string users;
  for (int i = 1000; i < 1250; ++i) users += (users.empty() ? "" : ",") + std::to_string(i);
  EXPECT_EQ(http_tcp(a.port(), "POST", "/v1/users/heartbeat", "{\"users\":[" + users + "]}").status,
            200);
  const auto st = http_tcp(b.port(), "POST", "/v1/users/status", "{\"users\":[" + users + "]}");
  ASSERT_EQ(st.status, 200) << st.body;
  const auto arr = boost::json::parse(st.body).at("users").as_array();
  ASSERT_EQ(arr.size(), 250u);
  for (const auto& u : arr) EXPECT_EQ(u.at("online"), true) << u;
  EXPECT_NE(health(b).find("\"backend\":\"dynamodb\""), std::string::npos) << health(b);
}

TEST_F(DynamoPresence, ThrottlingAndServerErrorsAreRetriedThen503NeverOffline) {
  DynamoFaultProxy proxy(dynalite_.port());
  ASSERT_TRUE(proxy.start()) << DynamoFaultProxy::problem() << proxy.log();
  DaemonProcess d(dynamo_keys(proxy.endpoint()));
  use_test_credentials(d);
  ASSERT_TRUE(d.start()) << d.failure_reason();
  ASSERT_EQ(http_tcp(d.port(), "POST", "/v1/users/7/heartbeat").status, 204);

  // A few throttled or failed answers are retried within the request's deadline.
  proxy.throttle(2);
  EXPECT_TRUE(online(d, 7)) << "two throttled answers were not retried";
  proxy.fail(500, 2);
  EXPECT_TRUE(online(d, 7)) << "two 500s were not retried";
  EXPECT_GE(metric(d, "heartbeatd_dynamodb_retries_total"), 4);
  EXPECT_GE(metric(d, "heartbeatd_dynamodb_throttled_total"), 2);

  // Throttling that outlasts the deadline is 503 with Retry-After, not "offline".
  proxy.throttle(1000);
  expect_unavailable(http_tcp(d.port(), "GET", "/v1/users/7"), "status while throttled");
  expect_unavailable(http_tcp(d.port(), "POST", "/v1/users/8/heartbeat"), "heartbeat while throttled");
  expect_unavailable(http_tcp(d.port(), "POST", "/v1/users/status", R"({"users":[7]})"),
                     "batch status while throttled");
  EXPECT_NE(health(d).find("throttling"), std::string::npos) << health(d);
  proxy.reset();
  proxy.fail(503, 1000);
  expect_unavailable(http_tcp(d.port(), "GET", "/v1/users/7"), "status during 503s");
  proxy.reset();
  EXPECT_TRUE(eventually([&] { return online(d, 7); }, 5s)) << "no recovery after the faults";
  EXPECT_TRUE(eventually([&] { return health(d).find("\"status\":\"ok\"") != std::string::npos; },
                         5s))
      << health(d);
}

TEST_F(DynamoPresence, UnprocessedItemsAndKeysAreRetried) {
  DynamoFaultProxy proxy(dynalite_.port());
  ASSERT_TRUE(proxy.start()) << DynamoFaultProxy::problem() << proxy.log();
  DaemonProcess d(dynamo_keys(proxy.endpoint()));
  use_test_credentials(d);
  ASSERT_TRUE(d.start()) << d.failure_reason();
  std::string users;
  for (int i = 1; i <= 60; ++i) users += (users.empty() ? "" : ",") + std::to_string(i);
  proxy.unprocessed(3);  // three batches come back half done
  ASSERT_EQ(http_tcp(d.port(), "POST", "/v1/users/heartbeat", "{\"users\":[" + users + "]}").status,
            200);
  proxy.unprocessed(1);
  const auto st = http_tcp(d.port(), "POST", "/v1/users/status", "{\"users\":[" + users + "]}");
  ASSERT_EQ(st.status, 200) << st.body;
  const auto answer = boost::json::parse(st.body);
  ASSERT_EQ(answer.at("users").as_array().size(), 60u);
  for (const auto& u : answer.at("users").as_array()) EXPECT_EQ(u.at("online"), true) << u;
  EXPECT_GE(metric(d, "heartbeatd_dynamodb_unprocessed_retries_total"), 4);
}

TEST_F(DynamoPresence, DynamoDownIs503AndRecoveryNeedsNoRestart) {
  DaemonProcess d(dynamo_keys(dynalite_.endpoint()));
  use_test_credentials(d);
  ASSERT_TRUE(d.start()) << d.failure_reason();
  ASSERT_EQ(http_tcp(d.port(), "POST", "/v1/users/5/heartbeat").status, 204);
  dynalite_.stop();
  expect_unavailable(http_tcp(d.port(), "GET", "/v1/users/5"), "status while DynamoDB is down");
  expect_unavailable(http_tcp(d.port(), "POST", "/v1/users/5/heartbeat"), "heartbeat while down");
  EXPECT_NE(health(d).find("did not answer"), std::string::npos) << health(d);
  ASSERT_TRUE(dynalite_.start()) << dynalite_.log();
  // dynalite restarts empty: with create_table the daemon creates the table again.
  EXPECT_TRUE(eventually(
      [&] { return http_tcp(d.port(), "POST", "/v1/users/5/heartbeat").status == 204; }, 10s))
      << "no recovery: " << health(d);
  EXPECT_TRUE(online(d, 5));
  EXPECT_TRUE(eventually([&] { return health(d).find("\"status\":\"ok\"") != std::string::npos; },
                         5s))
      << health(d);
}

TEST_F(DynamoPresence, AWatcherSeesAnotherNodesHeartbeatAndTheExpiry) {
  auto keys = dynamo_keys(dynalite_.endpoint());
  keys["presence.timeout"] = "1s";
  DaemonProcess a(keys), b(keys);
  use_test_credentials(a);
  use_test_credentials(b);
  ASSERT_TRUE(a.start()) << a.failure_reason();
  ASSERT_TRUE(b.start()) << b.failure_reason();
  auto s = EventStream::tcp(a.port(), "/v1/events?members=&users=99");
  ASSERT_EQ(s.status(), 200);
  auto first = s.next_matching("user", [](const auto&) { return true; }, 5s);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->json().at("online"), false);
  ASSERT_EQ(http_tcp(b.port(), "POST", "/v1/users/99/heartbeat").status, 204);
  auto on = s.next_matching("user", [](const auto&) { return true; }, 5s);
  ASSERT_TRUE(on) << "A never heard of B's heartbeat";
  EXPECT_EQ(on->json().at("online"), true);
  auto off = s.next_matching("user", [](const auto&) { return true; }, 5s);
  ASSERT_TRUE(off) << "A never saw the user expire";
  EXPECT_EQ(off->json().at("online"), false);
}

TEST_F(DynamoPresence, MissingCredentialsExitTwoNamingWhatWasTried) {
  DaemonProcess d(dynamo_keys(dynalite_.endpoint()));
  TempDir home;
  d.env()["HOME"] = home.path();
  d.env()["AWS_SHARED_CREDENTIALS_FILE"] = home.file("no-credentials");
  d.env()["AWS_CONFIG_FILE"] = home.file("no-config");
  d.env()["AWS_EC2_METADATA_DISABLED"] = "true";
  EXPECT_FALSE(d.start());
  EXPECT_EQ(d.wait_exit(), 2);
  EXPECT_NE(d.log().find("AWS_ACCESS_KEY_ID"), std::string::npos) << d.log();
}

TEST_F(DynamoPresence, AMissingTableOrAWrongKeySchemaExitsTwo) {
  auto keys = dynamo_keys(dynalite_.endpoint(), "absent");
  keys["presence.dynamodb.create_table"] = "false";
  DaemonProcess missing(keys);
  use_test_credentials(missing);
  EXPECT_FALSE(missing.start());
  EXPECT_EQ(missing.wait_exit(), 2);
  EXPECT_NE(missing.log().find("absent"), std::string::npos) << missing.log();
  EXPECT_NE(missing.log().find("does not exist"), std::string::npos) << missing.log();

  ASSERT_TRUE(create_dynamo_table(dynalite_.port(), "shaped_wrong", "id", "S"));
  DaemonProcess wrong(dynamo_keys(dynalite_.endpoint(), "shaped_wrong"));
  use_test_credentials(wrong);
  EXPECT_FALSE(wrong.start());
  EXPECT_EQ(wrong.wait_exit(), 2);
  EXPECT_NE(wrong.log().find("key schema"), std::string::npos) << wrong.log();
}

// A container credentials endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI) on loopback that
// hands out credentials expiring in a few seconds, then fails every refresh.
class ExpiringCredentialsEndpoint {
 public:
  ExpiringCredentialsEndpoint() : acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}) {
    thread_ = std::thread([this] { serve(); });
  }
  ~ExpiringCredentialsEndpoint() {
    stop_ = true;
    boost::system::error_code ec;
    asio::ip::tcp::socket poke(io_);
    poke.connect(acceptor_.local_endpoint(), ec);
    thread_.join();
  }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + "/creds";
  }
  int served() const { return served_; }

 private:
  void serve() {
    while (!stop_) {
      asio::ip::tcp::socket s(io_);
      boost::system::error_code ec;
      acceptor_.accept(s, ec);
      if (ec || stop_) return;
      asio::streambuf buf;
      asio::read_until(s, buf, "\r\n\r\n", ec);
      std::string answer;
      if (served_++ == 0) {
        const std::time_t expires = std::time(nullptr) + 3;
        char iso[32];
        std::strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&expires));
        const std::string body = std::string(R"({"AccessKeyId":"ASIATEST","SecretAccessKey":"s",)") +
                                 R"("Token":"t","Expiration":")" + iso + "\"}";
        answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
      } else {
        answer = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      }
      asio::write(s, asio::buffer(answer), ec);
    }
  }
  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> served_{0};
};

TEST_F(DynamoPresence, CredentialsThatExpireWithoutRefreshAre503WithAClearHealth) {
  ExpiringCredentialsEndpoint creds;
  DaemonProcess d(dynamo_keys(dynalite_.endpoint()));
  TempDir home;
  d.env()["HOME"] = home.path();
  d.env()["AWS_SHARED_CREDENTIALS_FILE"] = home.file("none");
  d.env()["AWS_CONFIG_FILE"] = home.file("none");
  d.env()["AWS_EC2_METADATA_DISABLED"] = "true";
  d.env()["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = creds.url();
  ASSERT_TRUE(d.start()) << d.failure_reason();
  EXPECT_NE(d.log().find("container"), std::string::npos) << d.log();
  EXPECT_EQ(http_tcp(d.port(), "POST", "/v1/users/3/heartbeat").status, 204);
  // Past the expiry, with every refresh failing: 503, and the health says why.
  ASSERT_TRUE(eventually(
      [&] { return http_tcp(d.port(), "GET", "/v1/users/3").status == 503; }, 10s))
      << health(d);
  expect_unavailable(http_tcp(d.port(), "GET", "/v1/users/3"), "status with expired credentials");
  EXPECT_NE(health(d).find("expired"), std::string::npos) << health(d);
  EXPECT_GE(creds.served(), 2) << "the daemon never tried to refresh";
}

TEST_F(DynamoPresence, BadSettingsStopTheDaemonAtStartWithAClearMessage) {
  const auto base = dynamo_keys(dynalite_.endpoint());
  struct Case {
    std::map<std::string, std::string> changes;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{{"presence.dynamodb.pool.min", "5"}, {"presence.dynamodb.pool.max", "2"}},
       "presence.dynamodb.pool.min (5) is above presence.dynamodb.pool.max (2)"},
      {{{"presence.timeout", "2s"}, {"presence.dynamodb.dedup_window", "1s"}},
       "at most a quarter of presence.timeout"},
      {{{"api.read_timeout", "1s"}}, "must be at most half of api.read_timeout"},
      {{{"presence.dynamodb.endpoint", "ftp://127.0.0.1:1"}}, "presence.dynamodb.endpoint"},
      {{{"presence.dynamodb.table", "t"}}, "presence.dynamodb.table"},
      {{{"presence.dynamodb.table", "\"a b\""}}, "presence.dynamodb.table"},
      {{{"presence.dynamodb.ca_file", "/nonexistent/ca.pem"}}, "presence.dynamodb.ca_file"},
      {{{"presence.dynamodb.create_table", "maybe"}}, "presence.dynamodb.create_table"},
      {{{"presence.dynamodb.watch_interval", "10ms"}}, "presence.dynamodb.watch_interval"},
  };
  for (const auto& c : cases) {
    auto keys = base;
    for (const auto& [k, v] : c.changes) keys[k] = v;
    DaemonProcess d(keys);
    use_test_credentials(d);
    EXPECT_FALSE(d.start());
    EXPECT_EQ(d.wait_exit(), 2) << c.expected;
    EXPECT_NE(d.log().find(c.expected), std::string::npos) << c.expected << "\n" << d.log();
  }
  // No region anywhere: exit 2 naming the key and the variable.
  auto keys = base;
  keys["presence.dynamodb.region"] = "\"\"";
  DaemonProcess d(keys);
  use_test_credentials(d);
  d.env()["AWS_REGION"] = "";
  d.env()["AWS_DEFAULT_REGION"] = "";
  EXPECT_FALSE(d.start());
  EXPECT_EQ(d.wait_exit(), 2);
  EXPECT_NE(d.log().find("presence.dynamodb.region"), std::string::npos) << d.log();
}

// DynamoDB is HTTPS: the pool verifies the endpoint's certificate against
// presence.dynamodb.ca_file and its host. tests/dynamodb/tls_front.js terminates TLS in front
// of dynalite with a test CA's certificate for 127.0.0.1.
TEST_F(DynamoPresence, HttpsWithTheEndpointsCaAndRefusedWithAnother) {
  const auto& pki = test_pki();
  ASSERT_TRUE(pki.ok()) << pki.error();
  TempDir dir;
  const auto port = free_tcp_port();
  pid_t front = spawn_logged({DynaliteServer::node_binary(),
                              DynaliteServer::dynamodb_dir() + "/tls_front.js", "--port",
                              std::to_string(port), "--upstream-port",
                              std::to_string(dynalite_.port()), "--cert", pki.pem("server-1"),
                              "--key", pki.key("server-1")},
                             dir.file("front.log"));
  ASSERT_GT(front, 0);
  ASSERT_TRUE(eventually([&] { return read_file(dir.file("front.log")).find("tls_front on") !=
                                      std::string::npos; },
                         10s))
      << read_file(dir.file("front.log"));
  const std::string endpoint = "https://127.0.0.1:" + std::to_string(port);
  {
    auto keys = dynamo_keys(endpoint);
    keys["presence.dynamodb.ca_file"] = pki.pem("ca");
    DaemonProcess d(keys);
    use_test_credentials(d);
    ASSERT_TRUE(d.start()) << d.failure_reason();
    EXPECT_EQ(http_tcp(d.port(), "POST", "/v1/users/11/heartbeat").status, 204) << health(d);
    EXPECT_TRUE(online(d, 11));
    EXPECT_TRUE(eventually(
        [&] { return metric(d, "heartbeatd_dynamodb_pool_connections") == 2; }, 5s))
        << "keep-alive: pool.min 2 connections, reused";
  }
  // A CA that did not sign the endpoint's certificate: never served, 503 naming the reason.
  auto keys = dynamo_keys(endpoint);
  keys["presence.dynamodb.ca_file"] = pki.pem("other-ca");
  DaemonProcess d(keys);
  use_test_credentials(d);
  ASSERT_TRUE(d.start()) << d.failure_reason();
  EXPECT_NE(d.log().find("not reachable at start"), std::string::npos) << d.log();
  expect_unavailable(http_tcp(d.port(), "GET", "/v1/users/11"), "status with an untrusted endpoint");
  EXPECT_NE(health(d).find("certificate"), std::string::npos) << health(d);
  kill_and_reap(front);
}

}  // namespace
}  // namespace heartbeatd::test
