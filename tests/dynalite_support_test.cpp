// The DynamoDB backend's test support itself: dynalite (support/dynalite_server.h) answers
// the calls the backend makes, comes back empty on the same port after stop(), and shows
// the behaviours and limits recorded in dynalite_server.h; the fault proxy
// (support/fault_proxy.h) passes calls through, throttles, fails with 5xx, splits batches
// (the forwarded half really written, the rest returned as unprocessed), delays, and counts.
// Requests are hand-written JSON with signed-looking headers (dynalite checks their shape
// only). Fails, rather than skips, when dynalite is not installed: this is the test that
// says scripts/setup did its part.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <chrono>
#include <string>

#include "tests/support/dynalite_server.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/http_client.h"
#include "tests/support/test_util.h"

namespace heartbeatd::test {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

json::object parse(const HttpResult& r) {
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (ec || !v.is_object()) return {};
  return v.as_object();
}

std::string type_of(const HttpResult& r) {
  const json::object o = parse(r);
  const auto* t = o.if_contains("__type");
  return t != nullptr && t->is_string() ? std::string(t->as_string()) : "";
}

std::string message_of(const HttpResult& r) {
  const json::object o = parse(r);
  const auto* m = o.if_contains("message");
  return m != nullptr && m->is_string() ? std::string(m->as_string()) : "";
}

std::string create_table(const std::string& name) {
  return R"({"TableName":")" + name +
         R"(","AttributeDefinitions":[{"AttributeName":"pk","AttributeType":"S"}],)"
         R"("KeySchema":[{"AttributeName":"pk","KeyType":"HASH"}],"BillingMode":"PAY_PER_REQUEST"})";
}

std::string key(const std::string& pk) {
  return R"({"pk":{"S":")" + pk + R"("}})";
}

std::string item(const std::string& pk, int value) {
  return R"({"pk":{"S":")" + pk + R"("},"v":{"N":")" + std::to_string(value) + R"("}})";
}

// {"RequestItems":{table:[{"PutRequest":{"Item":...}} for pk prefix0..prefix(n-1)]}}
std::string put_requests(const std::string& prefix, int n) {
  std::string out = "[";
  for (int i = 0; i < n; ++i) {
    if (i > 0) out += ",";
    out += R"({"PutRequest":{"Item":)" + item(prefix + std::to_string(i), i) + "}}";
  }
  return out + "]";
}

std::string keys(const std::string& prefix, int n) {
  std::string out = "[";
  for (int i = 0; i < n; ++i) {
    if (i > 0) out += ",";
    out += key(prefix + std::to_string(i));
  }
  return out + "]";
}

std::string get_item(const std::string& table, const std::string& pk) {
  return R"({"TableName":")" + table + R"(","Key":)" + key(pk) + R"(,"ConsistentRead":true})";
}

class DynaliteSupport : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(DynaliteServer::problem(), "");
    ASSERT_TRUE(dynalite.start()) << dynalite.log();
  }
  HttpResult call(const std::string& operation, const std::string& body) {
    return dynamo_request(dynalite.port(), operation, body);
  }
  // CreateTable, then (on 200) waits for the table to be ACTIVE, which dynalite makes it on
  // its next event-loop turn: items written before that may be refused.
  HttpResult create(const std::string& table) {
    auto r = call("CreateTable", create_table(table));
    if (r.status != 200) return r;
    EXPECT_TRUE(eventually(
        [&] {
          const auto d = call("DescribeTable", R"({"TableName":")" + table + "\"}");
          return d.status == 200 && d.body.find("\"ACTIVE\"") != std::string::npos;
        },
        5s))
        << table << " never became ACTIVE";
    return r;
  }
  DynaliteServer dynalite;
};

TEST_F(DynaliteSupport, AnswersTheCallsTheBackendMakes) {
  EXPECT_EQ(dynalite.endpoint(), "http://127.0.0.1:" + std::to_string(dynalite.port()));
  auto r = call("CreateTable", create_table("presence"));  // the first: checks ACTIVE itself
  ASSERT_EQ(r.status, 200) << r.body;
  // --createTableMs 0: ACTIVE on dynalite's next turn of its event loop, not within the
  // CreateTable answer (a clean-clone CI run once saw CREATING here): wait, with a deadline,
  // as heartbeatd's start-up check does.
  EXPECT_TRUE(eventually(
      [&] {
        r = call("DescribeTable", R"({"TableName":"presence"})");
        return r.status == 200 &&
               parse(r).at("Table").at("TableStatus").as_string() == "ACTIVE";
      },
      5s))
      << r.body;

  r = call("PutItem", R"({"TableName":"presence","Item":)" + item("u1", 7) + "}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type"), "application/json");  // as the request's
  r = call("GetItem", get_item("presence", "u1"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(parse(r).at("Item").at("v").at("N").as_string(), "7");
  r = call("GetItem", get_item("presence", "nobody"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "{}");  // no Item at all

  r = call("BatchWriteItem", R"({"RequestItems":{"presence":)" + put_requests("b", 3) + "}}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::serialize(parse(r).at("UnprocessedItems")), "{}");
  r = call("BatchGetItem",
           R"({"RequestItems":{"presence":{"Keys":)" + keys("b", 3) + R"(,"ConsistentRead":true}}})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(parse(r).at("Responses").at("presence").as_array().size(), 3u);

  r = call("DeleteItem", R"({"TableName":"presence","Key":)" + key("u1") + "}");
  ASSERT_EQ(r.status, 200) << r.body;
  r = call("GetItem", get_item("presence", "u1"));
  EXPECT_EQ(r.body, "{}");

  r = call("GetItem", get_item("missing", "u1"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(type_of(r), "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException");
}

// dynalite 4.0.0 has no UpdateTimeToLive; DescribeTimeToLive answers DISABLED whatever was
// asked. A backend that sets TTL at startup must cope (or tests must not rely on TTL).
TEST_F(DynaliteSupport, TimeToLiveIsNotImplemented) {
  ASSERT_EQ(create("presence").status, 200);
  auto r = call("UpdateTimeToLive",
                R"({"TableName":"presence","TimeToLiveSpecification":{"AttributeName":"expires","Enabled":true}})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(type_of(r), "com.amazon.coral.service#UnknownOperationException");
  EXPECT_EQ(message_of(r), "");  // no message at all
  r = call("DescribeTimeToLive", R"({"TableName":"presence"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, R"({"TimeToLiveDescription":{"TimeToLiveStatus":"DISABLED"}})");
  r = call("DescribeTimeToLive", R"({"TableName":"missing"})");
  EXPECT_EQ(type_of(r), "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException");
}

TEST_F(DynaliteSupport, WantsSignedLookingRequestsButChecksNoSignature) {
  const std::vector<std::string> base = {"X-Amz-Target: DynamoDB_20120810.ListTables"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> h = base;
    h.insert(h.end(), extra.begin(), extra.end());
    return HttpClient::tcp(dynalite.port()).request("POST", "/", h, "{}");
  };
  auto r = with({});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(type_of(r), "com.amazon.coral.service#MissingAuthenticationTokenException");
  // No X-Amz-Date nor Date.
  r = with({"Authorization: AWS4-HMAC-SHA256 Credential=a, SignedHeaders=b, Signature=c"});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(type_of(r), "com.amazon.coral.service#IncompleteSignatureException");
  // Any values at all once the parts are there.
  r = with({"Authorization: AWS4-HMAC-SHA256 Credential=a, SignedHeaders=b, Signature=c",
            "Date: whenever"});
  EXPECT_EQ(r.status, 200) << r.body;
  // An unknown target.
  r = dynamo_request(dynalite.port(), "NoSuchOperation", "{}");
  EXPECT_EQ(type_of(r), "com.amazon.coral.service#UnknownOperationException");
}

// DynamoDB allows 25 write requests per BatchWriteItem in all, 100 keys per BatchGetItem.
// dynalite checks 25 per table only, 100 keys per table and in all.
TEST_F(DynaliteSupport, EnforcesTheBatchLimitsPerTable) {
  ASSERT_EQ(create("presence").status, 200);
  ASSERT_EQ(create("other").status, 200);

  auto r = call("BatchWriteItem", R"({"RequestItems":{"presence":)" + put_requests("w", 25) + "}}");
  EXPECT_EQ(r.status, 200) << r.body;
  r = call("BatchWriteItem", R"({"RequestItems":{"presence":)" + put_requests("w", 26) + "}}");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(type_of(r), "com.amazon.coral.validate#ValidationException");
  EXPECT_NE(message_of(r).find("Member must have length less than or equal to 25"),
            std::string::npos)
      << message_of(r);
  // 13 + 13 = 26 over two tables: accepted (DynamoDB would refuse it).
  r = call("BatchWriteItem", R"({"RequestItems":{"presence":)" + put_requests("x", 13) +
                                 R"(,"other":)" + put_requests("x", 13) + "}}");
  EXPECT_EQ(r.status, 200) << r.body;

  r = call("BatchWriteItem", R"({"RequestItems":{"presence":[{"PutRequest":{"Item":)" +
                                 item("d", 1) + R"(}},{"PutRequest":{"Item":)" + item("d", 2) +
                                 "}}]}}");
  EXPECT_EQ(type_of(r), "com.amazon.coral.validate#ValidationException");
  EXPECT_EQ(message_of(r), "Provided list of item keys contains duplicates");

  r = call("BatchGetItem", R"({"RequestItems":{"presence":{"Keys":)" + keys("w", 100) + "}}}");
  EXPECT_EQ(r.status, 200) << r.body;
  r = call("BatchGetItem", R"({"RequestItems":{"presence":{"Keys":)" + keys("w", 101) + "}}}");
  EXPECT_EQ(type_of(r), "com.amazon.coral.validate#ValidationException");
  EXPECT_NE(message_of(r).find("Member must have length less than or equal to 100"),
            std::string::npos)
      << message_of(r);
  r = call("BatchGetItem", R"({"RequestItems":{"presence":{"Keys":)" + keys("w", 51) +
                               R"(},"other":{"Keys":)" + keys("x", 50) + "}}}");
  EXPECT_EQ(type_of(r), "com.amazon.coral.validate#ValidationException");
  EXPECT_EQ(message_of(r), "Too many items requested for the BatchGetItem call");
}

TEST_F(DynaliteSupport, StopsAndStartsAgainEmptyOnTheSamePort) {
  ASSERT_EQ(create("presence").status, 200);
  const auto port = dynalite.port();
  dynalite.stop();
  EXPECT_FALSE(dynalite.running());
  const auto r = call("ListTables", "{}");
  EXPECT_EQ(r.status, 0);
  EXPECT_FALSE(r.error.empty());

  ASSERT_TRUE(dynalite.start()) << dynalite.log();
  EXPECT_EQ(dynalite.port(), port);
  EXPECT_EQ(call("ListTables", "{}").body, R"({"TableNames":[]})");
  EXPECT_EQ(create("presence").status, 200);
}

class DynaliteFaultProxy : public DynaliteSupport {
 protected:
  void SetUp() override {
    DynaliteSupport::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_EQ(DynamoFaultProxy::problem(), "");
    ASSERT_TRUE(proxy.start()) << proxy.log();
    ASSERT_EQ(create("presence").status, 200);
  }
  HttpResult via_proxy(const std::string& operation, const std::string& body) {
    return dynamo_request(proxy.port(), operation, body);
  }
  FaultProxyStats stats() {
    auto s = proxy.stats();
    EXPECT_TRUE(s.has_value());
    return s.value_or(FaultProxyStats{});
  }
  DynamoFaultProxy proxy{dynalite.port()};
};

TEST_F(DynaliteFaultProxy, PassesCallsThroughOnOneConnection) {
  EXPECT_EQ(proxy.endpoint(), "http://127.0.0.1:" + std::to_string(proxy.port()));
  // Keep-alive on the client's side: several calls on one connection.
  auto client = HttpClient::tcp(proxy.port());
  const std::vector<std::string> put = {
      "X-Amz-Target: DynamoDB_20120810.PutItem", "X-Amz-Date: 20260101T000000Z",
      "Authorization: AWS4-HMAC-SHA256 Credential=a, SignedHeaders=host, Signature=0"};
  for (int i = 0; i < 3; ++i) {
    const auto r = client.request(
        "POST", "/", put, R"({"TableName":"presence","Item":)" + item("p" + std::to_string(i), i) + "}");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_FALSE(r.closed);
    EXPECT_FALSE(r.header("x-amz-crc32").empty());
  }
  const auto r = via_proxy("GetItem", get_item("presence", "p2"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(parse(r).at("Item").at("v").at("N").as_string(), "2");
  // dynalite's own errors come through as they are.
  EXPECT_EQ(type_of(via_proxy("UpdateTimeToLive", R"({"TableName":"presence"})")),
            "com.amazon.coral.service#UnknownOperationException");

  const auto s = stats();
  EXPECT_EQ(s.operation("PutItem"), 3);
  EXPECT_EQ(s.operation("GetItem"), 1);
  EXPECT_EQ(s.operation("UpdateTimeToLive"), 1);
  EXPECT_EQ(s.total_requests, 5);
  EXPECT_EQ(s.items_written, 3);
  EXPECT_EQ(s.items_read, 1);
  EXPECT_EQ(s.throttled + s.failed_500 + s.failed_503 + s.unprocessed + s.delayed, 0);
}

TEST_F(DynaliteFaultProxy, ThrottlesTheNextRequests) {
  ASSERT_TRUE(proxy.throttle(2));
  const std::string put = R"({"TableName":"presence","Item":)" + item("t", 1) + "}";
  for (int i = 0; i < 2; ++i) {
    const auto r = via_proxy("PutItem", put);
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(type_of(r), "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException");
    EXPECT_FALSE(message_of(r).empty());
    EXPECT_EQ(r.header("content-type"), "application/x-amz-json-1.0");
  }
  // Throttled requests never reached the table.
  EXPECT_EQ(call("GetItem", get_item("presence", "t")).body, "{}");
  EXPECT_EQ(via_proxy("PutItem", put).status, 200);
  EXPECT_EQ(call("GetItem", get_item("presence", "t")).status, 200);
  EXPECT_NE(call("GetItem", get_item("presence", "t")).body, "{}");
  const auto s = stats();
  EXPECT_EQ(s.throttled, 2);
  EXPECT_EQ(s.operation("PutItem"), 3);
  EXPECT_EQ(s.items_written, 1);
}

TEST_F(DynaliteFaultProxy, FailsWithServerErrors) {
  ASSERT_TRUE(proxy.fail(500, 1));
  auto r = via_proxy("ListTables", "{}");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(type_of(r), "com.amazonaws.dynamodb.v20120810#InternalServerError");
  ASSERT_TRUE(proxy.fail(503, 2));
  for (int i = 0; i < 2; ++i) {
    r = via_proxy("ListTables", "{}");
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(type_of(r), "com.amazonaws.dynamodb.v20120810#ServiceUnavailableException");
  }
  EXPECT_EQ(via_proxy("ListTables", "{}").status, 200);

  // reset() drops what is still pending.
  ASSERT_TRUE(proxy.fail(500, 5));
  ASSERT_TRUE(proxy.throttle(5));
  ASSERT_TRUE(proxy.reset());
  EXPECT_EQ(via_proxy("ListTables", "{}").status, 200);
  const auto s = stats();
  EXPECT_EQ(s.failed_500, 1);
  EXPECT_EQ(s.failed_503, 2);
  EXPECT_EQ(s.throttled, 0);
  EXPECT_EQ(s.operation("ListTables"), 5);

  ASSERT_TRUE(proxy.reset_stats());
  EXPECT_EQ(stats().total_requests, 0);
  EXPECT_TRUE(stats().requests.empty());
}

TEST_F(DynaliteFaultProxy, SplitsBatchWrites) {
  ASSERT_TRUE(proxy.unprocessed(1));
  // 5 over two tables, in order: presence b0 b1 b2, other c0 c1. The first 2 go through.
  ASSERT_EQ(create("other").status, 200);
  auto r = via_proxy("BatchWriteItem", R"({"RequestItems":{"presence":)" + put_requests("b", 3) +
                                           R"(,"other":[{"PutRequest":{"Item":)" + item("c0", 0) +
                                           R"(}},{"DeleteRequest":{"Key":)" + key("c1") + "}}]}}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::serialize(parse(r).at("UnprocessedItems")),
            R"({"presence":[{"PutRequest":{"Item":)" + item("b2", 2) +
                R"(}}],"other":[{"PutRequest":{"Item":)" + item("c0", 0) +
                R"(}},{"DeleteRequest":{"Key":)" + key("c1") + "}}]}");
  // The CRC covers the body as changed.
  EXPECT_FALSE(r.header("x-amz-crc32").empty());
  EXPECT_NE(call("GetItem", get_item("presence", "b0")).body, "{}");
  EXPECT_NE(call("GetItem", get_item("presence", "b1")).body, "{}");
  EXPECT_EQ(call("GetItem", get_item("presence", "b2")).body, "{}");
  EXPECT_EQ(call("GetItem", get_item("other", "c0")).body, "{}");

  // Retrying the unprocessed rest (the next batch is not split) writes it.
  r = via_proxy("BatchWriteItem",
                R"({"RequestItems":)" + json::serialize(parse(r).at("UnprocessedItems")) + "}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::serialize(parse(r).at("UnprocessedItems")), "{}");
  EXPECT_NE(call("GetItem", get_item("presence", "b2")).body, "{}");
  EXPECT_NE(call("GetItem", get_item("other", "c0")).body, "{}");

  // A single request cannot be halved: it all comes back, nothing reaches the table.
  ASSERT_TRUE(proxy.unprocessed(1));
  r = via_proxy("BatchWriteItem", R"({"RequestItems":{"presence":)" + put_requests("s", 1) + "}}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(parse(r).at("UnprocessedItems").at("presence").as_array().size(), 1u);
  EXPECT_EQ(call("GetItem", get_item("presence", "s0")).body, "{}");

  const auto s = stats();
  EXPECT_EQ(s.unprocessed, 2);
  EXPECT_EQ(s.operation("BatchWriteItem"), 3);
  EXPECT_EQ(s.items_written, 2 + 2);  // b0 b1, then b2 c0
  EXPECT_EQ(s.items_deleted, 1);      // c1
}

TEST_F(DynaliteFaultProxy, SplitsBatchGets) {
  ASSERT_EQ(call("BatchWriteItem", R"({"RequestItems":{"presence":)" + put_requests("g", 4) + "}}")
                .status,
            200);
  ASSERT_TRUE(proxy.unprocessed(1));
  auto r = via_proxy("BatchGetItem",
                     R"({"RequestItems":{"presence":{"Keys":)" + keys("g", 4) +
                         R"(,"ConsistentRead":true,"ProjectionExpression":"pk"}}})");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto got = parse(r);
  const auto& items = got.at("Responses").at("presence").as_array();
  ASSERT_EQ(items.size(), 2u);
  EXPECT_FALSE(items[0].as_object().contains("v"));  // the projection went along
  // The held-back keys keep their table's other fields.
  EXPECT_EQ(json::serialize(got.at("UnprocessedKeys")),
            R"({"presence":{"Keys":[)" + key("g2") + "," + key("g3") +
                R"(],"ConsistentRead":true,"ProjectionExpression":"pk"}})");

  r = via_proxy("BatchGetItem",
                R"({"RequestItems":)" + json::serialize(got.at("UnprocessedKeys")) + "}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(parse(r).at("Responses").at("presence").as_array().size(), 2u);
  EXPECT_EQ(json::serialize(parse(r).at("UnprocessedKeys")), "{}");

  const auto s = stats();
  EXPECT_EQ(s.unprocessed, 1);
  EXPECT_EQ(s.items_read, 4);
  EXPECT_EQ(s.operation("BatchGetItem"), 2);
}

TEST_F(DynaliteFaultProxy, DelaysTheNextRequests) {
  ASSERT_TRUE(proxy.delay(400ms, 1));
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(via_proxy("ListTables", "{}").status, 200);
  EXPECT_GE(std::chrono::steady_clock::now() - started, 400ms);
  // Only the next one; and a delay comes before a throttle.
  ASSERT_TRUE(proxy.delay(300ms, 1));
  ASSERT_TRUE(proxy.throttle(1));
  started = std::chrono::steady_clock::now();
  EXPECT_EQ(via_proxy("ListTables", "{}").status, 400);
  EXPECT_GE(std::chrono::steady_clock::now() - started, 300ms);
  const auto s = stats();
  EXPECT_EQ(s.delayed, 2);
  EXPECT_EQ(s.throttled, 1);
}

TEST_F(DynaliteFaultProxy, DropsTheConnectionWhenDynaliteIsGone) {
  dynalite.stop();
  const auto r = via_proxy("ListTables", "{}");
  EXPECT_EQ(r.status, 0);
  ASSERT_TRUE(dynalite.start()) << dynalite.log();
  // The proxy's pooled upstream connections died with dynalite; new ones are made.
  EXPECT_TRUE(eventually([&] { return via_proxy("ListTables", "{}").status == 200; }, 5s));
}

TEST_F(DynaliteFaultProxy, RefusesMalformedControl) {
  EXPECT_EQ(http_tcp(proxy.port(), "POST", "/__fault", "not json").status, 400);
  EXPECT_EQ(http_tcp(proxy.port(), "POST", "/__fault", R"({"status":404,"count":1})").status, 400);
  EXPECT_EQ(http_tcp(proxy.port(), "POST", "/__fault", R"({"status":500})").status, 400);
  EXPECT_EQ(via_proxy("ListTables", "{}").status, 200);
}

}  // namespace
}  // namespace heartbeatd::test
