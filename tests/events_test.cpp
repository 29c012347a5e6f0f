// GET /v1/events against the real daemon: the initial state, user transitions (offline
// within 1 s of the moment the timeout passes, not when someone asks), member changes in a
// two-node cluster with ?members= filtering, slow consumers cut off with a final event,
// keepalives, limits and bad queries, and streams that do not hold up a stop. Every wait
// has a deadline.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>

#include <chrono>
#include <string>

#include "tests/support/daemon_process.h"
#include "tests/support/event_stream.h"
#include "tests/support/test_util.h"

namespace heartbeatd::test {
namespace {

using namespace std::chrono_literals;

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t num(const boost::json::object& o, const char* key) {
  return o.at(key).to_number<std::int64_t>();
}

TEST(Events, InitialStateThenOnlineThenOfflineWithinASecondOfTheTimeout) {
  DaemonProcess d(DaemonProcess::Keys{{"presence.timeout", "1s"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  ASSERT_EQ(http_tcp(d.port(), "POST", "/v1/users/1/heartbeat").status, 204);

  auto s = EventStream::tcp(d.port(), "/v1/events?users=2,1&members=");
  ASSERT_EQ(s.status(), 200) << s.head() << s.body_so_far();
  EXPECT_NE(s.head().find("Content-Type: text/event-stream"), std::string::npos) << s.head();
  // The state at subscription time, in id order, marked initial; no member (members= is
  // empty).
  auto e1 = s.next();
  ASSERT_TRUE(e1);
  EXPECT_EQ(e1->event, "user");
  EXPECT_EQ(num(e1->json(), "user"), 1);
  EXPECT_TRUE(e1->json().at("online").as_bool());
  EXPECT_TRUE(e1->json().at("initial").as_bool());
  auto e2 = s.next();
  ASSERT_TRUE(e2);
  EXPECT_EQ(num(e2->json(), "user"), 2);
  EXPECT_FALSE(e2->json().at("online").as_bool());
  EXPECT_TRUE(e2->json().at("last_seen_ms").is_null());

  // A heartbeat: online, at once.
  ASSERT_EQ(http_tcp(d.port(), "POST", "/v1/users/2/heartbeat").status, 204);
  auto on = s.next(2s);
  ASSERT_TRUE(on);
  EXPECT_EQ(num(on->json(), "user"), 2);
  EXPECT_TRUE(on->json().at("online").as_bool());
  EXPECT_FALSE(on->json().at("initial").as_bool());
  const std::int64_t last_seen = num(on->json(), "last_seen_ms");

  // Nobody asks; the offline event still comes, within a second of last_seen + timeout.
  // User 1 goes first (its heartbeat was earlier).
  auto off = s.next_matching(
      "user", [](const auto& o) { return num(o, "user") == 2 && !o.at("online").as_bool(); }, 5s);
  const std::int64_t received = unix_ms_now();
  ASSERT_TRUE(off);
  const std::int64_t due = last_seen + 1000;
  EXPECT_EQ(num(off->json(), "last_seen_ms"), last_seen);
  EXPECT_GE(num(off->json(), "time_ms"), due);
  EXPECT_LE(num(off->json(), "time_ms") - due, 1000);
  EXPECT_LE(received - due, 1000) << "offline event arrived " << received - due
                                  << " ms after the timeout passed";
  std::printf("[ measured ] offline event %lld ms after the timeout passed (received %lld ms)\n",
              static_cast<long long>(num(off->json(), "time_ms") - due),
              static_cast<long long>(received - due));

  // An explicit offline is reported too.
  ASSERT_EQ(http_tcp(d.port(), "POST", "/v1/users/2/heartbeat").status, 204);
  ASSERT_TRUE(s.next_matching(
      "user", [](const auto& o) { return num(o, "user") == 2 && o.at("online").as_bool(); }, 2s));
  ASSERT_EQ(http_tcp(d.port(), "DELETE", "/v1/users/2").status, 204);
  ASSERT_TRUE(s.next_matching(
      "user", [](const auto& o) { return num(o, "user") == 2 && !o.at("online").as_bool(); }, 2s));
}

TEST(Events, OverTheUnixSocketAHeartbeatThenLogoutBetweenTwoPollsIsBothTransitions) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.failure_reason();
  auto s = EventStream::unix_socket(d.socket_path(), "/v1/events?users=9&members=");
  ASSERT_EQ(s.status(), 200);
  ASSERT_TRUE(s.next());  // initial: offline
  // Back to back: usually inside one 100 ms poll, so this checks the "blip" path; when the
  // poll falls between them the same two events come anyway.
  ASSERT_EQ(http_unix(d.socket_path(), "POST", "/v1/users/9/heartbeat").status, 204);
  ASSERT_EQ(http_unix(d.socket_path(), "DELETE", "/v1/users/9").status, 204);
  auto a = s.next(2s);
  auto b = s.next(2s);
  ASSERT_TRUE(a && b);
  EXPECT_TRUE(a->json().at("online").as_bool());
  EXPECT_FALSE(b->json().at("online").as_bool());
}

TEST(Events, MemberChangesInAClusterFilteredByName) {
  DaemonProcess a(DaemonProcess::Keys{{"node.name", "node-a"}});
  ASSERT_TRUE(a.start()) << a.failure_reason();
  DaemonProcess b(DaemonProcess::Keys{{"node.name", "node-b"}, {"cluster.seeds", "[" + a.cluster_address() + "]"}});
  ASSERT_TRUE(b.start()) << b.failure_reason();
  ASSERT_TRUE(eventually(
      [&] {
        return http_tcp(a.port(), "GET", "/v1/members/node-b").body.find("\"alive\"") !=
               std::string::npos;
      },
      10s));

  auto only_b = EventStream::tcp(a.port(), "/v1/events?members=node-b");
  auto all = EventStream::tcp(a.port(), "/v1/events");
  ASSERT_EQ(only_b.status(), 200);
  ASSERT_EQ(all.status(), 200);
  // Initial: node-b alive for the filtered stream; both nodes for the other.
  auto first = only_b.next();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->event, "member");
  EXPECT_EQ(first->json().at("name").as_string(), "node-b");
  EXPECT_EQ(first->json().at("state").as_string(), "alive");
  EXPECT_EQ(first->json().at("address").as_string(), b.cluster_address());
  EXPECT_TRUE(first->json().at("initial").as_bool());
  auto i1 = all.next(), i2 = all.next();
  ASSERT_TRUE(i1 && i2);
  EXPECT_EQ(i1->json().at("name").as_string(), "node-a");
  EXPECT_EQ(i2->json().at("name").as_string(), "node-b");

  // kill -9: suspect, then dead, each with its previous state, as they happen.
  b.signal(SIGKILL);
  b.wait_exit();
  // (Lifeguard may stretch the timeouts on a loaded machine: generous deadlines.)
  auto suspect = only_b.next_matching(
      "member", [](const auto& o) { return o.at("state").as_string() == "suspect"; }, 15s);
  ASSERT_TRUE(suspect);
  EXPECT_EQ(suspect->json().at("previous").as_string(), "alive");
  EXPECT_FALSE(suspect->json().at("initial").as_bool());
  auto dead = only_b.next_matching(
      "member", [](const auto& o) { return o.at("state").as_string() == "dead"; }, 15s);
  ASSERT_TRUE(dead);
  EXPECT_EQ(dead->json().at("previous").as_string(), "suspect");
  // The unfiltered stream saw the same; the filtered one nothing about node-a.
  EXPECT_TRUE(all.next_matching(
      "member", [](const auto& o) { return o.at("state").as_string() == "dead"; }, 15s));
  EXPECT_FALSE(only_b.next(300ms)) << "an event not about node-b went through the filter";
}

TEST(Events, AForgottenMemberIsNotInANewSubscribersInitialState) {
  DaemonProcess a(DaemonProcess::Keys{{"node.name", "node-a"}, {"membership.reap_after", "1s"}});
  ASSERT_TRUE(a.start()) << a.failure_reason();
  DaemonProcess b(DaemonProcess::Keys{{"node.name", "node-b"},
                                      {"cluster.seeds", "[" + a.cluster_address() + "]"}});
  ASSERT_TRUE(b.start()) << b.failure_reason();
  auto state_of_b = [&] { return http_tcp(a.port(), "GET", "/v1/members/node-b"); };
  ASSERT_TRUE(eventually([&] { return state_of_b().body.find("\"alive\"") != std::string::npos; },
                         10s));
  b.signal(SIGTERM);  // left, then forgotten after reap_after
  ASSERT_EQ(b.wait_exit(), 0);
  ASSERT_TRUE(eventually([&] { return state_of_b().status == 404; }, 10s));
  auto s = EventStream::tcp(a.port(), "/v1/events");
  ASSERT_EQ(s.status(), 200);
  auto first = s.next();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->json().at("name").as_string(), "node-a");
  EXPECT_FALSE(s.next(300ms)) << "node-b is still in the initial state";
}

TEST(Events, ASubscriberThatDoesNotReadIsDroppedWithAFinalEvent) {
  // Small queue, many watched users flipping online/offline every 100 ms, and a client with
  // a tiny receive buffer that reads nothing until the daemon gives up on it.
  constexpr int kUsers = 1500;
  DaemonProcess d(DaemonProcess::Keys{{"presence.timeout", "100ms"},
                   {"events.max_queue_bytes", "4096"},
                   {"events.max_watched_users", "2000"},
                   {"api.read_timeout", "1m"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  std::string users, batch = R"({"users":[)";
  for (int i = 0; i < kUsers; ++i) {
    users += (i ? "," : "") + std::to_string(i);
    batch += (i ? "," : "") + std::to_string(i);
  }
  batch += "]}";
  auto s = EventStream::tcp(d.port(), "/v1/events?members=&users=" + users, 4096);
  ASSERT_EQ(s.status(), 200);
  // Each round is a heartbeat for every user, then their expiry: at least kUsers events
  // (offline) after it, more than the queue holds. Waiting for the events rather than a time
  // keeps the rounds apart on a slow machine too (a heartbeat before the last round's expiry
  // would change nothing), and a heartbeat that overtakes the subscription's initial state
  // still leaves that round's expiry to push.
  const std::string user_events = R"(heartbeatd_events_total{kind="user"})";
  auto dropped = [&] { return metric(d, "heartbeatd_event_subscribers_dropped_total") >= 1; };
  ASSERT_TRUE(eventually(
      [&] {
        const double before = metric(d, user_events);
        http_tcp(d.port(), "POST", "/v1/users/heartbeat", batch);
        EXPECT_TRUE(eventually(
            [&] { return dropped() || metric(d, user_events) >= before + kUsers; }, 10s))
            << "a round of heartbeats and expiries published no events";
        return dropped();
      },
      30s))
      << "the slow subscriber was never cut off";
  // Other clients are unaffected meanwhile.
  EXPECT_EQ(http_tcp(d.port(), "GET", "/v1/health").status, 200);

  // Reading now: the backlog the socket held, then the final event, then the end.
  auto last = s.next_matching("dropped", [](const auto&) { return true; }, 20s);
  ASSERT_TRUE(last);
  EXPECT_NE(std::string(last->json().at("reason").as_string()).find("events.max_queue_bytes"),
            std::string::npos);
  EXPECT_TRUE(s.wait_closed(5s));
  EXPECT_TRUE(eventually([&] { return metric(d, "heartbeatd_event_subscribers") == 0; }, 5s));
  EXPECT_TRUE(eventually([&] { return metric(d, "heartbeatd_event_watched_users") == 0; }, 5s));
}

TEST(Events, KeepalivesWhileQuiet) {
  DaemonProcess d(DaemonProcess::Keys{{"events.keepalive", "200ms"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  auto s = EventStream::tcp(d.port(), "/v1/events?members=");
  ASSERT_EQ(s.status(), 200);
  EXPECT_FALSE(s.next(1500ms));  // no events, only comments
  EXPECT_GE(s.comments(), 2);
}

TEST(Events, EachSubscriberGetsIdsInTheFormItAskedFor) {
  DaemonProcess d(DaemonProcess::Keys{{"presence.history.interval", "100ms"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  const std::string big = "18446744073709551615";  // far above 2^53
  auto as_string = EventStream::tcp(d.port(), "/v1/events?members=&ids=string&users=" + big);
  auto as_number = EventStream::tcp(d.port(), "/v1/events?members=&users=" + big);
  ASSERT_EQ(as_string.status(), 200) << as_string.body_so_far();
  ASSERT_EQ(as_number.status(), 200) << as_number.body_so_far();
  ASSERT_TRUE(as_string.next() && as_number.next());  // initial: offline
  ASSERT_EQ(http_tcp(d.port(), "POST", "/v1/users/heartbeat", R"({"users":[")" + big + R"("]})")
                .status,
            200);
  auto s = as_string.next(2s);
  auto n = as_number.next(2s);
  ASSERT_TRUE(s && n);
  EXPECT_NE(s->data.find(R"("user":")" + big + '"'), std::string::npos) << s->data;
  EXPECT_NE(n->data.find(R"("user":)" + big + ','), std::string::npos) << n->data;
  EXPECT_EQ(http_tcp(d.port(), "GET", "/v1/events?ids=strings").status, 400);

  // The count history the status page draws: samples every 100 ms, the heartbeat in them.
  EXPECT_TRUE(eventually(
      [&] {
        const auto h = http_tcp(d.port(), "GET", "/v1/users/history");
        return h.status == 200 && h.body.find(R"("online":1,"tracked":1)") != std::string::npos;
      },
      5s));
  const auto health = http_tcp(d.port(), "GET", "/v1/health");
  EXPECT_NE(health.body.find(R"("max_batch":10000)"), std::string::npos) << health.body;
}

TEST(Events, BadQueriesAndLimitsAnswerClearly) {
  DaemonProcess d(DaemonProcess::Keys{{"events.max_subscribers", "2"}, {"events.max_watched_users", "3"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  auto get = [&](const std::string& target) { return http_tcp(d.port(), "GET", target); };
  auto r = get("/v1/events?users=1,abc");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("abc"), std::string::npos) << r.body;
  EXPECT_EQ(get("/v1/events?users=1&users=2").status, 400);
  r = get("/v1/events?bogus=1");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("bogus"), std::string::npos) << r.body;
  EXPECT_EQ(get("/v1/events?members=bad%20name").status, 400);
  EXPECT_EQ(get("/v1/events?users=%zz").status, 400);
  r = get("/v1/events?users=1,2,3,4");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("events.max_watched_users"), std::string::npos) << r.body;
  EXPECT_EQ(http_tcp(d.port(), "POST", "/v1/events").status, 405);

  // Duplicates count once; %2C is a comma.
  auto a = EventStream::tcp(d.port(), "/v1/events?users=1%2C2,2,1&members=");
  ASSERT_EQ(a.status(), 200);
  // Watched users are capped across subscribers (2 watched, 2 more would be 4 > 3).
  auto over = EventStream::tcp(d.port(), "/v1/events?users=3,4");
  EXPECT_EQ(over.status(), 503);
  auto b = EventStream::tcp(d.port(), "/v1/events?users=2,3");  // 3 distinct in all
  ASSERT_EQ(b.status(), 200);
  // Subscribers are capped.
  auto c = EventStream::tcp(d.port(), "/v1/events?members=");
  EXPECT_EQ(c.status(), 503);
  EXPECT_NE(c.head().find("Retry-After"), std::string::npos) << c.head();
  EXPECT_NE(c.body_so_far().find("events.max_subscribers"), std::string::npos);

  // A client that leaves frees its place.
  { auto gone = std::move(a); }
  EXPECT_TRUE(eventually(
      [&] { return EventStream::tcp(d.port(), "/v1/events?members=").status() == 200; }, 5s));
  EXPECT_EQ(get("/v1/health").status, 200);
}

TEST(Events, StreamsNeverTakeMoreThanHalfTheConnections) {
  // max_subscribers: 64. No Unix reserve: all four connections are TCP's to share between
  // streams and requests (the refused third stream may still hold one while it closes).
  DaemonProcess d(DaemonProcess::Keys{{"api.max_connections", "4"},
                                      {"api.unix_reserved_connections", "0"}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  auto a = EventStream::tcp(d.port(), "/v1/events?members=");
  auto b = EventStream::tcp(d.port(), "/v1/events?members=");
  ASSERT_EQ(a.status(), 200);
  ASSERT_EQ(b.status(), 200);
  EXPECT_EQ(EventStream::tcp(d.port(), "/v1/events?members=").status(), 503);
  EXPECT_EQ(http_tcp(d.port(), "GET", "/v1/health").status, 200);  // requests still get in
}

TEST(Events, OpenStreamsDoNotHoldUpAStop) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.failure_reason();
  auto s = EventStream::tcp(d.port(), "/v1/events?users=1");
  ASSERT_EQ(s.status(), 200);
  ASSERT_TRUE(s.next());
  const auto t0 = std::chrono::steady_clock::now();
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait_exit(5s), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_TRUE(s.wait_closed(1s));
}

}  // namespace
}  // namespace heartbeatd::test
