// Datagram envelope: plain and sealed round trips, every reason a datagram is dropped
// (including corruption of each byte), size limits, keyrings (which key seals, which open,
// the seal_outgoing / require_sealed matrix), fingerprints, and reading key files.
#include "transport/cluster/datagram_seal.h"

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
  return std::get<DatagramSeal::Opened>(r).body;
}

// Which key of the receiver's ring opened it (nullopt: plain); fails the test on a drop.
std::optional<std::size_t> opened_with(const DatagramSeal& s, const Bytes& d) {
  auto r = s.open(d);
  if (auto* why = std::get_if<DropReason>(&r)) {
    ADD_FAILURE() << "dropped: " << to_string(*why);
    return std::nullopt;
  }
  return std::get<DatagramSeal::Opened>(r).key;
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

TEST(DatagramSeal, SealedAndPlainDoNotMixByDefault) {
  const DatagramSeal keyed("prod", kKey);
  const DatagramSeal plain("prod", std::nullopt);
  EXPECT_EQ(dropped(plain, keyed.seal(kBody)), DropReason::bad_tag);
  EXPECT_EQ(dropped(keyed, plain.seal(kBody)), DropReason::unsealed);
}

const SealKey kThirdKey = key_of(2);

TEST(Keyring, FirstKeySealsEveryKeyOpens) {
  const DatagramSeal ab("prod", Keyring{kKey, kOtherKey}, {});
  const DatagramSeal ba("prod", Keyring{kOtherKey, kKey}, {});
  const DatagramSeal only_a("prod", kKey);
  const DatagramSeal only_b("prod", kOtherKey);
  // ab seals with A: A-only and B-first rings open it, a B-only ring cannot.
  const Bytes by_ab = ab.seal(kBody);
  EXPECT_EQ(opened_with(only_a, by_ab), 0u);
  EXPECT_EQ(opened_with(ba, by_ab), 1u);
  EXPECT_EQ(opened_with(ab, by_ab), 0u);
  EXPECT_EQ(dropped(only_b, by_ab), DropReason::bad_tag);
  // And the other way round.
  const Bytes by_ba = ba.seal(kBody);
  EXPECT_EQ(opened_with(only_b, by_ba), 0u);
  EXPECT_EQ(opened_with(ab, by_ba), 1u);
  EXPECT_EQ(dropped(only_a, by_ba), DropReason::bad_tag);
  EXPECT_EQ(opened(ab, by_ba), kBody);
  // A key no ring member holds.
  EXPECT_EQ(dropped(ab, DatagramSeal("prod", kThirdKey).seal(kBody)), DropReason::bad_tag);
}

// The three steps of a rotation from A to B, each node at either side of a step: no pair of
// adjacent states ever drops a datagram, and the last state no longer opens A.
TEST(Keyring, ARotationNeverDropsBetweenNeighbouringSteps) {
  const std::vector<Keyring> steps = {{kKey}, {kKey, kOtherKey}, {kOtherKey, kKey}, {kOtherKey}};
  for (std::size_t i = 0; i + 1 < steps.size(); ++i) {
    const DatagramSeal before("prod", steps[i], {}), after("prod", steps[i + 1], {});
    EXPECT_EQ(opened(after, before.seal(kBody)), kBody) << "step " << i;
    EXPECT_EQ(opened(before, after.seal(kBody)), kBody) << "step " << i;
  }
  const DatagramSeal removed("prod", steps.back(), {});
  EXPECT_EQ(dropped(removed, DatagramSeal("prod", kKey).seal(kBody)), DropReason::bad_tag)
      << "a removed key no longer opens";
}

// seal_outgoing x require_sealed, with keys, against plain and sealed senders.
TEST(Keyring, SealOutgoingAndRequireSealedMatrix) {
  const DatagramSeal plain_sender("prod", std::nullopt);
  const DatagramSeal sealed_sender("prod", kKey);
  const DatagramSeal wrong_key_sender("prod", kThirdKey);
  for (bool seal_outgoing : {false, true}) {
    for (bool require_sealed : {false, true}) {
      const DatagramSeal s("prod", Keyring{kKey, kOtherKey}, {seal_outgoing, require_sealed});
      SCOPED_TRACE(::testing::Message()
                   << "seal_outgoing " << seal_outgoing << ", require_sealed " << require_sealed);
      EXPECT_EQ(s.sealed(), seal_outgoing);
      EXPECT_EQ(s.requires_sealed(), require_sealed);
      const Bytes out = s.seal(kBody);
      EXPECT_EQ(out[2], seal_outgoing ? 1 : 0) << "flags";
      EXPECT_EQ(out.size(), kBody.size() + (seal_outgoing ? DatagramSeal::overhead_bytes
                                                          : DatagramSeal::header_bytes));
      // Plain out while requiring sealed in would drop nodes configured alike: the config
      // refuses that pair, the envelope just does what it is told.
      if (seal_outgoing || !require_sealed) {
        EXPECT_EQ(opened(s, out), kBody) << "a node opens its own datagrams";
      } else {
        EXPECT_EQ(dropped(s, out), DropReason::unsealed);
      }
      if (require_sealed) {
        EXPECT_EQ(dropped(s, plain_sender.seal(kBody)), DropReason::unsealed);
      } else {
        EXPECT_EQ(opened_with(s, plain_sender.seal(kBody)), std::nullopt);
      }
      EXPECT_EQ(opened_with(s, sealed_sender.seal(kBody)), 0u);
      // Accepting plain never means accepting a sealed datagram that fails authentication.
      EXPECT_EQ(dropped(s, wrong_key_sender.seal(kBody)), DropReason::bad_tag);
    }
  }
}

TEST(Keyring, WithoutKeysPlainOnly) {
  const DatagramSeal s("prod", Keyring{}, {false, false});
  EXPECT_FALSE(s.sealed());
  EXPECT_FALSE(s.requires_sealed());
  EXPECT_EQ(s.seal(kBody).size(), DatagramSeal::header_bytes + kBody.size());
  EXPECT_EQ(opened_with(s, DatagramSeal("prod", std::nullopt).seal(kBody)), std::nullopt);
  EXPECT_EQ(dropped(s, DatagramSeal("prod", kKey).seal(kBody)), DropReason::bad_tag);
  EXPECT_THROW(DatagramSeal("prod", Keyring{}, {true, false}), std::invalid_argument);
  EXPECT_THROW(DatagramSeal("prod", Keyring{}, {false, true}), std::invalid_argument);
}

TEST(Keyring, FingerprintsAreStableShortAndNotTheKey) {
  // BLAKE2b-256 of 00 01 .. 1f, first 8 bytes.
  std::uint8_t hash[32];
  crypto_generichash(hash, sizeof hash, kKey.data(), kKey.size(), nullptr, 0);
  char hex[17];
  sodium_bin2hex(hex, sizeof hex, hash, 8);
  EXPECT_EQ(fingerprint(kKey), hex);
  EXPECT_EQ(fingerprint(kKey).size(), 16u);
  EXPECT_EQ(fingerprint(kKey), fingerprint(key_of(0)));
  EXPECT_NE(fingerprint(kKey), fingerprint(kOtherKey));
  char key_hex[65];
  sodium_bin2hex(key_hex, sizeof key_hex, kKey.data(), kKey.size());
  EXPECT_EQ(std::string(key_hex).find(fingerprint(kKey)), std::string::npos);
  const DatagramSeal s("prod", Keyring{kOtherKey, kKey}, {});
  EXPECT_EQ(s.fingerprints(),
            (std::vector<std::string>{fingerprint(kOtherKey), fingerprint(kKey)}));
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
  if (i == 2) return mask == 1 ? DropReason::unsealed : DropReason::malformed;  // 1 -> 0: plain
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
  EXPECT_EQ(to_string(DropReason::unsealed), "unsealed");
  EXPECT_EQ(kDropReasonCount, 5u);
}

// Key 00 01 02 ... 1f in both accepted spellings.
constexpr const char* kHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
constexpr const char* kBase64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

std::optional<Keyring> read_key(const test::TempDir& dir, const std::string& content,
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
        std::string(kBase64) + "\n", "  " + std::string(kBase64) + " \n\n",
        "# the cluster key\n\n" + std::string(kHex) + "  # since 2026-12\n"}) {
    std::string why;
    auto keys = read_key(dir, content, &why);
    ASSERT_TRUE(keys) << content << ": " << why;
    EXPECT_EQ(*keys, Keyring{kKey}) << content;
  }
}

TEST(ReadKeyFile, ReadsARingInOrder) {
  test::TempDir dir;
  char other_hex[65];
  sodium_bin2hex(other_hex, sizeof other_hex, kOtherKey.data(), kOtherKey.size());
  std::string why;
  auto keys = read_key(dir,
                       "# primary: seals\n" + std::string(other_hex) +
                           "\n\n   # still accepted while the rotation runs\n" + kBase64 + "\n",
                       &why);
  ASSERT_TRUE(keys) << why;
  EXPECT_EQ(*keys, (Keyring{kOtherKey, kKey}));
}

TEST(ReadKeyFile, RefusesWhatIsNotAKeyNamingTheLine) {
  test::TempDir dir;
  const std::string path = dir.file("key");
  const std::string expected = ": expected a key of 32 bytes as 64 hex digits or base64, got ";
  const std::pair<std::string, std::string> cases[] = {
      {std::string(kHex).substr(2), ":1" + expected + "62 hex digits"},
      {std::string(kHex) + "00", ":1" + expected + "66 hex digits"},
      {"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==", ":1" + expected + "base64 of 31 bytes"},
      {"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gIQ==", ":1" + expected + "base64 of 34 bytes"},
      {std::string(kHex).substr(0, 63) + "g",
       ":1" + expected + "64 characters that are not all hex digits"},
      {"\n" + std::string(kBase64).substr(0, 43) + "!",
       ":2" + expected + "44 characters that are neither hex nor base64"},
      {"# comment\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
       ":2" + expected + "43 characters that are neither hex nor base64"},
      {std::string(kHex).substr(0, 32) + " " + std::string(kHex).substr(32),
       ":1" + expected + "65 characters that are neither hex nor base64"},
      {std::string(kHex) + "\nnot a key\n",
       ":2" + expected + "9 characters that are neither hex nor base64"},
      {"", ": no key: the file is empty"},
      {"\n\n", ": no key: only blank lines and comments"},
      {"# " + std::string(kHex) + "\n", ": no key: only blank lines and comments"},
      {std::string(kHex) + "\n# again\n" + kBase64 + "\n",
       ":3: the same key as line 1: remove one of them"},
      {std::string(20000, 'a'), ": a file over 16384 bytes is not a key file"},
  };
  for (const auto& [content, got] : cases) {
    std::string why;
    EXPECT_FALSE(read_key(dir, content, &why)) << content;
    EXPECT_EQ(why, path + got);
    // The message never carries key material, however the line was spelled.
    EXPECT_EQ(why.find(std::string(kHex).substr(0, 16)), std::string::npos) << why;
    EXPECT_EQ(why.find(std::string(kBase64).substr(0, 16)), std::string::npos) << why;
  }
}

TEST(ReadKeyFile, AtMost16Keys) {
  test::TempDir dir;
  std::string ring;
  for (int i = 0; i < 17; ++i) {
    const SealKey k = key_of(static_cast<std::uint8_t>(10 + i));
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, k.data(), k.size());
    ring += std::string(hex) + "\n";
    if (i == 15) {
      std::string why;
      auto keys = read_key(dir, ring, &why);
      ASSERT_TRUE(keys) << why;
      EXPECT_EQ(keys->size(), kMaxKeys);
    }
  }
  std::string why;
  EXPECT_FALSE(read_key(dir, ring, &why));
  EXPECT_EQ(why, dir.file("key") + ":17: more than 16 keys");
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
