// Small hashing helpers shared by the presence table and the monitor ring.
//
// Pure functions; thread-safe.
#pragma once

#include <cstdint>

namespace heartbeatd::membership {

// murmur3's 64-bit finaliser: every input bit affects every output bit. Part of the
// membership protocol through ring_position(): never change it.
inline std::uint64_t mix64(std::uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

}  // namespace heartbeatd::membership
