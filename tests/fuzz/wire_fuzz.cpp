// libFuzzer target for the membership datagram path: the envelope (transport/cluster/datagram_seal.h)
// and the body codec (membership/wire_codec.h). Any bytes must give a body or a drop reason,
// a message or an error, never a crash; an accepted body must be the only encoding of its
// message (re-encodes to the same bytes, decodes back equal); an accepted plain datagram must
// be what seal() makes of its body; and a keyed receiver must never accept unsealed bytes.
// Built and run by scripts/fuzz, not by scripts/test.
//
// Compiled with -DWIRE_FUZZ_SEED_WRITER instead of -fsanitize=fuzzer, main() writes a seed
// corpus: valid bodies of every message type, and the same bodies as plain datagrams.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <span>
#include <variant>
#include <vector>

#include "membership/wire_codec.h"
#include "transport/cluster/datagram_seal.h"

namespace {

using heartbeatd::membership::DecodeError;
using heartbeatd::membership::Message;
using heartbeatd::transport::DatagramSeal;
using Bytes = std::vector<std::uint8_t>;

const DatagramSeal& plain() {
  static const DatagramSeal s("fuzz", std::nullopt);
  return s;
}
const DatagramSeal& keyed() {
  static const DatagramSeal s("fuzz", heartbeatd::transport::SealKey{7, 7, 7, 7});
  return s;
}

void check_body(std::span<const std::uint8_t> body) {
  auto r = heartbeatd::membership::decode(body);
  if (auto* m = std::get_if<Message>(&r)) {
    const Bytes again = heartbeatd::membership::encode(*m);  // throwing is a finding too
    if (!std::equal(again.begin(), again.end(), body.begin(), body.end())) std::abort();
    auto back = heartbeatd::membership::decode(again);
    if (!std::holds_alternative<Message>(back) || std::get<Message>(back) != *m) std::abort();
  } else if (std::get<DecodeError>(r).message.empty()) {
    std::abort();  // every refusal says why
  }
}

}  // namespace

#ifndef WIRE_FUZZ_SEED_WRITER

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);
  check_body(input);

  auto opened = plain().open(input);
  if (auto* o = std::get_if<DatagramSeal::Opened>(&opened)) {
    check_body(o->body);
    if (size <= heartbeatd::transport::kMaxDatagramBytes &&
        plain().seal(o->body) != Bytes(data, data + size)) {
      std::abort();
    }
  }

  if (std::holds_alternative<DatagramSeal::Opened>(keyed().open(input))) std::abort();  // forged
  if (size <= heartbeatd::transport::kMaxDatagramBytes - DatagramSeal::overhead_bytes) {
    auto back = keyed().open(keyed().seal(input));
    auto* o = std::get_if<DatagramSeal::Opened>(&back);
    if (!o || !std::equal(o->body.begin(), o->body.end(), input.begin(), input.end())) std::abort();
  }
  return 0;
}

#else

#include <fstream>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
  using namespace heartbeatd::membership;
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " CORPUS_DIR\n";
    return 2;
  }
  auto write = [&](const std::string& name, const Bytes& b) {
    std::ofstream(std::string(argv[1]) + "/" + name, std::ios::binary)
        .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  };
  const std::vector<Update> updates = {
      {MemberState::alive, "a", *parse_address("10.0.0.2:7701"), 1, ""},
      {MemberState::suspect, "b-2", *parse_address("[2001:db8::2]:7701"), 300, "a"},
      {MemberState::dead, "c.3", *parse_address("10.0.0.3:1"), UINT64_MAX, "b-2"},
      {MemberState::left, "d_4", *parse_address("[::1]:65535"), 0, ""},
  };
  for (std::uint8_t t = 1; t <= 9; ++t) {
    Message m;
    m.type = static_cast<MessageType>(t);
    m.sender = {"node-1", *parse_address("10.0.0.1:7701"), 5};
    if (m.type == MessageType::ping || m.type == MessageType::ping_req) m.target = "node-2";
    if (m.type == MessageType::ping_req) m.target_address = *parse_address("[fe80::2]:7701");
    if (m.type >= MessageType::ping && m.type <= MessageType::nack) m.seq = 77;
    if (m.type == MessageType::sync || m.type == MessageType::sync_reply) {
      m.digest = 0xfeedfacecafebeefull;
      m.flags = kSyncJoin;
    }
    const std::string name(to_string(m.type));
    for (bool with_updates : {false, true}) {
      if (with_updates) m.updates = updates;
      const std::string suffix = with_updates ? "-updates" : "";
      const Bytes body = encode(m);
      write("body-" + name + suffix, body);
      write("plain-" + name + suffix, plain().seal(body));
    }
  }
  return 0;
}

#endif
