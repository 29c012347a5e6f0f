// HttpPool against an HTTP/1.1 server in the test (plain or TLS, on 127.0.0.1, its own
// thread) that counts connections and requests and misbehaves on command: holds answers,
// closes kept-alive connections after answering, answers with Connection: close.
#include "transport/aws/http_pool.h"

#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <fmt/format.h>

#include <atomic>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "tests/support/redis_server.h"
#include "tests/support/test_pki.h"
#include "tests/support/test_util.h"

namespace heartbeatd::transport::aws {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using test::eventually;

// A port that nothing listens on (the kernel gave it out and it was closed again).
std::uint16_t free_port() {
  asio::io_context io;
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

class TestServer {
 public:
  // With `tls`, sessions handshake first (certificate `tls->cert`, key `tls->key`).
  struct Tls {
    std::string cert;
    std::string key;
  };

  explicit TestServer(std::uint16_t port = 0, std::optional<Tls> tls = std::nullopt)
      : acceptor_(io_) {
    if (tls) {
      tls_ = std::make_unique<ssl::context>(ssl::context::tls_server);
      tls_->use_certificate_chain_file(tls->cert);
      tls_->use_private_key_file(tls->key, ssl::context::pem);
    }
    const tcp::endpoint at(asio::ip::make_address("127.0.0.1"), port);
    acceptor_.open(at.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(at);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    do_accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~TestServer() {
    asio::post(io_, [this] {
      error_code ignored;
      acceptor_.close(ignored);
      for (auto& s : sessions_) s->close();
      sessions_.clear();
      held_.clear();
    });
    io_.stop();
    thread_.join();
  }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  std::uint16_t port() const { return port_; }
  std::string url() const {
    return fmt::format("{}://127.0.0.1:{}", tls_ ? "https" : "http", port_);
  }
  int connections() const { return connections_; }  // accepted so far
  int closed() const { return closed_; }            // of them, seen closed
  int requests() const { return requests_; }
  int held() const { return held_count_; }

  // Requests are held unanswered until release() (or forever).
  void hold(bool on) { hold_ = on; }
  // Answers every held request now.
  void release() {
    asio::post(io_, [this] {
      auto held = std::move(held_);
      held_.clear();
      held_count_ = 0;
      for (auto& s : held) s->answer();
    });
  }
  // After answering, the connection is closed although the answer said keep-alive: what
  // a server does to an idle kept-alive connection, raced by the client's next request.
  void close_after_answer(bool on) { close_after_answer_ = on; }
  // Answers with Connection: close (and closes).
  void connection_close(bool on) { connection_close_ = on; }
  // Answers with these bytes instead of a proper response.
  void raw_answer(std::string bytes) {
    std::lock_guard lock(mu_);
    raw_ = std::move(bytes);
  }

 private:
  class Session;
  using Plain = beast::tcp_stream;
  using Tlsed = beast::ssl_stream<beast::tcp_stream>;

  class Session : public std::enable_shared_from_this<Session> {
   public:
    Session(TestServer& server, tcp::socket socket, int id) : server_(server), id_(id) {
      if (server.tls_) {
        tls_.emplace(beast::tcp_stream(std::move(socket)), *server.tls_);
      } else {
        plain_.emplace(std::move(socket));
      }
    }
    void start() {
      if (!tls_) return do_read();
      tls_->async_handshake(ssl::stream_base::server, [self = shared_from_this()](error_code ec) {
        if (ec) return self->gone();
        self->do_read();
      });
    }
    void answer() {
      std::string raw;
      {
        std::lock_guard lock(server_.mu_);
        raw = server_.raw_;
      }
      if (!raw.empty()) {
        auto bytes = std::make_shared<std::string>(std::move(raw));
        return visit([&](auto& s) {
          asio::async_write(s, asio::buffer(*bytes), [self = shared_from_this(), bytes](
                                                         error_code, std::size_t) {
            self->do_read();
          });
        });
      }
      auto res = std::make_shared<http::response<http::string_body>>(http::status::ok, 11);
      res->set("X-Connection-Id", std::to_string(id_));
      res->set("Content-Type", "text/plain");
      res->set("X-Saw-Content-Length", std::string(request_[http::field::content_length]));
      res->set("X-Saw-Custom", std::string(request_["x-custom"]));
      res->body() = "echo:" + request_.body();
      const bool close = server_.connection_close_ || server_.close_after_answer_;
      res->keep_alive(!server_.connection_close_);
      res->prepare_payload();
      visit([&](auto& s) {
        http::async_write(s, *res, [self = shared_from_this(), res, close](error_code ec,
                                                                          std::size_t) {
          if (ec || close) return self->gone();
          self->do_read();
        });
      });
    }
    void close() {
      error_code ignored;
      lowest().socket().close(ignored);
    }

   private:
    beast::tcp_stream& lowest() { return tls_ ? beast::get_lowest_layer(*tls_) : *plain_; }
    template <class F>
    void visit(F&& f) {
      if (tls_) {
        f(*tls_);
      } else {
        f(*plain_);
      }
    }
    void do_read() {
      request_ = {};
      visit([&](auto& s) {
        http::async_read(s, buffer_, request_, [self = shared_from_this()](error_code ec,
                                                                          std::size_t) {
          if (ec) return self->gone();
          ++self->server_.requests_;
          if (self->server_.hold_) {
            self->server_.held_.push_back(self);
            ++self->server_.held_count_;
            // A held request's client may give up: notice the close with one more read.
            return;
          }
          self->answer();
        });
      });
    }
    void gone() {
      if (done_) return;
      done_ = true;
      close();
      ++server_.closed_;
    }

    TestServer& server_;
    int id_;
    std::optional<Plain> plain_;
    std::optional<Tlsed> tls_;
    beast::flat_buffer buffer_;
    http::request<http::string_body> request_;
    bool done_ = false;
  };

  void do_accept() {
    acceptor_.async_accept([this](error_code ec, tcp::socket socket) {
      if (ec) return;
      auto s = std::make_shared<Session>(*this, std::move(socket), ++connections_);
      sessions_.push_back(s);
      s->start();
      do_accept();
    });
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::unique_ptr<ssl::context> tls_;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::vector<std::shared_ptr<Session>> sessions_;  // io_ thread only
  std::vector<std::shared_ptr<Session>> held_;      // io_ thread only
  std::atomic<int> connections_{0};
  std::atomic<int> closed_{0};
  std::atomic<int> requests_{0};
  std::atomic<int> held_count_{0};
  std::atomic<bool> hold_{false};
  std::atomic<bool> close_after_answer_{false};
  std::atomic<bool> connection_close_{false};
  std::mutex mu_;
  std::string raw_;  // guarded by mu_
};

struct Result {
  error_code ec;
  HttpResponse response;
};

// A request whose answer arrives later, read with a bounded wait.
class Pending {
 public:
  explicit Pending(HttpPool& pool, std::chrono::milliseconds timeout = 5s, std::string body = "")
      : state_(std::make_shared<State>()) {
    HttpRequest r;
    r.method = "POST";
    r.target = "/";
    r.headers = {{"Host", "test"}, {"X-Custom", "yes"}};
    r.body = std::move(body);
    pool.request(std::move(r), timeout, [s = state_](error_code ec, HttpResponse response) {
      s->promise.set_value({ec, std::move(response)});
    });
    future_ = state_->promise.get_future();
  }
  // Bounded: a pool that never answers fails the test instead of hanging it.
  Result get(std::chrono::milliseconds deadline = 10s) {
    if (future_.wait_for(deadline) != std::future_status::ready) {
      ADD_FAILURE() << "no answer within " << deadline.count() << " ms";
      return {make_error(HttpErrc::stopped), {}};
    }
    return future_.get();
  }
  bool ready() const { return future_.wait_for(0s) == std::future_status::ready; }

 private:
  struct State {
    std::promise<Result> promise;
  };
  std::shared_ptr<State> state_;
  std::future<Result> future_;
};

HttpPoolOptions options_for(const TestServer& server, std::size_t min = 0, std::size_t max = 4) {
  HttpPoolOptions o;
  std::string why;
  o.endpoint = Endpoint::parse(server.url(), &why);
  EXPECT_FALSE(o.endpoint.host.empty()) << why;
  o.min = min;
  o.max = max;
  o.wait = 5s;
  o.connect_timeout = 2s;
  return o;
}

TEST(HttpPool, SequentialRequestsReuseOneKeptAliveConnection) {
  TestServer server;
  test::IoThreads io;
  HttpPool pool(io.io, options_for(server, 1));
  pool.start();
  ASSERT_TRUE(eventually([&] { return pool.stats().idle == 1; }));
  for (int i = 0; i < 10; ++i) {
    auto r = Pending(pool, 5s, "n" + std::to_string(i)).get();
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.response.status, 200u);
    EXPECT_EQ(r.response.body, "echo:n" + std::to_string(i));
    EXPECT_EQ(r.response.header("x-connection-id"), "1");
  }
  EXPECT_EQ(server.connections(), 1);
  EXPECT_EQ(server.requests(), 10);
  const auto s = pool.stats();
  EXPECT_EQ(s.connects, 1u);
  EXPECT_EQ(s.requests, 10u);
  EXPECT_EQ(s.failures, 0u);
  EXPECT_TRUE(s.reachable);
  EXPECT_EQ(s.open, 1u);
}

TEST(HttpPool, SendsTheCallersHeadersAndAddsContentLength) {
  TestServer server;
  test::IoThreads io;
  HttpPool pool(io.io, options_for(server));
  pool.start();
  auto r = Pending(pool, 5s, "hello").get();
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.response.header("X-SAW-CONTENT-LENGTH"), "5");
  EXPECT_EQ(r.response.header("x-saw-custom"), "yes");
  EXPECT_EQ(r.response.header("content-type"), "text/plain");
  EXPECT_EQ(r.response.header("no-such-header"), "");
}

TEST(HttpPool, OpensMinConnectionsAtStart) {
  TestServer server;
  test::IoThreads io;
  HttpPool pool(io.io, options_for(server, 3, 8));
  pool.start();
  // The pool may see a connection up before the server's accept handler has counted it.
  ASSERT_TRUE(eventually([&] { return pool.stats().idle == 3 && server.connections() == 3; }));
  EXPECT_EQ(pool.stats().open, 3u);
  EXPECT_EQ(server.requests(), 0);
}

TEST(HttpPool, GrowsToMaxUnderConcurrencyAndNeverBeyond) {
  TestServer server;
  server.hold(true);
  test::IoThreads io;
  HttpPool pool(io.io, options_for(server, 0, 4));
  pool.start();
  std::vector<std::unique_ptr<Pending>> calls;
  for (int i = 0; i < 10; ++i) calls.push_back(std::make_unique<Pending>(pool, 10s));
  ASSERT_TRUE(eventually([&] { return server.held() == 4 && pool.stats().waiting == 6; }));
  EXPECT_EQ(server.connections(), 4);
  EXPECT_EQ(pool.stats().open, 4u);
  server.hold(false);
  server.release();
  for (auto& c : calls) {
    auto r = c->get();
    EXPECT_FALSE(r.ec) << r.ec.message();
  }
  EXPECT_EQ(server.connections(), 4);
  EXPECT_EQ(server.requests(), 10);
  EXPECT_EQ(pool.stats().idle, 4u);
}

TEST(HttpPool, IdleConnectionsBeyondMinAreClosedAfterIdleTimeout) {
  TestServer server;
  server.hold(true);
  test::IoThreads io;
  auto o = options_for(server, 1, 4);
  o.idle_timeout = 200ms;
  HttpPool pool(io.io, o);
  pool.start();
  std::vector<std::unique_ptr<Pending>> calls;
  for (int i = 0; i < 3; ++i) calls.push_back(std::make_unique<Pending>(pool, 10s));
  ASSERT_TRUE(eventually([&] { return server.held() == 3; }));
  server.hold(false);
  server.release();
  for (auto& c : calls) EXPECT_FALSE(c->get().ec);
  EXPECT_TRUE(eventually([&] { return pool.stats().open == 1 && server.closed() == 2; }));
  EXPECT_EQ(pool.stats().idle, 1u);
}

TEST(HttpPool, WaitersGiveUpAfterWaitWhenEveryConnectionIsBusy) {
  TestServer server;
  server.hold(true);
  test::IoThreads io;
  auto o = options_for(server, 0, 1);
  o.wait = 100ms;
  HttpPool pool(io.io, o);
  pool.start();
  Pending busy(pool, 10s);
  ASSERT_TRUE(eventually([&] { return server.held() == 1; }));
  auto r = Pending(pool, 10s).get();
  EXPECT_EQ(r.ec, make_error(HttpErrc::pool_timeout)) << r.ec.message();
  EXPECT_EQ(pool.stats().waiting, 0u);
  server.release();
  EXPECT_FALSE(busy.get().ec);
}

TEST(HttpPool, FullQueueFailsAtOnce) {
  TestServer server;
  server.hold(true);
  test::IoThreads io;
  auto o = options_for(server, 0, 1);
  o.max_waiters = 1;
  HttpPool pool(io.io, o);
  pool.start();
  Pending running(pool, 10s);
  ASSERT_TRUE(eventually([&] { return server.held() == 1; }));
  Pending queued(pool, 10s);
  ASSERT_TRUE(eventually([&] { return pool.stats().waiting == 1; }));
  // `wait` is 5 s: an answer within the bounded get() below can only be the immediate one.
  auto r = Pending(pool, 10s).get(3s);
  EXPECT_EQ(r.ec, make_error(HttpErrc::pool_full)) << r.ec.message();
  server.hold(false);
  server.release();
  EXPECT_FALSE(running.get().ec);
  EXPECT_FALSE(queued.get().ec);
  EXPECT_EQ(server.connections(), 1);
}

TEST(HttpPool, RequestTimeoutClosesTheConnectionAndTheNextRequestWorks) {
  TestServer server;
  server.hold(true);
  test::IoThreads io;
  HttpPool pool(io.io, options_for(server, 0, 1));
  pool.start();
  auto r = Pending(pool, 200ms).get();
  EXPECT_EQ(r.ec, make_error(HttpErrc::timeout)) << r.ec.message();
  // The server sees the close only when it reads again; release the held request for that.
  server.hold(false);
  server.release();
  ASSERT_TRUE(eventually([&] { return server.closed() == 1; }));
  EXPECT_EQ(pool.stats().open, 0u);
  auto next = Pending(pool).get();
  ASSERT_FALSE(next.ec) << next.ec.message();
  EXPECT_EQ(next.response.header("x-connection-id"), "2");
  EXPECT_EQ(pool.stats().failures, 1u);
}

TEST(HttpPool, KeptAliveConnectionClosedByTheServerIsRetriedTransparently) {
  TestServer server;
  server.close_after_answer(true);
  test::IoThreads io;
  HttpPool pool(io.io, options_for(server, 0, 1));
  pool.start();
  for (int i = 0; i < 5; ++i) {
    auto r = Pending(pool, 5s, std::to_string(i)).get();
    ASSERT_FALSE(r.ec) << "request " << i << ": " << r.ec.message();
    EXPECT_EQ(r.response.body, "echo:" + std::to_string(i));
    // The closed connection goes back to the pool as idle (the answer said keep-alive);
    // wait for the server's close so that the next request meets it.
    ASSERT_TRUE(eventually([&] { return server.closed() == i + 1; }));
    EXPECT_EQ(pool.stats().idle, 1u);  // the dead one, which the next request meets
  }
  EXPECT_EQ(server.connections(), 5);
  EXPECT_EQ(server.requests(), 5);
  EXPECT_EQ(pool.stats().failures, 0u);
}

TEST(HttpPool, ConnectionCloseFromTheServerIsRespected) {
  TestServer server;
  server.connection_close(true);
  test::IoThreads io;
  HttpPool pool(io.io, options_for(server, 0, 2));
  pool.start();
  for (int i = 0; i < 3; ++i) {
    auto r = Pending(pool).get();
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.response.header("x-connection-id"), std::to_string(i + 1));
  }
  EXPECT_EQ(server.connections(), 3);
  EXPECT_EQ(pool.stats().open, 0u);
  EXPECT_EQ(pool.stats().idle, 0u);
}

TEST(HttpPool, ResponsesThatAreNotHttp11OrTooBigAreBadResponses) {
  TestServer server;
  test::IoThreads io;
  HttpPool pool(io.io, options_for(server, 0, 1));
  pool.start();
  server.raw_answer("HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");
  auto r = Pending(pool).get();
  EXPECT_EQ(r.ec, make_error(HttpErrc::bad_response)) << r.ec.message();
  // Refused from its header: the 64 MiB are never read.
  server.raw_answer("HTTP/1.1 200 OK\r\nContent-Length: 67108865\r\n\r\n");
  r = Pending(pool).get();
  EXPECT_EQ(r.ec, make_error(HttpErrc::bad_response)) << r.ec.message();
  EXPECT_NE(pool.stats().last_error.find("could not be read"), std::string::npos)
      << pool.stats().last_error;
  server.raw_answer("");
  r = Pending(pool).get();
  EXPECT_FALSE(r.ec) << r.ec.message();
}

TEST(HttpPool, UnreachableEndpointFailsThenRecoversWhenTheServerComesUp) {
  const auto port = free_port();
  test::IoThreads io;
  HttpPoolOptions o;
  o.endpoint = Endpoint{false, "127.0.0.1", port};
  o.min = 1;
  o.connect_timeout = 500ms;
  HttpPool pool(io.io, o);
  pool.start();
  auto r = Pending(pool).get(o.connect_timeout + 2s);
  EXPECT_TRUE(r.ec);
  EXPECT_TRUE(eventually([&] { return pool.stats().connect_failures >= 1; }));
  auto s = pool.stats();
  EXPECT_FALSE(s.reachable);
  EXPECT_NE(s.last_error.find("127.0.0.1"), std::string::npos) << s.last_error;

  TestServer server(port);
  // Backoff doubles from 100 ms: the `min` connection comes back well within the deadline.
  ASSERT_TRUE(eventually([&] { return pool.stats().idle == 1; }, 15s));
  auto ok = Pending(pool).get();
  EXPECT_FALSE(ok.ec) << ok.ec.message();
  EXPECT_TRUE(pool.stats().reachable);
  EXPECT_EQ(pool.stats().last_error, "");
}

// A TLS endpoint that accepts TCP and never answers the handshake: the connect is what hangs,
// and connect_timeout is what ends it.
TEST(HttpPool, HangingConnectFailsAtConnectTimeout) {
  asio::io_context silent;
  tcp::acceptor acceptor(silent, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::vector<tcp::socket> accepted;
  std::function<void()> do_accept = [&] {
    acceptor.async_accept([&](error_code ec, tcp::socket s) {
      if (ec) return;
      accepted.push_back(std::move(s));
      do_accept();
    });
  };
  do_accept();
  std::thread t([&] { silent.run(); });

  test::IoThreads io;
  HttpPoolOptions o;
  o.endpoint = Endpoint{true, "127.0.0.1", acceptor.local_endpoint().port()};
  o.min = 0;
  o.connect_timeout = 300ms;
  {
    HttpPool pool(io.io, o);
    pool.start();
    auto r = Pending(pool, 10s).get(o.connect_timeout + 3s);
    EXPECT_TRUE(r.ec);
    const auto s = pool.stats();
    EXPECT_EQ(s.connect_failures, 1u);
    EXPECT_FALSE(s.reachable);
    EXPECT_NE(s.last_error.find("cannot connect to https://127.0.0.1"), std::string::npos)
        << s.last_error;
  }
  asio::post(silent, [&] { acceptor.close(); accepted.clear(); });
  silent.stop();
  t.join();
}

TEST(HttpPool, StopAnswersEveryoneWithStopped) {
  TestServer server;
  server.hold(true);
  test::IoThreads io;
  HttpPool pool(io.io, options_for(server, 0, 1));
  pool.start();
  Pending running(pool, 10s);
  ASSERT_TRUE(eventually([&] { return server.held() == 1; }));
  Pending queued(pool, 10s);
  ASSERT_TRUE(eventually([&] { return pool.stats().waiting == 1; }));
  pool.stop();
  EXPECT_EQ(running.get().ec, make_error(HttpErrc::stopped));
  EXPECT_EQ(queued.get().ec, make_error(HttpErrc::stopped));
  EXPECT_EQ(Pending(pool).get().ec, make_error(HttpErrc::stopped));
  pool.stop();  // idempotent
  EXPECT_TRUE(eventually([&] { return pool.stats().open == 0; }));
}

TEST(HttpPool, DestructionWithRequestsInFlightIsSafe) {
  TestServer server;
  server.hold(true);
  test::IoThreads io;
  std::vector<std::unique_ptr<Pending>> calls;
  {
    HttpPool pool(io.io, options_for(server, 2, 3));
    pool.start();
    for (int i = 0; i < 6; ++i) calls.push_back(std::make_unique<Pending>(pool, 10s));
    ASSERT_TRUE(eventually([&] { return server.held() == 3; }));
  }
  for (auto& c : calls) EXPECT_EQ(c->get().ec, make_error(HttpErrc::stopped));
  // And a pool destroyed while its connections are still being opened.
  for (int i = 0; i < 20; ++i) {
    HttpPool pool(io.io, options_for(server, 2, 3));
    pool.start();
    Pending p(pool, 10s);
  }
}

// --- TLS ---------------------------------------------------------------------------------

class HttpPoolTls : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::test_pki().ok()) GTEST_SKIP() << "openssl CLI: " << test::test_pki().error();
    server_ = std::make_unique<TestServer>(
        0, TestServer::Tls{test::test_pki().pem("server-1"), test::test_pki().key("server-1")});
  }
  HttpPoolOptions tls_options(const std::string& host, const std::string& ca) {
    HttpPoolOptions o;
    o.endpoint = Endpoint{true, host, server_->port()};
    o.ca_file = test::test_pki().pem(ca);
    o.min = 0;
    o.max = 2;
    return o;
  }
  std::unique_ptr<TestServer> server_;
};

TEST_F(HttpPoolTls, VerifiesTheServerAgainstTheCaFileAndKeepsTheConnection) {
  test::IoThreads io;
  HttpPool pool(io.io, tls_options("127.0.0.1", "ca"));
  pool.start();
  for (int i = 0; i < 3; ++i) {
    auto r = Pending(pool, 5s, "tls").get();
    ASSERT_FALSE(r.ec) << r.ec.message() << " / " << pool.stats().last_error;
    EXPECT_EQ(r.response.body, "echo:tls");
  }
  EXPECT_EQ(server_->connections(), 1);
}

TEST_F(HttpPoolTls, WrongHostNameIsRefused) {
  test::IoThreads io;
  // The certificate is for IP 127.0.0.1, not the name "localhost".
  HttpPool pool(io.io, tls_options("localhost", "ca"));
  pool.start();
  auto r = Pending(pool).get();
  ASSERT_TRUE(r.ec);
  const auto why = pool.stats().last_error;
  EXPECT_NE(why.find("was not accepted"), std::string::npos) << why;
  EXPECT_NE(why.find("mismatch"), std::string::npos) << why;
}

TEST_F(HttpPoolTls, UntrustedCaIsRefused) {
  test::IoThreads io;
  HttpPool pool(io.io, tls_options("127.0.0.1", "other-ca"));
  pool.start();
  auto r = Pending(pool).get();
  ASSERT_TRUE(r.ec);
  const auto why = pool.stats().last_error;
  EXPECT_NE(why.find("was not accepted"), std::string::npos) << why;
  EXPECT_NE(why.find("issuer"), std::string::npos) << why;
}

TEST_F(HttpPoolTls, UnreadableCaFileIsAClearError) {
  test::IoThreads io;
  auto o = tls_options("127.0.0.1", "ca");
  o.ca_file = "/nonexistent/ca.pem";
  HttpPool pool(io.io, o);
  pool.start();
  auto r = Pending(pool).get();
  ASSERT_TRUE(r.ec);
  EXPECT_NE(pool.stats().last_error.find("/nonexistent/ca.pem"), std::string::npos)
      << pool.stats().last_error;
}

// --- Endpoint ----------------------------------------------------------------------------

TEST(HttpPool, EndpointParsesHttpAndHttpsUrls) {
  struct Good {
    const char* url;
    bool tls;
    const char* host;
    std::uint16_t port;
    const char* canonical;
  };
  const Good goods[] = {
      {"https://dynamodb.eu-west-1.amazonaws.com", true, "dynamodb.eu-west-1.amazonaws.com", 443,
       "https://dynamodb.eu-west-1.amazonaws.com:443"},
      {"http://127.0.0.1:8000", false, "127.0.0.1", 8000, "http://127.0.0.1:8000"},
      {"http://localhost/", false, "localhost", 80, "http://localhost:80"},
      {"https://h:8443/", true, "h", 8443, "https://h:8443"},
      {"http://[::1]:8000", false, "::1", 8000, "http://[::1]:8000"},
      {"https://[::1]", true, "::1", 443, "https://[::1]:443"},
      {"HTTP://h:1", false, "h", 1, "http://h:1"},
  };
  for (const auto& g : goods) {
    std::string why = "unset";
    const auto e = Endpoint::parse(g.url, &why);
    EXPECT_EQ(e.host, g.host) << g.url << ": " << why;
    EXPECT_EQ(e.tls, g.tls) << g.url;
    EXPECT_EQ(e.port, g.port) << g.url;
    EXPECT_EQ(e.to_string(), g.canonical) << g.url;
    EXPECT_EQ(why, "") << g.url;
  }
  const char* bads[] = {"dynamodb.amazonaws.com", "ftp://h", "https://", "http://:80",
                        "https://h/path",         "http://h:0", "http://h:65536", "http://h:x",
                        "http://h:",              "http://[::1", "http://[nope]:80",
                        "http://h h",             "HTTPS//h",   "http://[::1]x",
                        "http://user@h",          "http://h?q", ""};
  for (const char* url : bads) {
    std::string why;
    const auto e = Endpoint::parse(url, &why);
    EXPECT_TRUE(e.host.empty()) << url;
    EXPECT_NE(why.find(url), std::string::npos) << url << ": " << why;
  }
}

}  // namespace
}  // namespace heartbeatd::transport::aws
