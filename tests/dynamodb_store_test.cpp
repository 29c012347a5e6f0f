// The DynamoDB store against a DynamoDB that lies: answers that are not JSON, items with the
// wrong types or ids no one asked for, numbers out of range, a stream of throttling. Every
// byte from the endpoint is hostile until parsed: the store must answer 503 or ignore what
// it cannot use, never crash, never report a user online on a forged item of the wrong shape,
// never hang. The endpoint is an in-test HTTP server on loopback answering canned bodies by
// operation.
#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/wall_clock.h"
#include "tests/support/redis_server.h"  // IoThreads
#include "transport/presence/dynamodb_store.h"

namespace heartbeatd::test {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace http = boost::beast::http;
using transport::StoreFailure;
using transport::UserStatus;

// Answers each request with answer(operation, body) -> {status, body}.
class FakeDynamo {
 public:
  using Answer = std::function<std::pair<unsigned, std::string>(const std::string&, const std::string&)>;
  explicit FakeDynamo(Answer answer)
      : answer_(std::move(answer)), acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}) {
    thread_ = std::thread([this] { accept_loop(); });
  }
  ~FakeDynamo() {
    stop_ = true;
    // A blocking accept() is not woken by close() from another thread: a connection is.
    boost::system::error_code ec;
    asio::ip::tcp::socket poke(io_);
    poke.connect(acceptor_.local_endpoint(), ec);
    thread_.join();
    poke.close(ec);
    for (auto& t : connections_) t.join();
  }
  std::string endpoint() const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
  }
  int requests() const { return requests_; }

 private:
  void accept_loop() {
    while (!stop_) {
      auto socket = std::make_shared<asio::ip::tcp::socket>(io_);
      boost::system::error_code ec;
      acceptor_.accept(*socket, ec);
      if (ec || stop_) return;
      connections_.emplace_back([this, socket] { serve(*socket); });
    }
  }
  void serve(asio::ip::tcp::socket& s) {
    boost::beast::flat_buffer buf;
    while (!stop_) {
      http::request<http::string_body> req;
      boost::system::error_code ec;
      http::read(s, buf, req, ec);
      if (ec) return;
      ++requests_;
      std::string op(req["x-amz-target"]);
      op = op.substr(op.find('.') + 1);
      const auto [status, body] = answer_(op, req.body());
      http::response<http::string_body> res{static_cast<http::status>(status), 11};
      res.set(http::field::content_type, "application/x-amz-json-1.0");
      res.body() = body;
      res.prepare_payload();
      http::write(s, res, ec);
      if (ec) return;
    }
  }
  Answer answer_;
  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_;
  std::thread thread_;
  std::vector<std::thread> connections_;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
};

class LyingDynamo : public ::testing::Test {
 protected:
  std::unique_ptr<transport::DynamoPresenceStore> store(const std::string& endpoint) {
    transport::DynamoPresenceOptions o;
    o.table = "t";
    o.client.region = "us-east-1";
    std::string why;
    o.client.pool.endpoint = transport::aws::Endpoint::parse(endpoint, &why);
    o.client.pool.min = 1;
    o.client.attempt_timeout = 500ms;
    o.credentials = {"AKID", "secret", "", std::nullopt, "test"};
    o.dedup_window = 0ms;
    o.request_deadline = 300ms;
    o.timeout = 30s;
    auto s = std::make_unique<transport::DynamoPresenceStore>(threads_.io, std::move(o),
                                                              [this] { return wall_.unix_us(); });
    s->start();
    return s;
  }
  std::pair<StoreFailure, std::vector<UserStatus>> status(transport::PresenceStore& s,
                                                          std::vector<std::uint64_t> ids) {
    std::promise<std::pair<StoreFailure, std::vector<UserStatus>>> p;
    auto f = p.get_future();
    s.status(ids, [&p](StoreFailure r, std::span<const UserStatus> st) {
      p.set_value({std::move(r), std::vector<UserStatus>(st.begin(), st.end())});
    });
    EXPECT_EQ(f.wait_for(5s), std::future_status::ready) << "no answer";
    return f.get();
  }
  StoreFailure heartbeat(transport::PresenceStore& s, std::vector<std::uint64_t> ids) {
    std::promise<StoreFailure> p;
    auto f = p.get_future();
    s.heartbeat(ids, [&p](StoreFailure r) { p.set_value(std::move(r)); });
    EXPECT_EQ(f.wait_for(5s), std::future_status::ready) << "no answer";
    return f.get();
  }

  ManualWallClock wall_;
  IoThreads threads_;
};

TEST_F(LyingDynamo, AnAnswerThatIsNotJsonIs503) {
  FakeDynamo fake([](const std::string&, const std::string&) {
    return std::pair<unsigned, std::string>{200, "<html>not json"};
  });
  auto s = store(fake.endpoint());
  const auto [f, st] = status(*s, {1});
  EXPECT_EQ(f.kind, StoreFailure::Kind::unavailable);
  EXPECT_NE(f.message.find("not a JSON object"), std::string::npos) << f.message;
  EXPECT_EQ(heartbeat(*s, {1, 2}).kind, StoreFailure::Kind::unavailable);
  EXPECT_FALSE(s->health().ok);
  s->stop();
}

TEST_F(LyingDynamo, ItemsOfTheWrongShapeAreUnknownUsersNeverOnline) {
  const std::string now = std::to_string(ManualWallClock().unix_us() / 1000);
  FakeDynamo fake([now](const std::string& op, const std::string&) {
    if (op != "BatchGetItem") return std::pair<unsigned, std::string>{200, "{}"};
    // 1: s is a string; 2: s is text in N; 3: an id no one asked for; 4: u out of range;
    // 5: u absent; 6: Responses for another table; 7: well formed.
    return std::pair<unsigned, std::string>{
        200, R"({"Responses":{"t":[
          {"u":{"N":"1"},"s":{"S":")" + now + R"("}},
          {"u":{"N":"2"},"s":{"N":"soon"}},
          {"u":{"N":"999"},"s":{"N":")" + now + R"("}},
          {"u":{"N":"184467440737095516150"},"s":{"N":")" + now + R"("}},
          {"s":{"N":")" + now + R"("}},
          "not an item", 42, null,
          {"u":{"N":"7"},"s":{"N":")" + now + R"("}}],
          "other":[{"u":{"N":"6"},"s":{"N":")" + now + R"("}}]},
          "UnprocessedKeys":{"t":"garbage"}})"};
  });
  auto s = store(fake.endpoint());
  const auto [f, st] = status(*s, {1, 2, 4, 5, 6, 7});
  ASSERT_FALSE(f) << f.message;
  ASSERT_EQ(st.size(), 6u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_FALSE(st[i].online) << i;
    EXPECT_FALSE(st[i].last_seen_ms) << i;
  }
  EXPECT_TRUE(st[5].online);
  s->stop();
}

TEST_F(LyingDynamo, EndlessUnprocessedKeysEndAt503WithinTheDeadline) {
  FakeDynamo fake([](const std::string& op, const std::string& body) {
    if (op != "BatchGetItem") return std::pair<unsigned, std::string>{200, "{}"};
    // Whatever was asked comes back unprocessed, forever.
    const auto at = body.find("\"Keys\":");
    const auto end = body.find(']', at);
    return std::pair<unsigned, std::string>{
        200, R"({"Responses":{"t":[]},"UnprocessedKeys":{"t":{)" +
                 body.substr(at, end - at + 1) + "}}}"};
  });
  auto s = store(fake.endpoint());
  const auto t0 = std::chrono::steady_clock::now();
  const auto [f, st] = status(*s, {1, 2, 3});
  EXPECT_EQ(f.kind, StoreFailure::Kind::unavailable);
  EXPECT_NE(f.message.find("unread until the deadline"), std::string::npos) << f.message;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  s->stop();
}

TEST_F(LyingDynamo, ThrottlingForeverIs503WithinTheDeadlineAfterSeveralAttempts) {
  FakeDynamo fake([](const std::string&, const std::string&) {
    return std::pair<unsigned, std::string>{
        400, R"({"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"slow"})"};
  });
  auto s = store(fake.endpoint());
  const auto t0 = std::chrono::steady_clock::now();
  const auto f = heartbeat(*s, {5});
  EXPECT_EQ(f.kind, StoreFailure::Kind::unavailable);
  EXPECT_NE(f.message.find("throttling"), std::string::npos) << f.message;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_GE(fake.requests(), 3) << "throttling was not retried";
  s->stop();
}

TEST_F(LyingDynamo, RefusedCredentialsAtStartAreAnErrorNotAWarning) {
  FakeDynamo fake([](const std::string&, const std::string&) {
    return std::pair<unsigned, std::string>{
        400, R"({"__type":"com.amazon.coral.service#UnrecognizedClientException",)"
             R"("message":"The security token included in the request is invalid."})"};
  });
  transport::DynamoPresenceOptions o;
  o.table = "t";
  o.client.region = "us-east-1";
  std::string why;
  o.client.pool.endpoint = transport::aws::Endpoint::parse(fake.endpoint(), &why);
  o.credentials = {"AKIDWRONG", "wrong", "", std::nullopt, "environment"};
  const auto check = transport::prepare_dynamodb_table(o, 5s);
  EXPECT_NE(check.error.find("UnrecognizedClientException"), std::string::npos) << check.error;
  EXPECT_NE(check.error.find("presence.dynamodb.table t"), std::string::npos) << check.error;
}

TEST_F(LyingDynamo, AnUnreachableEndpointAtStartIsAWarningNotAnError) {
  std::uint16_t port;
  {
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }  // closed: nothing listens there now
  transport::DynamoPresenceOptions o;
  o.table = "t";
  o.client.region = "us-east-1";
  std::string why;
  o.client.pool.endpoint =
      transport::aws::Endpoint::parse("http://127.0.0.1:" + std::to_string(port), &why);
  o.credentials = {"AKID", "secret", "", std::nullopt, "test"};
  const auto t0 = std::chrono::steady_clock::now();
  const auto check = transport::prepare_dynamodb_table(o, 2s);
  EXPECT_TRUE(check.error.empty()) << check.error;
  ASSERT_EQ(check.warnings.size(), 1u);
  EXPECT_NE(check.warnings[0].find("not reachable at start"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 7s);
}

}  // namespace
}  // namespace heartbeatd::test
