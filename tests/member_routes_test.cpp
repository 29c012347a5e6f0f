// The /v1/members routes in-process, over a member list the test edits between requests:
// filters (state, name patterns), paging by cursor while members join and leave between
// pages, ETag and If-None-Match, every bad parameter, and a measure of the answer at 10,000
// members. The real-process suites (cluster_test, heartbeatctl_test) keep the end-to-end cases.
#include "transport/api/member_routes.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <set>

#include "membership/member.h"
#include "transport/api/member_query.h"

namespace heartbeatd::transport {
namespace {

using namespace std::chrono_literals;
using membership::MemberInfo;
using membership::MemberState;
namespace json = boost::json;

// ---------------------------------------------------------------------------------------------
// Name patterns and cursors

TEST(MemberNamePattern, StarAndQuestionMarkOverTheWholeName) {
  struct Case {
    std::string_view pattern, name;
    bool match;
  };
  for (const auto& c : std::vector<Case>{
           {"web-*", "web-1", true},
           {"web-*", "web-", true},
           {"web-*", "db-web-1", false},
           {"*-1", "web-1", true},
           {"*-1", "web-12", false},
           {"w?b-1", "web-1", true},
           {"w?b-1", "wb-1", false},
           {"?", "a", true},
           {"?", "", false},
           {"*", "anything.at_all-1", true},
           {"a*b*c", "aXXbYYc", true},
           {"a*b*c", "aXXbYY", false},
           {"a*b*c", "abcbc", true},
           {"*a*a*a*a*a*a*b", std::string_view("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), false},
           {"db-1", "db-1", true},
           {"db-1", "db-10", false},
           {"DB-1", "db-1", false},  // names are case-sensitive
       }) {
    EXPECT_EQ(membership::name_matches(c.pattern, c.name), c.match) << c.pattern << " " << c.name;
  }
  EXPECT_TRUE(membership::valid_name_pattern("web-*.?_x"));
  EXPECT_FALSE(membership::valid_name_pattern(""));
  EXPECT_FALSE(membership::valid_name_pattern("web/*"));
  EXPECT_FALSE(membership::valid_name_pattern("web [12]"));
  EXPECT_TRUE(membership::valid_name_pattern(std::string(membership::kMaxNamePatternBytes, '*')));
  EXPECT_FALSE(membership::valid_name_pattern(std::string(membership::kMaxNamePatternBytes + 1, 'a')));
}

TEST(MemberCursor, RoundTripsEveryNameAndRefusesAnythingElse) {
  for (const std::string& name : std::vector<std::string>{
           "a", "ab", "abc", "abcd", "web-01.example_x", std::string(membership::kMaxNameBytes, 'z')}) {
    const auto cursor = encode_member_cursor(name);
    EXPECT_EQ(cursor.find_first_not_of(
                  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
              std::string::npos)
        << cursor;
    EXPECT_EQ(decode_member_cursor(cursor), name);
  }
  EXPECT_EQ(decode_member_cursor(""), std::nullopt);         // no name
  EXPECT_EQ(decode_member_cursor("d2Vi="), std::nullopt);    // padding is not ours
  EXPECT_EQ(decode_member_cursor("d2Vi+"), std::nullopt);    // standard base64, not url
  EXPECT_EQ(decode_member_cursor("d"), std::nullopt);        // not a whole byte
  EXPECT_EQ(decode_member_cursor("d2Vj"), "wec");
  EXPECT_EQ(decode_member_cursor("d2Vh"), "wea");
  EXPECT_EQ(decode_member_cursor("YR"), std::nullopt);       // non-zero padding bits
  EXPECT_EQ(decode_member_cursor(encode_member_cursor("a b")), std::nullopt);  // not a name
}

// ---------------------------------------------------------------------------------------------
// The routes over an editable member list

// "m-007": names that sort as their numbers do.
std::string fmt_name(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "m-%03d", i);
  return buf;
}

class MemberRoutes : public ::testing::Test {
 public:
  // The routes' clock follows real time, plus what a test adds to `advanced`: WallTime
  // re-anchors last_seen_ms when the wall clock drifts more than a second from the monotonic
  // one, and a clock standing still while a slow (loaded, sanitised) run goes on would make
  // every last_seen_ms, and so every ETag, jump mid-test.
  membership::ManualClock clock;
  const std::chrono::steady_clock::time_point real_start = std::chrono::steady_clock::now();
  const membership::TimePoint clock_start = clock.now();
  membership::Duration advanced{0};
  void tick() { clock.set(clock_start + (std::chrono::steady_clock::now() - real_start) + advanced); }
  std::mutex mu;
  std::map<std::string, MemberInfo> view;  // guarded by mu; sorted by name, as the protocol's
  Router router;

  void SetUp() override {
    add_member_routes(router, {[this] {
                                 std::lock_guard lock(mu);
                                 std::vector<MemberInfo> out;
                                 for (const auto& [name, m] : view) out.push_back(m);
                                 return out;
                               },
                               [this](std::string_view name) -> std::optional<MemberInfo> {
                                 std::lock_guard lock(mu);
                                 auto it = view.find(std::string(name));
                                 if (it == view.end()) return std::nullopt;
                                 return it->second;
                               },
                               &clock});
  }

  void put(const std::string& name, MemberState state, std::uint64_t incarnation = 0) {
    MemberInfo m;
    m.name = name;
    m.address = membership::Address::v4(0x0a000001 + static_cast<std::uint32_t>(view.size()), 7701);
    m.state = state;
    m.incarnation = incarnation;
    m.last_seen = clock.now();
    std::lock_guard lock(mu);
    view[name] = m;
  }
  void remove(const std::string& name) {
    std::lock_guard lock(mu);
    view.erase(name);
  }

  Response get(const std::string& target, std::string if_none_match = "") {
    tick();
    Request r{http::verb::get, target, 11};
    if (!if_none_match.empty()) r.set(http::field::if_none_match, if_none_match);
    return router.route(r);
  }
  json::object body_of(const Response& r) {
    EXPECT_EQ(r.result(), http::status::ok) << r.body();
    return json::parse(r.body()).as_object();
  }
  std::vector<std::string> names(const std::string& target) {
    std::vector<std::string> out;
    const auto body = body_of(get(target));
    for (const auto& m : body.at("members").as_array()) {
      out.emplace_back(m.at("name").as_string());
    }
    return out;
  }
  std::string bad_request(const std::string& target) {
    const auto r = get(target);
    EXPECT_EQ(r.result(), http::status::bad_request) << target << ": " << r.body();
    const auto o = json::parse(r.body()).as_object();
    EXPECT_EQ(o.at("error"), "bad_request");
    return std::string(o.at("message").as_string());
  }

  void tag(const std::string& name, membership::Tags tags) {
    std::lock_guard lock(mu);
    view[name].tags = std::move(tags);
  }
  void three_states() {
    put("db-1", MemberState::alive);
    put("db-2", MemberState::dead);
    put("web-1", MemberState::alive);
    put("web-2", MemberState::suspect);
    put("web-10", MemberState::left);
    put("worker-1", MemberState::alive);
  }
};

TEST_F(MemberRoutes, WithoutParametersTheAnswerIsTheWholeListAsBefore) {
  three_states();
  const auto r = get("/v1/members");
  const auto body = body_of(r);
  EXPECT_EQ(body.size(), 1u) << r.body();  // no next_cursor without limit
  EXPECT_EQ(names("/v1/members"),
            (std::vector<std::string>{"db-1", "db-2", "web-1", "web-10", "web-2", "worker-1"}));
  const auto& first = body.at("members").as_array()[0].as_object();
  EXPECT_EQ(first.size(), 7u);  // name, address, state, incarnation, last_seen_ms, self, tags
  EXPECT_EQ(first.at("tags"), json::object{}) << "no tags: an empty object, never absent";
  EXPECT_FALSE(r[http::field::etag].empty());
  EXPECT_EQ(r[http::field::content_type], "application/json");
}

TEST_F(MemberRoutes, StateRepeatedOrCommaListedAndNamePatterns) {
  three_states();
  const std::vector<std::string> alive_or_dead = {"db-1", "db-2", "web-1", "worker-1"};
  EXPECT_EQ(names("/v1/members?state=alive&state=dead"), alive_or_dead);
  EXPECT_EQ(names("/v1/members?state=dead,alive"), alive_or_dead);
  EXPECT_EQ(names("/v1/members?state=alive,alive"), (std::vector<std::string>{"db-1", "web-1", "worker-1"}));
  EXPECT_EQ(names("/v1/members?state=suspect"), (std::vector<std::string>{"web-2"}));
  EXPECT_EQ(names("/v1/members?state=left"), (std::vector<std::string>{"web-10"}));
  EXPECT_EQ(names("/v1/members?name=web-*"), (std::vector<std::string>{"web-1", "web-10", "web-2"}));
  EXPECT_EQ(names("/v1/members?name=web-%3F"), (std::vector<std::string>{"web-1", "web-2"}));
  EXPECT_EQ(names("/v1/members?name=w*-1"), (std::vector<std::string>{"web-1", "worker-1"}));
  EXPECT_EQ(names("/v1/members?name=db-2"), (std::vector<std::string>{"db-2"}));
  // Filters combine with AND.
  EXPECT_EQ(names("/v1/members?state=alive&name=web-*"), (std::vector<std::string>{"web-1"}));
  EXPECT_EQ(names("/v1/members?name=w*&state=alive,suspect"),
            (std::vector<std::string>{"web-1", "web-2", "worker-1"}));
  // Nothing matching is an empty list, not an error.
  EXPECT_EQ(names("/v1/members?name=cache-*"), std::vector<std::string>{});
}

TEST_F(MemberRoutes, EveryBadParameterIsA400NamingIt) {
  three_states();
  EXPECT_EQ(bad_request("/v1/members?state=zombie"),
            "state: unknown state \"zombie\" (expected alive, suspect, dead or left)");
  EXPECT_EQ(bad_request("/v1/members?state=alive,,dead"),
            "state: unknown state \"\" (expected alive, suspect, dead or left)");
  EXPECT_EQ(bad_request("/v1/members?state="), "state: empty (expected alive, suspect, dead or left)");
  EXPECT_EQ(bad_request("/v1/members?state=Alive"),
            "state: unknown state \"Alive\" (expected alive, suspect, dead or left)");
  EXPECT_EQ(bad_request("/v1/members?name=web%2F*"),
            "name: bad pattern \"web/*\" (expected 1 to 256 letters, digits, '.', '-', '_' and the "
            "wildcards '*' and '?')");
  EXPECT_NE(bad_request("/v1/members?name=").find("name: bad pattern \"\""), std::string::npos);
  EXPECT_NE(bad_request("/v1/members?name=web-[12]").find("name: bad pattern"), std::string::npos);
  EXPECT_EQ(bad_request("/v1/members?name=a&name=b"), "name given twice");
  for (std::string limit : {"0", "10001", "-1", "x", "", "1.5", "99999999999999999999999"}) {
    EXPECT_EQ(bad_request("/v1/members?limit=" + limit),
              "limit: expected an integer from 1 to 10000, got \"" + limit + "\"");
  }
  EXPECT_EQ(bad_request("/v1/members?limit=1&limit=2"), "limit given twice");
  EXPECT_EQ(bad_request("/v1/members?cursor=%21%21"),
            "cursor: \"!!\" is not a cursor of this API (pass next_cursor back unchanged)");
  EXPECT_NE(bad_request("/v1/members?cursor=").find("cursor: \"\" is not a cursor"), std::string::npos);
  EXPECT_EQ(bad_request("/v1/members?zone=b"),
            "unknown query parameter \"zone\" (known: state, name, limit, cursor, tag)");
  EXPECT_EQ(bad_request("/v1/members?tag=ro%20le:db"),
            "tag: bad key \"ro le\" (expected key:value or key, the key 1 to 64 letters, digits, "
            "'.', '-' or '_')");
  EXPECT_NE(bad_request("/v1/members?tag=:db").find("tag: bad key \"\""), std::string::npos);
  EXPECT_NE(bad_request("/v1/members?tag=").find("tag: bad key \"\""), std::string::npos);
  EXPECT_EQ(bad_request("/v1/members?tag=role:d%0Ab"),
            "tag: bad value for role (at most 128 printable ASCII characters)");
  EXPECT_EQ(bad_request("/v1/members?tag=role:" + std::string(129, 'x')),
            "tag: bad value for role (at most 128 printable ASCII characters)");
  EXPECT_EQ(bad_request("/v1/members?state=%zz"), "state: bad percent-encoding");
  // The single member's route takes no parameters it would ignore silently: unchanged here.
  EXPECT_EQ(get("/v1/members/db-1").result(), http::status::ok);
}

TEST_F(MemberRoutes, TagsAreShownAndFilterWithAnd) {
  three_states();
  tag("db-1", {{"role", "db"}, {"zone", "b"}});
  tag("db-2", {{"role", "db"}, {"zone", "a"}});
  tag("web-1", {{"role", "web"}, {"zone", "b"}, {"note", "a:b c"}});
  tag("worker-1", {{"role", ""}});
  const auto body = body_of(get("/v1/members?name=db-1"));
  EXPECT_EQ(body.at("members").as_array()[0].at("tags"), (json::object{{"role", "db"}, {"zone", "b"}}));
  EXPECT_EQ(names("/v1/members?tag=role:db"), (std::vector<std::string>{"db-1", "db-2"}));
  EXPECT_EQ(names("/v1/members?tag=role:db&tag=zone:b"), (std::vector<std::string>{"db-1"}));
  EXPECT_EQ(names("/v1/members?tag=zone:b&state=alive&name=w*"), (std::vector<std::string>{"web-1"}));
  // A bare key asks for the key with any value, the empty value included.
  EXPECT_EQ(names("/v1/members?tag=role"),
            (std::vector<std::string>{"db-1", "db-2", "web-1", "worker-1"}));
  EXPECT_EQ(names("/v1/members?tag=role:"), (std::vector<std::string>{"worker-1"}));
  // The value is everything after the first ':', percent-decoded.
  EXPECT_EQ(names("/v1/members?tag=note:a%3Ab+c"), (std::vector<std::string>{"web-1"}));
  EXPECT_EQ(names("/v1/members?tag=note:a:b%20c"), (std::vector<std::string>{"web-1"}));
  // Values are compared exactly; two values for one key match nothing (AND).
  EXPECT_EQ(names("/v1/members?tag=role:DB"), std::vector<std::string>{});
  EXPECT_EQ(names("/v1/members?tag=role:db&tag=role:web"), std::vector<std::string>{});
  EXPECT_EQ(names("/v1/members?tag=rack"), std::vector<std::string>{});
  // Paging walks the filtered list.
  const auto page = body_of(get("/v1/members?tag=role:db&limit=1"));
  ASSERT_TRUE(page.contains("next_cursor"));
  EXPECT_EQ(names("/v1/members?tag=role:db&limit=1&cursor=" +
                  std::string(page.at("next_cursor").as_string())),
            (std::vector<std::string>{"db-2"}));
}

// Walks every page of `query` with `limit`, calling `between(page)` after each page.
std::vector<std::string> walk(MemberRoutes& t, const std::string& query, std::size_t limit,
                              const std::function<void(std::size_t)>& between,
                              std::size_t* pages) {
  std::vector<std::string> seen;
  std::string cursor;
  *pages = 0;
  while (true) {
    std::string target = "/v1/members?limit=" + std::to_string(limit) + query;
    if (!cursor.empty()) target += "&cursor=" + cursor;
    const auto body = t.body_of(t.get(target));
    const auto& list = body.at("members").as_array();
    EXPECT_LE(list.size(), limit);
    for (const auto& m : list) seen.emplace_back(m.at("name").as_string());
    ++*pages;
    const auto& next = body.at("next_cursor");
    if (next.is_null()) return seen;
    EXPECT_EQ(list.size(), limit) << "a page before the last is full";
    cursor = std::string(next.as_string());
    between(*pages);
    if (*pages > 1000) {
      ADD_FAILURE() << "paging does not end";
      return seen;
    }
  }
}

TEST_F(MemberRoutes, PagesCoverTheListOnceAndTheLastSaysSo) {
  for (int i = 0; i < 10; ++i) put(fmt_name(i), i % 3 == 0 ? MemberState::dead : MemberState::alive);
  std::size_t pages = 0;
  auto all = walk(*this, "", 3, [](std::size_t) {}, &pages);
  EXPECT_EQ(all, names("/v1/members"));
  EXPECT_EQ(pages, 4u);  // 3 + 3 + 3 + 1
  // Exactly a multiple of the limit: the last full page already says "no more".
  all = walk(*this, "", 5, [](std::size_t) {}, &pages);
  EXPECT_EQ(pages, 2u);
  EXPECT_EQ(all.size(), 10u);
  // A limit larger than the list: one page, next_cursor null.
  const auto one = body_of(get("/v1/members?limit=10000"));
  EXPECT_TRUE(one.at("next_cursor").is_null());
  EXPECT_EQ(one.at("members").as_array().size(), 10u);
  // With a filter, pages hold only matching members and are still full.
  all = walk(*this, "&state=dead", 2, [](std::size_t) {}, &pages);
  EXPECT_EQ(all, names("/v1/members?state=dead"));
  EXPECT_EQ(pages, 2u);  // dead: 0, 3, 6, 9
}

// Members join and leave between pages, before and after the cursor: every member present for
// the whole walk is seen exactly once, in order, and nothing is seen twice.
TEST_F(MemberRoutes, PagingIsStableWhileMembersJoinAndLeave) {
  for (int i = 0; i < 40; i += 2) put(fmt_name(i), MemberState::alive);  // m-000, m-002, ...
  std::set<std::string> removed, added;
  std::size_t pages = 0;
  const auto seen = walk(
      *this, "", 4,
      [&](std::size_t page) {
        // Before the cursor (already returned): gone, and a newcomer that sorts there.
        const auto before = fmt_name(static_cast<int>(page) * 8 - 8);
        remove(before);
        removed.insert(before);
        put(fmt_name(static_cast<int>(page) * 8 - 7), MemberState::alive);
        added.insert(fmt_name(static_cast<int>(page) * 8 - 7));
        // After the cursor (not returned yet): one leaves, one joins.
        const auto next = fmt_name(static_cast<int>(page) * 8);
        remove(next);
        removed.insert(next);
        put(fmt_name(static_cast<int>(page) * 8 + 5), MemberState::dead);
        added.insert(fmt_name(static_cast<int>(page) * 8 + 5));
      },
      &pages);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), seen.size()) << "repeated";
  for (int i = 0; i < 40; i += 2) {
    if (removed.count(fmt_name(i)) == 0) {
      EXPECT_EQ(std::count(seen.begin(), seen.end(), fmt_name(i)), 1) << fmt_name(i) << " skipped";
    }
  }
  EXPECT_GT(pages, 3u);
}

// A cursor names a position, not a member: after the member it names is gone, the next page
// still starts right after where it stood.
TEST_F(MemberRoutes, ACursorOutlivesTheMemberItNames) {
  for (int i = 0; i < 6; ++i) put(fmt_name(i), MemberState::alive);
  const auto first = body_of(get("/v1/members?limit=2"));
  const std::string cursor(first.at("next_cursor").as_string());
  remove(fmt_name(1));  // the last one on the first page
  EXPECT_EQ(names("/v1/members?limit=2&cursor=" + cursor),
            (std::vector<std::string>{fmt_name(2), fmt_name(3)}));
  // The cursor of an unknown member that sorts anywhere works the same.
  EXPECT_EQ(names("/v1/members?limit=2&cursor=" + encode_member_cursor("m-0025")),
            (std::vector<std::string>{fmt_name(3), fmt_name(4)}));
}

TEST_F(MemberRoutes, ETagAnswers304UntilTheAnswerChanges) {
  three_states();
  const auto first = get("/v1/members");
  const std::string etag(first[http::field::etag]);
  ASSERT_EQ(etag.size(), 34u) << etag;  // 128 bits in hex, quoted
  EXPECT_EQ(etag.front(), '"');
  EXPECT_EQ(get("/v1/members")[http::field::etag], etag) << "same answer, same tag";

  const auto not_modified = get("/v1/members", etag);
  EXPECT_EQ(not_modified.result(), http::status::not_modified);
  EXPECT_EQ(not_modified.body(), "");
  EXPECT_EQ(not_modified[http::field::etag], etag);
  // Lists, weak tags and "*" (RFC 9110 13.1.2).
  EXPECT_EQ(get("/v1/members", "\"other\", " + etag).result(), http::status::not_modified);
  EXPECT_EQ(get("/v1/members", "W/" + etag).result(), http::status::not_modified);
  EXPECT_EQ(get("/v1/members", "*").result(), http::status::not_modified);
  EXPECT_EQ(get("/v1/members", "\"other\"").result(), http::status::ok);

  // Each query is its own answer with its own tag.
  const std::string alive_tag(get("/v1/members?state=alive")[http::field::etag]);
  EXPECT_NE(alive_tag, etag);
  EXPECT_EQ(get("/v1/members?state=alive", alive_tag).result(), http::status::not_modified);
  EXPECT_EQ(get("/v1/members?state=dead", alive_tag).result(), http::status::ok);

  // A new state changes the tag of every answer that shows it...
  put("web-2", MemberState::dead, 0);
  EXPECT_EQ(get("/v1/members", etag).result(), http::status::ok);
  // ...and not of one that does not.
  EXPECT_EQ(get("/v1/members?state=alive", alive_tag).result(), http::status::not_modified);

  // last_seen_ms is in the body, so it is in the tag: hearing from a member changes it.
  const std::string before(get("/v1/members")[http::field::etag]);
  advanced += 100ms;  // less than WallTime's re-anchoring step: last_seen_ms stay put
  tick();
  EXPECT_EQ(get("/v1/members", before).result(), http::status::not_modified) << "time alone";
  view["db-1"].last_seen = clock.now();
  EXPECT_EQ(get("/v1/members", before).result(), http::status::ok);

  // A bad query is a 400 even with a matching tag.
  EXPECT_EQ(get("/v1/members?limit=0", "*").result(), http::status::bad_request);
}

TEST_F(MemberRoutes, OneMembersETag) {
  three_states();
  const auto r = get("/v1/members/db-2");
  const std::string etag(r[http::field::etag]);
  ASSERT_FALSE(etag.empty());
  EXPECT_EQ(get("/v1/members/db-2", etag).result(), http::status::not_modified);
  EXPECT_EQ(get("/v1/members/db-1", etag).result(), http::status::ok);
  put("db-2", MemberState::alive, 3);
  EXPECT_EQ(get("/v1/members/db-2", etag).result(), http::status::ok);
  EXPECT_EQ(get("/v1/members/nobody", "*").result(), http::status::not_found);
}

// Not a timed assertion: what one answer costs at 10,000 members, whole and paged, for
// docs/API.md. Printed as [ measured ] lines.
TEST_F(MemberRoutes, MeasuredAt10000Members) {
  for (int i = 0; i < 10000; ++i) {
    MemberInfo m;
    m.name = "node-" + std::to_string(100000 + i) + ".dc1.example";
    m.address = membership::Address::v4(0x0a000000 + static_cast<std::uint32_t>(i), 7701);
    m.state = i % 50 == 0 ? MemberState::dead : MemberState::alive;
    m.incarnation = static_cast<std::uint64_t>(i % 7);
    m.last_seen = clock.now() - std::chrono::milliseconds(i % 1000);
    view[m.name] = m;
  }
  auto measure = [&](const std::string& target, const std::string& what) {
    constexpr int kRounds = 20;
    std::size_t bytes = 0;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kRounds; ++i) {
      const auto r = get(target);
      ASSERT_EQ(r.result(), http::status::ok);
      bytes = r.body().size();
    }
    const auto per = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                               start) / kRounds;
    const std::string etag(get(target)[http::field::etag]);
    const auto start304 = std::chrono::steady_clock::now();
    for (int i = 0; i < kRounds; ++i) ASSERT_EQ(get(target, etag).result(), http::status::not_modified);
    const auto per304 = std::chrono::duration<double, std::milli>(
                            std::chrono::steady_clock::now() - start304) / kRounds;
    std::printf("[ measured ] 10000 members, %-26s %9zu bytes  %7.3f ms (304: 0 bytes %7.3f ms)\n",
                what.c_str(), bytes, per.count(), per304.count());
  };
  measure("/v1/members", "unfiltered:");
  measure("/v1/members?limit=100", "limit=100:");
  measure("/v1/members?limit=100&cursor=" + encode_member_cursor("node-105000.dc1.example"),
          "limit=100, mid-list cursor:");
  measure("/v1/members?state=dead", "state=dead (200 match):");
  measure("/v1/members?name=node-10999*", "name=node-10999* (10):");
  EXPECT_EQ(names("/v1/members?name=node-10999*").size(), 10u);
}

}  // namespace
}  // namespace heartbeatd::transport
