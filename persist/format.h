// The on-disk format of heartbeatd's state (docs/PERSISTENCE.md): what each RocksDB key holds
// and how it is encoded. Pure functions, no I/O, so every rule is unit-tested and fuzzable.
//
// Every value is a record: [kind: u8][payload][checksum: 8 bytes, SipHash-2-4 of kind and
// payload]. A decoder checks the kind and the checksum before it reads a byte of the payload,
// and every field against the bytes left, so a damaged value is reported, never misread.
//
// Thread safety: none needed (pure functions over values).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace heartbeatd::persist {

// The version of the data directory's layout, stored under kKeyFormat. A build reads every
// format from kOldestReadableFormat to kFormatVersion and writes kFormatVersion.
//   1: one snapshot, "presence/chunk/NNN" and "presence/manifest", rewritten in place.
//   2: snapshots are generations, "presence/g/GGGGGGGGGGGGGGGG/chunk/NNN" and ".../manifest"
//      (G: 16 hex digits); the newest generation is the snapshot, older ones are garbage.
inline constexpr std::uint32_t kFormatVersion = 2;
inline constexpr std::uint32_t kOldestReadableFormat = 1;

inline constexpr std::string_view kKeyFormat = "meta/format";
inline constexpr std::string_view kKeySelf = "membership/self";
inline constexpr std::string_view kKeyMembers = "membership/members";
// The members' tags, beside kKeyMembers and written in the same batch (a key of its own, so
// that builds before tags, which ignore keys they do not know, still read the directory).
inline constexpr std::string_view kKeyMemberTags = "membership/tags";
// Format 2.
inline constexpr std::string_view kGenerationsPrefix = "presence/g/";
std::string generation_prefix(std::uint64_t generation);  // "presence/g/GGGGGGGGGGGGGGGG/"
std::string chunk_key(std::uint64_t generation, std::uint32_t chunk);
std::string manifest_key(std::uint64_t generation);
// The generation a key of the generations' range belongs to; nullopt if it is not one.
std::optional<std::uint64_t> generation_of(std::string_view key);
// Format 1 (read, and removed after the first format-2 snapshot).
inline constexpr std::string_view kKeyPresenceV1 = "presence/manifest";
inline constexpr std::string_view kChunkPrefixV1 = "presence/chunk/";
std::string chunk_key_v1(std::uint32_t chunk);

struct FormatError {
  std::string message;
};

// A record of `kind` (the first byte of every value) around `payload`, with its checksum:
// what every encode_*() returns. For tests and the fuzzer, which need values that get past
// the checksum to reach the decoders' other checks.
std::string make_record(std::uint8_t kind, std::string_view payload);

std::string encode_format(std::uint32_t version);
std::variant<std::uint32_t, FormatError> decode_format(std::string_view value);

// This node's own record: its name and the incarnation it last used.
struct SelfRecord {
  std::string name;
  std::uint64_t incarnation = 0;
};
std::string encode_self(const SelfRecord& r);
std::variant<SelfRecord, FormatError> decode_self(std::string_view value);

// A member as persisted. Times are wall-clock Unix milliseconds (a monotonic clock does not
// survive a restart); 0 means "never".
struct MemberRecord {
  std::string name;
  std::string address;     // "ip:port" / "[v6]:port"
  std::uint8_t state = 0;  // membership::MemberState
  std::uint64_t incarnation = 0;
  std::int64_t last_seen_ms = 0;
  std::int64_t state_since_ms = 0;
  // kKeyMemberTags: its tags by key, and the incarnation it announced them at (unset: never).
  std::vector<std::pair<std::string, std::string>> tags;
  std::optional<std::uint64_t> tags_at;
};
std::string encode_members(const std::vector<MemberRecord>& members);
std::variant<std::vector<MemberRecord>, FormatError> decode_members(std::string_view value);
// The tags of the members whose tags_at is set: a count, then each one's name, tags_at and
// tags.
std::string encode_member_tags(const std::vector<MemberRecord>& members);
// Sets the tags of `members` from such a record; names it does not list keep none, and tags
// of a name not in `members` are dropped. Limits: membership/member.h's (a tags_at above the
// member's incarnation is damage too).
std::optional<FormatError> decode_member_tags(std::string_view value,
                                              std::vector<MemberRecord>& members);

// Presence: one chunk per presence-table shard. Users are sorted by id; each is stored as
// the varint gap to the previous id and a varint of (age in ms << 1 | logged out), the age
// counted back from the chunk's base time. Dense ids cost 1-2 bytes, ages 2-4.
struct UserRecord {
  std::uint64_t id = 0;
  std::int64_t last_seen_ms = 0;  // Unix ms
  bool logged_out = false;
};
// Sorts `users` by id. Times after base_ms are stored as base_ms.
std::string encode_users(std::vector<UserRecord>& users, std::int64_t base_ms);
// Appends the chunk's users to `out`.
std::optional<FormatError> decode_users(std::string_view value, std::vector<UserRecord>& out);

// Written in the same table file as the chunks: what the snapshot holds.
struct PresenceManifest {
  std::int64_t taken_ms = 0;  // Unix ms
  std::uint64_t users = 0;
  std::uint64_t bytes = 0;  // of the chunks' values
  std::uint32_t chunks = 0;
};
std::string encode_manifest(const PresenceManifest& m);
std::variant<PresenceManifest, FormatError> decode_manifest(std::string_view value);

}  // namespace heartbeatd::persist
