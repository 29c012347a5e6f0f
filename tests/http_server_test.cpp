// The API server in-process on loopback and a Unix socket: keep-alive, pipelining, and every
// limit (body, header, stalled request, idle connection, connection count) answered with the
// right status while other connections carry on.
#include "transport/api/http_server.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <atomic>
#include <deque>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <thread>

#include "tests/support/daemon_process.h"
#include "tests/support/http_client.h"
#include "tests/support/https_client.h"
#include "tests/support/test_pki.h"
#include "tests/support/test_util.h"
#include "base/metrics.h"
#include "transport/api/tls_context.h"

namespace heartbeatd::transport {
namespace {

using namespace std::chrono_literals;
using test::HttpClient;

// Each test runs twice: connections on strands of one io_context run by the test's threads
// (loops 0), and on the server's own two event loops (loops 2, as the daemon runs it).
class HttpServerTest : public ::testing::TestWithParam<unsigned> {
 protected:
  // With `tls`, the TCP listener serves HTTPS (the Unix socket stays plain).
  void start(HttpServerLimits limits = {}, std::shared_ptr<boost::asio::ssl::context> tls = {}) {
    router_.add(http::verb::get, "/ping", Scope::read, [](const Request&, const RouteMatch&) {
      return json_response(http::status::ok, R"({"pong":true})");
    });
    router_.add(http::verb::post, "/echo", Scope::read, [](const Request& req, const RouteMatch&) {
      return json_response(http::status::ok, req.body());
    });
    // Answers from another thread once the test releases it (or never: /never).
    router_.add_async(http::verb::post, "/later", Scope::read,
                      [this](const Request& req, const RouteMatch&, Respond respond) {
                        std::lock_guard lock(mu_);
                        held_.push_back([respond, body = req.body()] {
                          respond(json_response(http::status::ok, body));
                        });
                      });
    router_.add_async(http::verb::get, "/never", Scope::read,
                      [](const Request&, const RouteMatch&, Respond) {});
    router_.add_async(http::verb::get, "/now", Scope::read,
                      [](const Request&, const RouteMatch&, Respond respond) {
                        respond(json_response(http::status::ok, R"({"now":true})"));
                      });
    router_.add(http::verb::get, "/thread", Scope::read, [this](const Request&, const RouteMatch&) {
      std::lock_guard lock(mu_);
      auto [it, _] = thread_numbers_.emplace(std::this_thread::get_id(), thread_numbers_.size());
      return json_response(http::status::ok, std::to_string(it->second));
    });
    server_ = std::make_unique<HttpServer>(io_, router_, limits, GetParam());
    port_ = test::free_tcp_port();
    server_->listen_tcp("127.0.0.1", port_, std::move(tls));
    server_->listen_unix(dir_.file("api.sock"));
    server_->start();
    thread_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
    for (auto& t : extra_) t.join();
  }

  // Answers every held /later request, each from its own thread.
  std::size_t release_held() {
    std::vector<std::function<void()>> held;
    {
      std::lock_guard lock(mu_);
      held.swap(held_);
    }
    std::vector<std::thread> threads;
    for (auto& f : held) threads.emplace_back(f);
    for (auto& t : threads) t.join();
    return held.size();
  }
  // One client over TCP and one over the Unix socket.
  std::vector<HttpClient> both_clients() const {
    std::vector<HttpClient> clients;
    clients.push_back(HttpClient::tcp(port_));
    clients.push_back(HttpClient::unix_socket(sock()));
    return clients;
  }
  std::size_t held() {
    std::lock_guard lock(mu_);
    return held_.size();
  }

  std::string sock() const { return dir_.file("api.sock"); }

  // heartbeatd_api_refused_total{reason="over_limit"}, as the router would serve it.
  std::uint64_t refused_over_limit() const {
    MetricsWriter w;
    router_.write_metrics(w);
    const std::string series = "heartbeatd_api_refused_total{reason=\"over_limit\"} ";
    const auto at = w.text().find(series);
    if (at == std::string::npos) return ~std::uint64_t{0};
    return std::stoull(w.text().substr(at + series.size()));
  }

  // More threads running the server's io_context (its strands then run in parallel).
  void add_threads(int n) {
    for (int i = 0; i < n; ++i) extra_.emplace_back([this] { io_.run(); });
  }

  test::TempDir dir_;
  boost::asio::io_context io_;
  Router router_;
  std::unique_ptr<HttpServer> server_;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::vector<std::thread> extra_;
  std::mutex mu_;
  std::vector<std::function<void()>> held_;
  std::map<std::thread::id, std::size_t> thread_numbers_;  // guarded by mu_; for /thread
};

INSTANTIATE_TEST_SUITE_P(Threads, HttpServerTest, ::testing::Values(0u, 2u),
                         [](const auto& info) {
                           return info.param == 0 ? std::string("SharedIoContext")
                                                  : std::string("OwnLoops");
                         });

TEST_P(HttpServerTest, KeepAliveServesManyRequestsOnOneConnection) {
  start();
  for (auto& client : both_clients()) {
    ASSERT_TRUE(client.connected()) << client.connect_error();
    for (int i = 0; i < 5; ++i) {
      const auto r = client.request("GET", "/ping");
      EXPECT_EQ(r.status, 200) << r.error;
      EXPECT_EQ(r.body, R"({"pong":true})");
      EXPECT_FALSE(r.closed);
    }
  }
}

TEST_P(HttpServerTest, PipelinedRequestsAnsweredInOrder) {
  start();
  auto c = HttpClient::tcp(port_);
  ASSERT_TRUE(
      c.send_raw("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n\"a\""
                 "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n\"b\""));
  EXPECT_EQ(c.read_response().body, "\"a\"");
  EXPECT_EQ(c.read_response().body, "\"b\"");
}

// A pipelining client's answers share writes (at most 64 to a write); every one arrives, in
// order, whatever the run's length, on both listeners.
TEST_P(HttpServerTest, LongPipelinedRunsAreAnsweredInOrder) {
  start();
  for (auto& client : both_clients()) {
    ASSERT_TRUE(client.connected()) << client.connect_error();
    std::string run;
    for (int i = 0; i < 200; ++i) {
      const std::string body = std::to_string(i);
      run += "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " +
             std::to_string(body.size()) + "\r\n\r\n" + body;
    }
    ASSERT_TRUE(client.send_raw(run));
    for (int i = 0; i < 200; ++i) {
      const auto r = client.read_response();
      ASSERT_EQ(r.status, 200) << "answer " << i << ": " << r.error;
      EXPECT_EQ(r.body, std::to_string(i));
      EXPECT_FALSE(r.closed);
    }
    EXPECT_EQ(client.request("GET", "/ping").status, 200);
  }
}

// Answers never wait for bytes the client has not sent: with half a request behind a whole
// one, the whole one is answered; the rest of the second completes it.
TEST_P(HttpServerTest, AnAnswerDoesNotWaitForTheNextRequestsRest) {
  start();
  auto c = HttpClient::tcp(port_);
  ASSERT_TRUE(c.send_raw("GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"
                         "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n\"ab"));
  EXPECT_EQ(c.read_response().body, R"({"pong":true})");
  ASSERT_TRUE(c.send_raw("c\""));
  EXPECT_EQ(c.read_response().body, "\"abc\"");
  // Half a head this time.
  ASSERT_TRUE(c.send_raw("GET /ping HTTP/1.1\r\nHost: x\r\n\r\nGET /pi"));
  EXPECT_EQ(c.read_response().body, R"({"pong":true})");
  ASSERT_TRUE(c.send_raw("ng HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(c.read_response().body, R"({"pong":true})");
}

// Pipelined answers ahead of an asynchronous route are written while it works, not held
// until it answers; its answer and the ones after it follow in order.
TEST_P(HttpServerTest, PipelinedAnswersBeforeASlowRouteAreNotHeldByIt) {
  start();
  for (auto& client : both_clients()) {
    ASSERT_TRUE(client.connected()) << client.connect_error();
    ASSERT_TRUE(client.send_raw("GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"
                                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n\"a\""
                                "POST /later HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n\"b\""
                                "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_EQ(client.read_response().body, R"({"pong":true})");
    EXPECT_EQ(client.read_response().body, "\"a\"");
    ASSERT_TRUE(test::eventually([&] { return held() == 1; }));
    EXPECT_EQ(release_held(), 1u);
    EXPECT_EQ(client.read_response().body, "\"b\"");
    EXPECT_EQ(client.read_response().body, R"({"pong":true})");
  }
}

// A malformed request after good pipelined ones: their answers, then the 400, then the close.
TEST_P(HttpServerTest, GarbageAfterPipelinedRequestsEndsTheConnectionAfterTheirAnswers) {
  start();
  auto c = HttpClient::tcp(port_);
  ASSERT_TRUE(c.send_raw("GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"
                         "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"
                         "NOT HTTP AT ALL\r\n\r\n"));
  EXPECT_EQ(c.read_response().status, 200);
  EXPECT_EQ(c.read_response().status, 200);
  const auto bad = c.read_response();
  EXPECT_EQ(bad.status, 400);
  EXPECT_TRUE(bad.closed || c.wait_closed());
}

TEST_P(HttpServerTest, AsynchronousRoutesAnswerLaterFromAnyThreadOnAKeptAliveConnection) {
  start();
  for (auto& client : both_clients()) {
    ASSERT_TRUE(client.connected()) << client.connect_error();
    // Answered before the handler returned, then later from another thread, then a plain
    // route: the connection goes on serving in order.
    EXPECT_EQ(client.request("GET", "/now").body, R"({"now":true})");
    ASSERT_TRUE(client.send_raw("POST /later HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n\"a\""
                                "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_TRUE(test::eventually([&] { return held() == 1; }));
    EXPECT_EQ(release_held(), 1u);
    const auto later = client.read_response();
    EXPECT_EQ(later.status, 200) << later.error;
    EXPECT_EQ(later.body, "\"a\"");
    EXPECT_EQ(client.read_response().body, R"({"pong":true})") << "the pipelined request waited";
    EXPECT_FALSE(later.closed);
  }
}

// The same Session over TLS: an asynchronous answer from another thread on a kept-alive HTTPS
// connection, while another thread keeps swapping the server's context (SIGHUP rotation) under
// new handshakes. Named to fall in scripts/test's ThreadSanitizer selection.
TEST_P(HttpServerTest, AsynchronousAnswersOverTlsWhileTheContextIsSwapped) {
  if (!test::test_pki().ok()) GTEST_SKIP() << "openssl CLI: " << test::test_pki().error();
  auto context = [](const std::string& name) {
    std::string why;
    auto made = make_server_tls_context(
        {test::test_pki().pem(name), test::test_pki().key(name), ""}, &why);
    EXPECT_TRUE(made.context) << why;
    return made.context;
  };
  const auto first = context("server-1"), second = context("server-2");
  start({}, first);
  const test::TlsClientOptions trusting{test::test_pki().pem("ca"), "", "", 0, 0};

  std::atomic<bool> done{false};
  std::thread swapper([&] {
    for (bool flip = false; !done; flip = !flip) {
      server_->set_tls_context(flip ? first : second);
      std::this_thread::yield();
    }
  });
  std::set<std::string> serials;
  for (int i = 0; i < 20; ++i) {
    test::HttpsClient c(port_, trusting);
    ASSERT_TRUE(c.connected()) << c.connect_error();
    EXPECT_EQ(c.request("GET", "/ping").status, 200);
    serials.insert(c.peer_serial());
  }
  done = true;
  swapper.join();
  EXPECT_EQ(serials.size(), 2u) << "each new connection takes the context in force";

  test::HttpsClient c(port_, trusting);
  ASSERT_TRUE(c.connected()) << c.connect_error();
  ASSERT_TRUE(c.send_raw("POST /later HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n\"a\""));
  ASSERT_TRUE(test::eventually([&] { return held() == 1; }));
  EXPECT_EQ(release_held(), 1u);
  const std::string later = c.read_until("\"a\"");
  EXPECT_NE(later.find("HTTP/1.1 200 OK"), std::string::npos) << later;
  EXPECT_EQ(c.request("GET", "/ping").status, 200) << "kept alive after the late answer";
  EXPECT_EQ(HttpClient::unix_socket(sock()).request("GET", "/ping").status, 200);
}

TEST_P(HttpServerTest, AnAsynchronousRouteThatNeverAnswersGets504AtTheReadTimeout) {
  start({.read_timeout = 300ms});
  auto c = HttpClient::tcp(port_);
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = c.request("GET", "/never");
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.status, 504) << r.error;
  EXPECT_NE(r.body.find("\"error\":\"backend_timeout\""), std::string::npos) << r.body;
  EXPECT_GE(waited, 300ms);
  EXPECT_LT(waited, 3s);
  EXPECT_TRUE(c.wait_closed());
  EXPECT_EQ(HttpClient::tcp(port_).request("GET", "/ping").status, 200);
}

TEST_P(HttpServerTest, AnAnswerAfterTheConnectionClosedIsDropped) {
  start();
  {
    auto c = HttpClient::tcp(port_);
    ASSERT_TRUE(c.send_raw("POST /later HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"));
    ASSERT_TRUE(test::eventually([&] { return held() == 1; }));
  }  // the client leaves before the answer
  server_->stop();
  EXPECT_EQ(release_held(), 1u);  // answering a gone connection is harmless
  thread_.join();
}

TEST_P(HttpServerTest, GarbageGets400AndCloseOthersUnaffected) {
  start();
  auto bystander = HttpClient::unix_socket(sock());
  ASSERT_EQ(bystander.request("GET", "/ping").status, 200);

  auto bad = HttpClient::tcp(port_);
  ASSERT_TRUE(bad.send_raw("\x01\x02 garbage \xff\r\n\r\n"));
  const auto r = bad.read_response();
  EXPECT_EQ(r.status, 400) << r.error;
  EXPECT_NE(r.body.find("\"error\":\"bad_request\""), std::string::npos) << r.body;
  EXPECT_TRUE(bad.wait_closed());

  EXPECT_EQ(bystander.request("GET", "/ping").status, 200) << "other connection still served";
}

TEST_P(HttpServerTest, OversizedBodyGets413) {
  start({.max_body_bytes = 1000});
  auto c = HttpClient::tcp(port_);
  const auto r = c.request("POST", "/echo", std::string(5000, 'x'));
  EXPECT_EQ(r.status, 413) << r.error;
  EXPECT_NE(r.body.find("api.max_body_bytes (1000 bytes)"), std::string::npos) << r.body;
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(HttpClient::tcp(port_).request("POST", "/echo", std::string(1000, 'y')).status, 200)
      << "a body at the limit is fine";
}

TEST_P(HttpServerTest, OversizedChunkedBodyGets413) {
  start({.max_body_bytes = 100});
  auto c = HttpClient::unix_socket(sock());
  std::string chunk(80, 'z');
  ASSERT_TRUE(
      c.send_raw("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "50\r\n" +
                 chunk + "\r\n50\r\n" + chunk + "\r\n0\r\n\r\n"));
  EXPECT_EQ(c.read_response().status, 413);
}

TEST_P(HttpServerTest, OversizedHeaderGets431) {
  start({.max_header_bytes = 1024});
  auto c = HttpClient::tcp(port_);
  ASSERT_TRUE(
      c.send_raw("GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'h') + "\r\n\r\n"));
  EXPECT_EQ(c.read_response().status, 431);
}

TEST_P(HttpServerTest, StalledRequestGets408) {
  start({.read_timeout = 300ms});
  auto c = HttpClient::tcp(port_);
  ASSERT_TRUE(c.send_raw("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"));
  const auto r = c.read_response(5s);
  EXPECT_EQ(r.status, 408) << r.error;
  EXPECT_TRUE(c.wait_closed());
}

TEST_P(HttpServerTest, StalledHeaderGets408) {
  start({.read_timeout = 300ms});
  auto c = HttpClient::unix_socket(sock());
  ASSERT_TRUE(c.send_raw("GET /ping HTTP/1.1\r\nHo"));
  EXPECT_EQ(c.read_response(5s).status, 408);
}

TEST_P(HttpServerTest, IdleConnectionClosedQuietly) {
  start({.idle_timeout = 300ms});
  auto c = HttpClient::tcp(port_);
  ASSERT_EQ(c.request("GET", "/ping").status, 200);
  EXPECT_TRUE(c.wait_closed(5s));
}

TEST_P(HttpServerTest, ConnectionsBeyondTheLimitGet503WithRetryAfter) {
  start({.max_connections = 2, .unix_reserved_connections = 0});
  auto a = HttpClient::tcp(port_);
  auto b = HttpClient::unix_socket(sock());
  ASSERT_EQ(a.request("GET", "/ping").status, 200);
  ASSERT_EQ(b.request("GET", "/ping").status, 200);
  auto c = HttpClient::tcp_from("127.0.0.2", port_);
  const auto r = c.request("GET", "/ping");
  EXPECT_EQ(r.status, 503) << r.error;
  EXPECT_EQ(r.header("retry-after"), "1");
  EXPECT_NE(r.body.find("\"error\":\"overloaded\""), std::string::npos);
  EXPECT_NE(r.body.find("too many connections (api.max_connections: 2)"), std::string::npos)
      << r.body;
  EXPECT_EQ(refused_over_limit(), 1u);
  // Existing connections keep working, and a slot freed is a slot usable again.
  EXPECT_EQ(a.request("GET", "/ping").status, 200);
  { auto gone = std::move(b); }
  EXPECT_TRUE(test::eventually([&] { return server_->connections() < 2; }));
  EXPECT_EQ(HttpClient::tcp(port_).request("GET", "/ping").status, 200);
}

// The issue's lock-out: one client holding idle keep-alive connections. At its own share it
// is told 503 (naming the limit) while another address and the Unix socket are served.
TEST_P(HttpServerTest, OneClientAtItsConnectionLimitGets503WhileOthersAreServed) {
  start({.max_connections = 16, .max_connections_per_client = 3, .unix_reserved_connections = 4});
  std::vector<HttpClient> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(HttpClient::tcp(port_));
    ASSERT_EQ(held.back().request("GET", "/ping").status, 200);  // admitted, now idle
  }
  auto over = HttpClient::tcp(port_);
  const auto r = over.request("GET", "/ping");
  EXPECT_EQ(r.status, 503) << r.error;
  EXPECT_EQ(r.header("retry-after"), "1");
  EXPECT_NE(r.body.find("\"error\":\"overloaded\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("too many connections from 127.0.0.1 "
                        "(api.max_connections_per_client: 3)"),
            std::string::npos)
      << r.body;
  EXPECT_TRUE(r.closed);
  EXPECT_TRUE(over.wait_closed());
  EXPECT_EQ(refused_over_limit(), 1u);

  auto other = HttpClient::tcp_from("127.0.0.2", port_);
  ASSERT_TRUE(other.connected()) << other.connect_error();
  EXPECT_EQ(other.request("GET", "/ping").status, 200) << "another address is served";
  EXPECT_EQ(HttpClient::unix_socket(sock()).request("GET", "/ping").status, 200);
  for (auto& c : held) EXPECT_EQ(c.request("GET", "/ping").status, 200) << "held ones work";

  // A connection given back is a place for the same client again.
  held.pop_back();
  EXPECT_TRUE(test::eventually([&] { return server_->connections() == 3; }));
  EXPECT_EQ(HttpClient::tcp(port_).request("GET", "/ping").status, 200);
  EXPECT_EQ(refused_over_limit(), 1u);

  // Clients leave no trace once their connections are gone: the map stays bounded.
  held.clear();
  { auto gone = std::move(other); }
  EXPECT_TRUE(test::eventually([&] { return server_->connections() == 0; }));
  EXPECT_EQ(server_->clients(), 0u);
}

// TCP clients from many addresses take all that TCP may; the Unix socket keeps its reserve,
// and only the overall limit stops it.
TEST_P(HttpServerTest, ATcpFloodCannotTakeTheUnixSocketsReserve) {
  start({.max_connections = 8, .max_connections_per_client = 8, .unix_reserved_connections = 3});
  std::vector<HttpClient> tcp;
  for (int i = 0; i < 5; ++i) {
    tcp.push_back(HttpClient::tcp_from("127.0.0." + std::to_string(10 + i), port_));
    ASSERT_EQ(tcp.back().request("GET", "/ping").status, 200) << i;
  }
  const auto r = HttpClient::tcp_from("127.0.0.20", port_).request("GET", "/ping");
  EXPECT_EQ(r.status, 503) << r.error;
  EXPECT_EQ(r.header("retry-after"), "1");
  EXPECT_NE(r.body.find("api.unix_reserved_connections: 3"), std::string::npos) << r.body;

  std::vector<HttpClient> local;
  for (int i = 0; i < 3; ++i) {
    local.push_back(HttpClient::unix_socket(sock()));
    ASSERT_EQ(local.back().request("GET", "/ping").status, 200) << i;
  }
  const auto full = HttpClient::unix_socket(sock()).request("GET", "/ping");
  EXPECT_EQ(full.status, 503) << full.error;
  EXPECT_NE(full.body.find("(api.max_connections: 8)"), std::string::npos) << full.body;
  EXPECT_EQ(refused_over_limit(), 2u);
  EXPECT_EQ(server_->connections(), 8u);
}

// Accepts on both listeners and connection ends on four threads at once (run under TSan by
// scripts/test): the per-client share holds exactly, every connection is answered 200 or 503
// (none hangs), and once all are closed nothing is left counted.
TEST_P(HttpServerTest, ConnectionLimitsHoldUnderConcurrentClientsOnManyThreads) {
  constexpr std::size_t kShare = 4;
  start({.max_connections = 64, .max_connections_per_client = kShare,
         .unix_reserved_connections = 8});
  add_threads(3);
  std::atomic<std::size_t> unix_open{0};  // the Unix clients are one client: this test's uid
  std::atomic<int> failures{0}, refusals{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 6; ++t) {
    clients.emplace_back([&, t] {
      const bool over_unix = t % 2 == 1;
      const std::string source = "127.0.1." + std::to_string(t + 1);
      std::size_t tcp_open = 0;
      std::deque<HttpClient> open;
      for (int round = 0; round < 40; ++round) {
        if (open.size() > kShare || (round % 3 == 2 && !open.empty())) {
          // Uncounted before it closes: once closed, the server may admit another thread's
          // connection in its place, which must not find this one still counted here.
          if (over_unix) {
            --unix_open;
          } else {
            --tcp_open;
          }
          open.pop_front();
        }
        auto c = over_unix ? HttpClient::unix_socket(sock()) : HttpClient::tcp_from(source, port_);
        const auto r = c.request("GET", "/ping");
        if (r.status == 503) {
          ++refusals;
          continue;
        }
        const std::size_t now_open = over_unix ? ++unix_open : ++tcp_open;
        if (r.status != 200 || now_open > kShare) {
          ++failures;
          ADD_FAILURE() << source << (over_unix ? " (unix)" : "") << " round " << round
                        << ": status " << r.status << " " << r.error << ", " << now_open
                        << " open, share " << kShare;
        }
        open.push_back(std::move(c));
      }
      if (over_unix) unix_open -= open.size();
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(refusals.load(), 0) << "the test never reached a share";
  EXPECT_EQ(refused_over_limit(), static_cast<std::uint64_t>(refusals.load()));
  EXPECT_TRUE(test::eventually([&] { return server_->connections() == 0; }));
  EXPECT_EQ(server_->clients(), 0u);
}

TEST_P(HttpServerTest, Http10ClosesAfterResponse) {
  start();
  auto c = HttpClient::tcp(port_);
  ASSERT_TRUE(c.send_raw("GET /ping HTTP/1.0\r\n\r\n"));
  const auto r = c.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(c.wait_closed());
}

TEST_P(HttpServerTest, StopClosesConnectionsAndRemovesSocket) {
  start();
  auto c = HttpClient::tcp(port_);
  ASSERT_EQ(c.request("GET", "/ping").status, 200);
  server_->stop();
  EXPECT_TRUE(c.wait_closed());
  thread_.join();
  EXPECT_FALSE(std::filesystem::exists(sock()));
  // The server's own loops end with their connections: join() returns without halt().
  auto joined = std::async(std::launch::async, [this] { server_->join(); });
  if (joined.wait_for(10s) != std::future_status::ready) {
    ADD_FAILURE() << "the loops did not end after stop()";
    server_->halt();
  }
}

// A connection stays on one thread for its life. With loops, connections are dealt to them in
// turn and none is served by the threads that run the io_context given to the server.
TEST_P(HttpServerTest, EachConnectionIsServedOnOneThread) {
  start();
  std::vector<HttpClient> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(i % 2 ? HttpClient::unix_socket(sock()) : HttpClient::tcp(port_));
  }
  std::vector<std::string> first;
  for (auto& c : clients) first.push_back(c.request("GET", "/thread").body);
  for (int round = 0; round < 5; ++round) {
    for (std::size_t i = 0; i < clients.size(); ++i) {
      EXPECT_EQ(clients[i].request("GET", "/thread").body, first[i]) << "connection " << i;
    }
  }
  std::lock_guard lock(mu_);
  if (GetParam() == 0) {
    EXPECT_EQ(thread_numbers_.size(), 1u);
    EXPECT_EQ(thread_numbers_.count(thread_.get_id()), 1u);
  } else {
    EXPECT_EQ(thread_numbers_.size(), 2u);
    EXPECT_EQ(thread_numbers_.count(thread_.get_id()), 0u);
    EXPECT_NE(first[0], first[1]);
    EXPECT_EQ(first[0], first[2]);
  }
}

TEST(HttpServerUnixSocket, ReplacesStaleSocketAndRefusesLiveOne) {
  test::TempDir dir;
  const std::string path = dir.file("api.sock");
  boost::asio::io_context io;
  Router router;
  {
    // A socket file nobody accepts on: what a crashed daemon leaves behind.
    boost::asio::local::stream_protocol::acceptor stale(io);
    stale.open();
    stale.bind(boost::asio::local::stream_protocol::endpoint(path));
  }
  ASSERT_TRUE(std::filesystem::exists(path));
  HttpServer first(io, router, {});
  EXPECT_NO_THROW(first.listen_unix(path));

  HttpServer second(io, router, {});
  try {
    second.listen_unix(path);
    FAIL() << "a live socket must not be taken over";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("in use by a running process"), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(std::filesystem::exists(path)) << "the live daemon's socket stays";
}

TEST(HttpServerUnixSocket, RefusesToReplaceARegularFile) {
  test::TempDir dir;
  dir.write("not-a-socket", "data");
  boost::asio::io_context io;
  Router router;
  HttpServer server(io, router, {});
  EXPECT_THROW(server.listen_unix(dir.file("not-a-socket")), std::runtime_error);
  EXPECT_EQ(test::read_file(dir.file("not-a-socket")), "data");
}

TEST(HttpServerTcp, AddressInUseIsAClearError) {
  boost::asio::io_context io;
  Router router;
  HttpServer first(io, router, {});
  const auto port = test::free_tcp_port();
  first.listen_tcp("127.0.0.1", port);
  HttpServer second(io, router, {});
  try {
    second.listen_tcp("127.0.0.1", port);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "cannot listen on 127.0.0.1:" + std::to_string(port) + ": Address already in use");
  }
}

}  // namespace
}  // namespace heartbeatd::transport
