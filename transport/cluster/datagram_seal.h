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
// Keys come as a keyring (cluster.key_file, one key a line): the first key seals, every key
// opens, the sealing key tried first. So a key is rotated live, as Consul's keyring does:
// add the new key everywhere, make it first everywhere, then remove the old one. Two flags
// let a running plaintext cluster turn encryption on without a restart (Consul's
// verify_outgoing / verify_incoming): seal_outgoing (send sealed datagrams) and
// require_sealed (drop plain ones). Without keys, datagrams go out plain and only plain ones
// are accepted. open() never throws on remote input: it returns the body (and which key
// opened it) or the reason the datagram is dropped. Pure apart from drawing random nonces
// (libsodium's randombytes). Keys are never logged, returned in errors or printed: a key is
// shown by its fingerprint.
//
// Thread safety: a DatagramSeal is immutable; const methods may be called concurrently. A
// new keyring means a new DatagramSeal (ClusterTransport swaps them under its mutex).
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
// Every key of the ring is tried on a datagram no key opens: the bound keeps a forged flood
// from costing more than a few decryptions each.
inline constexpr std::size_t kMaxKeys = 16;

// Why a received datagram was dropped. WARNING: append only (used as metric labels).
enum class DropReason : std::uint8_t {
  malformed,        // too short, bad magic, bad flags, or a body the codec rejects
  unknown_version,  // magic right, version not ours
  foreign_cluster,  // cluster tag of another cluster
  bad_tag,          // sealed, but no key of the ring authenticates it (or there is no key)
  unsealed,         // plain, but this node requires sealed datagrams (cluster.require_sealed)
};
std::string_view to_string(DropReason r);
inline constexpr std::size_t kDropReasonCount = 5;

using SealKey = std::array<std::uint8_t, kSealKeyBytes>;
// The first key seals; all of them open. No duplicates (read_key_file refuses them).
using Keyring = std::vector<SealKey>;

// First 8 bytes of BLAKE2b-256 of the key, as 16 hex digits: names a key in logs, the API
// and metrics without revealing it.
std::string fingerprint(const SealKey& key);

// Reads a key file: one key a line, each 64 hex digits or standard base64 of 32 bytes (what
// `openssl rand -base64 32` prints); blank lines are skipped and '#' starts a comment that
// runs to the end of the line. The first key is the one that seals. Returns nullopt and sets
// *why on a missing, unreadable or malformed file: "<path>: <cause>" or, for one line,
// "<path>:<line>: <cause>" (a malformed key, the same key as an earlier line, more than
// kMaxKeys keys); a file without any key is an error too.
std::optional<Keyring> read_key_file(const std::string& path, std::string* why);

struct SealPolicy {
  bool seal_outgoing = true;   // send sealed datagrams (else plain ones, keys or not)
  bool require_sealed = true;  // drop plain datagrams (else accept plain and sealed)
};

class DatagramSeal {
 public:
  // An empty keyring sends and accepts plain datagrams only; a policy asking for sealing
  // without keys is a bug of the caller (std::invalid_argument; the config refuses it).
  DatagramSeal(std::string cluster_name, Keyring keys, SealPolicy policy);
  // One key or none, the policy following it: sealed only with the key, plain only without.
  DatagramSeal(std::string cluster_name, std::optional<SealKey> key);
  ~DatagramSeal();  // wipes the keys
  DatagramSeal(const DatagramSeal&) = default;

  std::vector<std::uint8_t> seal(std::span<const std::uint8_t> body) const;

  struct Opened {
    std::vector<std::uint8_t> body;
    std::optional<std::size_t> key;  // index in keys() of the key that opened it; nullopt: plain
  };
  // The body, or why the datagram is dropped.
  std::variant<Opened, DropReason> open(std::span<const std::uint8_t> datagram) const;

  bool sealed() const { return policy_.seal_outgoing; }  // seal() makes sealed datagrams
  bool requires_sealed() const { return policy_.require_sealed; }
  const std::vector<std::string>& fingerprints() const { return fingerprints_; }  // keys' order
  // The key of the monitor ring's positions (membership/monitor_ring.h): keyed BLAKE2b of a
  // fixed label under the first key, so only key holders can place a name on the ring; 0
  // without a key (public positions).
  std::uint64_t ring_key() const;
  std::size_t key_count() const { return keys_.size(); }

  static constexpr std::size_t header_bytes = 8;
  static constexpr std::size_t overhead_bytes = header_bytes + 24 + 16;

 private:
  std::string cluster_name_;
  std::array<std::uint8_t, 4> cluster_tag_{};
  Keyring keys_;
  std::vector<std::string> fingerprints_;
  SealPolicy policy_;  // both false without keys
};

}  // namespace heartbeatd::transport
