#include "membership/local_health.h"

#include <algorithm>

namespace heartbeatd::membership {

void LocalHealth::worsen(TimePoint now) {
  score_ = std::min(kMax, score_ + 1);
  changed_ = now;
}

void LocalHealth::recover(TimePoint now, Duration quiet) {
  // Nothing to recover from; changed_ is meaningless until the first worsen().
  if (score_ == 0) return;
  if (now - changed_ < quiet) return;
  --score_;
  changed_ = now;
}

}  // namespace heartbeatd::membership
