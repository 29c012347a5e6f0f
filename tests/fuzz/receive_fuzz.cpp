// libFuzzer target for the whole receive path: datagrams (any bytes, from any address) into
// a converged simulated cluster, then the invariants of tests/fuzz/receive_harness.h (no
// node sees itself dead, max_members holds, a clean network heals every live member).
// Built and run by scripts/fuzz; its committed corpus is replayed in the ordinary build by
// tests/receive_corpus_test.cpp.
//
// Compiled with -DRECEIVE_FUZZ_SEED_WRITER instead of -fsanitize=fuzzer, main() writes a
// seed corpus: real protocol messages (news about real and made-up members, probes, joins)
// sent from real and spoofed addresses.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "tests/fuzz/receive_harness.h"

#ifndef RECEIVE_FUZZ_SEED_WRITER

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (auto broken = heartbeatd::fuzz::run_receive_input(std::span(data, size))) {
    std::fprintf(stderr, "receive_fuzz: invariant broken: %s\n", broken->c_str());
    std::abort();
  }
  return 0;
}

#else

#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "membership/wire_codec.h"

int main(int argc, char** argv) {
  using namespace heartbeatd::membership;
  using heartbeatd::fuzz::receive_chunk;
  using Bytes = std::vector<std::uint8_t>;
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " CORPUS_DIR\n";
    return 2;
  }
  auto write = [&](const std::string& name, const Bytes& b) {
    std::ofstream(std::string(argv[1]) + "/" + name, std::ios::binary)
        .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  };
  // The harness's cluster: node-i at 10.0.0.(i+1):7701, incarnations near 0.
  auto addr = [](int i) {
    return Address::v4(0x0a000000u + static_cast<std::uint32_t>(i + 1), 7701);
  };
  auto node = [](int i) { return "node-" + std::to_string(i); };
  auto body = [&](MessageType type, int sender, std::vector<Update> updates) {
    Message m;
    m.type = type;
    m.sender = {node(sender), addr(sender), 0};
    if (type == MessageType::ping || type == MessageType::ping_req) m.target = node(2);
    if (type == MessageType::ping_req) m.target_address = addr(2);
    if (type >= MessageType::ping && type <= MessageType::nack) m.seq = 1;
    if (type == MessageType::sync) m.flags = kSyncJoin;
    m.updates = std::move(updates);
    return encode(m);
  };
  auto one = [&](std::uint8_t target, std::uint8_t source, const Bytes& b) {
    return receive_chunk(target, source, 50, heartbeatd::fuzz::kChunkBody, b);
  };
  auto cat = [](std::vector<Bytes> parts) {
    Bytes out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
  };
  // Each kind of message once, from its real sender.
  for (std::uint8_t t = 1; t <= 9; ++t) {
    const auto type = static_cast<MessageType>(t);
    write("each-" + std::string(to_string(type)), one(0, 1, body(type, 1, {})));
  }
  // Accusations of a live member, spoofed as coming from another member.
  write("suspect-node-2",
        one(0, 1,
            body(MessageType::gossip, 1, {{MemberState::suspect, node(2), addr(2), 0, node(1)}})));
  write(
      "dead-node-3",
      one(1, 4, body(MessageType::gossip, 3, {{MemberState::dead, node(3), addr(3), 0, node(0)}})));
  write("left-node-1",
        one(2, 5, body(MessageType::heartbeat, 0, {{MemberState::left, node(1), addr(1), 0, ""}})));
  // News of members that do not exist, and a name claimed from another address.
  std::vector<Update> strangers;
  for (int i = 0; i < 10; ++i) {
    strangers.push_back({MemberState::alive, "ghost-" + std::to_string(i),
                         Address::v4(0x0a000100u + static_cast<std::uint32_t>(i), 7701), 1, ""});
  }
  write("ghosts", one(3, 4, body(MessageType::sync_reply, 0, strangers)));
  write("claim-node-0",
        one(1, 4, body(MessageType::sync, 0, {{MemberState::alive, node(0), addr(0), 9, ""}})));
  // A sequence: a suspicion, an unanswered probe, a confirmation from another accuser.
  write("sequence",
        cat({receive_chunk(0, 1, 10, heartbeatd::fuzz::kChunkBody,
                           body(MessageType::gossip, 1,
                                {{MemberState::suspect, node(2), addr(2), 0, node(1)}})),
             receive_chunk(1, 3, 100, heartbeatd::fuzz::kChunkBody,
                           body(MessageType::ping_req, 3, {})),
             receive_chunk(3, 0, 200, heartbeatd::fuzz::kChunkBody,
                           body(MessageType::gossip, 0,
                                {{MemberState::suspect, node(2), addr(2), 0, node(0)}}))}));
  // Described messages (kChunkDescribed): a gossip from node-1 suspecting node-2 at 1, and
  // a sync_reply from a made-up member bringing two made-up members.
  write("described-suspect", receive_chunk(0, 1, 20, heartbeatd::fuzz::kChunkDescribed,
                                           Bytes{6, 1, 1, 0, 0, 0, 0, 0, 1, 1, 2, 2, 1, 1}));
  write("described-ghosts",
        receive_chunk(2, 4, 20, heartbeatd::fuzz::kChunkDescribed,
                      Bytes{8, 4, 4, 1, 0, 0, 0, 0, 2, 0, 5, 4, 1, 255, 0, 6, 5, 1, 255}));
  return 0;
}

#endif
