// ReplayWindow: each counter accepted once within the window, its edges, a jump past it, and
// a restart (a later boot) retiring the earlier one.
#include "membership/replay_window.h"

#include <gtest/gtest.h>

namespace heartbeatd::membership {
namespace {

TEST(ReplayWindow, EachCounterOnceWithinTheWindowAndOnlyTheLatestBoot) {
  ReplayWindow w;
  EXPECT_FALSE(w.open());
  EXPECT_TRUE(w.accept(5, 100));  // the first datagram opens it, whatever its counter
  EXPECT_TRUE(w.open());
  EXPECT_FALSE(w.accept(5, 100));  // a copy
  EXPECT_TRUE(w.accept(5, 90));    // late, but new
  EXPECT_FALSE(w.accept(5, 90));
  EXPECT_TRUE(w.accept(5, 101));
  // The window's edge: kSize - 1 below the highest is still told apart, kSize is not.
  const auto top = 101 + ReplayWindow::kSize;
  EXPECT_TRUE(w.accept(5, top));
  EXPECT_TRUE(w.accept(5, top - (ReplayWindow::kSize - 1)));
  EXPECT_FALSE(w.accept(5, top - (ReplayWindow::kSize - 1)));
  EXPECT_FALSE(w.accept(5, top - ReplayWindow::kSize));
  // A jump past the whole window forgets it; what was seen below is now too old.
  EXPECT_TRUE(w.accept(5, top + 10 * ReplayWindow::kSize));
  EXPECT_FALSE(w.accept(5, top));
  // A restart: the later boot starts again at its first counter; the earlier boot is dead.
  EXPECT_TRUE(w.accept(6, 1));
  EXPECT_FALSE(w.accept(5, top + 10 * ReplayWindow::kSize + 1));
  EXPECT_TRUE(w.accept(6, 2));
  EXPECT_FALSE(w.accept(6, 1));
}

}  // namespace
}  // namespace heartbeatd::membership
