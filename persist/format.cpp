#include "persist/format.h"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>
#include <unordered_map>

#include <fmt/format.h>

namespace heartbeatd::persist {
namespace {

// Record kinds: the first byte of every value.
enum class Kind : std::uint8_t {
  format = 1,
  self = 2,
  members = 3,
  users = 4,
  manifest = 5,
  member_tags = 6,
};

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::format:
      return "format record";
    case Kind::self:
      return "self record";
    case Kind::members:
      return "member list";
    case Kind::users:
      return "presence chunk";
    case Kind::manifest:
      return "presence manifest";
    case Kind::member_tags:
      return "member tags";
  }
  return "record";
}

constexpr std::size_t kChecksumBytes = 8;
// A fixed key: the checksum detects damage, it does not authenticate.
constexpr unsigned char kChecksumKey[crypto_shorthash_KEYBYTES] = {
    'h', 'e', 'a', 'r', 't', 'b', 'e', 'a', 't', 'd', '-', 's', 't', 'a', 't', 'e'};

std::array<unsigned char, kChecksumBytes> checksum(std::string_view bytes) {
  std::array<unsigned char, kChecksumBytes> out{};
  crypto_shorthash(out.data(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                   kChecksumKey);
  return out;
}

class Writer {
 public:
  explicit Writer(Kind kind) { out_.push_back(static_cast<char>(kind)); }
  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void varint(std::uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void i64(std::int64_t v) {
    for (int i = 0; i < 8; ++i)
      out_.push_back(static_cast<char>(static_cast<std::uint64_t>(v) >> (8 * i)));
  }
  void str(std::string_view s) {
    varint(s.size());
    out_.append(s);
  }
  void reserve(std::size_t n) { out_.reserve(n); }
  std::string finish() {
    const auto sum = checksum(out_);
    out_.append(reinterpret_cast<const char*>(sum.data()), sum.size());
    return std::move(out_);
  }

 private:
  std::string out_;
};

// Reads a record's payload; every read reports running out of bytes instead of reading past.
class Reader {
 public:
  // Checks kind and checksum; on failure, error() says what is wrong.
  Reader(std::string_view value, Kind kind) : kind_(kind) {
    if (value.size() < 1 + kChecksumBytes) {
      fail(fmt::format("{} bytes, shorter than any record", value.size()));
      return;
    }
    if (static_cast<Kind>(value[0]) != kind) {
      fail(fmt::format("holds record kind {}",
                       static_cast<unsigned>(static_cast<std::uint8_t>(value[0]))));
      return;
    }
    const auto body = value.substr(0, value.size() - kChecksumBytes);
    const auto sum = checksum(body);
    if (std::memcmp(sum.data(), value.data() + body.size(), kChecksumBytes) != 0) {
      fail("checksum mismatch (the value is damaged)");
      return;
    }
    rest_ = body.substr(1);
  }
  bool ok() const { return !error_; }
  const std::optional<FormatError>& error() const { return error_; }
  bool at_end() const { return rest_.empty(); }

  std::uint8_t u8() {
    if (!need(1)) return 0;
    const auto v = static_cast<std::uint8_t>(rest_[0]);
    rest_.remove_prefix(1);
    return v;
  }
  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (!need(1)) return 0;
      const auto b = static_cast<std::uint8_t>(rest_[0]);
      rest_.remove_prefix(1);
      if (shift == 63 && b > 1) break;
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    fail("varint longer than 64 bits");
    return 0;
  }
  std::int64_t i64() {
    if (!need(8)) return 0;
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
      v |= static_cast<std::uint64_t>(static_cast<std::uint8_t>(rest_[i])) << (8 * i);
    rest_.remove_prefix(8);
    return static_cast<std::int64_t>(v);
  }
  std::string str(std::size_t max) {
    const auto n = varint();
    if (!ok()) return {};
    if (n > max) {
      fail(fmt::format("string of {} bytes, more than {}", n, max));
      return {};
    }
    if (!need(n)) return {};
    std::string s(rest_.substr(0, n));
    rest_.remove_prefix(n);
    return s;
  }
  void fail(const std::string& why) {
    if (!error_) error_ = FormatError{fmt::format("{}: {}", kind_name(kind_), why)};
    rest_ = {};
  }
  // A count that cannot be right: more items than bytes left.
  bool plausible(std::uint64_t count, std::size_t min_bytes_each) {
    if (count > rest_.size() / min_bytes_each) {
      fail(fmt::format("claims {} entries in {} bytes", count, rest_.size()));
      return false;
    }
    return true;
  }
  std::optional<FormatError> finish() {
    if (ok() && !at_end()) fail(fmt::format("{} unexpected bytes at the end", rest_.size()));
    return error_;
  }

 private:
  bool need(std::size_t n) {
    if (!ok()) return false;
    if (rest_.size() < n) {
      fail("truncated");
      return false;
    }
    return true;
  }
  Kind kind_;
  std::string_view rest_;
  std::optional<FormatError> error_;
};

constexpr std::size_t kMaxName = 128;
constexpr std::size_t kMaxAddress = 64;
// membership/member.h's tag limits (persist/ does not depend on membership/).
constexpr std::size_t kMaxTags = 16;
constexpr std::size_t kMaxTagKey = 64;
constexpr std::size_t kMaxTagValue = 128;

}  // namespace

std::string make_record(std::uint8_t kind, std::string_view payload) {
  std::string out(1, static_cast<char>(kind));
  out.append(payload);
  const auto sum = checksum(out);
  out.append(reinterpret_cast<const char*>(sum.data()), sum.size());
  return out;
}

std::string generation_prefix(std::uint64_t generation) {
  return fmt::format("{}{:016x}/", kGenerationsPrefix, generation);
}

std::string chunk_key(std::uint64_t generation, std::uint32_t chunk) {
  return fmt::format("{}chunk/{:03}", generation_prefix(generation), chunk);
}

std::string manifest_key(std::uint64_t generation) {
  return generation_prefix(generation) + "manifest";
}

std::optional<std::uint64_t> generation_of(std::string_view key) {
  if (!key.starts_with(kGenerationsPrefix)) return std::nullopt;
  key.remove_prefix(kGenerationsPrefix.size());
  if (key.size() < 17 || key[16] != '/') return std::nullopt;
  std::uint64_t g = 0;
  for (const char c : key.substr(0, 16)) {
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return std::nullopt;
    g = g << 4 | static_cast<std::uint64_t>(d);
  }
  return g;
}

std::string chunk_key_v1(std::uint32_t chunk) {
  return fmt::format("{}{:03}", kChunkPrefixV1, chunk);
}

std::string encode_format(std::uint32_t version) {
  Writer w(Kind::format);
  w.varint(version);
  return w.finish();
}

std::variant<std::uint32_t, FormatError> decode_format(std::string_view value) {
  Reader r(value, Kind::format);
  const auto v = r.varint();
  if (r.ok() && v > 0xffffffff) r.fail("version out of range");
  if (auto e = r.finish()) return *e;
  return static_cast<std::uint32_t>(v);
}

std::string encode_self(const SelfRecord& s) {
  Writer w(Kind::self);
  w.str(s.name);
  w.varint(s.incarnation);
  return w.finish();
}

std::variant<SelfRecord, FormatError> decode_self(std::string_view value) {
  Reader r(value, Kind::self);
  SelfRecord s;
  s.name = r.str(kMaxName);
  s.incarnation = r.varint();
  if (auto e = r.finish()) return *e;
  return s;
}

std::string encode_members(const std::vector<MemberRecord>& members) {
  Writer w(Kind::members);
  w.reserve(members.size() * 48 + 16);
  w.varint(members.size());
  for (const auto& m : members) {
    w.str(m.name);
    w.str(m.address);
    w.u8(m.state);
    w.varint(m.incarnation);
    w.i64(m.last_seen_ms);
    w.i64(m.state_since_ms);
  }
  return w.finish();
}

std::variant<std::vector<MemberRecord>, FormatError> decode_members(std::string_view value) {
  Reader r(value, Kind::members);
  std::vector<MemberRecord> out;
  const auto n = r.varint();
  if (r.ok() && r.plausible(n, 20)) {
    out.reserve(n);
    for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
      MemberRecord m;
      m.name = r.str(kMaxName);
      m.address = r.str(kMaxAddress);
      m.state = r.u8();
      if (r.ok() && m.state > 3) r.fail(fmt::format("member {} has state {}", m.name, m.state));
      m.incarnation = r.varint();
      m.last_seen_ms = r.i64();
      m.state_since_ms = r.i64();
      out.push_back(std::move(m));
    }
  }
  if (auto e = r.finish()) return *e;
  return out;
}

std::string encode_member_tags(const std::vector<MemberRecord>& members) {
  Writer w(Kind::member_tags);
  std::size_t tagged = 0;
  for (const auto& m : members) tagged += m.tags_at.has_value();
  w.varint(tagged);
  for (const auto& m : members) {
    if (!m.tags_at) continue;
    w.str(m.name);
    w.varint(*m.tags_at);
    w.varint(m.tags.size());
    for (const auto& [k, v] : m.tags) {
      w.str(k);
      w.str(v);
    }
  }
  return w.finish();
}

std::optional<FormatError> decode_member_tags(std::string_view value,
                                              std::vector<MemberRecord>& members) {
  Reader r(value, Kind::member_tags);
  struct Tagged {
    std::uint64_t at = 0;
    std::vector<std::pair<std::string, std::string>> tags;
  };
  std::unordered_map<std::string, Tagged> by_name;
  const auto n = r.varint();
  if (r.ok() && r.plausible(n, 4)) {
    for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
      std::string name = r.str(kMaxName);
      const auto at = r.varint();
      const auto count = r.varint();
      if (r.ok() && count > kMaxTags) r.fail(fmt::format("member {} has {} tags", name, count));
      std::vector<std::pair<std::string, std::string>> tags;
      for (std::uint64_t t = 0; t < count && r.ok(); ++t) {
        std::string k = r.str(kMaxTagKey);
        std::string v = r.str(kMaxTagValue);
        tags.emplace_back(std::move(k), std::move(v));
      }
      by_name[std::move(name)] = Tagged{at, std::move(tags)};
    }
  }
  if (auto e = r.finish()) return e;
  for (auto& m : members) {
    auto it = by_name.find(m.name);
    if (it == by_name.end()) continue;
    if (it->second.at > m.incarnation) {
      return FormatError{fmt::format("member {} has tags from incarnation {}, after its {}", m.name,
                                     it->second.at, m.incarnation)};
    }
    m.tags = std::move(it->second.tags);
    m.tags_at = it->second.at;
  }
  return std::nullopt;
}

namespace {

// LSD radix sort by id, a byte at a time, skipping the bytes every id shares (ids below
// 2^32 need 4 passes at most). Half the snapshot's CPU went to std::sort here before.
void sort_by_id(std::vector<UserRecord>& users) {
  if (users.size() < 64) {
    std::sort(users.begin(), users.end(), [](auto& a, auto& b) { return a.id < b.id; });
    return;
  }
  std::vector<UserRecord> buffer(users.size());
  auto* from = &users;
  auto* to = &buffer;
  for (int shift = 0; shift < 64; shift += 8) {
    std::array<std::size_t, 257> count{};
    for (const auto& u : *from) ++count[((u.id >> shift) & 0xff) + 1];
    if (std::any_of(count.begin() + 1, count.end(), [&](auto c) { return c == from->size(); })) {
      continue;  // every id has the same byte here
    }
    for (std::size_t i = 1; i < count.size(); ++i) count[i] += count[i - 1];
    for (const auto& u : *from) (*to)[count[(u.id >> shift) & 0xff]++] = u;
    std::swap(from, to);
  }
  if (from != &users) users.swap(buffer);
}

}  // namespace

std::string encode_users(std::vector<UserRecord>& users, std::int64_t base_ms) {
  sort_by_id(users);
  Writer w(Kind::users);
  w.reserve(users.size() * 6 + 32);
  w.i64(base_ms);
  w.varint(users.size());
  std::uint64_t prev = 0;
  for (std::size_t i = 0; i < users.size(); ++i) {
    const auto& u = users[i];
    w.varint(i == 0 ? u.id : u.id - prev);
    prev = u.id;
    const auto age =
        static_cast<std::uint64_t>(std::max<std::int64_t>(0, base_ms - u.last_seen_ms));
    w.varint(age << 1 | (u.logged_out ? 1 : 0));
  }
  return w.finish();
}

std::optional<FormatError> decode_users(std::string_view value, std::vector<UserRecord>& out) {
  Reader r(value, Kind::users);
  const auto base = r.i64();
  const auto n = r.varint();
  if (r.ok() && r.plausible(n, 2)) {
    out.reserve(out.size() + n);
    std::uint64_t prev = 0;
    for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
      const auto gap = r.varint();
      if (r.ok() && i > 0 && (gap == 0 || gap > ~prev)) {
        r.fail("user ids not strictly increasing");
        break;
      }
      const auto id = i == 0 ? gap : prev + gap;
      const auto age = r.varint();
      // An age past half the range, or one that would take the time below INT64_MIN, cannot
      // come from a snapshot (the fuzzer found the second).
      if (r.ok() && ((age >> 1) > static_cast<std::uint64_t>(INT64_MAX / 2) ||
                     base < INT64_MIN + static_cast<std::int64_t>(age >> 1))) {
        r.fail("age out of range");
      }
      if (!r.ok()) break;
      out.push_back(UserRecord{id, base - static_cast<std::int64_t>(age >> 1), (age & 1) != 0});
      prev = id;
    }
  }
  return r.finish();
}

std::string encode_manifest(const PresenceManifest& m) {
  Writer w(Kind::manifest);
  w.i64(m.taken_ms);
  w.varint(m.users);
  w.varint(m.bytes);
  w.varint(m.chunks);
  return w.finish();
}

std::variant<PresenceManifest, FormatError> decode_manifest(std::string_view value) {
  Reader r(value, Kind::manifest);
  PresenceManifest m;
  m.taken_ms = r.i64();
  m.users = r.varint();
  m.bytes = r.varint();
  const auto chunks = r.varint();
  if (r.ok() && chunks > 65536) r.fail(fmt::format("{} chunks", chunks));
  m.chunks = static_cast<std::uint32_t>(chunks);
  if (auto e = r.finish()) return *e;
  return m;
}

}  // namespace heartbeatd::persist
