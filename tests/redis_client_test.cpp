// The Redis client against a real redis-server on loopback: pipelines, the pool's minimum
// and maximum, a bounded wait that times out, a full wait queue, timeouts that close a
// connection, idle connections closed beyond the minimum, and Redis going away and coming
// back. Every wait has a deadline; the io_context runs on two threads, as the daemon's.
#include "transport/redis/client.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "tests/support/redis_server.h"
#include "tests/support/test_util.h"

namespace heartbeatd::transport::redis {
namespace {

using namespace std::chrono_literals;
using boost::system::error_code;
using heartbeatd::test::eventually;
using heartbeatd::test::RedisServer;

class RedisClient : public ::testing::Test {
 protected:
  void SetUp() override {
    if (RedisServer::binary().empty()) GTEST_SKIP() << "redis-server is not installed (scripts/setup)";
    ASSERT_TRUE(server.start());
  }
  Pool& pool(PoolOptions o) {
    o.port = server.port();
    pools.push_back(std::make_unique<Pool>(loop.io, o));
    pools.back()->start();
    return *pools.back();
  }
  struct Acquired {
    error_code ec;
    Lease lease;
  };
  std::future<Acquired> acquire(Pool& p) {
    auto promise = std::make_shared<std::promise<Acquired>>();
    auto f = promise->get_future();
    p.acquire([promise](error_code ec, Lease l) { promise->set_value({ec, std::move(l)}); });
    return f;
  }
  struct Executed {
    error_code ec;
    std::vector<Value> replies;
  };
  // 4 s by default: a PING on a machine running the whole suite in parallel can stall past
  // 1 s (seen once in CI); tests about the command timeout pass their own.
  std::future<Executed> exec(Lease& l, std::vector<Command> cmds, std::chrono::milliseconds t = 4s) {
    auto promise = std::make_shared<std::promise<Executed>>();
    auto f = promise->get_future();
    l.exec(std::move(cmds), t, [promise](error_code ec, std::vector<Value> r) {
      promise->set_value({ec, std::move(r)});
    });
    return f;
  }
  template <class T>
  static T get(std::future<T>& f, std::chrono::milliseconds deadline = 5s) {
    EXPECT_EQ(f.wait_for(deadline), std::future_status::ready);
    return f.get();
  }

  RedisServer server;
  heartbeatd::test::IoThreads loop;
  std::vector<std::unique_ptr<Pool>> pools;  // before the loop stops
};

TEST_F(RedisClient, APipelineGetsOneReplyPerCommandInOrder) {
  auto& p = pool({});
  auto a = acquire(p);
  auto got = get(a);
  ASSERT_FALSE(got.ec) << got.ec.message();
  auto r = exec(got.lease, {{"SET", "k", std::string("v\0w", 3)},
                            {"GET", "k"},
                            {"INCR", "n"},
                            {"GET", "missing"},
                            {"NOSUCHCOMMAND"},
                            {"MGET", "k", "missing"}});
  auto done = get(r);
  ASSERT_FALSE(done.ec) << done.ec.message();
  ASSERT_EQ(done.replies.size(), 6u);
  EXPECT_EQ(done.replies[0].type, Value::Type::status);
  EXPECT_EQ(done.replies[1].str, std::string("v\0w", 3));  // binary-safe
  EXPECT_EQ(done.replies[2].integer, 1);
  EXPECT_EQ(done.replies[3].type, Value::Type::nil);
  EXPECT_TRUE(done.replies[4].is_error());
  ASSERT_EQ(done.replies[5].elements.size(), 2u);
  EXPECT_EQ(done.replies[5].elements[1].type, Value::Type::nil);
  // A long pipeline (replies larger than one read) comes back whole.
  std::vector<Command> many;
  for (int i = 0; i < 5000; ++i) many.push_back({"SET", "key" + std::to_string(i), std::string(100, 'x')});
  auto big = exec(got.lease, many);
  auto big_done = get(big);
  ASSERT_FALSE(big_done.ec);
  EXPECT_EQ(big_done.replies.size(), 5000u);
}

TEST_F(RedisClient, ThePoolKeepsItsMinimumAndGrowsToItsMaximum) {
  PoolOptions o;
  o.min = 2;
  o.max = 3;
  o.wait = 2s;
  auto& p = pool(o);
  EXPECT_TRUE(eventually([&] { return p.stats().open == 2 && p.stats().idle == 2; }, 5s));
  auto a = acquire(p), b = acquire(p), c = acquire(p), d = acquire(p);
  auto la = get(a), lb = get(b), lc = get(c);
  ASSERT_FALSE(la.ec || lb.ec || lc.ec);
  EXPECT_EQ(p.stats().open, 3u);
  EXPECT_EQ(d.wait_for(200ms), std::future_status::timeout);  // the fourth waits
  EXPECT_EQ(p.stats().waiting, 1u);
  la.lease = Lease();  // returned: the waiter gets it
  auto ld = get(d);
  ASSERT_FALSE(ld.ec);
  auto r = exec(ld.lease, {{"PING"}});
  const auto pong = get(r);
  ASSERT_FALSE(pong.ec) << pong.ec.message();
  ASSERT_EQ(pong.replies.size(), 1u);
  EXPECT_EQ(pong.replies[0].str, "PONG");
  EXPECT_EQ(p.stats().open, 3u);
}

TEST_F(RedisClient, AnExhaustedPoolAnswersInsteadOfWaitingForever) {
  PoolOptions o;
  o.min = 1;
  o.max = 1;
  o.wait = 150ms;
  o.max_waiters = 1;
  auto& p = pool(o);
  auto held = acquire(p);
  auto h = get(held);
  ASSERT_FALSE(h.ec);
  const auto t0 = std::chrono::steady_clock::now();
  auto waiting = acquire(p);
  auto full = acquire(p);  // the queue holds one
  auto f = get(full);
  EXPECT_EQ(f.ec, make_error(Errc::pool_full)) << f.ec.message();
  auto w = get(waiting);
  EXPECT_EQ(w.ec, make_error(Errc::pool_timeout)) << w.ec.message();
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, 150ms);
  EXPECT_LT(waited, 2s);
  EXPECT_EQ(p.stats().timeouts, 1u);
  EXPECT_EQ(p.stats().rejected, 1u);
  // Free again: served at once.
  h.lease = Lease();
  auto again = acquire(p);
  EXPECT_FALSE(get(again).ec);
}

TEST_F(RedisClient, ACommandPastItsTimeoutClosesTheConnection) {
  PoolOptions o;
  o.min = 1;
  o.max = 2;
  auto& p = pool(o);
  auto a = acquire(p);
  auto l = get(a);
  ASSERT_FALSE(l.ec);
  auto r = exec(l.lease, {{"BLPOP", "empty-list", "2"}}, 100ms);  // blocks 2 s on the server
  auto done = get(r);
  EXPECT_EQ(done.ec, boost::asio::error::timed_out) << done.ec.message();
  l.lease = Lease();  // a closed connection does not go back
  EXPECT_TRUE(eventually([&] { return p.stats().open == 1 && p.stats().idle == 1; }, 5s))
      << p.stats().open;
  auto b = acquire(p);
  auto lb = get(b);
  ASSERT_FALSE(lb.ec);
  auto ping = exec(lb.lease, {{"PING"}});
  EXPECT_FALSE(get(ping).ec);
}

TEST_F(RedisClient, IdleConnectionsBeyondTheMinimumAreClosed) {
  PoolOptions o;
  o.min = 1;
  o.max = 4;
  o.wait = 2s;
  o.idle_timeout = 200ms;
  auto& p = pool(o);
  {
    std::vector<std::future<Acquired>> fs;
    for (int i = 0; i < 4; ++i) fs.push_back(acquire(p));
    std::vector<Acquired> leases;
    for (auto& f : fs) leases.push_back(get(f));
    EXPECT_EQ(p.stats().open, 4u);
  }
  EXPECT_TRUE(eventually([&] { return p.stats().open == 1; }, 5s)) << p.stats().open;
}

TEST_F(RedisClient, RedisGoingAwayFailsFastAndComingBackRecovers) {
  PoolOptions o;
  o.min = 2;
  o.max = 2;
  o.wait = 2s;
  o.health_interval = 100ms;
  auto& p = pool(o);
  ASSERT_TRUE(eventually([&] { return p.stats().open == 2; }, 5s));
  server.stop();
  // Health checks notice; then requests fail at once, not after `wait`.
  EXPECT_TRUE(eventually([&] { return !p.stats().reachable && p.stats().open == 0; }, 5s))
      << p.stats().open;
  auto a = acquire(p);
  const auto t0 = std::chrono::steady_clock::now();
  auto failed = get(a);
  EXPECT_TRUE(failed.ec) << "no error while Redis is down";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);

  ASSERT_TRUE(server.start());
  EXPECT_TRUE(eventually(
      [&] {
        auto f = acquire(p);
        auto got = get(f);
        if (got.ec) return false;
        auto r = exec(got.lease, {{"PING"}});
        auto done = get(r);
        return !done.ec && done.replies.at(0).str == "PONG";
      },
      15s));
  EXPECT_TRUE(p.stats().reachable);
}

TEST_F(RedisClient, StoppingThePoolAnswersTheWaiters) {
  PoolOptions o;
  o.min = 1;
  o.max = 1;
  o.wait = 10s;
  auto& p = pool(o);
  auto held = acquire(p);
  auto h = get(held);
  ASSERT_FALSE(h.ec);
  auto waiting = acquire(p);
  EXPECT_EQ(waiting.wait_for(100ms), std::future_status::timeout);
  p.stop();
  EXPECT_EQ(get(waiting).ec, make_error(Errc::stopped));
  auto after = acquire(p);
  EXPECT_EQ(get(after).ec, make_error(Errc::stopped));
}

// The harness itself: tests run in parallel, and another process may take the port that
// free_tcp_port() handed out before redis-server binds it. The server then exits at once, and
// start() goes on with a fresh port instead of waiting out its deadline.
TEST(RedisServerSupport, AFirstStartOnATakenPortMovesToAFreshOne) {
  RedisServer redis;
  const std::uint16_t picked = redis.port();
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor squatter(io);
  squatter.open(boost::asio::ip::tcp::v4());
  squatter.bind({boost::asio::ip::make_address("127.0.0.1"), picked});
  squatter.listen();
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(redis.start());
  EXPECT_NE(redis.port(), picked);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5))
      << "the exit was noticed, not waited out";
  EXPECT_EQ(redis.command("*1\r\n$4\r\nPING\r\n"), "+PONG\r\n");
}

}  // namespace
}  // namespace heartbeatd::transport::redis
