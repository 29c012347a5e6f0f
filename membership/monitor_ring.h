// MonitorRing: who watches whom. Members (alive or suspect, self included) sit on a ring
// ordered by a hash of their name; each member sends heartbeats to the `k` members after it
// (its monitors) and watches the `k` members before it (its subjects). Every member is
// watched by k others whatever the cluster size, so per-node load is constant, and a crash
// is noticed by k independent monitors at once — the confirmations that let a suspicion
// end quickly. Views that briefly disagree cost nothing worse than a probe: a monitor
// that stops hearing from a subject asks it directly and through helpers before it accuses.
//
// Pure function; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace heartbeatd::membership {

struct RingNeighbours {
  std::vector<std::string> monitors;  // who I send heartbeats to
  std::vector<std::string> subjects;  // whose heartbeats I watch
};

// Stable across processes and versions: part of the protocol (docs/PROTOCOL.md).
std::uint64_t ring_position(std::string_view name);
// Keyed: every byte of the name is mixed with state that depends on `key`, so whoever does
// not hold the key cannot pick names that land next to a victim (a keyed hash, not a MAC).
// Key 0 is the public ring_position(name).
std::uint64_t ring_position(std::string_view name, std::uint64_t key);

// On a ring of n members sorted by (ring_position, name), the indices of the k members
// after `at` (its monitors) and the k before it (its subjects). With fewer than k + 1
// members, everyone watches everyone.
std::pair<std::vector<std::size_t>, std::vector<std::size_t>> ring_neighbour_indices(
    std::size_t n, std::size_t at, std::uint32_t k);

// The same rule by name. `members` must contain `self`; duplicates are ignored.
RingNeighbours ring_neighbours(const std::vector<std::string_view>& members, std::string_view self,
                               std::uint32_t k);

}  // namespace heartbeatd::membership
