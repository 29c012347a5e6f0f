// libFuzzer target for the decoders of what heartbeatd reads back from node.data_dir
// (persist/format.h). The first byte picks a record kind; the rest is the payload, wrapped
// with a valid checksum so the bytes reach the decoders' own checks. Any payload must give a
// value or an error, never a crash or a read past the end; an accepted chunk of users must
// hold strictly increasing ids and exactly the count it claims; every accepted record must
// decode the same after encoding what was decoded. Built and run by scripts/fuzz.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "persist/format.h"

using namespace heartbeatd::persist;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t kind = static_cast<std::uint8_t>(1 + data[0] % 5);
  const std::string value =
      make_record(kind, std::string_view(reinterpret_cast<const char*>(data + 1), size - 1));
  switch (kind) {
    case 1: {
      auto d = decode_format(value);
      if (auto* v = std::get_if<std::uint32_t>(&d)) {
        check(std::get<std::uint32_t>(decode_format(encode_format(*v))) == *v);
      }
      break;
    }
    case 2: {
      auto d = decode_self(value);
      if (auto* v = std::get_if<SelfRecord>(&d)) {
        auto again = std::get<SelfRecord>(decode_self(encode_self(*v)));
        check(again.name == v->name && again.incarnation == v->incarnation);
      }
      break;
    }
    case 3: {
      auto d = decode_members(value);
      if (auto* v = std::get_if<std::vector<MemberRecord>>(&d)) {
        auto again = std::get<std::vector<MemberRecord>>(decode_members(encode_members(*v)));
        check(again.size() == v->size());
        for (std::size_t i = 0; i < v->size(); ++i) {
          check(again[i].name == (*v)[i].name && again[i].address == (*v)[i].address &&
                again[i].state == (*v)[i].state && again[i].incarnation == (*v)[i].incarnation &&
                again[i].last_seen_ms == (*v)[i].last_seen_ms &&
                again[i].state_since_ms == (*v)[i].state_since_ms);
        }
      }
      break;
    }
    case 4: {
      std::vector<UserRecord> users;
      if (!decode_users(value, users)) {
        for (std::size_t i = 1; i < users.size(); ++i) check(users[i - 1].id < users[i].id);
        // The newest last-seen is at most the chunk's base; encode from there.
        std::int64_t base = INT64_MIN;
        for (const auto& u : users) base = std::max(base, u.last_seen_ms);
        auto copy = users;
        std::vector<UserRecord> again;
        if (!users.empty()) {
          check(!decode_users(encode_users(copy, base), again));
          check(again.size() == users.size());
          for (std::size_t i = 0; i < users.size(); ++i) {
            check(again[i].id == users[i].id && again[i].logged_out == users[i].logged_out &&
                  again[i].last_seen_ms == users[i].last_seen_ms);
          }
        }
      }
      break;
    }
    case 5: {
      auto d = decode_manifest(value);
      if (auto* v = std::get_if<PresenceManifest>(&d)) {
        auto again = std::get<PresenceManifest>(decode_manifest(encode_manifest(*v)));
        check(again.taken_ms == v->taken_ms && again.users == v->users && again.bytes == v->bytes &&
              again.chunks == v->chunks);
      }
      break;
    }
  }
  return 0;
}
