// The router and the error model: matching, parameters, literal-over-parameter precedence,
// 404, 405 with Allow, and handler exceptions turned into 500s.
#include "transport/api/http_router.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include <optional>

#include "membership/clock.h"
#include "transport/api/api_routes.h"
#include "transport/api/key_routes.h"

namespace heartbeatd::transport {
namespace {

Request make(http::verb method, std::string target) {
  Request r{method, target, 11};
  return r;
}

boost::json::object body_of(const Response& r) {
  return boost::json::parse(r.body()).as_object();
}

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router.add(http::verb::get, "/v1/health", Scope::read, [](const Request&, const RouteMatch&) {
      return json_response(http::status::ok, R"({"status":"ok"})");
    });
    router.add(
        http::verb::get, "/v1/users/{id}", Scope::read, [](const Request&, const RouteMatch& m) {
          return json_response(http::status::ok, "\"user " + std::string(m.param("id")) + "\"");
        });
    router.add(http::verb::delete_, "/v1/users/{id}", Scope::read,
               [](const Request&, const RouteMatch&) { return empty_response(); });
    router.add(http::verb::get, "/v1/users/status", Scope::read,
               [](const Request&, const RouteMatch& m) {
                 return json_response(http::status::ok, "\"status " + std::string(m.query) + "\"");
               });
    router.add(
        http::verb::get, "/v1/boom", Scope::read,
        [](const Request&, const RouteMatch&) -> Response { throw std::runtime_error("kaboom"); });
  }
  Router router;
};

TEST_F(RouterTest, RoutesByMethodAndPath) {
  const Response r = router.route(make(http::verb::get, "/v1/health"));
  EXPECT_EQ(r.result(), http::status::ok);
  EXPECT_EQ(r[http::field::content_type], "application/json");
}

TEST_F(RouterTest, ListsItsRoutesInRegistrationOrderWithTheirScopes) {
  router.add(http::verb::get, "/metrics", Scope::metrics,
             [](const Request&, const RouteMatch&) { return empty_response(); });
  const auto routes = router.routes();
  ASSERT_EQ(routes.size(), 6u);
  EXPECT_EQ(routes[0].method, http::verb::get);
  EXPECT_EQ(routes[0].pattern, "/v1/health");
  EXPECT_EQ(routes[0].scope, Scope::read);
  EXPECT_EQ(routes[2].method, http::verb::delete_);
  EXPECT_EQ(routes[2].pattern, "/v1/users/{id}");
  EXPECT_EQ(routes[5].pattern, "/metrics");
  EXPECT_EQ(routes[5].scope, Scope::metrics);
}

TEST_F(RouterTest, CapturesParameters) {
  EXPECT_EQ(router.route(make(http::verb::get, "/v1/users/42")).body(), "\"user 42\"");
}

TEST_F(RouterTest, LiteralSegmentWinsOverParameter) {
  EXPECT_EQ(router.route(make(http::verb::get, "/v1/users/status?x=1")).body(), "\"status x=1\"");
}

TEST_F(RouterTest, UnknownPathIs404WithErrorBody) {
  const Response r = router.route(make(http::verb::get, "/v2/nothing"));
  EXPECT_EQ(r.result(), http::status::not_found);
  EXPECT_EQ(body_of(r)["error"], "not_found");
  EXPECT_EQ(body_of(r)["message"], "no route for /v2/nothing");
}

TEST_F(RouterTest, EmptyParameterDoesNotMatch) {
  EXPECT_EQ(router.route(make(http::verb::get, "/v1/users/")).result(), http::status::not_found);
}

TEST_F(RouterTest, WrongMethodIs405WithAllow) {
  const Response r = router.route(make(http::verb::post, "/v1/users/7"));
  EXPECT_EQ(r.result(), http::status::method_not_allowed);
  EXPECT_EQ(r[http::field::allow], "GET, DELETE");
  EXPECT_EQ(body_of(r)["error"], "method_not_allowed");
}

TEST_F(RouterTest, HandlerExceptionIs500) {
  const Response r = router.route(make(http::verb::get, "/v1/boom"));
  EXPECT_EQ(r.result(), http::status::internal_server_error);
  EXPECT_EQ(body_of(r)["message"], "kaboom");
}

TEST_F(RouterTest, NonPathTargetIs400) {
  EXPECT_EQ(router.route(make(http::verb::get, "http://x/v1/health")).result(),
            http::status::bad_request);
  EXPECT_EQ(router.route(make(http::verb::get, "*")).result(), http::status::bad_request);
}

TEST(RouterAsync, AnswersThroughTheResponderAndIsCountedWhenItAnswers) {
  Router router;
  Respond held;
  router.add_async(http::verb::get, "/v1/later/{id}", Scope::read,
                   [&held](const Request&, const RouteMatch& m, Respond respond) {
                     if (m.param("id") == "now") {
                       return respond(json_response(http::status::ok, R"("now")"));
                     }
                     if (m.param("id") == "boom") throw std::runtime_error("kaboom");
                     held = std::move(respond);
                   });
  EXPECT_EQ(router.route(make(http::verb::get, "/v1/later/now")).body(), R"("now")");
  const Response boom = router.route(make(http::verb::get, "/v1/later/boom"));
  EXPECT_EQ(boom.result(), http::status::internal_server_error);
  EXPECT_EQ(body_of(boom).at("message"), "kaboom");

  std::optional<Response> got;
  const Routed r = router.dispatch(make(http::verb::get, "/v1/later/x"),
                                   [&got](Response res) { got = std::move(res); });
  EXPECT_TRUE(r.deferred);
  ASSERT_TRUE(held);
  EXPECT_FALSE(got);
  held(error_response(http::status::service_unavailable, "backend_unavailable", "down"));
  held(empty_response());  // a second answer is ignored
  ASSERT_TRUE(got);
  EXPECT_EQ(got->result(), http::status::service_unavailable);

  MetricsWriter w;
  router.write_metrics(w);
  const std::string text = w.text();
  EXPECT_NE(text.find(R"(route="/v1/later/{id}",method="GET",code="503"} 1)"), std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(route="/v1/later/{id}",method="GET",code="200"} 1)"), std::string::npos)
      << text;
}

// The /v1 routes' shapes that real-process tests cannot reach without binding beyond loopback.
TEST(ApiRoutes, HealthListsWarningsAlways) {
  membership::ManualClock clock;
  std::vector<std::string> warnings;
  Router router;
  add_health_routes(router,
                    {"db-3", &clock, clock.now(), nullptr, [&] { return warnings; }, nullptr});
  auto body = body_of(router.route(make(http::verb::get, "/v1/health")));
  EXPECT_TRUE(body.at("warnings").as_array().empty()) << "present, empty";
  warnings = {"cluster is unauthenticated on 0.0.0.0:7701 (cluster.plaintext)"};
  body = body_of(router.route(make(http::verb::get, "/v1/health")));
  ASSERT_EQ(body.at("warnings").as_array().size(), 1u);
  EXPECT_EQ(body.at("warnings").as_array()[0], warnings[0].c_str());
  EXPECT_EQ(body.at("status"), "ok") << "a chosen risk is not a degradation";
}

TEST(KeyRoutes, KeysByFingerprintWithMemberCounts) {
  Router router;
  add_key_routes(router, [] {
    KeyUsage u;
    u.keys = {{"6d2f0e9a41c3b8d7", true, 4}, {"0b44ac19e0f2d3a6", false, 1}};
    u.plaintext_members = 2;
    u.unknown_members = 3;
    u.seal_outgoing = true;
    u.require_sealed = false;
    return u;
  });
  const auto r = router.route(make(http::verb::get, "/v1/keys"));
  EXPECT_EQ(r.result(), http::status::ok);
  EXPECT_EQ(
      r.body(),
      R"({"keys":[{"fingerprint":"6d2f0e9a41c3b8d7","primary":true,"members":4},)"
      R"({"fingerprint":"0b44ac19e0f2d3a6","primary":false,"members":1}],)"
      R"("plaintext_members":2,"unknown_members":3,"seal_outgoing":true,"require_sealed":false})");
}

}  // namespace
}  // namespace heartbeatd::transport
