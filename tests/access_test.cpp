// The tokens file parser, the access policy (tokens, Unix credentials) and the rate limiter,
// without a daemon: every bad line, the sha256 form, scopes per caller, bucket arithmetic on
// a manual clock, and the Router's checks in front of the handlers.
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/test_util.h"
#include "transport/api/access.h"
#include "transport/api/http_router.h"
#include "transport/api/rate_limiter.h"

namespace heartbeatd::transport {
namespace {

constexpr const char* kSecretA = "alpha-secret-0123456789";
constexpr const char* kSecretB = "bravo-secret-0123456789";

std::string hex(const TokenDigest& d) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : d) out += digits[c >> 4], out += digits[c & 15];
  return out;
}

std::vector<TokenEntry> ok(const TokensResult& r) {
  if (auto* e = std::get_if<TokensError>(&r)) ADD_FAILURE() << e->message;
  return std::holds_alternative<TokensError>(r) ? std::vector<TokenEntry>{}
                                                : std::get<std::vector<TokenEntry>>(r);
}

std::string error_of(const TokensResult& r) {
  auto* e = std::get_if<TokensError>(&r);
  return e ? e->message : "(no error)";
}

TEST(TokensFile, ParsesNamesScopesCommentsAndBlankLines) {
  const auto tokens = ok(parse_tokens(
      std::string("# gateways\n\n  \t\n") + "gw-1 write,read " + kSecretA + "  # the first\r\n" +
          "prom metrics sha256:" + hex(token_digest(kSecretB)) + "\n",
      "tokens"));
  ASSERT_EQ(tokens.size(), 2u);
  EXPECT_EQ(tokens[0].name, "gw-1");
  EXPECT_EQ(tokens[0].scopes, bit(Scope::read) | bit(Scope::write));
  EXPECT_EQ(tokens[0].digest, token_digest(kSecretA));
  EXPECT_EQ(tokens[1].scopes, bit(Scope::metrics));
  EXPECT_EQ(tokens[1].digest, token_digest(kSecretB));
}

TEST(TokensFile, TheSha256FormIsWhatSha256sumPrints) {
  // printf %s alpha-secret-0123456789 | sha256sum
  EXPECT_EQ(hex(token_digest(kSecretA)),
            "e213d1b57762a55c1a4e6fcb30ea9dbaf5351c0f54635ed5e651ad787848b754");
  auto upper = hex(token_digest(kSecretA));
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const auto tokens = ok(parse_tokens("a read sha256:" + upper, "f"));
  ASSERT_EQ(tokens.size(), 1u);
  EXPECT_EQ(tokens[0].digest, token_digest(kSecretA));
}

TEST(TokensFile, EveryBadLineIsNamedByFileAndLineWithoutTheSecret) {
  const std::string s = kSecretA;
  const struct {
    std::string text;
    std::string expected;
  } cases[] = {
      {"onlyname", "f:1: expected NAME SCOPE[,SCOPE...] SECRET, got 1 field"},
      {"\nname read", "f:2: expected NAME SCOPE[,SCOPE...] SECRET, got 2 fields"},
      {"name read " + s + " extra", "f:1: expected NAME SCOPE[,SCOPE...] SECRET, got 4 fields"},
      {"bad/name read " + s, "f:1: bad token name"},
      {std::string(65, 'n') + " read " + s, "f:1: bad token name"},
      {"n wirte " + s, "f:1: unknown scope \"wirte\""},
      {"n read,,write " + s, "f:1: empty scope in the scope list"},
      {"n read, " + s, "f:1: empty scope in the scope list"},
      {"n Read " + s, "f:1: unknown scope (known"},
      {"n read short", "f:1: the secret must be 16 to 4096 characters long"},
      {"n read " + std::string(4097, 'x'), "f:1: the secret must be 16 to 4096"},
      {"n read abcdefgh\xc3\xa9ijklmnopq", "f:1: the secret has characters"},
      {"n read abcdefgh=ijklmnopq", "f:1: the secret has characters"},
      {"n read sha256:abcd", "f:1: sha256: must be followed by 64 hex digits"},
      {"n read sha256:" + std::string(63, 'a') + "g", "f:1: sha256: must be followed"},
      {"n read " + s + "\nn write bravo-secret-0123456789",
       "f:2: token name n already used on line 1"},
      {"a read " + s + "\n#\nb write " + s, "f:3: same secret as line 1"},
      {"a read " + s + "\nb write sha256:" + hex(token_digest(s)), "f:2: same secret as line 1"},
  };
  for (const auto& c : cases) {
    const std::string e = error_of(parse_tokens(c.text, "f"));
    EXPECT_TRUE(e.starts_with(c.expected)) << "input: " << c.text << "\nerror: " << e;
    EXPECT_EQ(e.find(s), std::string::npos) << e;
    EXPECT_EQ(e.find("abcdefgh"), std::string::npos) << e;
  }
}

TEST(TokensFile, AnEmptyFileHasNoTokens) {
  EXPECT_TRUE(ok(parse_tokens("", "f")).empty());
  EXPECT_TRUE(ok(parse_tokens("# nobody yet\n", "f")).empty());
}

TEST(TokensFile, AFileOthersMayReadIsRefused) {
  test::TempDir dir;
  const std::string path = dir.path() + "/tokens";
  std::ofstream(path) << "gw read,write " << kSecretA << "\n";
  chmod(path.c_str(), 0640);
  EXPECT_EQ(ok(load_tokens_file(path)).size(), 1u);
  chmod(path.c_str(), 0644);
  EXPECT_NE(error_of(load_tokens_file(path)).find("readable or writable by others (mode 0644)"),
            std::string::npos);
  chmod(path.c_str(), 0602);
  EXPECT_NE(error_of(load_tokens_file(path)).find("by others"), std::string::npos);
  EXPECT_NE(error_of(load_tokens_file(dir.path() + "/missing")).find("No such file"),
            std::string::npos);
  EXPECT_NE(error_of(load_tokens_file(dir.path())).find("not a regular file"), std::string::npos);
}

TEST(BearerToken, AcceptsOnlyBearerOneSpaceAndAToken68) {
  std::string why;
  EXPECT_EQ(bearer_token("Bearer abc.DEF-_~+/==", &why), "abc.DEF-_~+/==");
  EXPECT_EQ(bearer_token("bearer abc", &why), "abc");
  for (const char* bad :
       {"", "Bearer", "Bearer ", "Bearer  abc", "Bearer abc def", "Basic YWJj", "Bearerabc",
        "Bearer ab=c", "Bearer \xc3\xa9t\xc3\xa9", "Bearer =", "Token abc"}) {
    why.clear();
    EXPECT_FALSE(bearer_token(bad, &why)) << bad;
    EXPECT_FALSE(why.empty()) << bad;
    if (std::string_view(bad).size() > 7) {
      EXPECT_EQ(why.find(bad + 7), std::string::npos) << why;
    }
  }
}

Request with_auth(std::optional<std::string> authorization) {
  Request r{http::verb::get, "/v1/health", 11};
  if (authorization) r.set(http::field::authorization, *authorization);
  return r;
}

Caller tcp() {
  Caller c;
  c.via = Caller::Via::tcp;
  c.address = "127.0.0.1";
  return c;
}

Caller unix_peer(unsigned uid, unsigned gid) {
  Caller c;
  c.via = Caller::Via::unix_socket;
  c.uid = uid;
  c.gid = gid;
  return c;
}

std::vector<TokenEntry> two_tokens() {
  return ok(
      parse_tokens(std::string("gw read,write ") + kSecretA + "\nprom metrics " + kSecretB, "f"));
}

TEST(AccessPolicy, WithTokensEveryTcpRequestNeedsAKnownOne) {
  const AccessPolicy p({two_tokens(), {}, 1000});
  auto d = p.decide(with_auth(std::string("Bearer ") + kSecretA), tcp());
  EXPECT_TRUE(d.authenticated);
  EXPECT_EQ(d.scopes, bit(Scope::read) | bit(Scope::write));
  EXPECT_EQ(d.principal, "token gw");
  d = p.decide(with_auth(std::string("Bearer ") + kSecretB), tcp());
  EXPECT_EQ(d.scopes, bit(Scope::metrics));
  EXPECT_EQ(d.principal, "token prom");

  d = p.decide(with_auth(std::nullopt), tcp());
  EXPECT_FALSE(d.authenticated);
  EXPECT_EQ(d.problem, "no Authorization header");
  EXPECT_EQ(d.principal, "127.0.0.1");
  d = p.decide(with_auth("Bearer not-a-known-token-at-all"), tcp());
  EXPECT_FALSE(d.authenticated);
  EXPECT_EQ(d.problem, "unknown token");
  d = p.decide(with_auth(std::string("Basic ") + kSecretA), tcp());
  EXPECT_FALSE(d.authenticated);
  // The digest of a token is not the token.
  d = p.decide(with_auth("Bearer sha256:" + hex(token_digest(kSecretA))), tcp());
  EXPECT_FALSE(d.authenticated);

  Request twice = with_auth(std::string("Bearer ") + kSecretA);
  twice.insert(http::field::authorization, std::string("Bearer ") + kSecretB);
  d = p.decide(twice, tcp());
  EXPECT_FALSE(d.authenticated);
  EXPECT_EQ(d.problem, "more than one Authorization header");
}

TEST(AccessPolicy, AnEmptyTokensFileRefusesEveryTcpRequest) {
  const AccessPolicy p({std::vector<TokenEntry>{}, {}, 0});
  EXPECT_FALSE(p.decide(with_auth(std::string("Bearer ") + kSecretA), tcp()).authenticated);
}

TEST(AccessPolicy, WithoutTokensTcpHasEveryScopeAndHeadersAreIgnored) {
  const AccessPolicy p({std::nullopt, {}, 0});
  const auto d = p.decide(with_auth("Basic whatever"), tcp());
  EXPECT_TRUE(d.authenticated);
  EXPECT_EQ(d.scopes, kAllScopes);
}

TEST(AccessPolicy, TheUnixSocketDecidesByUidThenOwnUidThenGidThenOthers) {
  using Kind = UnixScopeRule::Kind;
  std::vector<UnixScopeRule> rules = {
      {Kind::uid, 1001, bit(Scope::read), "uid:1001"},
      {Kind::gid, 50, bit(Scope::read) | bit(Scope::write), "gid:50"},
      {Kind::uid, 1000, bit(Scope::metrics), "uid:1000"},  // the daemon's own uid, mapped
  };
  const AccessPolicy mapped({std::nullopt, rules, 1000});
  EXPECT_EQ(mapped.decide(with_auth(std::nullopt), unix_peer(1001, 50)).scopes, bit(Scope::read));
  EXPECT_EQ(mapped.decide(with_auth(std::nullopt), unix_peer(1002, 50)).scopes,
            bit(Scope::read) | bit(Scope::write));
  EXPECT_EQ(mapped.decide(with_auth(std::nullopt), unix_peer(1000, 50)).scopes,
            bit(Scope::metrics));  // an explicit uid entry wins even for the daemon's user
  EXPECT_EQ(mapped.decide(with_auth(std::nullopt), unix_peer(1003, 7)).scopes, kAllScopes);
  EXPECT_EQ(mapped.decide(with_auth(std::nullopt), unix_peer(1003, 7)).principal, "uid 1003");

  rules.pop_back();
  rules.push_back({Kind::others, 0, 0, "others"});
  const AccessPolicy own({std::nullopt, rules, 1000});
  // Not mapped by uid: the daemon's own user keeps every scope whatever its group's entry.
  EXPECT_EQ(own.decide(with_auth(std::nullopt), unix_peer(1000, 50)).scopes, kAllScopes);
  EXPECT_EQ(own.decide(with_auth(std::nullopt), unix_peer(1003, 7)).scopes, 0);
  Caller unknown;
  unknown.via = Caller::Via::unix_socket;  // SO_PEERCRED failed: no uid, no gid
  EXPECT_EQ(own.decide(with_auth(std::nullopt), unknown).scopes, 0);
}

TEST(AccessPolicy, ATokenOnTheSocketReplacesThePeersScopes) {
  using Kind = UnixScopeRule::Kind;
  const AccessPolicy p({two_tokens(), {{Kind::uid, 5, bit(Scope::read), "uid:5"}}, 0});
  // Without a header: credentials, no token needed.
  EXPECT_EQ(p.decide(with_auth(std::nullopt), unix_peer(5, 5)).scopes, bit(Scope::read));
  auto d = p.decide(with_auth(std::string("Bearer ") + kSecretA), unix_peer(5, 5));
  EXPECT_EQ(d.scopes, bit(Scope::read) | bit(Scope::write));
  EXPECT_EQ(d.principal, "token gw");
  // A bad token is refused rather than silently falling back to the peer's scopes.
  EXPECT_FALSE(
      p.decide(with_auth("Bearer wrong-wrong-wrong-wrong"), unix_peer(5, 5)).authenticated);
}

TEST(AccessPolicy, InternalCallersHaveEveryScope) {
  const AccessPolicy p({two_tokens(), {}, 0});
  EXPECT_EQ(p.decide(with_auth(std::nullopt), Caller{}).scopes, kAllScopes);
}

using Clock = RateLimiter::Clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(RateLimiter, AllowsTheBurstThenTheRateAndSaysWhenToRetry) {
  RateLimiter rl({2.0, 3.0, 100});
  const Clock::time_point t0{};
  seconds retry{0};
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(rl.take("a", t0, &retry)) << i;
  EXPECT_FALSE(rl.take("a", t0, &retry));
  EXPECT_EQ(retry, seconds(1));           // 0.5 s to the next one, rounded up
  EXPECT_TRUE(rl.take("b", t0, &retry));  // another principal has its own bucket
  EXPECT_FALSE(rl.take("a", t0 + milliseconds(499), &retry));
  EXPECT_TRUE(rl.take("a", t0 + milliseconds(500), &retry));
  EXPECT_FALSE(rl.take("a", t0 + milliseconds(500), &retry));
  // Refill stops at the burst.
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(rl.take("a", t0 + seconds(60), &retry)) << i;
  EXPECT_FALSE(rl.take("a", t0 + seconds(60), &retry));
}

TEST(RateLimiter, RetryAfterIsWholeSecondsAtLeastOne) {
  RateLimiter rl({0.1, 1.0, 10});
  const Clock::time_point t0{};
  seconds retry{0};
  EXPECT_TRUE(rl.take("a", t0, &retry));
  EXPECT_FALSE(rl.take("a", t0, &retry));
  EXPECT_EQ(retry, seconds(10));
  EXPECT_FALSE(rl.take("a", t0 + milliseconds(9001), &retry));
  EXPECT_EQ(retry, seconds(1));
}

TEST(RateLimiter, MemoryIsBoundedAndIdleBucketsGo) {
  RateLimiter rl({1.0, 2.0, 3});
  const Clock::time_point t0{};
  seconds retry{0};
  for (int i = 0; i < 100; ++i) rl.take("client-" + std::to_string(i), t0, &retry);
  EXPECT_LE(rl.tracked(), 3u);
  // The oldest of the three was evicted first: the newest still remembers its request.
  EXPECT_TRUE(rl.take("client-99", t0, &retry));
  EXPECT_FALSE(rl.take("client-99", t0, &retry));
  // Long idle: every bucket refilled, and each request drops one idle bucket.
  for (int i = 0; i < 5; ++i) rl.take("fresh", t0 + seconds(100), &retry);
  EXPECT_LE(rl.tracked(), 2u);
}

// The Router applies all of it in front of the handlers.
class RouterAccess : public ::testing::Test {
 protected:
  void SetUp() override {
    router.add(http::verb::get, "/r", Scope::read, [this](const Request&, const RouteMatch&) {
      ++handled;
      return empty_response();
    });
    router.add(http::verb::post, "/w", Scope::write, [this](const Request&, const RouteMatch&) {
      ++handled;
      return empty_response();
    });
  }
  Response call(http::verb v, std::string target, std::optional<std::string> auth) {
    Request r{v, target, 11};
    if (auth) r.set(http::field::authorization, *auth);
    return router.route(r, tcp());
  }
  Router router;
  int handled = 0;
};

TEST_F(RouterAccess, NoPolicyLetsEverythingThrough) {
  EXPECT_EQ(call(http::verb::post, "/w", std::nullopt).result(), http::status::no_content);
}

TEST_F(RouterAccess, UnauthenticatedIs401BeforeRoutingAndForbiddenIs403BeforeTheHandler) {
  router.set_access(std::make_shared<const AccessPolicy>(
      AccessPolicy::Options{ok(parse_tokens(std::string("reader read ") + kSecretA, "f")), {}, 0}));
  auto res = call(http::verb::get, "/nowhere", std::nullopt);
  EXPECT_EQ(res.result(), http::status::unauthorized);  // not 404: paths are not revealed
  EXPECT_EQ(res[http::field::www_authenticate], "Bearer realm=\"heartbeatd\"");
  EXPECT_NE(res.body().find("\"error\":\"unauthenticated\""), std::string::npos);
  res = call(http::verb::post, "/w", std::string("Bearer ") + kSecretA);
  EXPECT_EQ(res.result(), http::status::forbidden);
  EXPECT_NE(res.body().find("\"error\":\"forbidden\""), std::string::npos);
  EXPECT_EQ(res.body().find("reader"), std::string::npos);
  EXPECT_EQ(handled, 0);
  EXPECT_EQ(call(http::verb::get, "/r", std::string("Bearer ") + kSecretA).result(),
            http::status::no_content);
  EXPECT_EQ(handled, 1);
  // Revoked by a swap, as SIGHUP does.
  router.set_access(std::make_shared<const AccessPolicy>(
      AccessPolicy::Options{std::vector<TokenEntry>{}, {}, 0}));
  EXPECT_EQ(call(http::verb::get, "/r", std::string("Bearer ") + kSecretA).result(),
            http::status::unauthorized);
}

// Scope::none (the status page's files): reachable with no token, a bad one, or one with no
// scope at all; only by the exact method and path, so everything else still answers 401.
TEST_F(RouterAccess, APublicRouteNeedsNoTokenAndRevealsNoOtherPath) {
  router.add(http::verb::get, "/p", Scope::none, [this](const Request&, const RouteMatch&) {
    ++handled;
    return empty_response();
  });
  router.add(http::verb::get, "/p/{name}", Scope::none,
             [this](const Request&, const RouteMatch& m) {
               ++handled;
               return json_response(http::status::ok, std::string(m.param("name")));
             });
  router.add(http::verb::get, "/p/secret", Scope::read, [this](const Request&, const RouteMatch&) {
    ++handled;
    return empty_response();
  });
  router.set_access(std::make_shared<const AccessPolicy>(
      AccessPolicy::Options{ok(parse_tokens(std::string("reader read ") + kSecretA + "\n" +
                                                "counter metrics " + kSecretB, "f")),
                            {}, 0}));
  EXPECT_EQ(call(http::verb::get, "/p", std::nullopt).result(), http::status::no_content);
  EXPECT_EQ(call(http::verb::get, "/p", std::string("Bearer unknown-0123456789abcdef")).result(),
            http::status::no_content);
  EXPECT_EQ(call(http::verb::get, "/p", std::string("Basic eDp5")).result(),
            http::status::no_content);
  EXPECT_EQ(call(http::verb::get, "/p", std::string("Bearer ") + kSecretB).result(),
            http::status::no_content) << "a token without read still reaches a public route";
  EXPECT_EQ(call(http::verb::get, "/p/x?y=1", std::nullopt).body(), "x");
  EXPECT_EQ(handled, 5);
  // A literal non-public route wins over the public pattern, and keeps its scope.
  EXPECT_EQ(call(http::verb::get, "/p/secret", std::nullopt).result(), http::status::unauthorized);
  EXPECT_EQ(call(http::verb::get, "/p/secret", std::string("Bearer ") + kSecretB).result(),
            http::status::forbidden);
  // Another method, a longer path, an unknown path, a non-path target: 401 as before, not
  // 405, 404 or 400, which would tell an unauthenticated caller what exists.
  for (const auto& [verb, target] : std::vector<std::pair<http::verb, std::string>>{
           {http::verb::post, "/p"},
           {http::verb::head, "/p"},
           {http::verb::get, "/p/a/b"},
           {http::verb::get, "/p/../r"},
           {http::verb::get, "/r"},
           {http::verb::get, "/nowhere"},
           {http::verb::get, "*"}}) {
    SCOPED_TRACE(target);
    const auto res = call(verb, target, std::nullopt);
    EXPECT_EQ(res.result(), http::status::unauthorized);
    EXPECT_EQ(res[http::field::www_authenticate], "Bearer realm=\"heartbeatd\"");
  }
  EXPECT_EQ(handled, 5);
  // With the token, a public route's other method is a plain 405.
  EXPECT_EQ(call(http::verb::post, "/p", std::string("Bearer ") + kSecretA).result(),
            http::status::method_not_allowed);
}

TEST_F(RouterAccess, OverTheRateIs429WithRetryAfter) {
  router.set_rate_limiter(std::make_shared<RateLimiter>(RateLimiter::Options{0.5, 2, 10}));
  EXPECT_EQ(call(http::verb::get, "/r", std::nullopt).result(), http::status::no_content);
  EXPECT_EQ(call(http::verb::get, "/r", std::nullopt).result(), http::status::no_content);
  const auto res = call(http::verb::get, "/r", std::nullopt);
  EXPECT_EQ(res.result(), http::status::too_many_requests);
  EXPECT_EQ(res[http::field::retry_after], "2");
  EXPECT_NE(res.body().find("\"error\":\"rate_limited\""), std::string::npos);
  EXPECT_EQ(handled, 2);
}

}  // namespace
}  // namespace heartbeatd::transport
