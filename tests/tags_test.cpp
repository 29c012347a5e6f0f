// Member tags between real heartbeatd processes: node.tags announced at start, filtered with
// GET /v1/members?tag=, changed by SIGHUP (a new incarnation everyone learns), reported on the
// event stream, and kept across a restart by the data directory. Every wait is for a
// condition with a deadline.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/daemon_process.h"
#include "tests/support/event_stream.h"
#include "tests/support/http_client.h"
#include "tests/support/test_util.h"

namespace heartbeatd::test {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

std::string name(std::size_t i) {
  return "node-" + std::to_string(i);
}

// The tags `observer` lists for `subject` ("" when it does not list it).
std::string tags_seen(const DaemonProcess& observer, const std::string& subject) {
  auto r = http_tcp(observer.port(), "GET", "/v1/members/" + subject);
  if (r.status != 200) return "";
  return json::serialize(json::parse(r.body).at("tags"));
}

std::vector<std::string> names(const DaemonProcess& d, const std::string& query) {
  auto r = http_tcp(d.port(), "GET", "/v1/members" + query);
  EXPECT_EQ(r.status, 200) << query << ": " << r.body;
  std::vector<std::string> out;
  if (r.status != 200) return out;
  const json::value body = json::parse(r.body);
  for (const auto& m : body.at("members").as_array()) {
    out.emplace_back(m.at("name").as_string());
  }
  return out;
}

class TagsCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::vector<std::string> tags = {"{role: db, zone: a}", "{role: db, zone: b}",
                                           "{role: web, zone: b}"};
    for (std::size_t i = 0; i < 3; ++i) {
      keys_.push_back({{"node.name", name(i)}, {"node.tags", tags[i]}});
      if (i > 0) keys_[i]["cluster.seeds"] = "[" + nodes_[0]->cluster_address() + "]";
      nodes_.push_back(std::make_unique<DaemonProcess>(keys_[i]));
      ASSERT_TRUE(nodes_[i]->start()) << nodes_[i]->failure_reason();
    }
    ASSERT_TRUE(eventually(
        [&] {
          for (std::size_t i = 0; i < 3; ++i) {
            if (names(*nodes_[i], "?state=alive").size() != 3) return false;
          }
          return true;
        },
        10s))
        << "the three nodes did not see each other alive";
  }
  DaemonProcess& node(std::size_t i) { return *nodes_[i]; }

  std::vector<DaemonProcess::Keys> keys_;
  std::vector<std::unique_ptr<DaemonProcess>> nodes_;
};

TEST_F(TagsCluster, TagsReachEveryNodeAndFilterTheList) {
  // Each node's tags are known everywhere, its own included.
  ASSERT_TRUE(eventually(
      [&] {
        for (std::size_t i = 0; i < 3; ++i) {
          if (tags_seen(node(i), "node-1") != R"({"role":"db","zone":"b"})") return false;
          if (tags_seen(node(i), "node-2") != R"({"role":"web","zone":"b"})") return false;
        }
        return true;
      },
      10s))
      << tags_seen(node(0), "node-1") << " " << tags_seen(node(2), "node-1");
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(names(node(i), "?tag=role:db"), (std::vector<std::string>{"node-0", "node-1"}));
    EXPECT_EQ(names(node(i), "?tag=role:db&tag=zone:b"), (std::vector<std::string>{"node-1"}));
    EXPECT_EQ(names(node(i), "?state=alive&tag=zone:b&name=node-*"),
              (std::vector<std::string>{"node-1", "node-2"}));
    EXPECT_EQ(names(node(i), "?tag=zone"), (std::vector<std::string>{"node-0", "node-1", "node-2"}));
    EXPECT_TRUE(names(node(i), "?tag=role:cache").empty());
  }
  EXPECT_EQ(http_tcp(node(0).port(), "GET", "/v1/members?tag=bad%20key").status, 400);
}

TEST_F(TagsCluster, ASighupChangeIsAnnouncedAtANewIncarnationAndStreamed) {
  auto events = EventStream::tcp(node(0).port(), "/v1/events?members=node-2");
  ASSERT_EQ(events.status(), 200);
  ASSERT_TRUE(events.next_matching("member", [](const json::object&) { return true; }, 5s));
  ASSERT_TRUE(eventually(
      [&] { return tags_seen(node(0), "node-2") == R"({"role":"web","zone":"b"})"; }, 10s));
  const auto before = json::parse(http_tcp(node(2).port(), "GET", "/v1/members/node-2").body)
                          .at("incarnation")
                          .to_number<std::uint64_t>();

  keys_[2]["node.tags"] = "{role: cache, zone: c, rack: r7}";
  node(2).write_config(keys_[2]);
  const auto seen = node(2).notifications().size();
  node(2).signal(SIGHUP);
  ASSERT_TRUE(node(2).wait_notification("config reloaded", 10s, seen)) << node(2).log();
  EXPECT_TRUE(node(2).wait_log("node.tags: {role: web, zone: b} -> {rack: r7, role: cache, zone: c}"))
      << node(2).log();

  const std::string want = R"({"rack":"r7","role":"cache","zone":"c"})";
  ASSERT_TRUE(eventually(
      [&] { return tags_seen(node(0), "node-2") == want && tags_seen(node(1), "node-2") == want; },
      5s))
      << tags_seen(node(0), "node-2") << " " << tags_seen(node(1), "node-2");
  const auto after = json::parse(http_tcp(node(0).port(), "GET", "/v1/members/node-2").body)
                         .at("incarnation")
                         .to_number<std::uint64_t>();
  EXPECT_GT(after, before);
  EXPECT_EQ(names(node(0), "?tag=role:cache"), (std::vector<std::string>{"node-2"}));
  EXPECT_EQ(names(node(1), "?tag=role:web"), std::vector<std::string>{});

  // The stream reports the change: alive, previous alive, with the new tags.
  auto e = events.next_matching(
      "member",
      [&](const json::object& o) {
        return o.at("name") == "node-2" && json::serialize(o.at("tags")) == want;
      },
      5s);
  ASSERT_TRUE(e) << "no member event with the new tags";
  const auto o = json::parse(e->data).as_object();
  EXPECT_EQ(o.at("state"), "alive");
  EXPECT_EQ(o.at("previous"), "alive");
  EXPECT_EQ(o.at("initial"), false);
  // Nobody was suspected for it.
  EXPECT_EQ(names(node(0), "?state=suspect,dead"), std::vector<std::string>{});
}

TEST_F(TagsCluster, TheDataDirectoryKeepsOthersTagsAcrossARestart) {
  ASSERT_TRUE(eventually(
      [&] {
        return tags_seen(node(0), "node-1") == R"({"role":"db","zone":"b"})" &&
               tags_seen(node(0), "node-2") == R"({"role":"web","zone":"b"})";
      },
      10s));
  // With both others gone, node-0 can learn their tags from nothing but its own data.
  node(1).signal(SIGKILL);
  node(2).signal(SIGKILL);
  ASSERT_TRUE(node(1).wait_exit());
  ASSERT_TRUE(node(2).wait_exit());
  node(0).signal(SIGTERM);
  ASSERT_EQ(node(0).wait_exit(), 0);
  ASSERT_TRUE(node(0).start()) << node(0).failure_reason();
  EXPECT_EQ(tags_seen(node(0), "node-1"), R"({"role":"db","zone":"b"})");
  EXPECT_EQ(tags_seen(node(0), "node-2"), R"({"role":"web","zone":"b"})");
  EXPECT_EQ(tags_seen(node(0), "node-0"), R"({"role":"db","zone":"a"})");
}

TEST(Tags, BadTagsInTheConfigStopTheStartWithExitTwo) {
  DaemonProcess d(DaemonProcess::Keys{{"node.tags", "{\"bad key\": x}"}});
  EXPECT_FALSE(d.start(5s));
  EXPECT_EQ(d.wait_exit(), 2);
  EXPECT_NE(d.log().find("node.tags: tag key \"bad key\""), std::string::npos) << d.log();
}

}  // namespace
}  // namespace heartbeatd::test
