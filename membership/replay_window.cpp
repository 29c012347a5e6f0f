#include "membership/replay_window.h"

namespace heartbeatd::membership {

bool ReplayWindow::accept(std::uint64_t boot, std::uint64_t counter) {
  if (open_ && boot < boot_) return false;  // an earlier life of the sender
  if (!open_ || boot > boot_) {
    open_ = true;
    boot_ = boot;
    max_ = counter;
    seen_.reset();
    seen_.set(0);
    return true;
  }
  if (counter > max_) {
    const auto shift = counter - max_;
    if (shift >= kSize) {
      seen_.reset();
    } else {
      seen_ <<= static_cast<std::size_t>(shift);
    }
    seen_.set(0);
    max_ = counter;
    return true;
  }
  const auto age = max_ - counter;
  if (age >= kSize || seen_.test(static_cast<std::size_t>(age))) return false;
  seen_.set(static_cast<std::size_t>(age));
  return true;
}

}  // namespace heartbeatd::membership
