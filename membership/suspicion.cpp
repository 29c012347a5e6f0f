#include "membership/suspicion.h"

#include <algorithm>
#include <cmath>

namespace heartbeatd::membership {

Duration suspicion_timeout(std::uint32_t confirmations, std::uint32_t expected, Duration min,
                           Duration max) {
  if (max <= min || expected == 0 || confirmations >= expected) return min;
  const double fraction = std::log(static_cast<double>(confirmations) + 1.0) /
                          std::log(static_cast<double>(expected) + 1.0);
  const auto span = static_cast<double>((max - min).count());
  const auto shortened = max - Duration(static_cast<Duration::rep>(span * fraction));
  return std::max(min, shortened);
}

}  // namespace heartbeatd::membership
