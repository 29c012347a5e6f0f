// ReplayWindow: which of one sender's datagrams this node has already accepted, so that a
// copy counts for nothing (docs/PROTOCOL.md, "Trust"). A datagram is named by the sender's
// boot epoch (larger at every start) and its counter within that boot. The window keeps the
// highest counter of the latest boot and a bitmap of the kSize counters below it, as the
// anti-replay window of IPsec (RFC 4303 section 3.4.3) does: anything older than the window
// is refused, since it can no longer be told apart from a replay.
//
// The counter is the sender's for all its datagrams, of which a receiver sees a subset, so
// the window is wide: datagrams to us reordered behind kSize of the sender's others are lost.
//
// Pure value type; thread safety: none (one per member, under the protocol's owner).
#pragma once

#include <bitset>
#include <cstddef>
#include <cstdint>

namespace heartbeatd::membership {

class ReplayWindow {
 public:
  static constexpr std::size_t kSize = 256;

  // True, and remembered, if (boot, counter) was not seen and is not older than the window;
  // a later boot starts the window again (the sender restarted: its earlier boots are dead).
  bool accept(std::uint64_t boot, std::uint64_t counter);
  // Whether any datagram was accepted yet (a closed window accepts the first it is shown).
  bool open() const { return open_; }

 private:
  bool open_ = false;
  std::uint64_t boot_ = 0;
  std::uint64_t max_ = 0;    // highest counter accepted in boot_
  std::bitset<kSize> seen_;  // bit i: counter max_ - i was accepted
};

}  // namespace heartbeatd::membership
