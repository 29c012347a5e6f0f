// suspicion_timeout() (Lifeguard's shrinking suspicion timer) at its boundaries: no
// confirmation, all expected confirmations, none expected, and max below min.
#include "membership/suspicion.h"

#include <gtest/gtest.h>

#include <cmath>

namespace heartbeatd::membership {
namespace {

using namespace std::chrono_literals;

TEST(SuspicionTimeout, ShrinksFromMaxToMinAsConfirmationsArrive) {
  const Duration min = 800ms, max = 4s;
  struct Case {
    std::uint32_t confirmations, expected;
    Duration want;
  };
  for (auto c :
       {Case{0, 2, max}, Case{2, 2, min}, Case{5, 2, min}, Case{0, 0, min}, Case{3, 3, min}}) {
    EXPECT_EQ(suspicion_timeout(c.confirmations, c.expected, min, max), c.want)
        << c.confirmations << "/" << c.expected;
  }
  // One of two expected: log(2)/log(3) of the way down.
  const auto one = suspicion_timeout(1, 2, min, max);
  EXPECT_GT(one, min);
  EXPECT_LT(one, max);
  EXPECT_NEAR(std::chrono::duration<double>(one).count(), 4.0 - 3.2 * std::log(2) / std::log(3),
              1e-6);
  EXPECT_EQ(suspicion_timeout(0, 2, min, min / 2), min);  // max below min: min wins
}

}  // namespace
}  // namespace heartbeatd::membership
