// The /v1/users routes in-process, over the PresenceStore interface: the embedded table on a
// manual clock (the timeout boundary to the millisecond, which the real-process suite can
// only approach), the 507 of a full table, and a store that fails or answers later from
// another thread (every route 503 with Retry-After; bad input still a 400 that never reaches
// the store). The real-process suite (presence_api_test) keeps the end-to-end cases.
#include "transport/api/presence_routes.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>

#include <atomic>
#include <future>
#include <thread>

#include <fmt/format.h>

#include "tests/support/test_util.h"
#include "transport/presence/memory_store.h"

namespace heartbeatd::transport {
namespace {

using namespace std::chrono_literals;

Request make(http::verb method, std::string target, std::string body = "") {
  Request r{method, target, 11};
  if (!body.empty()) {
    r.set(http::field::content_type, "application/json");
    r.body() = std::move(body);
    r.prepare_payload();
  }
  return r;
}

// A batch body as 8 little-endian bytes per id.
std::string binary_ids(std::initializer_list<std::uint64_t> ids) {
  std::string out;
  for (std::uint64_t id : ids) {
    for (int b = 0; b < 8; ++b) out += static_cast<char>(id >> (8 * b) & 0xff);
  }
  return out;
}

Request make_typed(std::string target, std::string content_type, std::string body) {
  Request r{http::verb::post, target, 11};
  if (!content_type.empty()) r.set(http::field::content_type, content_type);
  r.body() = std::move(body);
  r.prepare_payload();
  return r;
}

boost::json::object json_of(const Response& r) {
  return boost::json::parse(r.body()).as_object();
}

// The presence routes on an in-memory table of at most MaxUsers users, taking batches of at
// most MaxBatch ids.
template <std::size_t MaxUsers, std::size_t MaxBatch>
class RoutesOnATable : public ::testing::Test {
 protected:
  boost::asio::io_context io;  // never run: the table answers in place
  membership::ManualClock clock;
  MemoryPresenceStore store{io, membership::PresenceOptions{1s, 1h, MaxUsers}, clock,
                            std::make_shared<std::atomic<std::int64_t>>(0)};
  std::shared_ptr<PresenceCounters> counters = std::make_shared<PresenceCounters>();
  Router router;
  std::shared_ptr<CountHistory> history = std::make_shared<CountHistory>(10s, 3);
  void SetUp() override { add_presence_routes(router, {&store, MaxBatch, counters, history}); }
  Response call(http::verb m, std::string target, std::string body = "") {
    return router.route(make(m, std::move(target), std::move(body)));
  }
  // POST with a given Content-Type (none when empty), the body as it is.
  Response post(std::string target, std::string content_type, std::string body) {
    return router.route(make_typed(std::move(target), std::move(content_type), std::move(body)));
  }
  Response post_binary(std::string target, std::string body) {
    return post(std::move(target), "application/octet-stream", std::move(body));
  }
};

class MemoryRoutes : public RoutesOnATable<3, 4> {
 protected:
  bool online(std::uint64_t id) {
    const auto r = call(http::verb::get, "/v1/users/" + std::to_string(id));
    EXPECT_EQ(r.result(), http::status::ok) << r.body();
    return json_of(r).at("online").as_bool();
  }
};

TEST_F(MemoryRoutes, OnlineUntilExactlyTheTimeoutOnTheManualClock) {
  EXPECT_FALSE(online(7));
  EXPECT_EQ(call(http::verb::post, "/v1/users/7/heartbeat").result(), http::status::no_content);
  EXPECT_TRUE(online(7));
  clock.advance(999ms);
  EXPECT_TRUE(online(7));
  clock.advance(1ms);
  EXPECT_FALSE(online(7));
  const auto r = json_of(call(http::verb::get, "/v1/users"));
  EXPECT_EQ(r.at("online").as_int64(), 0);
  EXPECT_EQ(r.at("tracked").as_int64(), 1);
  EXPECT_EQ(counters->heartbeats.load(), 1u);
}

TEST_F(MemoryRoutes, AnAnswerGivenInPlaceIsReturnedWithoutTheResponder) {
  bool later_called = false;
  const Routed r = router.dispatch(make(http::verb::post, "/v1/users/1/heartbeat"),
                                   [&](Response) { later_called = true; });
  EXPECT_FALSE(r.deferred);
  EXPECT_EQ(r.response.result(), http::status::no_content);
  EXPECT_FALSE(later_called);
}

TEST_F(MemoryRoutes, BatchesAndLogoutsAnswerAndCount) {
  auto r = call(http::verb::post, "/v1/users/heartbeat", R"({"users":[1,2,2]})");
  ASSERT_EQ(r.result(), http::status::ok) << r.body();
  EXPECT_EQ(json_of(r).at("accepted").as_int64(), 3);
  r = call(http::verb::post, "/v1/users/status", R"({"users":[2,9,1]})");
  ASSERT_EQ(r.result(), http::status::ok) << r.body();
  const auto users = json_of(r).at("users").as_array();
  ASSERT_EQ(users.size(), 3u);
  EXPECT_EQ(users[0].at("user").as_int64(), 2);
  EXPECT_TRUE(users[0].at("online").as_bool());
  EXPECT_FALSE(users[1].at("online").as_bool());
  EXPECT_TRUE(users[1].at("last_seen_ms").is_null());
  EXPECT_EQ(call(http::verb::delete_, "/v1/users/1").result(), http::status::no_content);
  EXPECT_EQ(call(http::verb::delete_, "/v1/users/12345").result(), http::status::no_content);
  EXPECT_FALSE(online(1));
  EXPECT_TRUE(online(2));
  EXPECT_EQ(counters->heartbeats.load(), 3u);
  EXPECT_EQ(counters->logouts.load(), 2u);
  EXPECT_EQ(call(http::verb::post, "/v1/users/status", R"({"users":[1,2,3,4,5]})").result(),
            http::status::payload_too_large);
}

TEST_F(MemoryRoutes, NewUsersBeyondMaxUsersAre507AndKnownOnesStillBeat) {
  ASSERT_EQ(call(http::verb::post, "/v1/users/heartbeat", R"({"users":[1,2,3]})").result(),
            http::status::ok);
  auto r = call(http::verb::post, "/v1/users/4/heartbeat");
  EXPECT_EQ(r.result(), http::status::insufficient_storage);
  EXPECT_EQ(json_of(r).at("error").as_string(), "too_many_users");
  EXPECT_NE(r.body().find("presence.max_users (3)"), std::string::npos) << r.body();
  r = call(http::verb::post, "/v1/users/heartbeat", R"({"users":[3,4,5]})");
  EXPECT_EQ(r.result(), http::status::insufficient_storage);
  EXPECT_NE(r.body().find("2 new user(s) refused"), std::string::npos) << r.body();
  EXPECT_EQ(call(http::verb::post, "/v1/users/3/heartbeat").result(), http::status::no_content);
  EXPECT_EQ(counters->heartbeats.load(), 4u);
}

// A store that cannot answer (Redis down): every call fails, from another thread.
class UnavailableStore final : public PresenceStore {
 public:
  std::atomic<int> calls{0};
  void start() override {}
  void stop() override {}
  void heartbeat(std::span<const UserId>, Done done) override {
    later([done] { done(fail()); });
  }
  void logout(UserId, Done done) override {
    later([done] { done(fail()); });
  }
  void status(std::span<const UserId>, StatusDone done) override {
    later([done] { done(fail(), {}); });
  }
  void counts(CountsDone done) override {
    later([done] { done(fail(), {}); });
  }
  void set_timeout(membership::Duration) override {}
  void set_listener(ChangeListener) override {}
  void watch(std::span<const UserId>) override {}
  void unwatch(std::span<const UserId>) override {}
  StoreHealth health() const override { return {"fake", false, "down", {}}; }
  void write_metrics(MetricsWriter&) const override {}

 private:
  static StoreFailure fail() { return StoreFailure::unavailable("Redis at 127.0.0.1:1 is down"); }
  void later(std::function<void()> f) {
    ++calls;
    std::thread(std::move(f)).detach();
  }
};

TEST_F(MemoryRoutes, IdsAreWrittenAsStringsWhenAskedAndReadInEitherForm) {
  // 2^53 + 1: a JavaScript number would read it as 2^53.
  ASSERT_EQ(call(http::verb::post, "/v1/users/heartbeat",
                 R"({"users":["9007199254740993", 18446744073709551615]})")
                .result(),
            http::status::ok);
  auto r = call(http::verb::get, "/v1/users/9007199254740993?ids=string");
  EXPECT_EQ(json_of(r).at("user").as_string(), "9007199254740993") << r.body();
  r = call(http::verb::get, "/v1/users/9007199254740993?ids=number");
  EXPECT_EQ(json_of(r).at("user").to_number<std::uint64_t>(), 9007199254740993u) << r.body();
  r = call(http::verb::post, "/v1/users/status?ids=string",
           R"({"users":["18446744073709551615", 3]})");
  const auto users = json_of(r).at("users").as_array();
  ASSERT_EQ(users.size(), 2u) << r.body();
  EXPECT_EQ(users[0].at("user").as_string(), "18446744073709551615");
  EXPECT_TRUE(users[0].at("online").as_bool());
  EXPECT_EQ(users[1].at("user").as_string(), "3");
  r = call(http::verb::post, "/v1/users/status", R"({"users":["3"]})");
  EXPECT_EQ(r.body(), R"({"users":[{"user":3,"online":false,"last_seen_ms":null}]})");
}

TEST_F(MemoryRoutes, ABadIdsParameterOrAnUnknownOneIs400AndChangesNothing) {
  for (const char* target : {"/v1/users/3?ids=text", "/v1/users/3?ids=", "/v1/users/3?id=string",
                             "/v1/users/3?ids=string&ids=number", "/v1/users/3?ids=%zz"}) {
    const auto r = call(http::verb::get, target);
    EXPECT_EQ(r.result(), http::status::bad_request) << target;
    EXPECT_EQ(json_of(r).at("error").as_string(), "bad_request") << target;
  }
  EXPECT_NE(call(http::verb::get, "/v1/users/3?ids=text").body().find("expected number or string"),
            std::string::npos);
  const auto r = call(http::verb::post, "/v1/users/status?ids=bits", R"({"users":[3]})");
  EXPECT_EQ(r.result(), http::status::bad_request) << r.body();
}

// format=bits, with room for 1000-id batches.
class BitsRoutes : public RoutesOnATable<10000, 1000> {
 protected:
  void beat(std::initializer_list<std::uint64_t> ids) {
    for (auto id : ids) {
      ASSERT_EQ(call(http::verb::post, "/v1/users/" + std::to_string(id) + "/heartbeat").result(),
                http::status::no_content);
    }
  }
  // The bits for a JSON list of ids, checking the headers that go with them.
  std::string bits(const std::string& ids, std::size_t n) {
    const auto r =
        call(http::verb::post, "/v1/users/status?format=bits", R"({"users":[)" + ids + "]}");
    EXPECT_EQ(r.result(), http::status::ok) << r.body();
    EXPECT_EQ(r[http::field::content_type], "application/octet-stream");
    EXPECT_EQ(r["X-Heartbeatd-Count"], std::to_string(n));
    EXPECT_EQ(r[http::field::content_length], std::to_string((n + 7) / 8));
    EXPECT_EQ(r.body().size(), (n + 7) / 8);
    return r.body();
  }
};

TEST_F(BitsRoutes, OneBitPerIdInRequestOrderLeastSignificantFirst) {
  beat({1, 3, 7, 8, 9});
  EXPECT_EQ(bits("1", 1), "\x01");
  EXPECT_EQ(bits("2", 1), std::string(1, '\0')) << "never seen: offline, 0";
  EXPECT_EQ(bits("1,2,3,4,5,6,7", 7), "\x45") << "ids 1, 3, 7: bits 0, 2, 6; bit 7 unused, 0";
  EXPECT_EQ(bits("1,2,3,4,5,6,7,8", 8), "\xC5");
  EXPECT_EQ(bits("1,2,3,4,5,6,7,8,9", 9), "\xC5\x01");
  EXPECT_EQ(bits("9,8,7,6,5,4,3,2,1", 9), "\x47\x01") << "request order, not id order";
  EXPECT_EQ(bits(R"(3,3,"2",18446744073709551615)", 4), "\x03") << "duplicates keep their place";
  clock.advance(1s);
  EXPECT_EQ(bits("1,2,3,4,5,6,7,8,9", 9), std::string(2, '\0')) << "timed out: offline";
}

TEST_F(BitsRoutes, AThousandIdsAre125Bytes) {
  std::string every_third, all;
  for (int i = 0; i < 1000; ++i) {
    if (i % 3 == 0) every_third += (every_third.empty() ? "" : ",") + std::to_string(i);
    all += (i ? "," : "") + std::to_string(i);
  }
  ASSERT_EQ(
      call(http::verb::post, "/v1/users/heartbeat", R"({"users":[)" + every_third + "]}").result(),
      http::status::ok);
  // Online ids 0, 3, 6, ...: bits repeat every 24, as the bytes 0x49 0x92 0x24.
  std::string want;
  while (want.size() < 125) want += "\x49\x92\x24";
  want.resize(125);
  EXPECT_EQ(bits(all, 1000), want);
  // The same users as JSON, for comparison: the default answer is unchanged.
  const auto r = call(http::verb::post, "/v1/users/status", R"({"users":[)" + all + "]}");
  EXPECT_EQ(r[http::field::content_type], "application/json");
  const auto users = json_of(r).at("users").as_array();
  ASSERT_EQ(users.size(), 1000u);
  for (std::size_t i = 0; i < users.size(); ++i) {
    ASSERT_EQ(users[i].at("online").as_bool(), i % 3 == 0) << i;
  }
}

TEST_F(BitsRoutes, ABadFormatOrIdsWithBitsIs400AndErrorsStayJson) {
  beat({1});
  for (const char* target :
       {"/v1/users/status?format=xml", "/v1/users/status?format=", "/v1/users/status?format=BITS",
        "/v1/users/status?format=bits&format=bits", "/v1/users/status?format=bits&ids=string",
        "/v1/users/status?ids=number&format=bits", "/v1/users/status?format=bits&limit=1"}) {
    const auto r = call(http::verb::post, target, R"({"users":[1]})");
    EXPECT_EQ(r.result(), http::status::bad_request) << target;
    EXPECT_EQ(r[http::field::content_type], "application/json") << target;
    EXPECT_EQ(json_of(r).at("error").as_string(), "bad_request") << target;
  }
  EXPECT_NE(call(http::verb::post, "/v1/users/status?format=xml", R"({"users":[1]})")
                .body()
                .find(R"(format: expected json or bits, got \"xml\")"),
            std::string::npos);
  EXPECT_NE(call(http::verb::post, "/v1/users/status?format=bits&ids=string", R"({"users":[1]})")
                .body()
                .find("ids: only with format=json"),
            std::string::npos);
  // No ids is a bad batch in either format (so there is no empty answer).
  EXPECT_EQ(call(http::verb::post, "/v1/users/status?format=bits", R"({"users":[]})").result(),
            http::status::bad_request);
  std::string too_many = "0";
  for (int i = 1; i <= 1000; ++i) too_many += "," + std::to_string(i);
  const auto r =
      call(http::verb::post, "/v1/users/status?format=bits", R"({"users":[)" + too_many + "]}");
  EXPECT_EQ(r.result(), http::status::payload_too_large);
  EXPECT_EQ(json_of(r).at("error").as_string(), "batch_too_large");
  // format=json is the default spelled out, with ids as before.
  EXPECT_EQ(call(http::verb::post, "/v1/users/status?format=json&ids=string", R"({"users":[1]})")
                .body()
                .find(R"({"users":[{"user":"1","online":true,)"),
            0u);
  EXPECT_EQ(call(http::verb::post, "/v1/users/status?format=json", R"({"users":[2]})").body(),
            R"({"users":[{"user":2,"online":false,"last_seen_ms":null}]})");
}

// Binary batch bodies (Content-Type: application/octet-stream): 8 bytes per id, little-endian.
TEST_F(BitsRoutes, BinaryBodiesAreTheSameBatchesAsJson) {
  constexpr std::uint64_t kMax = 18446744073709551615u;
  auto r = post_binary("/v1/users/heartbeat", binary_ids({1, 3, 7, 8, 9, 3, kMax}));
  ASSERT_EQ(r.result(), http::status::ok) << r.body();
  EXPECT_EQ(r.body(), R"({"accepted":7})") << "duplicates count, as in JSON";
  EXPECT_EQ(counters->heartbeats.load(), 7u);
  r = post_binary("/v1/users/status?format=bits", binary_ids({1, 2, 3, 4, 5, 6, 7, 8, 9}));
  ASSERT_EQ(r.result(), http::status::ok) << r.body();
  EXPECT_EQ(r[http::field::content_type], "application/octet-stream");
  EXPECT_EQ(r["X-Heartbeatd-Count"], "9");
  EXPECT_EQ(r.body(), "\xC5\x01");
  EXPECT_EQ(r.body(), bits("1,2,3,4,5,6,7,8,9", 9)) << "the same answer as for JSON";
  // Duplicates keep their place; unknown ids (never seen, 2^64-2) are offline.
  EXPECT_EQ(post_binary("/v1/users/status?format=bits", binary_ids({3, 3, 2, kMax, kMax - 1}))
                .body(),
            "\x0B");
  // The JSON answer to a binary body is the JSON answer to the same ids in JSON, byte for byte.
  r = post_binary("/v1/users/status", binary_ids({2, 1}));
  const auto as_json = call(http::verb::post, "/v1/users/status", R"({"users":[2,1]})");
  EXPECT_EQ(r.body(), as_json.body());
  EXPECT_EQ(r[http::field::content_type], "application/json");
  EXPECT_EQ(r.body().find(R"({"users":[{"user":2,"online":false,"last_seen_ms":null},{"user":1,)"),
            0u)
      << r.body();
  r = post_binary("/v1/users/status?ids=string", binary_ids({kMax}));
  EXPECT_EQ(json_of(r).at("users").as_array()[0].at("user").as_string(), "18446744073709551615");
  clock.advance(1s);
  EXPECT_EQ(post_binary("/v1/users/status?format=bits", binary_ids({1, 3, kMax})).body(),
            std::string(1, '\0'))
      << "timed out: offline";
}

TEST_F(BitsRoutes, BinaryIdsAreLittleEndian) {
  // Bytes 01 02 .. 08 on the wire: the id 0x0807060504030201.
  ASSERT_EQ(post_binary("/v1/users/heartbeat", "\x01\x02\x03\x04\x05\x06\x07\x08").result(),
            http::status::ok);
  EXPECT_TRUE(json_of(call(http::verb::get, "/v1/users/578437695752307201")).at("online").as_bool());
  EXPECT_FALSE(json_of(call(http::verb::get, "/v1/users/72623859790382856")).at("online").as_bool())
      << "not big-endian";
  // A zero id is an id like any other.
  ASSERT_EQ(post_binary("/v1/users/heartbeat", std::string(8, '\0')).result(), http::status::ok);
  EXPECT_TRUE(json_of(call(http::verb::get, "/v1/users/0")).at("online").as_bool());
}

TEST_F(BitsRoutes, AMisalignedOrEmptyBinaryBodyIs400AndChangesNothing) {
  for (const char* target :
       {"/v1/users/heartbeat", "/v1/users/status", "/v1/users/status?format=bits"}) {
    for (std::size_t size : {1u, 7u, 9u, 15u, 8001u}) {
      const auto r = post_binary(target, std::string(size, '\x01'));
      EXPECT_EQ(r.result(), http::status::bad_request) << target << " " << size;
      EXPECT_EQ(r[http::field::content_type], "application/json");
      EXPECT_EQ(json_of(r).at("error").as_string(), "bad_request");
      EXPECT_NE(r.body().find(fmt::format("binary body of {} bytes is not a whole number of ids",
                                          size)),
                std::string::npos)
          << r.body();
      EXPECT_NE(r.body().find(fmt::format("{} byte(s) left over", size % 8)), std::string::npos)
          << r.body();
    }
    const auto r = post_binary(target, "");
    EXPECT_EQ(r.result(), http::status::bad_request) << target;
    EXPECT_NE(r.body().find("request body is empty; send at least one user id (8 bytes per id"),
              std::string::npos)
        << r.body();
  }
  EXPECT_EQ(counters->heartbeats.load(), 0u);
  EXPECT_EQ(json_of(call(http::verb::get, "/v1/users")).at("tracked").as_int64(), 0);
}

TEST_F(BitsRoutes, MoreBinaryIdsThanMaxBatchIs413LikeJson) {
  std::string body;
  for (std::uint64_t i = 0; i < 1000; ++i) body += binary_ids({i});
  ASSERT_EQ(post_binary("/v1/users/heartbeat", body).result(), http::status::ok);
  EXPECT_EQ(post_binary("/v1/users/status?format=bits", body).body().size(), 125u);
  body += binary_ids({1000});
  std::string json = "0";
  for (int i = 1; i <= 1000; ++i) json += "," + std::to_string(i);
  const auto as_json = call(http::verb::post, "/v1/users/status", R"({"users":[)" + json + "]}");
  ASSERT_EQ(as_json.result(), http::status::payload_too_large);
  for (const char* target :
       {"/v1/users/heartbeat", "/v1/users/status", "/v1/users/status?format=bits"}) {
    const auto r = post_binary(target, body);
    EXPECT_EQ(r.result(), http::status::payload_too_large) << target;
    EXPECT_EQ(r.body(), as_json.body()) << "the same error as for JSON";
  }
  EXPECT_EQ(counters->heartbeats.load(), 1000u);
}

TEST_F(BitsRoutes, OnlyOctetStreamIsBinaryAndJsonNeedsNoContentType) {
  beat({1});
  // The media type in any case, with parameters and spaces: binary.
  for (const char* type : {"application/octet-stream", "Application/Octet-Stream",
                           "application/octet-stream; charset=binary", " application/octet-stream ;x=y"}) {
    const auto r = post("/v1/users/status?format=bits", type, binary_ids({2, 1}));
    EXPECT_EQ(r.result(), http::status::ok) << type << ": " << r.body();
    EXPECT_EQ(r.body(), "\x02") << type;
  }
  // JSON with any other type, or none (as always): JSON.
  for (const char* type : {"", "application/json", "text/plain", "application/x-www-form-urlencoded",
                           "application/octet-streamx"}) {
    const auto r = post("/v1/users/status?format=bits", type, R"({"users":[2,1]})");
    EXPECT_EQ(r.result(), http::status::ok) << type << ": " << r.body();
    EXPECT_EQ(r.body(), "\x02") << type;
  }
  // Binary ids sent as JSON, and JSON sent as binary, are refused, not guessed at.
  auto r = post("/v1/users/heartbeat", "application/json", binary_ids({1}));
  EXPECT_EQ(r.result(), http::status::bad_request);
  EXPECT_NE(r.body().find("body is not a JSON object"), std::string::npos) << r.body();
  r = post_binary("/v1/users/heartbeat", R"({"users":[1]})");
  EXPECT_EQ(r.result(), http::status::bad_request);
  EXPECT_NE(r.body().find("binary body of 13 bytes"), std::string::npos) << r.body();
  EXPECT_EQ(counters->heartbeats.load(), 1u);
}

TEST_F(BitsRoutes, ManyBinaryBatchesAgreeWithStatus) {
  // Random batches, duplicates included, against the per-user answer: bits and JSON both.
  auto rng = test::seeded_rng();
  for (int i = 0; i < 300; ++i) beat({rng() % 2000});
  for (int round = 0; round < 20; ++round) {
    std::vector<std::uint64_t> ids(1 + rng() % 1000);
    std::string body;
    for (auto& id : ids) {
      id = rng() % 2000;
      body += binary_ids({id});
    }
    const auto r = post_binary("/v1/users/status?format=bits", body);
    ASSERT_EQ(r.body().size(), (ids.size() + 7) / 8);
    const auto users = json_of(post_binary("/v1/users/status", body)).at("users").as_array();
    ASSERT_EQ(users.size(), ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
      const bool bit = (static_cast<unsigned char>(r.body()[i / 8]) >> (i % 8)) & 1;
      ASSERT_EQ(bit, users[i].at("online").as_bool()) << "round " << round << " index " << i;
      ASSERT_EQ(users[i].at("user").to_number<std::uint64_t>(), ids[i]);
    }
  }
}

// A store with only status(): online_bits() is PresenceStore's default, over status().
class OddUsersOnlineStore final : public PresenceStore {
 public:
  void start() override {}
  void stop() override {}
  void heartbeat(std::span<const UserId>, Done done) override { done({}); }
  void logout(UserId, Done done) override { done({}); }
  void status(std::span<const UserId> ids, StatusDone done) override {
    std::vector<UserStatus> st(ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) st[i].online = ids[i] % 2 == 1;
    done({}, st);
  }
  void counts(CountsDone done) override { done({}, {}); }
  void set_timeout(membership::Duration) override {}
  void set_listener(ChangeListener) override {}
  void watch(std::span<const UserId>) override {}
  void unwatch(std::span<const UserId>) override {}
  StoreHealth health() const override { return {"fake", true, "", {}}; }
  void write_metrics(MetricsWriter&) const override {}
};

TEST(DefaultOnlineBits, PacksStatusInRequestOrder) {
  OddUsersOnlineStore store;
  Router router;
  add_presence_routes(router, {&store, 100});
  auto r = router.route(make_typed("/v1/users/status?format=bits", "application/octet-stream",
                                   binary_ids({1, 2, 3, 4, 5, 6, 7, 8, 9, 11})));
  EXPECT_EQ(r.result(), http::status::ok) << r.body();
  EXPECT_EQ(r.body(), "\x55\x03");
  EXPECT_EQ(r["X-Heartbeatd-Count"], "10");
  r = router.route(make(http::verb::post, "/v1/users/status?format=bits", R"({"users":[2]})"));
  EXPECT_EQ(r.body(), std::string(1, '\0'));
}

TEST_F(MemoryRoutes, HistoryKeepsTheLastPointsOldestFirst) {
  EXPECT_EQ(call(http::verb::get, "/v1/users/history").body(), R"({"interval_ms":10000,"points":[]})");
  for (std::uint64_t i = 1; i <= 4; ++i) history->add(1000 * i, {i, 10 + i});
  const auto r = call(http::verb::get, "/v1/users/history");
  ASSERT_EQ(r.result(), http::status::ok);
  EXPECT_EQ(r.body(),
            R"({"interval_ms":10000,"points":[{"time_ms":2000,"online":2,"tracked":12},)"
            R"({"time_ms":3000,"online":3,"tracked":13},{"time_ms":4000,"online":4,"tracked":14}]})")
      << "the oldest of four goes: three points are kept";
}

TEST(UnavailableStoreRoutes, EveryRouteIs503WithRetryAfterAndBadInputIsStill400) {
  UnavailableStore store;
  Router router;
  add_presence_routes(router, {&store, 4});
  const std::pair<http::verb, std::string> routes[] = {
      {http::verb::post, "/v1/users/1/heartbeat"},
      {http::verb::get, "/v1/users/1"},
      {http::verb::delete_, "/v1/users/1"},
      {http::verb::get, "/v1/users"},
  };
  for (const auto& [m, target] : routes) {
    const auto r = router.route(make(m, target));
    EXPECT_EQ(r.result(), http::status::service_unavailable) << target;
    EXPECT_EQ(r[http::field::retry_after], "1") << target;
    EXPECT_EQ(json_of(r).at("error").as_string(), "presence_unavailable");
    EXPECT_NE(r.body().find("is down"), std::string::npos) << r.body();
  }
  for (const auto* target :
       {"/v1/users/heartbeat", "/v1/users/status", "/v1/users/status?format=bits"}) {
    const auto r = router.route(make(http::verb::post, target, R"({"users":[1,2]})"));
    EXPECT_EQ(r.result(), http::status::service_unavailable) << target;
    EXPECT_EQ(r[http::field::content_type], "application/json") << target;
  }
  for (const auto* target :
       {"/v1/users/heartbeat", "/v1/users/status", "/v1/users/status?format=bits"}) {
    const auto r = router.route(make_typed(target, "application/octet-stream", binary_ids({1, 2})));
    EXPECT_EQ(r.result(), http::status::service_unavailable) << target;
    EXPECT_EQ(r[http::field::retry_after], "1") << target;
  }
  const int reached = store.calls.load();
  EXPECT_EQ(router.route(make(http::verb::post, "/v1/users/x/heartbeat")).result(),
            http::status::bad_request);
  EXPECT_EQ(router.route(make_typed("/v1/users/status?format=bits", "application/octet-stream",
                                    std::string(12, '\0')))
                .result(),
            http::status::bad_request);
  EXPECT_EQ(router.route(make(http::verb::post, "/v1/users/status", "{")).result(),
            http::status::bad_request);
  EXPECT_EQ(store.calls.load(), reached);  // bad input never reaches the store
}

}  // namespace
}  // namespace heartbeatd::transport
