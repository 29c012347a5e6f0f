// User online/offline changes as the presence backend on Redis publishes them (issue #16):
// the message format, as pure functions (no I/O), so that a message anyone with access to
// Redis can publish is parsed here, checked, and refused whole when malformed.
//
// One message per script run (heartbeat batch, logout, expiry sweep) on the channel
// "<key_prefix>:{<shard>}:changes", holding that shard's changes in the order they happened,
// separated by one space:
//   +<id>:<ms>   the user came online; ms = the heartbeat's Unix ms
//   -<id>:<ms>   the user went offline (logout or expiry); ms = its last heartbeat
//   -<id>:       offline, and its last-seen time is gone (forgotten)
// id and ms are decimal, without sign or leading zeros beyond "0". New kinds of change get a
// new leading character: a reader refuses what it does not know (append-only format).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "transport/presence/store.h"

namespace heartbeatd::transport::redis {

using transport::UserChange;  // transport/presence/store.h

// The changes of one message; nullopt when any part of it is malformed (nothing is taken
// from a message that is not entirely well-formed). At most `max_changes` changes.
std::optional<std::vector<UserChange>> parse_user_changes(std::string_view message,
                                                          std::size_t max_changes = 100'000);

}  // namespace heartbeatd::transport::redis
