// WireCodec: encoder and strict decoder of membership message bodies (see wire_codec.h).
//
// Layout. Integers are big-endian; "varint" is unsigned LEB128, at most 10 bytes, minimal.
//   type u8 | sender: name, address, incarnation varint
//   freshness: boot u64, counter varint, to u32, cluster u32, cookie varint, echo varint
//   then by type:  ping      seq u32, target name
//                  ack, nack seq u32
//                  ping_req  seq u32, target name, target address
//                  sync, sync_reply  digest u64, flags u8, padding: length varint, zeros
//                  heartbeat, gossip, refuse  nothing
//   update count u8 | each update: state u8, name, address, incarnation varint,
//                                  from name (suspect and dead only),
//                                  tags (alive news with tags_at only: bit 0x80 of the
//                                  state byte)
//   tags    = incarnation - tags_at varint, count u8 (0..16), then by key, strictly
//             ascending: key (length u8 1..64, bytes of [A-Za-z0-9._-]), value (length u8
//             0..128, bytes ' '..'~')
//   update state byte: the state in the low 6 bits (kStateMask), flags above it:
//                      0x80 tags follow (alive only), 0x40 forget (left only)
//   name    = length u8 (1..128), bytes of [A-Za-z0-9._-]
//   address = family u8 (4 or 6), 4 or 16 address bytes, port u16 (never 0)
//
// Every message has exactly one encoding: fields a type does not use are neither written nor
// read, and non-minimal varints are refused. So whenever decode(b) succeeds,
// encode(decode(b)) == b, which is what the fuzzer and the mutation test check.
// Update indexes in error messages count from 0.
#include "membership/wire_codec.h"

#include <algorithm>
#include <stdexcept>

#include "membership/hash.h"

namespace heartbeatd::membership {
namespace {

bool has_seq(MessageType t) {
  return t == MessageType::ping || t == MessageType::ack || t == MessageType::ping_req ||
         t == MessageType::nack;
}
bool has_target(MessageType t) {
  return t == MessageType::ping || t == MessageType::ping_req;
}
bool has_digest(MessageType t) {
  return t == MessageType::sync || t == MessageType::sync_reply;
}
bool has_from(MemberState s) {
  return s == MemberState::suspect || s == MemberState::dead;
}
bool known_type(std::uint8_t v) {
  return v >= 1 && v <= 9;
}
bool known_state(std::uint8_t v) {
  return v <= 3;
}
// Flags in the high bits of an update's state byte. An update without tags is encoded as
// before tags existed, so nodes that predate them read every message of a cluster that sets
// none (docs/PROTOCOL.md, "Wire format").
constexpr std::uint8_t kStateMask = 0x3f;
constexpr std::uint8_t kHasTags = 0x80;     // alive only: tags_at and a tag set follow
constexpr std::uint8_t kForgetFlag = 0x40;  // left only: receivers forget the member

std::size_t varint_size(std::uint64_t v) {
  std::size_t n = 1;
  for (; v >= 0x80; v >>= 7) ++n;
  return n;
}
std::size_t name_size(std::string_view n) {
  return 1 + n.size();
}
std::size_t address_size(const Address& a) {
  return 1 + (a.v6 ? 16 : 4) + 2;
}
// tags_at (as its distance below the incarnation) and the tag set, flagged updates only.
std::size_t tags_size(const Update& u) {
  if (!u.tags_at) return 0;
  return varint_size(u.incarnation - *u.tags_at) + std::max<std::size_t>(1, tags_wire_size(u.tags));
}

// --- encoding ---

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("wire encode: " + what);
}
void check_name(std::string_view name, const std::string& what) {
  require(valid_name(name), what + " name is invalid");
}
// The decoder refuses port 0 and rebuilds IPv4 addresses with zeroed tails; encoding either
// would break the round trip, so they are sender bugs like an invalid name.
void check_address(const Address& a, const std::string& what) {
  require(a.port != 0, what + " address has port 0");
  require(a.v6 || std::all_of(a.ip.begin() + 4, a.ip.end(), [](auto b) { return b == 0; }),
          what + " address is IPv4 with bytes set past the fourth");
}

class Writer {
 public:
  explicit Writer(std::size_t size) { out_.reserve(size); }
  void u8(std::uint8_t v) { out_.push_back(v); }
  void big_endian(std::uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  void varint(std::uint64_t v) {
    for (; v >= 0x80; v >>= 7) out_.push_back(static_cast<std::uint8_t>(v | 0x80));
    out_.push_back(static_cast<std::uint8_t>(v));
  }
  // A length byte and the bytes: names, tag keys and tag values (all at most 255 bytes).
  void name(std::string_view n) {
    u8(static_cast<std::uint8_t>(n.size()));
    out_.insert(out_.end(), n.begin(), n.end());
  }
  void address(const Address& a) {
    u8(a.v6 ? 6 : 4);
    out_.insert(out_.end(), a.ip.begin(), a.ip.begin() + (a.v6 ? 16 : 4));
    big_endian(a.port, 2);
  }
  std::vector<std::uint8_t> take() { return std::move(out_); }

 private:
  std::vector<std::uint8_t> out_;
};

// --- decoding ---

// Reads fields in order; the first failure records an error naming the section being read
// ("sender", "update 2", ...) and the field, and every caller returns false at once.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> in) : in_(in) {}

  std::string section;
  std::string error;

  bool fail(std::string why) {
    error = std::move(why);
    return false;
  }
  bool done() const { return pos_ == in_.size(); }
  std::size_t left() const { return in_.size() - pos_; }

  bool bytes(std::size_t n, const std::uint8_t** p) {
    if (left() < n) return fail("truncated in " + section);
    *p = in_.data() + pos_;
    pos_ += n;
    return true;
  }
  bool u8(std::uint8_t& v) {
    const std::uint8_t* p = nullptr;
    if (!bytes(1, &p)) return false;
    v = *p;
    return true;
  }
  bool big_endian(std::uint64_t& v, int n) {
    const std::uint8_t* p = nullptr;
    if (!bytes(static_cast<std::size_t>(n), &p)) return false;
    v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
    return true;
  }
  bool varint(std::uint64_t& v, std::string_view field) {
    v = 0;
    for (int i = 0; i < 10; ++i) {
      std::uint8_t b = 0;
      if (!u8(b)) return false;
      if (i == 9 && (b & 0x80)) return fail(where(field) + ": varint longer than 10 bytes");
      if (i == 9 && b > 1) return fail(where(field) + ": varint overflows 64 bits");
      v |= static_cast<std::uint64_t>(b & 0x7f) << (7 * i);
      if (!(b & 0x80)) {
        if (b == 0 && i > 0) return fail(where(field) + ": varint not minimally encoded");
        return true;
      }
    }
    return false;  // unreachable: the tenth byte either ends the varint or fails above
  }
  bool name(std::string& out, std::string_view field) {
    std::uint8_t len = 0;
    if (!u8(len)) return false;
    if (len == 0 || len > kMaxNameBytes) {
      return fail(where(field) + ": invalid (length " + std::to_string(len) + ")");
    }
    const std::uint8_t* p = nullptr;
    if (!bytes(len, &p)) return false;
    const std::string_view s(reinterpret_cast<const char*>(p), len);
    if (!valid_name(s)) return fail(where(field) + ": invalid (bad byte)");
    out.assign(s);
    return true;
  }
  bool address(Address& a, std::string_view field) {
    std::uint8_t family = 0;
    if (!u8(family)) return false;
    if (family != 4 && family != 6) {
      return fail(where(field) + ": bad family " + std::to_string(family));
    }
    a.v6 = family == 6;
    const std::size_t n = a.v6 ? 16 : 4;
    const std::uint8_t* p = nullptr;
    std::uint64_t port = 0;
    if (!bytes(n, &p) || !big_endian(port, 2)) return false;
    std::copy(p, p + n, a.ip.begin());
    if (port == 0) return fail(where(field) + ": port 0");
    a.port = static_cast<std::uint16_t>(port);
    return true;
  }

 private:
  std::string where(std::string_view field) const { return section + " " + std::string(field); }

  std::span<const std::uint8_t> in_;
  std::size_t pos_ = 0;
};

bool read_node(Reader& r, NodeRef& n) {
  r.section = "sender";
  return r.name(n.name, "name") && r.address(n.address, "address") &&
         r.varint(n.incarnation, "incarnation");
}

bool read_freshness(Reader& r, Message& m) {
  r.section = "freshness";
  std::uint64_t to = 0, cluster = 0;
  if (!r.big_endian(m.boot, 8) || !r.varint(m.counter, "counter") || !r.big_endian(to, 4) ||
      !r.big_endian(cluster, 4)) {
    return false;
  }
  m.to = static_cast<std::uint32_t>(to);
  m.cluster = static_cast<std::uint32_t>(cluster);
  return r.varint(m.cookie, "cookie") && r.varint(m.echo, "echo");
}

// tags_at and a tag set, canonical: 0..kMaxTags tags, keys strictly ascending, every key and
// value valid, and no more than kMaxTagsBytes in all.
bool read_tags(Reader& r, Update& u) {
  std::uint64_t age = 0;
  if (!r.varint(age, "tags age")) return false;
  if (age > u.incarnation) return r.fail(r.section + ": tags announced after the incarnation");
  u.tags_at = u.incarnation - age;
  Tags& tags = u.tags;
  std::uint8_t count = 0;
  if (!r.u8(count)) return false;
  if (count > kMaxTags) {
    return r.fail(r.section + ": " + std::to_string(count) + " tags (at most " +
                  std::to_string(kMaxTags) + ")");
  }
  std::string previous;
  for (std::uint8_t i = 0; i < count; ++i) {
    std::string kv[2];
    for (int part = 0; part < 2; ++part) {
      std::uint8_t len = 0;
      const std::uint8_t* p = nullptr;
      if (!r.u8(len) || !r.bytes(len, &p)) return false;
      kv[part].assign(reinterpret_cast<const char*>(p), len);
      if (part == 0 && !valid_tag_key(kv[0])) {
        return r.fail(r.section + ": tag " + std::to_string(i) + " key invalid");
      }
    }
    if (!valid_tag_value(kv[1])) {
      return r.fail(r.section + ": tag " + kv[0] + " value invalid");
    }
    if (i > 0 && kv[0] <= previous) {
      return r.fail(r.section + ": tag " + kv[0] + " out of order or repeated");
    }
    previous = kv[0];
    tags.emplace(std::move(kv[0]), std::move(kv[1]));
  }
  if (tags_wire_size(tags) > kMaxTagsBytes) return r.fail(r.section + ": tags too large");
  return true;
}

bool read_update(Reader& r, Update& u) {
  std::uint8_t byte = 0;
  if (!r.u8(byte)) return false;
  const std::uint8_t state = byte & kStateMask;
  const std::uint8_t flags = byte & ~kStateMask;
  if (!known_state(state)) return r.fail(r.section + ": unknown state " + std::to_string(state));
  u.state = static_cast<MemberState>(state);
  if (flags & ~(kHasTags | kForgetFlag)) {
    return r.fail(r.section + ": unknown flags " + std::to_string(flags));
  }
  if ((flags & kHasTags) && u.state != MemberState::alive) {
    return r.fail(r.section + ": tags on a " + std::string(to_string(u.state)) + " update");
  }
  if (flags & kForgetFlag) {
    if (u.state != MemberState::left) {
      return r.fail(r.section + ": forget flag on state " + std::string(to_string(u.state)) +
                    " (left only)");
    }
    u.forget = true;
  }
  if (!r.name(u.name, "name") || !r.address(u.address, "address") ||
      !r.varint(u.incarnation, "incarnation")) {
    return false;
  }
  if (has_from(u.state) && !r.name(u.from, "from")) return false;
  return !(flags & kHasTags) || read_tags(r, u);
}

bool read_message(Reader& r, Message& m) {
  r.section = "type";
  std::uint8_t type = 0;
  if (!r.u8(type)) return false;
  if (!known_type(type)) return r.fail("unknown message type " + std::to_string(type));
  m.type = static_cast<MessageType>(type);
  if (!read_node(r, m.sender) || !read_freshness(r, m)) return false;
  if (has_seq(m.type)) {
    r.section = "seq";
    std::uint64_t seq = 0;
    if (!r.big_endian(seq, 4)) return false;
    m.seq = static_cast<std::uint32_t>(seq);
  }
  if (has_target(m.type)) {
    r.section = "target";
    if (!r.name(m.target, "name")) return false;
    if (m.type == MessageType::ping_req && !r.address(m.target_address, "address")) return false;
  }
  if (has_digest(m.type)) {
    r.section = "digest";
    if (!r.big_endian(m.digest, 8)) return false;
    r.section = "flags";
    if (!r.u8(m.flags)) return false;
    r.section = "padding";
    std::uint64_t pad = 0;
    if (!r.varint(pad, "length")) return false;
    if (pad > r.left()) return r.fail("truncated in padding");
    const std::uint8_t* p = nullptr;
    r.bytes(pad, &p);
    if (std::any_of(p, p + pad, [](auto b) { return b != 0; })) {
      return r.fail("padding: a byte that is not 0");
    }
    m.padding = static_cast<std::uint16_t>(pad);
  }
  r.section = "update count";
  std::uint8_t count = 0;
  if (!r.u8(count)) return false;
  m.updates.resize(count);
  for (std::size_t i = 0; i < count; ++i) {
    r.section = "update " + std::to_string(i);
    if (!read_update(r, m.updates[i])) return false;
  }
  if (!r.done()) return r.fail("trailing bytes after the updates: " + std::to_string(r.left()));
  return true;
}

}  // namespace

std::string_view to_string(MessageType t) {
  switch (t) {
    case MessageType::heartbeat:
      return "heartbeat";
    case MessageType::ping:
      return "ping";
    case MessageType::ack:
      return "ack";
    case MessageType::ping_req:
      return "ping_req";
    case MessageType::nack:
      return "nack";
    case MessageType::gossip:
      return "gossip";
    case MessageType::sync:
      return "sync";
    case MessageType::sync_reply:
      return "sync_reply";
    case MessageType::refuse:
      return "refuse";
  }
  return "unknown";
}

std::uint32_t receiver_tag(std::string_view name) {
  std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a, then mixed
  for (char c : name) h = (h ^ static_cast<std::uint8_t>(c)) * 0x100000001b3ull;
  const auto tag = static_cast<std::uint32_t>(mix64(h));
  return tag == 0 ? 1 : tag;
}

std::size_t encoded_size_without_updates(const Message& m) {
  std::size_t n = 1 + name_size(m.sender.name) + address_size(m.sender.address) +
                  varint_size(m.sender.incarnation);
  n += 8 + varint_size(m.counter) + 4 + 4 + varint_size(m.cookie) + varint_size(m.echo);
  if (has_seq(m.type)) n += 4;
  if (has_target(m.type)) n += name_size(m.target);
  if (m.type == MessageType::ping_req) n += address_size(m.target_address);
  if (has_digest(m.type)) n += 8 + 1 + varint_size(m.padding) + m.padding;
  return n + 1;  // update count
}

std::size_t encoded_size(const Update& u) {
  return 1 + name_size(u.name) + address_size(u.address) + varint_size(u.incarnation) +
         (has_from(u.state) ? name_size(u.from) : 0) + tags_size(u);
}

std::vector<std::uint8_t> encode(const Message& m) {
  require(known_type(static_cast<std::uint8_t>(m.type)), "unknown message type");
  require(m.updates.size() <= 255, std::to_string(m.updates.size()) + " updates (max 255)");
  check_name(m.sender.name, "sender");
  check_address(m.sender.address, "sender");
  if (has_target(m.type)) check_name(m.target, "target");
  if (m.type == MessageType::ping_req) check_address(m.target_address, "target");
  std::size_t size = encoded_size_without_updates(m);
  for (std::size_t i = 0; i < m.updates.size(); ++i) {
    const Update& u = m.updates[i];
    const std::string what = "update " + std::to_string(i);
    require(known_state(static_cast<std::uint8_t>(u.state)), what + " has an unknown state");
    require(!u.forget || u.state == MemberState::left, what + " forgets a member that is not left");
    check_name(u.name, what);
    check_address(u.address, what);
    if (has_from(u.state)) check_name(u.from, what + " from");
    require(!u.tags_at || u.state == MemberState::alive, what + " has tags but is not alive");
    require(u.tags.empty() || u.tags_at, what + " has tags without tags_at");
    require(!u.tags_at || *u.tags_at <= u.incarnation, what + " has tags_at above incarnation");
    const auto problem = tags_problem(u.tags);
    require(!problem, what + " " + problem.value_or(""));
    size += encoded_size(u);
  }
  require(size <= kMaxBodyBytes,
          "message of " + std::to_string(size) + " bytes exceeds " + std::to_string(kMaxBodyBytes));

  Writer w(size);
  w.u8(static_cast<std::uint8_t>(m.type));
  w.name(m.sender.name);
  w.address(m.sender.address);
  w.varint(m.sender.incarnation);
  w.big_endian(m.boot, 8);
  w.varint(m.counter);
  w.big_endian(m.to, 4);
  w.big_endian(m.cluster, 4);
  w.varint(m.cookie);
  w.varint(m.echo);
  if (has_seq(m.type)) w.big_endian(m.seq, 4);
  if (has_target(m.type)) w.name(m.target);
  if (m.type == MessageType::ping_req) w.address(m.target_address);
  if (has_digest(m.type)) {
    w.big_endian(m.digest, 8);
    w.u8(m.flags);
    w.varint(m.padding);
    for (std::size_t i = 0; i < m.padding; ++i) w.u8(0);
  }
  w.u8(static_cast<std::uint8_t>(m.updates.size()));
  for (const Update& u : m.updates) {
    w.u8(static_cast<std::uint8_t>(static_cast<std::uint8_t>(u.state) | (u.tags_at ? kHasTags : 0) |
                                   (u.forget ? kForgetFlag : 0)));
    w.name(u.name);
    w.address(u.address);
    w.varint(u.incarnation);
    if (has_from(u.state)) w.name(u.from);
    if (u.tags_at) {
      w.varint(u.incarnation - *u.tags_at);
      w.u8(static_cast<std::uint8_t>(u.tags.size()));
      for (const auto& [k, v] : u.tags) {
        w.name(k);
        w.name(v);
      }
    }
  }
  return w.take();
}

std::optional<std::string_view> peek_sender_name(std::span<const std::uint8_t> body) {
  if (body.size() < 2 || body.size() < 2u + body[1]) return std::nullopt;
  return std::string_view(reinterpret_cast<const char*>(body.data() + 2), body[1]);
}

std::variant<Message, DecodeError> decode(std::span<const std::uint8_t> body) {
  if (body.empty()) return DecodeError{"empty body"};
  // A longer body could not be re-encoded, so it cannot have come from a correct sender.
  if (body.size() > kMaxBodyBytes) {
    return DecodeError{"body of " + std::to_string(body.size()) + " bytes exceeds " +
                       std::to_string(kMaxBodyBytes)};
  }
  Reader r(body);
  Message m;
  if (!read_message(r, m)) return DecodeError{std::move(r.error)};
  return m;
}

}  // namespace heartbeatd::membership
