// DatagramSeal: the datagram envelope and its optional XChaCha20-Poly1305 sealing, on
// libsodium (see datagram_seal.h for the layout).
#include "transport/datagram_seal.h"

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
  }
  return "unknown";
}

std::optional<SealKey> read_key_file(const std::string& path, std::string* why) {
  init_sodium();
  auto fail = [&](const std::string& cause) -> std::optional<SealKey> {
    if (why) *why = path + ": " + cause;
    return std::nullopt;
  };
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return fail(std::string("cannot read: ") + std::strerror(errno));
  // A key is one short line; the bound keeps a wrong path (a device, a log file) from
  // hanging startup or filling memory.
  constexpr std::size_t kMaxFileBytes = 1024;
  std::array<char, kMaxFileBytes + 1> buf{};
  const std::size_t n = std::fread(buf.data(), 1, buf.size(), f);
  const int read_errno = std::ferror(f) ? (errno != 0 ? errno : EIO) : 0;
  std::fclose(f);
  if (read_errno != 0) return fail(std::string("cannot read: ") + std::strerror(read_errno));

  std::string_view text(buf.data(), n);
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  std::optional<SealKey> key;
  std::string bad;
  if (n > kMaxFileBytes) {
    bad = "a file over " + std::to_string(kMaxFileBytes) + " bytes";
  } else if (!(key = parse_key(text))) {
    bad = describe_bad_key(text);
  }
  sodium_memzero(buf.data(), buf.size());
  if (!key) return fail("expected 32 bytes as 64 hex digits or base64, got " + bad);
  return key;
}

DatagramSeal::DatagramSeal(std::string cluster_name, std::optional<SealKey> key)
    : cluster_name_(std::move(cluster_name)), key_(key) {
  init_sodium();
  std::array<std::uint8_t, 32> hash;
  crypto_generichash(hash.data(), hash.size(),
                     reinterpret_cast<const unsigned char*>(cluster_name_.data()),
                     cluster_name_.size(), nullptr, 0);
  std::copy_n(hash.begin(), cluster_tag_.size(), cluster_tag_.begin());
}

std::vector<std::uint8_t> DatagramSeal::seal(std::span<const std::uint8_t> body) const {
  const std::size_t limit = kMaxDatagramBytes - (key_ ? overhead_bytes : header_bytes);
  if (body.size() > limit) {
    throw std::invalid_argument("seal: body of " + std::to_string(body.size()) + " bytes exceeds " +
                                std::to_string(limit));
  }
  std::vector<std::uint8_t> out((key_ ? overhead_bytes : header_bytes) + body.size());
  out[0] = kWireMagic;
  out[1] = kWireVersion;
  out[2] = key_ ? kFlagSealed : 0;
  out[3] = 0;
  std::copy(cluster_tag_.begin(), cluster_tag_.end(), out.begin() + 4);
  if (!key_) {
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
                                             key_->data());
  return out;
}

std::variant<std::vector<std::uint8_t>, DropReason> DatagramSeal::open(
    std::span<const std::uint8_t> datagram) const {
  const auto& d = datagram;
  if (d.size() < header_bytes || d[0] != kWireMagic) return DropReason::malformed;
  if (d[1] != kWireVersion) return DropReason::unknown_version;
  if (d[3] != 0 || d[2] > kFlagSealed) return DropReason::malformed;
  if (!std::equal(cluster_tag_.begin(), cluster_tag_.end(), d.begin() + 4)) {
    return DropReason::foreign_cluster;
  }
  const bool sealed_datagram = d[2] == kFlagSealed;
  if (sealed_datagram != key_.has_value()) return DropReason::bad_tag;
  if (!sealed_datagram) return std::vector<std::uint8_t>(d.begin() + header_bytes, d.end());

  if (d.size() < overhead_bytes) return DropReason::malformed;
  const std::uint8_t* nonce = d.data() + header_bytes;
  const auto ad = associated_data(d.first(header_bytes), cluster_name_);
  std::vector<std::uint8_t> body(d.size() - overhead_bytes);
  unsigned long long body_len = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          body.data(), &body_len, nullptr, nonce + kNonceBytes,
          d.size() - header_bytes - kNonceBytes, ad.data(), ad.size(), nonce, key_->data()) != 0) {
    return DropReason::bad_tag;
  }
  return body;
}

}  // namespace heartbeatd::transport
