// DatagramSeal: the datagram envelope and its optional XChaCha20-Poly1305 sealing, on
// libsodium (see datagram_seal.h for the layout).
#include "transport/cluster/datagram_seal.h"

#include <sodium.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace heartbeatd::transport {
namespace {

constexpr std::size_t kNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
static_assert(kNonceBytes == 24 && crypto_aead_xchacha20poly1305_ietf_ABYTES == 16);
static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == kSealKeyBytes);
static_assert(DatagramSeal::overhead_bytes ==
              DatagramSeal::header_bytes + kNonceBytes + crypto_aead_xchacha20poly1305_ietf_ABYTES);

constexpr std::uint8_t kFlagSealed = 1;

// sodium_init() is idempotent and thread-safe; the static only saves repeating the call.
void init_sodium() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) throw std::runtime_error("libsodium failed to initialise");
}

// Binding the cluster name (not just its 4-byte tag) means a key shared by two clusters
// still cannot carry one cluster's datagrams into the other.
std::vector<std::uint8_t> associated_data(std::span<const std::uint8_t> header,
                                          const std::string& cluster_name) {
  std::vector<std::uint8_t> ad(header.size() + cluster_name.size());
  std::copy(header.begin(), header.end(), ad.begin());
  std::copy(cluster_name.begin(), cluster_name.end(), ad.begin() + header.size());
  return ad;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// What a key file holds when it is not a key, for the error message.
std::string describe_bad_key(std::string_view text) {
  if (text.empty()) return "an empty file";
  if (std::all_of(text.begin(), text.end(), is_hex)) {
    return std::to_string(text.size()) + " hex digits";
  }
  // Base64 of 32 bytes is 44 characters, so 64 can only be hex with a typo.
  if (text.size() == 2 * kSealKeyBytes) return "64 characters that are not all hex digits";
  std::vector<unsigned char> bin(text.size());
  std::size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(bin.data(), bin.size(), text.data(), text.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != text.data() + text.size()) {
    return std::to_string(text.size()) + " characters that are neither hex nor base64";
  }
  sodium_memzero(bin.data(), bin.size());
  return "base64 of " + std::to_string(len) + " bytes";
}

std::optional<SealKey> parse_key(std::string_view text) {
  SealKey key;
  std::size_t len = 0;
  const char* end = nullptr;
  const bool hex =
      text.size() == 2 * kSealKeyBytes && std::all_of(text.begin(), text.end(), is_hex);
  // base642bin refuses anything decoding to more than 32 bytes, as it would not fit.
  const int rc =
      hex ? sodium_hex2bin(key.data(), key.size(), text.data(), text.size(), nullptr, &len, &end)
          : sodium_base642bin(key.data(), key.size(), text.data(), text.size(), nullptr, &len, &end,
                              sodium_base64_VARIANT_ORIGINAL);
  if (rc == 0 && len == kSealKeyBytes && end == text.data() + text.size()) return key;
  sodium_memzero(key.data(), key.size());
  return std::nullopt;
}

}  // namespace

std::string_view to_string(DropReason r) {
  switch (r) {
    case DropReason::malformed:
      return "malformed";
    case DropReason::unknown_version:
      return "unknown_version";
    case DropReason::foreign_cluster:
      return "foreign_cluster";
    case DropReason::bad_tag:
      return "bad_tag";
    case DropReason::unsealed:
      return "unsealed";
  }
  return "unknown";
}

std::string fingerprint(const SealKey& key) {
  init_sodium();
  std::array<std::uint8_t, 32> hash;
  crypto_generichash(hash.data(), hash.size(), key.data(), key.size(), nullptr, 0);
  constexpr std::size_t kFingerprintBytes = 8;
  std::array<char, 2 * kFingerprintBytes + 1> hex;
  sodium_bin2hex(hex.data(), hex.size(), hash.data(), kFingerprintBytes);
  return std::string(hex.data(), 2 * kFingerprintBytes);
}

std::uint64_t DatagramSeal::ring_key() const {
  if (keys_.empty()) return 0;
  static constexpr std::string_view kLabel = "heartbeatd monitor ring positions";
  std::array<std::uint8_t, 8> out;
  crypto_generichash(out.data(), out.size(), reinterpret_cast<const unsigned char*>(kLabel.data()),
                     kLabel.size(), keys_.front().data(), keys_.front().size());
  std::uint64_t key = 0;
  for (auto b : out) key = (key << 8) | b;
  return key == 0 ? 1 : key;
}

std::optional<Keyring> read_key_file(const std::string& path, std::string* why) {
  init_sodium();
  auto fail = [&](const std::string& cause) -> std::optional<Keyring> {
    if (why) *why = path + ": " + cause;
    return std::nullopt;
  };
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return fail(std::string("cannot read: ") + std::strerror(errno));
  // A ring is a few short lines; the bound keeps a wrong path (a device, a log file) from
  // hanging startup or filling memory.
  constexpr std::size_t kMaxFileBytes = 16 << 10;
  std::vector<char> buf(kMaxFileBytes + 1);
  const std::size_t n = std::fread(buf.data(), 1, buf.size(), f);
  const int read_errno = std::ferror(f) ? (errno != 0 ? errno : EIO) : 0;
  std::fclose(f);
  // Zeroed on every path out: the buffer holds every key of the file.
  struct Wipe {
    std::vector<char>& b;
    ~Wipe() { sodium_memzero(b.data(), b.size()); }
  } wipe{buf};
  if (read_errno != 0) return fail(std::string("cannot read: ") + std::strerror(read_errno));
  if (n > kMaxFileBytes) {
    return fail("a file over " + std::to_string(kMaxFileBytes) + " bytes is not a key file");
  }

  Keyring keys;
  std::vector<int> key_lines;  // where each key was read, for "the same key as line N"
  // A line's error; the keys read so far are wiped on the way out.
  auto fail_line = [&](int line, const std::string& cause) -> std::optional<Keyring> {
    for (auto& k : keys) sodium_memzero(k.data(), k.size());
    if (why) *why = path + ":" + std::to_string(line) + ": " + cause;
    return std::nullopt;
  };
  std::string_view rest(buf.data(), n);
  for (int line = 1; !rest.empty(); ++line) {
    const std::size_t eol = rest.find('\n');
    std::string_view text = rest.substr(0, eol);
    rest.remove_prefix(eol == std::string_view::npos ? rest.size() : eol + 1);
    // Neither hex nor base64 uses '#', so a comment may follow a key on its line.
    if (const auto hash = text.find('#'); hash != std::string_view::npos)
      text = text.substr(0, hash);
    while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
    while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
    if (text.empty()) continue;
    auto key = parse_key(text);
    if (!key) {
      return fail_line(line, "expected a key of 32 bytes as 64 hex digits or base64, got " +
                                 describe_bad_key(text));
    }
    std::optional<std::string> problem;
    for (std::size_t i = 0; i < keys.size() && !problem; ++i) {
      if (sodium_memcmp(keys[i].data(), key->data(), key->size()) == 0) {
        problem = "the same key as line " + std::to_string(key_lines[i]) + ": remove one of them";
      }
    }
    if (!problem && keys.size() == kMaxKeys)
      problem = "more than " + std::to_string(kMaxKeys) + " keys";
    if (!problem) keys.push_back(*key), key_lines.push_back(line);
    sodium_memzero(key->data(), key->size());
    if (problem) return fail_line(line, *problem);
  }
  if (keys.empty()) {
    return fail(n == 0 ? "no key: the file is empty" : "no key: only blank lines and comments");
  }
  return keys;
}

DatagramSeal::DatagramSeal(std::string cluster_name, Keyring keys, SealPolicy policy)
    : cluster_name_(std::move(cluster_name)), keys_(std::move(keys)), policy_(policy) {
  init_sodium();
  if (keys_.empty() && (policy_.seal_outgoing || policy_.require_sealed)) {
    throw std::invalid_argument("DatagramSeal: sealing asked for without a key");
  }
  if (keys_.size() > kMaxKeys) throw std::invalid_argument("DatagramSeal: too many keys");
  for (const auto& k : keys_) fingerprints_.push_back(fingerprint(k));
  std::array<std::uint8_t, 32> hash;
  crypto_generichash(hash.data(), hash.size(),
                     reinterpret_cast<const unsigned char*>(cluster_name_.data()),
                     cluster_name_.size(), nullptr, 0);
  std::copy_n(hash.begin(), cluster_tag_.size(), cluster_tag_.begin());
}

DatagramSeal::DatagramSeal(std::string cluster_name, std::optional<SealKey> key)
    : DatagramSeal(std::move(cluster_name), key ? Keyring{*key} : Keyring{},
                   SealPolicy{key.has_value(), key.has_value()}) {}

DatagramSeal::~DatagramSeal() {
  for (auto& k : keys_) sodium_memzero(k.data(), k.size());
}

std::vector<std::uint8_t> DatagramSeal::seal(std::span<const std::uint8_t> body) const {
  const bool sealing = policy_.seal_outgoing;
  const std::size_t limit = kMaxDatagramBytes - (sealing ? overhead_bytes : header_bytes);
  if (body.size() > limit) {
    throw std::invalid_argument("seal: body of " + std::to_string(body.size()) + " bytes exceeds " +
                                std::to_string(limit));
  }
  std::vector<std::uint8_t> out((sealing ? overhead_bytes : header_bytes) + body.size());
  out[0] = kWireMagic;
  out[1] = kWireVersion;
  out[2] = sealing ? kFlagSealed : 0;
  out[3] = 0;
  std::copy(cluster_tag_.begin(), cluster_tag_.end(), out.begin() + 4);
  if (!sealing) {
    std::copy(body.begin(), body.end(), out.begin() + header_bytes);
    return out;
  }
  // Random 192-bit nonces never repeat in practice, so no counter has to survive restarts.
  std::uint8_t* nonce = out.data() + header_bytes;
  randombytes_buf(nonce, kNonceBytes);
  const auto ad = associated_data(std::span(out).first(header_bytes), cluster_name_);
  unsigned long long sealed_len = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(nonce + kNonceBytes, &sealed_len, body.data(),
                                             body.size(), ad.data(), ad.size(), nullptr, nonce,
                                             keys_.front().data());
  return out;
}

std::variant<DatagramSeal::Opened, DropReason> DatagramSeal::open(
    std::span<const std::uint8_t> datagram) const {
  const auto& d = datagram;
  if (d.size() < header_bytes || d[0] != kWireMagic) return DropReason::malformed;
  if (d[1] != kWireVersion) return DropReason::unknown_version;
  if (d[3] != 0 || d[2] > kFlagSealed) return DropReason::malformed;
  if (!std::equal(cluster_tag_.begin(), cluster_tag_.end(), d.begin() + 4)) {
    return DropReason::foreign_cluster;
  }
  if (d[2] != kFlagSealed) {
    if (policy_.require_sealed) return DropReason::unsealed;
    return Opened{std::vector<std::uint8_t>(d.begin() + header_bytes, d.end()), std::nullopt};
  }
  // Sealed, and no key to open it with: indistinguishable from a forgery.
  if (keys_.empty()) return DropReason::bad_tag;
  if (d.size() < overhead_bytes) return DropReason::malformed;
  const std::uint8_t* nonce = d.data() + header_bytes;
  const auto ad = associated_data(d.first(header_bytes), cluster_name_);
  std::vector<std::uint8_t> body(d.size() - overhead_bytes);
  // The sealing key first: in steady state every datagram opens at the first try.
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    unsigned long long body_len = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(body.data(), &body_len, nullptr,
                                                   nonce + kNonceBytes,
                                                   d.size() - header_bytes - kNonceBytes, ad.data(),
                                                   ad.size(), nonce, keys_[i].data()) == 0) {
      return Opened{std::move(body), i};
    }
  }
  return DropReason::bad_tag;
}

}  // namespace heartbeatd::transport
