// The monitor ring: every member has k monitors and k subjects, symmetrically; small
// clusters watch everyone else; ring positions are part of the protocol and never change.
#include "membership/monitor_ring.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace heartbeatd::membership {
namespace {

TEST(MonitorRing, EveryMemberHasKMonitorsAndKSubjects) {
  std::vector<std::string> names;
  for (int i = 0; i < 50; ++i) names.push_back("n" + std::to_string(i));
  std::vector<std::string_view> views(names.begin(), names.end());
  std::map<std::string, int> watched;
  for (const auto& self : names) {
    auto r = ring_neighbours(views, self, 3);
    ASSERT_EQ(r.monitors.size(), 3u);
    ASSERT_EQ(r.subjects.size(), 3u);
    for (const auto& m : r.monitors) {
      EXPECT_NE(m, self);
      // Symmetry: I am among my monitor's subjects.
      auto back = ring_neighbours(views, m, 3);
      EXPECT_NE(std::find(back.subjects.begin(), back.subjects.end(), self), back.subjects.end());
      ++watched[self];
    }
  }
  for (const auto& n : names) EXPECT_EQ(watched[n], 3);
}

TEST(MonitorRing, SmallClustersWatchEveryoneElse) {
  std::vector<std::string_view> two{"a", "b"};
  auto r = ring_neighbours(two, "a", 3);
  EXPECT_EQ(r.monitors, std::vector<std::string>{"b"});
  EXPECT_EQ(r.subjects, std::vector<std::string>{"b"});
  EXPECT_TRUE(ring_neighbours({"a"}, "a", 3).monitors.empty());
  EXPECT_TRUE(ring_neighbours({"a", "b"}, "zzz", 3).monitors.empty());
}

TEST(MonitorRing, PositionsAreStable) {
  // Part of the protocol: every version must place names identically.
  EXPECT_EQ(ring_position("node-1"), 5585492581121082157ull);
  EXPECT_NE(ring_position("node-1"), ring_position("node-2"));
}

}  // namespace
}  // namespace heartbeatd::membership
