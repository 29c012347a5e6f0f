// DatagramSeal: the envelope around every membership datagram (docs/PROTOCOL.md, "Envelope").
//
//   byte 0     magic 0xB7
//   byte 1     version (kWireVersion)
//   byte 2     flags: bit 0 = sealed (encrypted and authenticated)
//   byte 3     reserved, 0
//   bytes 4-7  cluster tag: first 4 bytes of BLAKE2b-256(cluster name), so datagrams of
//              another cluster are told apart from forgeries and counted separately
//   plain:     body follows
//   sealed:    24-byte nonce, then XChaCha20-Poly1305-IETF ciphertext of the body with its
//              16-byte tag; associated data = bytes 0-7 followed by the cluster name
//
// With a key, only sealed datagrams are accepted; without one, only plain ones. open()
// never throws on remote input: it returns the body or the reason the datagram is dropped.
// Pure apart from drawing random nonces (libsodium's randombytes).
//
// Thread safety: const methods may be called concurrently.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace heartbeatd::transport {

inline constexpr std::uint8_t kWireMagic = 0xB7;
inline constexpr std::uint8_t kWireVersion = 2;  // 2: freshness and address validation
inline constexpr std::size_t kMaxDatagramBytes = 1400;
inline constexpr std::size_t kSealKeyBytes = 32;

// Why a received datagram was dropped. WARNING: append only (used as metric labels).
enum class DropReason : std::uint8_t {
  malformed,        // too short, bad magic, bad flags, or a body the codec rejects
  unknown_version,  // magic right, version not ours
  foreign_cluster,  // cluster tag of another cluster
  bad_tag,          // authentication failed, or sealed/plain does not match our key setup
};
std::string_view to_string(DropReason r);
inline constexpr std::size_t kDropReasonCount = 4;

using SealKey = std::array<std::uint8_t, kSealKeyBytes>;

// Reads a key file: one line, 64 hex digits or standard base64 of 32 bytes (what
// `openssl rand -base64 32` or `heartbeatd --keygen` prints). Returns nullopt and sets *why
// on a missing, unreadable or malformed file ("<path>: <cause>").
std::optional<SealKey> read_key_file(const std::string& path, std::string* why);

class DatagramSeal {
 public:
  DatagramSeal(std::string cluster_name, std::optional<SealKey> key);

  std::vector<std::uint8_t> seal(std::span<const std::uint8_t> body) const;
  // The body, or why the datagram is dropped.
  std::variant<std::vector<std::uint8_t>, DropReason> open(
      std::span<const std::uint8_t> datagram) const;

  bool sealed() const { return key_.has_value(); }
  static constexpr std::size_t header_bytes = 8;
  static constexpr std::size_t overhead_bytes = header_bytes + 24 + 16;

 private:
  std::string cluster_name_;
  std::array<std::uint8_t, 4> cluster_tag_{};
  std::optional<SealKey> key_;
};

}  // namespace heartbeatd::transport
