// POST /v1/reload's route on its own: what it refuses before a reload runs (a body, a query),
// and the answer for each outcome (docs/API.md, "POST /v1/reload"). The daemon's side, a real
// reload of a real file, is tests/reload_test.cpp.
#include "transport/api/reload_routes.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

namespace heartbeatd::transport {
namespace {

class ReloadRouteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    add_reload_route(router, [this](std::function<void(ReloadOutcome)> done) {
      ++runs;
      done(next);
    });
  }
  Response post(const std::string& target, const std::string& body = "") {
    Request r{http::verb::post, target, 11};
    r.body() = body;
    r.prepare_payload();
    return router.route(r);
  }
  Router router;
  ReloadOutcome next;
  int runs = 0;
};

TEST_F(ReloadRouteTest, AppliedAndUnchangedAnswer200WithBothLists) {
  next.result = ReloadOutcome::Result::applied;
  next.applied = {"log.level: info -> debug", "cluster.key_file: keys none -> 6d2f0e9a41c3b8d7"};
  next.needs_restart = {"api.http: 127.0.0.1:7700 -> 127.0.0.1:7800"};
  auto r = post("/v1/reload");
  EXPECT_EQ(r.result(), http::status::ok);
  EXPECT_EQ(r[http::field::content_type], "application/json");
  EXPECT_EQ(r.body(),
            R"({"result":"applied","applied":["log.level: info -> debug",)"
            R"("cluster.key_file: keys none -> 6d2f0e9a41c3b8d7"],)"
            R"("needs_restart":["api.http: 127.0.0.1:7700 -> 127.0.0.1:7800"]})");

  next = {};
  r = post("/v1/reload");
  EXPECT_EQ(r.result(), http::status::ok);
  EXPECT_EQ(r.body(), R"({"result":"unchanged","applied":[],"needs_restart":[]})");
  EXPECT_EQ(runs, 2);
}

TEST_F(ReloadRouteTest, RejectedIs422InTheErrorShapeWithTheResult) {
  next.result = ReloadOutcome::Result::rejected;
  next.error = "/etc/heartbeatd/heartbeatd.yaml:3: api.threads: expected an integer";
  const auto r = post("/v1/reload");
  EXPECT_EQ(r.result(), http::status::unprocessable_entity);
  const auto body = boost::json::parse(r.body()).as_object();
  EXPECT_EQ(body.at("error"), "config_rejected");
  EXPECT_EQ(body.at("message"), next.error.c_str());
  EXPECT_EQ(body.at("result"), "rejected");
  EXPECT_EQ(body.size(), 3u);
}

TEST_F(ReloadRouteTest, NoConfigFileIs409AndStoppingIs503) {
  next.result = ReloadOutcome::Result::no_config_file;
  next.error = "started without --config";
  auto r = post("/v1/reload");
  EXPECT_EQ(r.result(), http::status::conflict);
  EXPECT_EQ(r.body(), R"({"error":"no_config_file","message":"started without --config"})");
  next.result = ReloadOutcome::Result::stopping;
  next.error = "the daemon is stopping";
  r = post("/v1/reload");
  EXPECT_EQ(r.result(), http::status::service_unavailable);
  EXPECT_EQ(r.body(), R"({"error":"stopping","message":"the daemon is stopping"})");
}

// The route re-reads the daemon's own file: a body (a config, say) or a parameter would look
// as if it mattered, so neither is accepted, and nothing is reloaded.
TEST_F(ReloadRouteTest, ABodyOrAQueryIsRefusedBeforeAnyReload) {
  auto r = post("/v1/reload", "api:\n  threads: 2\n");
  EXPECT_EQ(r.result(), http::status::bad_request);
  EXPECT_NE(r.body().find("takes no body"), std::string::npos) << r.body();
  r = post("/v1/reload?dry_run=1");
  EXPECT_EQ(r.result(), http::status::bad_request);
  EXPECT_NE(r.body().find(R"(unknown query parameter \"dry_run\")"), std::string::npos)
      << r.body();
  EXPECT_EQ(runs, 0);
  // An empty query ("?") is no parameter.
  EXPECT_EQ(post("/v1/reload?").result(), http::status::ok);

  Request get{http::verb::get, "/v1/reload", 11};
  const auto wrong = router.route(get);
  EXPECT_EQ(wrong.result(), http::status::method_not_allowed);
  EXPECT_EQ(wrong[http::field::allow], "POST");
}

TEST(ReloadRoute, NeedsTheAdminScope) {
  Router router;
  add_reload_route(router, [](auto done) { done(ReloadOutcome{}); });
  const auto routes = router.routes();
  ASSERT_EQ(routes.size(), 1u);
  EXPECT_EQ(routes[0].pattern, "/v1/reload");
  EXPECT_EQ(routes[0].method, http::verb::post);
  EXPECT_EQ(routes[0].scope, Scope::admin);
}

}  // namespace
}  // namespace heartbeatd::transport
