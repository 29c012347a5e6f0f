// Wire codec: round trips of every message type, exact sizes, the byte layout itself, the
// size limit, every class of malformed input, and random corruption of valid encodings.
#include "membership/wire_codec.h"

#include <gtest/gtest.h>

#include <limits>
#include <optional>
#include <random>
#include <stdexcept>

#include "tests/support/test_util.h"

namespace heartbeatd::membership {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr MessageType kAllTypes[] = {
    MessageType::heartbeat, MessageType::ping,       MessageType::ack,
    MessageType::ping_req,  MessageType::nack,       MessageType::gossip,
    MessageType::sync,      MessageType::sync_reply, MessageType::refuse};

Address v6(std::string_view text) {
  return parse_address(text).value();
}

std::string long_name(char c) {
  return std::string(kMaxNameBytes, c);
}

// Exercises both families, both extremes of the varint and the longest names.
std::vector<Update> sample_updates() {
  return {
      {MemberState::alive, "node-1", Address::v4(0x0a000001, 7701), 0, ""},
      {MemberState::suspect, long_name('s'), v6("[2001:db8::1]:65535"),
       std::numeric_limits<std::uint64_t>::max(), long_name('f')},
      {MemberState::dead, "n.2_x", Address::v4(0xffffffff, 1), 127, "accuser"},
      {MemberState::left, "Z", v6("[::1]:7701"), 128, ""},
  };
}

// A message using every field its type encodes, with values at their edges.
Message sample(MessageType type, bool with_updates) {
  Message m;
  m.type = type;
  m.sender = {long_name('a'), v6("[fe80::1:2:3:4]:7701"),
              std::numeric_limits<std::uint64_t>::max()};
  m.boot = 0x0102030405060708ull;
  m.counter = std::numeric_limits<std::uint64_t>::max();
  m.to = 0xfffffffe;
  m.cluster = 0x80000001;
  m.cookie = std::uint64_t{1} << 63;
  m.echo = 1;
  switch (type) {
    case MessageType::ping:
      m.seq = std::numeric_limits<std::uint32_t>::max();
      m.target = "target.node";
      break;
    case MessageType::ping_req:
      m.seq = 0x01020304;
      m.target = long_name('t');
      m.target_address = v6("[2001:db8::ffff]:9");
      break;
    case MessageType::ack:
    case MessageType::nack:
      m.seq = 42;
      break;
    case MessageType::sync:
    case MessageType::sync_reply:
      m.digest = 0x0123456789abcdefull;
      m.flags = kSyncJoin | kSyncMore;
      m.padding = 300;
      break;
    default:
      break;
  }
  if (with_updates) m.updates = sample_updates();
  return m;
}

std::vector<Bytes> sample_encodings() {
  std::vector<Bytes> out;
  for (auto t : kAllTypes) {
    for (bool with_updates : {false, true}) out.push_back(encode(sample(t, with_updates)));
  }
  return out;
}

Message decoded(const Bytes& b) {
  auto r = decode(b);
  if (auto* e = std::get_if<DecodeError>(&r)) {
    ADD_FAILURE() << "rejected: " << e->message;
    return {};
  }
  return std::get<Message>(r);
}

std::string error(const Bytes& b) {
  auto r = decode(b);
  if (auto* e = std::get_if<DecodeError>(&r)) return e->message;
  ADD_FAILURE() << "accepted " << b.size() << " bytes";
  return {};
}

std::size_t expected_size(const Message& m) {
  std::size_t n = encoded_size_without_updates(m);
  for (const auto& u : m.updates) n += encoded_size(u);
  return n;
}

// Offset of the sender's address and incarnation: after type and sender name.
std::size_t sender_address_at(const Message& m) {
  return 1 + 1 + m.sender.name.size();
}
std::size_t sender_incarnation_at(const Message& m) {
  return sender_address_at(m) + 1 + (m.sender.address.v6 ? 16 : 4) + 2;
}
std::size_t update_at(const Message& m, std::size_t i) {
  std::size_t n = encoded_size_without_updates(m);
  for (std::size_t k = 0; k < i; ++k) n += encoded_size(m.updates[k]);
  return n;
}

TEST(WireCodec, RoundTripsEveryTypeWithAndWithoutUpdates) {
  for (auto t : kAllTypes) {
    for (bool with_updates : {false, true}) {
      SCOPED_TRACE(std::string(to_string(t)) + (with_updates ? " with updates" : ""));
      const Message m = sample(t, with_updates);
      const Bytes b = encode(m);
      EXPECT_EQ(b.size(), expected_size(m));
      EXPECT_EQ(decoded(b), m);
    }
  }
}

TEST(WireCodec, SizesAreExactAtVarintBoundaries) {
  Message m = sample(MessageType::gossip, false);
  m.sender = {"n", Address::v4(0x7f000001, 1), 0};
  for (std::uint64_t inc :
       std::initializer_list<std::uint64_t>{0, 127, 128, 16383, 16384, std::uint64_t{1} << 63,
                                            std::numeric_limits<std::uint64_t>::max()}) {
    m.sender.incarnation = inc;
    m.updates = {{MemberState::dead, "x", Address::v4(1, 2), inc, "y"}};
    const Bytes b = encode(m);
    EXPECT_EQ(b.size(), expected_size(m)) << inc;
    EXPECT_EQ(decoded(b), m) << inc;
  }
  m.sender.incarnation = 127;
  const std::size_t one = encoded_size_without_updates(m);
  m.sender.incarnation = 128;
  EXPECT_EQ(encoded_size_without_updates(m), one + 1);
  m.sender.incarnation = std::numeric_limits<std::uint64_t>::max();
  EXPECT_EQ(encoded_size_without_updates(m), one + 9);  // ten bytes in all
}

// Pins the layout: any change here breaks compatibility with deployed nodes.
TEST(WireCodec, EncodesTheDocumentedLayout) {
  Message m;
  m.type = MessageType::ping;
  m.sender = {"a", Address::v4(0x0a000001, 7701), 300};
  m.boot = 0x1122334455667788ull;
  m.counter = 200;
  m.to = 0x0a0b0c0d;
  m.cluster = 0x01020304;
  m.cookie = 0;
  m.echo = 5;
  m.seq = 0x01020304;
  m.target = "b";
  m.updates = {{MemberState::suspect, "c", v6("[::1]:1"), 0, "a"}};
  const Bytes expected = {
      2,                                               // type ping
      1, 'a', 4, 10, 0, 0, 1, 0x1e, 0x15, 0xac, 0x02,  // sender:
                                                       // name, 10.0.0.1:7701, 300
      0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,  // boot
      0xc8, 0x01,                                      // counter 200
      0x0a, 0x0b, 0x0c, 0x0d,                          // to
      1, 2, 3, 4,                                      // cluster
      0, 5,                                            // cookie none, echo 5
      1, 2, 3, 4,                                      // seq
      1, 'b',                                          // target
      1,                                               // one update
      1, 1, 'c', 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1,  // suspect c [::1]:1
      0, 1, 'a'};                                                          // incarnation 0, from a
  EXPECT_EQ(encode(m), expected);
  EXPECT_EQ(decoded(expected), m);
}

TEST(WireCodec, FieldsATypeDoesNotUseAreNotEncoded) {
  Message plain = sample(MessageType::heartbeat, false);
  Message noisy = plain;
  noisy.seq = 7;
  noisy.target = "t";
  noisy.target_address = Address::v4(1, 1);
  noisy.digest = 9;
  noisy.flags = 1;
  noisy.padding = 4;
  EXPECT_EQ(encode(noisy), encode(plain));
  EXPECT_EQ(encoded_size_without_updates(noisy), encoded_size_without_updates(plain));

  Update alive{MemberState::alive, "n", Address::v4(1, 1), 3, ""};
  Update with_from = alive;
  with_from.from = "ignored";
  EXPECT_EQ(encoded_size(with_from), encoded_size(alive));
  plain.updates = {alive};
  noisy = plain;
  noisy.updates = {with_from};
  EXPECT_EQ(encode(noisy), encode(plain));
}

TEST(WireCodec, PaddingIsZerosAndCounted) {
  Message m = sample(MessageType::sync, false);
  m.padding = 0;
  const auto bare = encode(m).size();
  m.padding = 200;
  Bytes b = encode(m);
  EXPECT_EQ(b.size(), bare + 200 + 1);  // the length takes a second byte
  EXPECT_EQ(decoded(b), m);
  // A padding byte that is not 0 would give the message a second encoding.
  b[b.size() - 2] = 1;
  auto r = decode(b);
  ASSERT_TRUE(std::holds_alternative<DecodeError>(r));
  EXPECT_NE(std::get<DecodeError>(r).message.find("padding"), std::string::npos);
}

TEST(WireCodec, PeekSenderNameReadsTheNameInPlace) {
  for (auto t : kAllTypes) {
    const Message m = sample(t, true);
    EXPECT_EQ(peek_sender_name(encode(m)), std::optional<std::string_view>(m.sender.name));
  }
  EXPECT_EQ(peek_sender_name(Bytes{1}), std::nullopt);
  EXPECT_EQ(peek_sender_name(Bytes{1, 5, 'a'}), std::nullopt);
}

TEST(WireCodec, ReceiverTagsAreNeverZeroAndTellNamesApart) {
  EXPECT_NE(receiver_tag("a"), 0u);
  EXPECT_NE(receiver_tag("node-1"), receiver_tag("node-2"));
  EXPECT_EQ(receiver_tag("node-1"), receiver_tag("node-1"));
}

TEST(WireCodec, NamesAndToString) {
  EXPECT_TRUE(valid_name("a"));
  EXPECT_TRUE(valid_name("Node-1.eu_west"));
  EXPECT_TRUE(valid_name(long_name('x')));
  for (std::string_view bad : {"", "a b", "a/b", "ü", "a:b", "a\n"}) EXPECT_FALSE(valid_name(bad));
  EXPECT_FALSE(valid_name(std::string(kMaxNameBytes + 1, 'x')));

  EXPECT_EQ(to_string(MessageType::heartbeat), "heartbeat");
  EXPECT_EQ(to_string(MessageType::ping_req), "ping_req");
  EXPECT_EQ(to_string(MessageType::sync_reply), "sync_reply");
  EXPECT_EQ(to_string(MessageType::refuse), "refuse");
  EXPECT_EQ(to_string(MemberState::alive), "alive");
  EXPECT_EQ(to_string(MemberState::suspect), "suspect");
  EXPECT_EQ(to_string(MemberState::dead), "dead");
  EXPECT_EQ(to_string(MemberState::left), "left");
}

// An alive IPv4 update of exactly `size` bytes (11..138).
Update filler(std::size_t size, std::size_t i) {
  std::string name = std::to_string(i);
  name.resize(size - 10, 'p');
  return {MemberState::alive, name, Address::v4(0x0a000000 + static_cast<std::uint32_t>(i), 7701),
          0, ""};
}

TEST(WireCodec, AFullDatagramFitsAndOneByteMoreThrows) {
  Message m;
  m.type = MessageType::gossip;
  m.sender = {"n", Address::v4(0x0a000001, 7701), 5};
  const Update big = sample_updates()[1];
  while (update_at(m, m.updates.size()) + encoded_size(big) <= kMaxBodyBytes) {
    m.updates.push_back(big);
  }
  std::size_t rest = kMaxBodyBytes - update_at(m, m.updates.size());
  while (rest > 0) {
    ASSERT_GE(rest, 11u);
    const std::size_t s = rest <= 138 ? rest : std::min<std::size_t>(138, rest - 11);
    m.updates.push_back(filler(s, m.updates.size()));
    rest -= s;
  }
  const Bytes b = encode(m);
  EXPECT_EQ(b.size(), kMaxBodyBytes);
  EXPECT_EQ(decoded(b), m);

  m.updates.back().incarnation = 128;  // a two-byte varint
  EXPECT_THROW(encode(m), std::invalid_argument);
}

TEST(WireCodec, EncodeRejectsSenderBugs) {
  auto throws = [](const Message& m) { EXPECT_THROW(encode(m), std::invalid_argument); };
  Message m = sample(MessageType::ping_req, true);
  ASSERT_NO_THROW(encode(m));

  Message bad = m;
  bad.sender.name = "has space";
  throws(bad);
  bad = m;
  bad.target = "";
  throws(bad);
  bad = m;
  bad.updates[0].name = std::string(kMaxNameBytes + 1, 'x');
  throws(bad);
  bad = m;
  bad.updates[1].from = "";  // suspect needs its accuser
  throws(bad);
  bad = m;
  bad.sender.address.port = 0;
  throws(bad);
  bad = m;
  bad.target_address.port = 0;
  throws(bad);
  bad = m;
  bad.updates[2].address.ip[7] = 1;  // IPv4 with a non-zero tail
  throws(bad);
  bad = m;
  bad.type = static_cast<MessageType>(99);
  throws(bad);
  bad = m;
  bad.updates[0].state = static_cast<MemberState>(9);
  throws(bad);

  Message many = sample(MessageType::gossip, false);
  many.updates.assign(256, {MemberState::alive, "x", Address::v4(1, 1), 0, ""});
  try {
    encode(many);
    ADD_FAILURE() << "256 updates accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("256 updates"), std::string::npos) << e.what();
  }
}

TEST(WireCodecDecode, EveryProperPrefixIsTruncated) {
  for (const Bytes& full : sample_encodings()) {
    EXPECT_EQ(error(Bytes{}), "empty body");
    for (std::size_t n = 1; n < full.size(); ++n) {
      const Bytes prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
      EXPECT_EQ(error(prefix).rfind("truncated in ", 0), 0u) << n << ": " << error(prefix);
    }
  }
  const Message m = sample(MessageType::gossip, true);
  Bytes b = encode(m);
  b.resize(update_at(m, 2) + 3);
  EXPECT_EQ(error(b), "truncated in update 2");
  b.resize(3);
  EXPECT_EQ(error(b), "truncated in sender");
}

TEST(WireCodecDecode, TrailingBytes) {
  for (Bytes b : sample_encodings()) {
    b.push_back(0);
    EXPECT_EQ(error(b), "trailing bytes after the updates: 1");
  }
  Bytes huge(kMaxBodyBytes + 1, 0);
  huge[0] = 1;
  EXPECT_EQ(error(huge), "body of 1353 bytes exceeds 1352");
}

TEST(WireCodecDecode, UnknownType) {
  Bytes b = encode(sample(MessageType::heartbeat, false));
  for (std::uint8_t t : {0, 10, 255}) {
    b[0] = t;
    EXPECT_EQ(error(b), "unknown message type " + std::to_string(t));
  }
}

TEST(WireCodecDecode, UnknownState) {
  const Message m = sample(MessageType::gossip, true);
  Bytes b = encode(m);
  b[update_at(m, 3)] = 7;
  EXPECT_EQ(error(b), "update 3: unknown state 7");
  b[update_at(m, 3)] = 4;
  EXPECT_EQ(error(b), "update 3: unknown state 4");
}

// Force-leave with prune: bit 0x40 of a left update's state byte.
TEST(WireCodec, AForgetRidesOnALeftUpdateAsBit0x40) {
  Message m = sample(MessageType::gossip, true);
  m.updates[3].forget = true;  // the left one
  const Bytes b = encode(m);
  EXPECT_EQ(b.size(), expected_size(m));  // a flag, not a byte more
  EXPECT_EQ(b[update_at(m, 3)], 0x43);
  EXPECT_EQ(decoded(b), m);
  EXPECT_EQ(encode(decoded(b)), b);
  m.updates[3].forget = false;
  EXPECT_EQ(encode(m)[update_at(m, 3)], 0x03);

  Message bad = sample(MessageType::gossip, true);
  for (std::size_t i : {0u, 1u, 2u}) {  // alive, suspect, dead
    bad.updates[i].forget = true;
    EXPECT_THROW(encode(bad), std::invalid_argument) << i;
    bad.updates[i].forget = false;
  }
}

TEST(WireCodecDecode, AForgetOnAnythingButLeftIsRefused) {
  const Message m = sample(MessageType::gossip, true);
  Bytes b = encode(m);
  b[update_at(m, 0)] |= 0x40;  // forged onto alive
  EXPECT_EQ(error(b), "update 0: forget flag on state alive (left only)");
  b = encode(m);
  b[update_at(m, 2)] |= 0x40;  // and onto dead
  EXPECT_EQ(error(b), "update 2: forget flag on state dead (left only)");
  b = encode(m);
  b[update_at(m, 1)] |= 0x40;
  EXPECT_EQ(error(b), "update 1: forget flag on state suspect (left only)");
  b = encode(m);
  b[update_at(m, 3)] = 0x40 | 0x07;  // the state is still checked under the flag
  EXPECT_EQ(error(b), "update 3: unknown state 7");
}

// An alive update with tags: its news of version `at`.
Message tagged(Tags tags, std::uint64_t incarnation = 9, std::uint64_t at = 7) {
  Message m;
  m.type = MessageType::gossip;
  m.sender = {"a", Address::v4(0x0a000001, 7701), 1};
  Update u{MemberState::alive, "b", Address::v4(0x0a000002, 7701), incarnation};
  u.tags = std::move(tags);
  u.tags_at = at;
  m.updates = {u};
  return m;
}

TEST(WireCodecTags, AnUntaggedUpdateIsEncodedAsBeforeTags) {
  // No tags_at, no flag, no bytes: a cluster that sets no tags talks to older nodes.
  Message m = tagged({});
  m.updates[0].tags_at.reset();
  const Bytes b = encode(m);
  EXPECT_EQ(b[update_at(m, 0)], 0);  // state alive, no flags
  EXPECT_EQ(b.size(), encoded_size_without_updates(m) + encoded_size(m.updates[0]));
  EXPECT_EQ(b.back(), 9);  // the update ends with its incarnation
}

TEST(WireCodecTags, TagsRoundTripWithTheirLayout) {
  const Message m = tagged({{"role", "db"}, {"zone", ""}});
  const Bytes b = encode(m);
  EXPECT_EQ(decoded(b), m);
  EXPECT_EQ(b.size(), encoded_size_without_updates(m) + encoded_size(m.updates[0]));
  const std::size_t at = update_at(m, 0);
  EXPECT_EQ(b[at], 0x80);  // alive, tags follow
  const Bytes tail(b.end() - 15, b.end());
  const Bytes expected = {9,                                   // incarnation
                          2,                                   // tags_at = 9 - 2
                          2,                                   // two tags, by key
                          4, 'r', 'o', 'l', 'e', 2, 'd', 'b',  // role: db
                          4, 'z', 'o', 'n', 'e', 0};           // zone: ""
  EXPECT_EQ(Bytes(b.end() - static_cast<long>(expected.size()), b.end()), expected);
  // An announced empty set (tags removed) is a flag and a count of 0, not "no news".
  const Message cleared = tagged({}, 9, 9);
  const Bytes c = encode(cleared);
  EXPECT_EQ(decoded(c), cleared);
  EXPECT_EQ(Bytes(c.end() - 3, c.end()), (Bytes{9, 0, 0}));
  // The largest set fits beside the longest name and sender.
  Tags big;
  for (int i = 0; i < 3; ++i) {
    big[std::string(64, static_cast<char>('a' + i))] = std::string(i == 2 ? 105 : 104, '~');
  }
  ASSERT_EQ(tags_wire_size(big), kMaxTagsBytes);
  Message full = tagged(big, std::numeric_limits<std::uint64_t>::max(), 0);
  full.sender.name = long_name('s');
  full.updates[0].name = long_name('n');
  EXPECT_EQ(decoded(encode(full)), full);
}

TEST(WireCodecTags, EncodeRejectsBadTagsAsSenderBugs) {
  EXPECT_THROW(encode(tagged({{"a b", "x"}})), std::invalid_argument);
  EXPECT_THROW(encode(tagged({{"role", "tab\there"}})), std::invalid_argument);
  EXPECT_THROW(encode(tagged({{"role", std::string(129, 'x')}})), std::invalid_argument);
  Message above = tagged({{"a", "b"}}, 3, 4);
  EXPECT_THROW(encode(above), std::invalid_argument);
  Message suspect = tagged({{"a", "b"}});
  suspect.updates[0].state = MemberState::suspect;
  suspect.updates[0].from = "c";
  EXPECT_THROW(encode(suspect), std::invalid_argument);
  Message untimed = tagged({{"a", "b"}});
  untimed.updates[0].tags_at.reset();
  EXPECT_THROW(encode(untimed), std::invalid_argument);
}

TEST(WireCodecTags, DecodeRefusesAnythingNotCanonical) {
  const Message m = tagged({{"ab", "1"}, {"cd", "2"}});
  const Bytes good = encode(m);
  const std::size_t at = update_at(m, 0);
  const std::size_t tags = good.size() - 12;  // age, count, 2 x (len key len value)
  ASSERT_EQ(good[tags], 2);                    // age: 9 - 7
  auto with = [&](std::size_t i, std::uint8_t v, std::optional<std::uint8_t> next = {}) {
    Bytes b = good;
    b[i] = v;
    if (next) b[i + 1] = *next;
    return error(b);
  };
  EXPECT_EQ(with(at, 0x80 | 1), "update 0: tags on a suspect update");
  EXPECT_EQ(with(at, 0x40), "update 0: forget flag on state alive (left only)");  // 0x40: prune
  EXPECT_EQ(with(tags, 10), "update 0: tags announced after the incarnation");
  EXPECT_EQ(with(tags + 1, 17), "update 0: 17 tags (at most 16)");
  EXPECT_EQ(with(tags + 3, 'c', 'z'), "update 0: tag cd out of order or repeated");  // cz, cd
  EXPECT_EQ(with(tags + 8, 'a', 'b'), "update 0: tag ab out of order or repeated");  // ab twice
  EXPECT_EQ(with(tags + 3, ' '), "update 0: tag 0 key invalid");
  EXPECT_EQ(with(tags + 2, 0), "update 0: tag 0 key invalid");  // empty key
  EXPECT_EQ(with(tags + 6, '\n'), "update 0: tag ab value invalid");
  EXPECT_EQ(with(tags + 1, 3), "truncated in update 0");
  // Every proper prefix of the tags is truncated, never misread.
  for (std::size_t n = tags; n < good.size(); ++n) {
    EXPECT_TRUE(std::holds_alternative<DecodeError>(decode(Bytes(good.begin(), good.begin() + static_cast<long>(n)))));
  }
}

TEST(WireCodecDecode, BadNames) {
  const Message m = sample(MessageType::ping, true);
  const Bytes good = encode(m);
  for (int c : {0x20, 0x2f, 0x3a, 0x00, 0x80, 0xff}) {  // space, /, :, NUL, non-ASCII
    Bytes b = good;
    b[2 + 5] = static_cast<std::uint8_t>(c);  // a byte inside the sender's name
    EXPECT_EQ(error(b), "sender name: invalid (bad byte)");
  }
  Bytes b = good;
  b[1] = 0;
  EXPECT_EQ(error(b), "sender name: invalid (length 0)");
  b[1] = kMaxNameBytes + 1;
  EXPECT_EQ(error(b), "sender name: invalid (length 129)");

  b = good;
  b[encoded_size_without_updates(m) - 2] = '!';  // last byte of the target name
  EXPECT_EQ(error(b), "target name: invalid (bad byte)");

  b = good;
  b[update_at(m, 2) - 1] = '#';  // last byte of update 1's accuser
  EXPECT_EQ(error(b), "update 1 from: invalid (bad byte)");
  b = good;
  b[update_at(m, 0) + 2] = '.';  // "node-1" -> ".ode-1" is fine
  EXPECT_EQ(decoded(b).updates.at(0).name, ".ode-1");
  b[update_at(m, 0) + 2] = '*';
  EXPECT_EQ(error(b), "update 0 name: invalid (bad byte)");
}

TEST(WireCodecDecode, BadFamily) {
  const Message m = sample(MessageType::ping_req, true);
  Bytes b = encode(m);
  for (std::uint8_t f : {0, 5, 16, 255}) {
    b[sender_address_at(m)] = f;
    EXPECT_EQ(error(b), "sender address: bad family " + std::to_string(f));
  }
  b = encode(m);
  b[update_at(m, 0) + 1 + 1 + m.updates[0].name.size()] = 6;  // an IPv4 address read as IPv6
  EXPECT_NE(error(b), "");
}

TEST(WireCodecDecode, PortZero) {
  const Message m = sample(MessageType::ping_req, false);
  Bytes b = encode(m);
  const std::size_t port_at = sender_incarnation_at(m) - 2;
  b[port_at] = 0;
  b[port_at + 1] = 0;
  EXPECT_EQ(error(b), "sender address: port 0");

  b = encode(m);
  b[encoded_size_without_updates(m) - 3] = 0;  // target port, just before the update count
  b[encoded_size_without_updates(m) - 2] = 0;
  EXPECT_EQ(error(b), "target address: port 0");
}

TEST(WireCodecDecode, BadVarints) {
  const Message m = sample(MessageType::heartbeat, false);
  const Bytes good = encode(m);
  const auto at = static_cast<std::ptrdiff_t>(sender_incarnation_at(m));
  auto with_incarnation = [&](const Bytes& varint) {
    Bytes b(good.begin(), good.begin() + at);
    b.insert(b.end(), varint.begin(), varint.end());
    b.insert(b.end(), good.begin() + at + 10, good.end());  // freshness, update count
    return b;
  };
  EXPECT_EQ(decoded(with_incarnation({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}))
                .sender.incarnation,
            std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(error(with_incarnation(Bytes(11, 0xff))),
            "sender incarnation: varint longer than 10 bytes");
  EXPECT_EQ(
      error(with_incarnation({0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00})),
      "sender incarnation: varint longer than 10 bytes");
  EXPECT_EQ(error(with_incarnation({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02})),
            "sender incarnation: varint overflows 64 bits");
  EXPECT_EQ(error(with_incarnation({0x80, 0x00})),
            "sender incarnation: varint not minimally encoded");
  EXPECT_EQ(error(with_incarnation({0x81, 0x80, 0x00})),
            "sender incarnation: varint not minimally encoded");
}

// Corrupting a valid encoding must give an error or another message with exactly these
// bytes (one encoding per message); under ASan it also proves no read strays out of bounds.
TEST(WireCodecDecode, RandomCorruption) {
  auto rng = test::seeded_rng();
  const auto encodings = sample_encodings();
  std::size_t accepted = 0;
  for (int i = 0; i < 50000; ++i) {
    Bytes b = encodings[rng() % encodings.size()];
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < flips; ++k) {
      auto& byte = b[rng() % b.size()];
      byte = (rng() % 2) ? static_cast<std::uint8_t>(byte ^ (1u << (rng() % 8)))
                         : static_cast<std::uint8_t>(rng());
    }
    auto r = decode(b);
    if (auto* m = std::get_if<Message>(&r)) {
      ++accepted;
      ASSERT_EQ(encode(*m), b) << "iteration " << i;
    } else {
      ASSERT_FALSE(std::get<DecodeError>(r).message.empty()) << "iteration " << i;
    }
  }
  EXPECT_GT(accepted, 0u);  // some flips land in free-form bytes (seq, digest, addresses)
}

}  // namespace
}  // namespace heartbeatd::membership
