// API access control with real daemons (issue 15): tokens and scopes on every route, the Unix
// socket's scopes by SO_PEERCRED, tokens added and revoked by SIGHUP under an open keep-alive
// connection, a tokens file others can read, the rate limit, and hostile Authorization
// headers. Tests run as root: the daemon's own uid is 0, so uid:0 entries are explicit.
#include <sys/stat.h>

#include <csignal>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/daemon_process.h"
#include "tests/support/test_util.h"

namespace heartbeatd::test {
namespace {

using namespace std::chrono_literals;

const std::string kRead = "read-token-0123456789abcdef";
const std::string kWrite = "write-token-0123456789abcdef";
const std::string kAdmin = "admin-token-0123456789abcdef";
const std::string kMetrics = "metrics-token-0123456789abcdef";
const std::string kLater = "later-token-0123456789abcdef";

std::string tokens_text() {
  return "# test tokens\n"
         "reader read " +
         kRead +
         "\n"
         "writer write " +
         kWrite +
         "\n"
         "operator admin " +
         kAdmin +
         "\n"
         "prometheus metrics " +
         kMetrics + "\n";
}

// A tokens file the daemon accepts (0600).
std::string write_tokens(const TempDir& dir, const std::string& text, mode_t mode = 0600) {
  dir.write("tokens", text);
  const std::string path = dir.file("tokens");
  chmod(path.c_str(), mode);
  return path;
}

std::vector<std::string> bearer(const std::string& token) {
  return {"Authorization: Bearer " + token};
}

// A sample of /metrics, read over the Unix socket (root: every scope).
double refused(const DaemonProcess& d, const std::string& reason) {
  const auto r = http_unix(d.socket_path(), "GET", "/metrics");
  const std::string needle = "\nheartbeatd_api_refused_total{reason=\"" + reason + "\"} ";
  const auto at = r.body.find(needle);
  return at == std::string::npos ? -1 : std::stod(r.body.substr(at + needle.size()));
}

struct RouteCase {
  std::string method, target, body;
  std::string scope;
};

// Every route of the API with the scope it needs. /v1/events with a bad query answers 400
// from its handler: past the scope check, without holding a stream open.
const std::vector<RouteCase>& routes() {
  static const std::vector<RouteCase> r = {
      {"GET", "/v1/health", "", "read"},
      {"GET", "/v1/members", "", "read"},
      {"GET", "/v1/members/nobody", "", "read"},
      {"GET", "/v1/users/42", "", "read"},
      {"POST", "/v1/users/status", "[42]", "read"},
      {"GET", "/v1/users", "", "read"},
      {"GET", "/v1/events?users=x", "", "read"},
      {"POST", "/v1/users/42/heartbeat", "", "write"},
      {"POST", "/v1/users/heartbeat", "[1,2]", "write"},
      {"DELETE", "/v1/users/42", "", "write"},
      {"GET", "/v1/keys", "", "admin"},
      {"POST", "/v1/reload", "", "admin"},
      {"POST", "/v1/join", R"({"addresses":[]})", "admin"},
      {"POST", "/v1/members/nobody/leave", "", "admin"},
      {"GET", "/metrics", "", "metrics"},
  };
  return r;
}

const std::string& token_for(const std::string& scope) {
  return scope == "read" ? kRead : scope == "write" ? kWrite : scope == "admin" ? kAdmin : kMetrics;
}
const std::string& token_without(const std::string& scope) {
  return scope == "read" ? kMetrics : kRead;
}

TEST(ApiAuth, EveryRouteNeedsAKnownTokenWithItsScope) {
  TempDir secrets;
  DaemonProcess d({{"api.tokens_file", write_tokens(secrets, tokens_text())}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  for (const auto& rc : routes()) {
    SCOPED_TRACE(rc.method + " " + rc.target);
    auto c = d.tcp_client();  // one keep-alive connection through all four
    auto r = c.request(rc.method, rc.target, std::vector<std::string>{}, rc.body);
    EXPECT_EQ(r.status, 401) << r.body;
    EXPECT_EQ(r.header("www-authenticate"), "Bearer realm=\"heartbeatd\"");
    EXPECT_NE(r.body.find("\"error\":\"unauthenticated\""), std::string::npos) << r.body;
    EXPECT_FALSE(r.closed);

    r = c.request(rc.method, rc.target, bearer("unknown-token-0123456789abcdef"), rc.body);
    EXPECT_EQ(r.status, 401) << r.body;
    EXPECT_NE(r.body.find("\"error\":\"unauthenticated\""), std::string::npos) << r.body;

    r = c.request(rc.method, rc.target, bearer(token_without(rc.scope)), rc.body);
    EXPECT_EQ(r.status, 403) << r.body;
    EXPECT_NE(r.body.find("\"error\":\"forbidden\""), std::string::npos) << r.body;
    for (const char* name : {"reader", "writer", "operator", "prometheus"}) {
      EXPECT_EQ(r.body.find(name), std::string::npos) << r.body;
    }

    r = c.request(rc.method, rc.target, bearer(token_for(rc.scope)), rc.body);
    EXPECT_NE(r.status, 401) << r.body;
    EXPECT_NE(r.status, 403) << r.body;
    EXPECT_LT(r.status, 500) << r.body;
  }
  EXPECT_EQ(refused(d, "unauthenticated"), 2.0 * routes().size());
  EXPECT_EQ(refused(d, "forbidden"), 1.0 * routes().size());
  // Logged, without the token.
  EXPECT_TRUE(d.wait_log("(unauthenticated): no Authorization header"));
  EXPECT_TRUE(d.wait_log("token prometheus lacks the read scope for GET /v1/health"));
  EXPECT_EQ(d.log().find(kRead), std::string::npos);
  EXPECT_EQ(d.log().find("unknown-token-0123456789abcdef"), std::string::npos);
}

TEST(ApiAuth, WithoutATokensFileTcpKeepsEveryScope) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.failure_reason();
  EXPECT_EQ(http_tcp(d.port(), "POST", "/v1/users/7/heartbeat").status, 204);
  EXPECT_EQ(http_tcp(d.port(), "GET", "/v1/keys").status, 200);
}

TEST(ApiAuth, AReadOnlyUidOnTheSocketCannotWriteButItsTokenCan) {
  TempDir secrets;
  DaemonProcess d({{"api.tokens_file", write_tokens(secrets, tokens_text())},
                   {"api.unix_scopes", "{\"uid:0\": [read]}"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  // No token needed on the socket; uid 0 has read only, explicitly.
  EXPECT_EQ(http_unix(d.socket_path(), "GET", "/v1/users/42").status, 200);
  auto r = http_unix(d.socket_path(), "POST", "/v1/users/42/heartbeat");
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(http_unix(d.socket_path(), "GET", "/metrics").status, 403);
  // A token on the socket is judged instead of the credentials, a bad one refused.
  auto c = d.unix_client();
  EXPECT_EQ(c.request("POST", "/v1/users/42/heartbeat", bearer(kWrite)).status, 204);
  EXPECT_EQ(c.request("POST", "/v1/users/42/heartbeat", bearer("nope-nope-nope-nope-nope")).status,
            401);

  // A group entry does not restrict the daemon's own user (root here) once uid:0 is gone.
  d.write_config({{"api.tokens_file", secrets.file("tokens")},
                  {"api.unix_scopes", "{\"gid:0\": [read], \"others\": []}"}});
  d.signal(SIGHUP);
  ASSERT_TRUE(d.wait_log("SIGHUP: api.unix_scopes: others -> []"));
  EXPECT_EQ(http_unix(d.socket_path(), "POST", "/v1/users/42/heartbeat").status, 204);
}

TEST(ApiAuth, SighupAddsAndRevokesTokensUnderAnOpenConnection) {
  TempDir secrets;
  const std::string path = write_tokens(secrets, tokens_text());
  DaemonProcess d({{"api.tokens_file", path}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  auto c = d.tcp_client();
  EXPECT_EQ(c.request("GET", "/v1/users", bearer(kRead)).status, 200);
  EXPECT_EQ(c.request("GET", "/v1/users", bearer(kLater)).status, 401);

  write_tokens(secrets, "later read,write " + kLater + "\n");  // reader revoked, later added
  d.signal(SIGHUP);
  EXPECT_TRUE(
      eventually([&] { return c.request("GET", "/v1/users", bearer(kLater)).status == 200; }, 10s));
  auto r = c.request("GET", "/v1/users", bearer(kRead));
  EXPECT_EQ(r.status, 401) << r.error << "\n" << d.log();
  EXPECT_FALSE(r.closed);
  EXPECT_EQ(c.request("POST", "/v1/users/1/heartbeat", bearer(kLater)).status, 204);
  EXPECT_TRUE(d.log().find("SIGHUP: API tokens: 1 from") != std::string::npos) << d.log();
}

TEST(ApiAuth, ABadReloadKeepsTheTokensInForce) {
  TempDir secrets;
  const std::string path = write_tokens(secrets, tokens_text());
  DaemonProcess d({{"api.tokens_file", path}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  write_tokens(secrets, "later read " + kLater + "\n", 0644);  // others may read it
  d.signal(SIGHUP);
  // Refused while the config is loaded (the same check as at start): nothing changes.
  ASSERT_TRUE(d.wait_log("api.tokens_file " + path +
                         ": readable or writable by others (mode 0644)"));
  EXPECT_NE(d.log().find("SIGHUP: new config rejected"), std::string::npos) << d.log();
  EXPECT_EQ(http_tcp_token(d.port(), kRead, "GET", "/v1/users").status, 200);
  EXPECT_EQ(http_tcp_token(d.port(), kLater, "GET", "/v1/users").status, 401);

  write_tokens(secrets, "reader read " + kRead + "\nbroken line\n");
  d.signal(SIGHUP);
  ASSERT_TRUE(d.wait_log(path + ":2: expected NAME SCOPE[,SCOPE...] SECRET, got 2 fields"));
  EXPECT_EQ(http_tcp_token(d.port(), kWrite, "POST", "/v1/users/1/heartbeat").status, 204);
}

TEST(ApiAuth, ATokensFileOthersCanReadStopsTheStartWithExit2) {
  TempDir secrets;
  const std::string path = write_tokens(secrets, tokens_text(), 0644);
  DaemonProcess d({{"api.tokens_file", path}});
  EXPECT_FALSE(d.start(5s));
  EXPECT_EQ(d.wait_exit(), 2);
  EXPECT_NE(d.log().find(path + ": readable or writable by others (mode 0644)"), std::string::npos)
      << d.log();
  EXPECT_EQ(d.log().find(kRead), std::string::npos);
}

TEST(ApiAuth, OverTheRateLimitIs429WhileAnotherTokenIsServed) {
  TempDir secrets;
  DaemonProcess d({{"api.tokens_file", write_tokens(secrets, tokens_text())},
                   {"api.rate_limit.requests_per_second", "0.2"},
                   {"api.rate_limit.burst", "3"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  auto c = d.tcp_client();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(c.request("POST", "/v1/users/1/heartbeat", bearer(kWrite)).status, 204) << i;
  }
  const auto r = c.request("POST", "/v1/users/1/heartbeat", bearer(kWrite));
  EXPECT_EQ(r.status, 429) << r.body;
  EXPECT_NE(r.body.find("\"error\":\"rate_limited\""), std::string::npos) << r.body;
  const int retry = std::stoi(r.header("retry-after"));
  EXPECT_GE(retry, 1);
  EXPECT_LE(retry, 5);
  // Another token (and the socket's uid) has its own bucket.
  EXPECT_EQ(http_tcp_token(d.port(), kRead, "GET", "/v1/users/1").status, 200);
  EXPECT_EQ(http_unix(d.socket_path(), "GET", "/v1/users/1").status, 200);
  EXPECT_EQ(refused(d, "rate_limited"), 1);
}

TEST(ApiAuth, HostileAuthorizationHeadersAre401AndTheDaemonKeepsServing) {
  TempDir secrets;
  DaemonProcess d({{"api.tokens_file", write_tokens(secrets, tokens_text())},
                   {"api.max_header_bytes", "4096"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  const std::vector<std::vector<std::string>> bad = {
      {"Authorization:"},
      {"Authorization: "},
      {"Authorization: Bearer"},
      {"Authorization: Bearer "},
      {"Authorization: Bearer  " + kRead},
      {"Authorization: Bearer " + kRead + " extra"},
      {"Authorization: Basic " + kRead},
      {"Authorization: " + kRead},
      {"Authorization: Bearer \xc3\xa9\xff\xfe" + kRead},
      {"Authorization: Bearer " + std::string(3500, 'A')},
      {"Authorization: Bearer " + kRead, "Authorization: Bearer " + kRead},
  };
  auto c = d.tcp_client();
  for (const auto& headers : bad) {
    SCOPED_TRACE(headers[0].substr(0, 40));
    const auto r = c.request("GET", "/v1/health", headers);
    EXPECT_EQ(r.status, 401) << r.body << r.error;
    EXPECT_EQ(r.header("www-authenticate"), "Bearer realm=\"heartbeatd\"");
  }
  // Past api.max_header_bytes: the server's 431, before any token is looked at.
  auto huge = d.tcp_client();
  EXPECT_EQ(huge.request("GET", "/v1/health", bearer(std::string(8000, 'A'))).status, 431);
  EXPECT_EQ(c.request("GET", "/v1/health", bearer(kRead)).status, 200);
  EXPECT_TRUE(d.running());
}

}  // namespace
}  // namespace heartbeatd::test
