// The status page's routes (/ui): the embedded files, content types, ETag and 304, the
// security headers, 404 for any other name (path traversal included), and that they need no
// token when api.tokens_file is set while everything else still does, on a real daemon too.
#include "transport/api/ui_routes.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tests/support/daemon_process.h"
#include "tests/support/test_util.h"
#include "transport/api/access.h"

namespace heartbeatd::transport {
namespace {

const UiAsset kAssets[] = {
    {"app.js", "\"sha256-aaaa\"", "console.log(1);\n"},
    {"index.html", "\"sha256-bbbb\"", "<!doctype html><title>t</title>"},
    {"style.css", "\"sha256-cccc\"", "body{}"},
    {"logo.svg", "\"sha256-dddd\"", "<svg/>"},
    {"data.bin", "\"sha256-eeee\"", std::string_view("\0\1", 2)},
};

Request get(std::string target, std::vector<std::pair<http::field, std::string>> headers = {}) {
  Request r{http::verb::get, target, 11};
  for (const auto& [f, v] : headers) r.set(f, v);
  return r;
}

class UiRoutes : public ::testing::Test {
 protected:
  void SetUp() override { add_ui_routes(router, kAssets); }
  Router router;
};

TEST_F(UiRoutes, ServesIndexAtUiAndUiSlashAndEachFileWithItsType) {
  for (const char* target : {"/ui", "/ui/", "/ui/index.html", "/ui?x=1"}) {
    SCOPED_TRACE(target);
    const Response r = router.route(get(target));
    EXPECT_EQ(r.result(), http::status::ok);
    EXPECT_EQ(r.body(), "<!doctype html><title>t</title>");
    EXPECT_EQ(r[http::field::content_type], "text/html; charset=utf-8");
    EXPECT_EQ(r[http::field::etag], "\"sha256-bbbb\"");
  }
  const std::vector<std::pair<std::string, std::string>> types = {
      {"/ui/app.js", "text/javascript; charset=utf-8"},
      {"/ui/style.css", "text/css; charset=utf-8"},
      {"/ui/logo.svg", "image/svg+xml"},
      {"/ui/data.bin", "application/octet-stream"},
  };
  for (const auto& [target, type] : types) {
    SCOPED_TRACE(target);
    const Response r = router.route(get(target));
    EXPECT_EQ(r.result(), http::status::ok);
    EXPECT_EQ(r[http::field::content_type], type);
  }
  EXPECT_EQ(router.route(get("/ui/data.bin")).body(), std::string("\0\1", 2));
}

TEST_F(UiRoutes, EveryAnswerCarriesCacheAndSecurityHeaders) {
  for (const char* target : {"/ui", "/ui/app.js", "/ui/style.css"}) {
    SCOPED_TRACE(target);
    const Response r = router.route(get(target));
    EXPECT_EQ(r[http::field::cache_control], "no-cache");
    EXPECT_EQ(r["X-Content-Type-Options"], "nosniff");
    const std::string csp(r["Content-Security-Policy"]);
    EXPECT_TRUE(csp.starts_with("default-src 'self'")) << csp;
    EXPECT_EQ(csp.find("unsafe"), std::string::npos) << csp;
    EXPECT_EQ(r[http::field::x_frame_options], "DENY");
    EXPECT_EQ(r["Referrer-Policy"], "no-referrer");
  }
}

TEST_F(UiRoutes, IfNoneMatchWithTheETagIsABodiless304) {
  for (const std::string inm : {"\"sha256-aaaa\"", "W/\"sha256-aaaa\"", "\"x\", \"sha256-aaaa\"",
                                "*", " \"sha256-aaaa\" "}) {
    SCOPED_TRACE(inm);
    const Response r = router.route(get("/ui/app.js", {{http::field::if_none_match, inm}}));
    EXPECT_EQ(r.result(), http::status::not_modified);
    EXPECT_TRUE(r.body().empty());
    EXPECT_EQ(r[http::field::etag], "\"sha256-aaaa\"");
    EXPECT_EQ(r[http::field::cache_control], "no-cache");
  }
  for (const std::string inm : {"\"sha256-bbbb\"", "\"sha256-aaa\"", "sha256-aaaa", "\"\"", ""}) {
    SCOPED_TRACE(inm);
    const Response r = router.route(get("/ui/app.js", {{http::field::if_none_match, inm}}));
    EXPECT_EQ(r.result(), http::status::ok);
    EXPECT_EQ(r.body(), "console.log(1);\n");
  }
}

TEST(UiIfNoneMatch, ComparesEntityTagsWeaklyInAList) {
  EXPECT_TRUE(if_none_match("\"a\"", "\"a\""));
  EXPECT_TRUE(if_none_match("W/\"a\"", "\"a\""));
  EXPECT_TRUE(if_none_match("\"b\",\"a\"", "\"a\""));
  EXPECT_TRUE(if_none_match("\"b,c\", \"a\"", "\"a\""))
      << "a comma inside quotes separates nothing";
  EXPECT_FALSE(if_none_match("\"b,\"a\"", "\"a\""));
  EXPECT_FALSE(if_none_match("\"ab\"", "\"a\""));
  EXPECT_FALSE(if_none_match(",,", "\"a\""));
}

TEST_F(UiRoutes, AnyOtherNameIs404AndNothingOutsideThePageCanBeNamed) {
  router.add(http::verb::get, "/metrics", Scope::metrics, [](const Request&, const RouteMatch&) {
    return json_response(http::status::ok, "\"secret\"");
  });
  for (const char* target :
       {"/ui/nothing.js", "/ui/..", "/ui/.", "/ui/%2e%2e", "/ui/%2e%2e%2fmetrics", "/ui/../metrics",
        "/ui/./index.html", "/ui//index.html", "/ui/index.html/", "/ui/INDEX.HTML",
        "/ui/..%2fmetrics", "/ui/app.js%00", "/ui%2f..%2fmetrics"}) {
    SCOPED_TRACE(target);
    const Response r = router.route(get(target));
    EXPECT_EQ(r.result(), http::status::not_found);
    EXPECT_EQ(r.body().find("secret"), std::string::npos);
  }
}

TEST_F(UiRoutes, OnlyGetIsAllowed) {
  for (const auto verb : {http::verb::head, http::verb::post, http::verb::delete_}) {
    Request r{verb, "/ui/app.js", 11};
    const Response res = router.route(r);
    EXPECT_EQ(res.result(), http::status::method_not_allowed);
    EXPECT_EQ(res[http::field::allow], "GET");
  }
}

TEST_F(UiRoutes, PublicWhenTokensAreRequiredWhileOtherPathsStay401) {
  router.add(http::verb::get, "/v1/health", Scope::read, [](const Request&, const RouteMatch&) {
    return json_response(http::status::ok, "{}");
  });
  const auto tokens = std::get<std::vector<TokenEntry>>(
      parse_tokens("reader read reader-secret-0123456789", "tokens"));
  router.set_access(std::make_shared<const AccessPolicy>(AccessPolicy::Options{tokens, {}, 0}));
  Caller tcp;
  tcp.via = Caller::Via::tcp;
  tcp.address = "127.0.0.1";
  EXPECT_EQ(router.route(get("/ui"), tcp).result(), http::status::ok);
  EXPECT_EQ(router.route(get("/ui/app.js"), tcp).result(), http::status::ok);
  EXPECT_EQ(router.route(get("/ui/nothing.js"), tcp).result(), http::status::not_found)
      << "a public pattern's own 404 reveals only that the page has no such file";
  EXPECT_EQ(router.route(get("/ui/../v1/health"), tcp).result(), http::status::unauthorized);
  EXPECT_EQ(router.route(get("/v1/health"), tcp).result(), http::status::unauthorized);
  EXPECT_EQ(router
                .route(get("/v1/health",
                           {{http::field::authorization, "Bearer reader-secret-0123456789"}}),
                       tcp)
                .result(),
            http::status::ok);
}

TEST(UiEmbedded, TheBuildEmbeddedThePageWithContentHashETags) {
  const auto assets = embedded_ui_assets();
  std::vector<std::string> names;
  for (const auto& a : assets) {
    names.emplace_back(a.name);
    EXPECT_FALSE(a.body.empty()) << a.name;
    EXPECT_TRUE(a.etag.starts_with("\"sha256-") && a.etag.ends_with("\"")) << a.etag;
    EXPECT_EQ(a.etag.size(), std::string_view("\"sha256-\"").size() + 32) << a.etag;
  }
  for (const char* want : {"index.html", "app.js", "style.css"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
  }
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  // Same bytes as the source tree: the build embeds what is checked in.
  for (const auto& a : assets) {
    const std::string on_disk =
        test::read_file(std::string(HEARTBEATD_SOURCE_DIR) + "/ui/" + std::string(a.name));
    EXPECT_EQ(on_disk, a.body) << a.name << " is stale: rebuild";
  }
  // The page references its files by absolute path (it is served at /ui, without a slash,
  // too) and runs no inline script, which the Content-Security-Policy would block.
  const auto index = std::find_if(assets.begin(), assets.end(),
                                  [](const UiAsset& a) { return a.name == "index.html"; });
  ASSERT_NE(index, assets.end());
  const std::string html(index->body);
  EXPECT_NE(html.find("src=\"/ui/app.js\""), std::string::npos);
  EXPECT_NE(html.find("href=\"/ui/style.css\""), std::string::npos);
  EXPECT_EQ(html.find("<script>"), std::string::npos);
  EXPECT_EQ(html.find("style=\""), std::string::npos);
  EXPECT_EQ(html.find("http://"), std::string::npos) << "no external requests";
  EXPECT_EQ(html.find("https://"), std::string::npos) << "no external requests";
}

}  // namespace
}  // namespace heartbeatd::transport

namespace heartbeatd::test {
namespace {

using namespace std::chrono_literals;

// Through the real server: its parser, the token check, and the connection kept alive.
TEST(UiDaemon, ThePageIsPublicWithTokensWhileTheApiAndUnknownPathsAre401) {
  TempDir secrets;
  secrets.write("tokens", "reader read reader-secret-0123456789\n");
  chmod(secrets.file("tokens").c_str(), 0600);
  DaemonProcess d({{"api.tokens_file", secrets.file("tokens")}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  auto c = d.tcp_client();
  auto r = c.request("GET", "/ui");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(r.body.find("/ui/app.js"), std::string::npos);
  const std::string etag = r.header("etag");
  EXPECT_FALSE(etag.empty());
  EXPECT_FALSE(r.closed);
  r = c.request("GET", "/ui/", std::vector<std::string>{"If-None-Match: " + etag});
  EXPECT_EQ(r.status, 304);
  EXPECT_TRUE(r.body.empty());
  EXPECT_FALSE(r.closed) << "a 304 keeps the connection usable";
  r = c.request("GET", "/ui/app.js");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(r.header("x-content-type-options"), "nosniff");
  r = c.request("GET", "/ui/style.css");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "text/css; charset=utf-8");

  for (const char* target : {"/ui/../metrics", "/ui/%2e%2e/metrics", "/ui/../v1/members",
                             "/v1/members", "/metrics", "/nowhere"}) {
    SCOPED_TRACE(target);
    r = http_tcp(d.port(), "GET", target);
    EXPECT_EQ(r.status, 401) << r.body;
  }
  for (const char* target : {"/ui/%2e%2e", "/ui/..", "/ui/..%2fmetrics", "/ui/nothing.js"}) {
    SCOPED_TRACE(target);
    r = http_tcp(d.port(), "GET", target);
    EXPECT_EQ(r.status, 404) << r.body;
  }
  EXPECT_EQ(http_tcp_token(d.port(), "reader-secret-0123456789", "GET", "/v1/members").status, 200);
}

}  // namespace
}  // namespace heartbeatd::test
