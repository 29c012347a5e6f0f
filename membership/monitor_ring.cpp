#include "membership/monitor_ring.h"

#include "membership/hash.h"

#include <algorithm>
#include <utility>

namespace heartbeatd::membership {

std::uint64_t ring_position(std::string_view name) {
  // FNV-1a, then a 64-bit finaliser so names that differ in one character spread evenly.
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return mix64(h);
}

std::uint64_t ring_position(std::string_view name, std::uint64_t key) {
  if (key == 0) return ring_position(name);
  std::uint64_t h = mix64(key ^ 0x6a09e667f3bcc908ull);
  for (unsigned char c : name) h = mix64(h ^ key ^ c);
  return mix64(h ^ name.size());
}

std::pair<std::vector<std::size_t>, std::vector<std::size_t>> ring_neighbour_indices(
    std::size_t n, std::size_t at, std::uint32_t k) {
  std::pair<std::vector<std::size_t>, std::vector<std::size_t>> out;
  if (n < 2 || at >= n) return out;
  const auto count = std::min<std::size_t>(k, n - 1);
  for (std::size_t i = 1; i <= count; ++i) {
    out.first.push_back((at + i) % n);
    out.second.push_back((at + n - i) % n);
  }
  return out;
}

RingNeighbours ring_neighbours(const std::vector<std::string_view>& members, std::string_view self,
                               std::uint32_t k) {
  std::vector<std::pair<std::uint64_t, std::string_view>> ring;
  ring.reserve(members.size());
  for (auto name : members) ring.emplace_back(ring_position(name), name);
  std::sort(ring.begin(), ring.end());
  ring.erase(std::unique(ring.begin(), ring.end()), ring.end());

  RingNeighbours out;
  auto me = std::find_if(ring.begin(), ring.end(), [&](const auto& p) { return p.second == self; });
  if (me == ring.end()) return out;
  const auto [after, before] =
      ring_neighbour_indices(ring.size(), static_cast<std::size_t>(me - ring.begin()), k);
  for (auto i : after) out.monitors.emplace_back(ring[i].second);
  for (auto i : before) out.subjects.emplace_back(ring[i].second);
  return out;
}

}  // namespace heartbeatd::membership
