// Datagram envelope: plain and sealed round trips, every reason a datagram is dropped
// (including corruption of each byte), size limits, and reading key files.
#include "transport/datagram_seal.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <unordered_map>

#include "membership/wire_codec.h"
#include "tests/support/test_util.h"

namespace heartbeatd::transport {
namespace {

using Bytes = std::vector<std::uint8_t>;

SealKey key_of(std::uint8_t first) {
  SealKey k;
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(first + i);
  return k;
}
const SealKey kKey = key_of(0);
const SealKey kOtherKey = key_of(1);
const Bytes kBody = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

Bytes opened(const DatagramSeal& s, const Bytes& d) {
  auto r = s.open(d);
  if (auto* why = std::get_if<DropReason>(&r)) {
    ADD_FAILURE() << "dropped: " << to_string(*why);
    return {};
  }
  return std::get<Bytes>(r);
}

std::optional<DropReason> dropped(const DatagramSeal& s, const Bytes& d) {
  auto r = s.open(d);
  if (auto* why = std::get_if<DropReason>(&r)) return *why;
  return std::nullopt;
}

TEST(DatagramSeal, SizesFitTheCodec) {
  static_assert(DatagramSeal::overhead_bytes == 48);
  static_assert(membership::kMaxBodyBytes + DatagramSeal::overhead_bytes == kMaxDatagramBytes);
}

TEST(DatagramSeal, PlainRoundTripAndHeader) {
  const DatagramSeal s("prod", std::nullopt);
  EXPECT_FALSE(s.sealed());
  const Bytes d = s.seal(kBody);
  // BLAKE2b-256("prod") starts 09 dd e4 96.
  const Bytes header = {0xB7, 2, 0, 0, 0x09, 0xdd, 0xe4, 0x96};
  ASSERT_EQ(d.size(), 8 + kBody.size());
  EXPECT_EQ(Bytes(d.begin(), d.begin() + 8), header);
  EXPECT_EQ(Bytes(d.begin() + 8, d.end()), kBody);
  EXPECT_EQ(opened(s, d), kBody);
  EXPECT_EQ(opened(s, s.seal({})), Bytes{});
}

TEST(DatagramSeal, SealedRoundTrip) {
  const DatagramSeal s("prod", kKey);
  EXPECT_TRUE(s.sealed());
  const Bytes d = s.seal(kBody);
  ASSERT_EQ(d.size(), DatagramSeal::overhead_bytes + kBody.size());
  EXPECT_EQ(Bytes(d.begin(), d.begin() + 8), (Bytes{0xB7, 2, 1, 0, 0x09, 0xdd, 0xe4, 0x96}));
  EXPECT_EQ(opened(s, d), kBody);
  EXPECT_EQ(opened(DatagramSeal("prod", kKey), d), kBody);  // any node with the key
  EXPECT_EQ(opened(s, s.seal({})), Bytes{});
}

TEST(DatagramSeal, NoncesAreRandom) {
  const DatagramSeal s("prod", kKey);
  const Bytes a = s.seal(kBody);
  const Bytes b = s.seal(kBody);
  EXPECT_NE(a, b);
  EXPECT_NE(Bytes(a.begin() + 8, a.begin() + 32), Bytes(b.begin() + 8, b.begin() + 32));
  EXPECT_EQ(opened(s, a), kBody);
  EXPECT_EQ(opened(s, b), kBody);
}

TEST(DatagramSeal, WrongKeyIsBadTag) {
  EXPECT_EQ(dropped(DatagramSeal("prod", kOtherKey), DatagramSeal("prod", kKey).seal(kBody)),
            DropReason::bad_tag);
}

TEST(DatagramSeal, OtherClusterIsForeign) {
  EXPECT_EQ(dropped(DatagramSeal("staging", kKey), DatagramSeal("prod", kKey).seal(kBody)),
            DropReason::foreign_cluster);
  EXPECT_EQ(dropped(DatagramSeal("staging", std::nullopt),
                    DatagramSeal("prod", std::nullopt).seal(kBody)),
            DropReason::foreign_cluster);
}

TEST(DatagramSeal, SealedAndPlainDoNotMix) {
  const DatagramSeal keyed("prod", kKey);
  const DatagramSeal plain("prod", std::nullopt);
  EXPECT_EQ(dropped(plain, keyed.seal(kBody)), DropReason::bad_tag);
  EXPECT_EQ(dropped(keyed, plain.seal(kBody)), DropReason::bad_tag);
}

// The cluster name itself is authenticated, not just its 4-byte tag: two clusters whose tags
// collide but share a key still cannot read each other's datagrams.
TEST(DatagramSeal, ClusterNameIsAuthenticated) {
  std::unordered_map<std::uint32_t, std::string> seen;
  std::string a, b;
  for (int i = 0; a.empty(); ++i) {
    const std::string name = "c" + std::to_string(i);
    std::uint8_t hash[32];
    crypto_generichash(hash, sizeof hash, reinterpret_cast<const unsigned char*>(name.data()),
                       name.size(), nullptr, 0);
    const std::uint32_t tag = hash[0] | hash[1] << 8 | hash[2] << 16 | std::uint32_t{hash[3]} << 24;
    auto [it, fresh] = seen.emplace(tag, name);
    if (!fresh) std::tie(a, b) = std::tie(it->second, name);
  }
  const Bytes d = DatagramSeal(a, kKey).seal(kBody);
  const Bytes same_header = DatagramSeal(b, kKey).seal(kBody);
  ASSERT_TRUE(std::equal(d.begin(), d.begin() + 8, same_header.begin())) << a << " vs " << b;
  EXPECT_EQ(dropped(DatagramSeal(b, kKey), d), DropReason::bad_tag) << a << " vs " << b;
}

// What flipping `mask` into byte `i` of a sealed datagram must be reported as.
DropReason expected_for_flip(std::size_t i, std::uint8_t mask) {
  if (i == 0 || i == 3) return DropReason::malformed;
  if (i == 1) return DropReason::unknown_version;
  if (i == 2) return mask == 1 ? DropReason::bad_tag : DropReason::malformed;  // 1 -> 0: plain
  if (i < 8) return DropReason::foreign_cluster;
  return DropReason::bad_tag;  // nonce, ciphertext, tag
}

TEST(DatagramSeal, EveryFlippedByteOfASealedDatagramIsDropped) {
  const DatagramSeal s("prod", kKey);
  const Bytes good = s.seal(kBody);
  for (std::size_t i = 0; i < good.size(); ++i) {
    for (std::uint8_t mask : {0x01, 0x80}) {
      Bytes d = good;
      d[i] ^= mask;
      EXPECT_EQ(dropped(s, d), expected_for_flip(i, mask)) << "byte " << i << " ^ " << int{mask};
    }
  }
}

TEST(DatagramSeal, FlippedHeaderOfAPlainDatagram) {
  const DatagramSeal s("prod", std::nullopt);
  const Bytes good = s.seal(kBody);
  for (std::size_t i = 0; i < 8; ++i) {
    Bytes d = good;
    d[i] ^= 0x01;
    // Flags 0 -> 1 claims a sealed datagram, which an unkeyed receiver refuses.
    const DropReason expected = i == 2 ? DropReason::bad_tag : expected_for_flip(i, 0x80);
    EXPECT_EQ(dropped(s, d), expected) << "byte " << i;
  }
  Bytes d = good;
  d.back() ^= 0xff;  // the body is the codec's business
  EXPECT_EQ(opened(s, d).back(), kBody.back() ^ 0xff);
}

TEST(DatagramSeal, OtherVersionsAreUnknown) {
  for (bool keyed : {false, true}) {
    const DatagramSeal s("prod", keyed ? std::optional(kKey) : std::nullopt);
    for (std::uint8_t v : {0, 1, 3, 255}) {
      Bytes d = s.seal(kBody);
      d[1] = v;
      EXPECT_EQ(dropped(s, d), DropReason::unknown_version) << int{v};
    }
  }
}

TEST(DatagramSeal, ShortDatagramsAreMalformed) {
  const DatagramSeal keyed("prod", kKey);
  const Bytes d = keyed.seal({});
  ASSERT_EQ(d.size(), DatagramSeal::overhead_bytes);
  for (std::size_t n = 0; n < d.size(); ++n) {
    const Bytes prefix(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_EQ(dropped(keyed, prefix), DropReason::malformed) << n;
  }
  const DatagramSeal plain("prod", std::nullopt);
  const Bytes p = plain.seal(kBody);
  for (std::size_t n = 0; n < 8; ++n) {
    EXPECT_EQ(dropped(plain, Bytes(p.begin(), p.begin() + static_cast<std::ptrdiff_t>(n))),
              DropReason::malformed)
        << n;
  }
  EXPECT_EQ(opened(plain, Bytes(p.begin(), p.begin() + 8)), Bytes{});
  // Sealed but cut inside the ciphertext: long enough to try, and authentication fails.
  const Bytes long_one = keyed.seal(kBody);
  EXPECT_EQ(dropped(keyed, Bytes(long_one.begin(), long_one.end() - 1)), DropReason::bad_tag);
}

TEST(DatagramSeal, SealRefusesOversizedBodies) {
  const DatagramSeal keyed("prod", kKey);
  const DatagramSeal plain("prod", std::nullopt);
  const Bytes max_sealed(kMaxDatagramBytes - DatagramSeal::overhead_bytes, 0x5a);
  const Bytes max_plain(kMaxDatagramBytes - DatagramSeal::header_bytes, 0x5a);
  EXPECT_EQ(keyed.seal(max_sealed).size(), kMaxDatagramBytes);
  EXPECT_EQ(opened(keyed, keyed.seal(max_sealed)), max_sealed);
  EXPECT_EQ(plain.seal(max_plain).size(), kMaxDatagramBytes);
  EXPECT_THROW(keyed.seal(Bytes(max_sealed.size() + 1)), std::invalid_argument);
  EXPECT_THROW(plain.seal(Bytes(max_plain.size() + 1)), std::invalid_argument);
}

TEST(DatagramSeal, DropReasonNames) {
  EXPECT_EQ(to_string(DropReason::malformed), "malformed");
  EXPECT_EQ(to_string(DropReason::unknown_version), "unknown_version");
  EXPECT_EQ(to_string(DropReason::foreign_cluster), "foreign_cluster");
  EXPECT_EQ(to_string(DropReason::bad_tag), "bad_tag");
}

// Key 00 01 02 ... 1f in both accepted spellings.
constexpr const char* kHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
constexpr const char* kBase64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

std::optional<SealKey> read_key(const test::TempDir& dir, const std::string& content,
                                std::string* why) {
  dir.write("key", content);
  return read_key_file(dir.file("key"), why);
}

TEST(ReadKeyFile, AcceptsHexAndBase64) {
  test::TempDir dir;
  std::string upper = kHex;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const std::string& content :
       {std::string(kHex), std::string(kHex) + "\n", upper + "\r\n", std::string(kBase64),
        std::string(kBase64) + "\n", "  " + std::string(kBase64) + " \n\n"}) {
    std::string why;
    auto key = read_key(dir, content, &why);
    ASSERT_TRUE(key) << content << ": " << why;
    EXPECT_EQ(*key, kKey) << content;
  }
}

TEST(ReadKeyFile, RefusesWhatIsNotAKey) {
  test::TempDir dir;
  const std::string path = dir.file("key");
  const std::string expected = path + ": expected 32 bytes as 64 hex digits or base64, got ";
  const std::pair<std::string, std::string> cases[] = {
      {std::string(kHex).substr(2), "62 hex digits"},
      {std::string(kHex) + "00", "66 hex digits"},
      {"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==", "base64 of 31 bytes"},
      {"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gIQ==", "base64 of 34 bytes"},
      {std::string(kHex).substr(0, 63) + "g", "64 characters that are not all hex digits"},
      {std::string(kBase64).substr(0, 43) + "#", "44 characters that are neither hex nor base64"},
      {"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
       "43 characters that are neither hex nor base64"},
      {std::string(kHex).substr(0, 32) + " " + std::string(kHex).substr(32),
       "65 characters that are neither hex nor base64"},
      {"\n\n", "an empty file"},
      {std::string(2000, 'a'), "a file over 1024 bytes"},
  };
  for (const auto& [content, got] : cases) {
    std::string why;
    EXPECT_FALSE(read_key(dir, content, &why)) << content;
    EXPECT_EQ(why, expected + got);
  }
}

TEST(ReadKeyFile, UnreadableFiles) {
  test::TempDir dir;
  std::string why;
  EXPECT_FALSE(read_key_file(dir.file("missing"), &why));
  EXPECT_EQ(why, dir.file("missing") + ": cannot read: No such file or directory");
  EXPECT_FALSE(read_key_file(dir.path(), &why));
  EXPECT_EQ(why, dir.path() + ": cannot read: Is a directory");
  EXPECT_FALSE(read_key_file(dir.file("missing"), nullptr));  // the reason is optional
}

}  // namespace
}  // namespace heartbeatd::transport
