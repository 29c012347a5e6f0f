// The whole receive path under hostile input, as one pure function shared by the libFuzzer
// target (tests/fuzz/receive_fuzz.cpp, run by scripts/fuzz) and the corpus replay test
// (tests/receive_corpus_test.cpp, part of the ordinary build).
//
// A converged cluster of kReceiveNodes nodes runs on the simulated network
// (tests/support/sim_cluster.h). The input is a sequence of chunks, each one datagram:
//
//   [target node][source][advance ms][flags][length: 2 bytes little-endian][length bytes]
//
// target picks the receiving node (mod kReceiveNodes); source picks the address it seems to
// come from (mod kReceiveSources: the real nodes' addresses, then an unknown IPv4 and an
// unknown IPv6 one: spoofing is free on UDP). flags:
//   kChunkBody      the bytes are a body: wrap them in a plain envelope first (so the fuzzer
//                   need not find the envelope's tag);
//   kChunkDescribed the bytes describe a valid message (type, sender, updates, each field a
//                   byte picking among the members, made-up names, addresses and notable
//                   incarnations such as 2^64-1), which the harness encodes and wraps, so
//                   most mutations are messages the protocol accepts (see describe()).
// The datagram goes through DatagramSeal::open, then MembershipProtocol::receive; then the
// cluster runs on a clean network for `advance` ms.
//
// Checked after every chunk: no node ever sees itself dead, no node tracks more than
// max_members. Checked after the input: on a clean network every real node is seen alive by
// every other within kRecoveryBound of simulated time, and still is kHoldAfter later (news
// from outside may not keep a live member dead).
//
// Thread safety: none needed; every call builds its own cluster.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace heartbeatd::fuzz {

inline constexpr std::size_t kReceiveNodes = 4;
inline constexpr std::size_t kReceiveSources = kReceiveNodes + 2;
inline constexpr std::size_t kReceiveMaxMembers = 12;
inline constexpr std::size_t kReceiveMaxChunks = 64;
inline constexpr std::uint8_t kChunkBody = 1;
inline constexpr std::uint8_t kChunkDescribed = 2;

// The first invariant the input breaks, described; nullopt if it breaks none.
std::optional<std::string> run_receive_input(std::span<const std::uint8_t> input);

// One chunk in the input format above (for seed writers and tests).
std::vector<std::uint8_t> receive_chunk(std::uint8_t target, std::uint8_t source,
                                        std::uint8_t advance_ms, std::uint8_t flags,
                                        std::span<const std::uint8_t> bytes);

}  // namespace heartbeatd::fuzz
