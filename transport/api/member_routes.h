// The /v1/members routes: the cluster view of the local daemon (docs/API.md).
//   GET /v1/members        -> {"members":[{name, address, state, incarnation, last_seen_ms,
//                              self}, ...]} sorted by name
//   GET /v1/members/{name} -> one member; 404 unknown_member
#pragma once

#include <functional>
#include <optional>
#include <string_view>
#include <vector>

#include "membership/clock.h"
#include "membership/protocol.h"
#include "transport/api/http_router.h"

namespace heartbeatd::transport {

struct MembersApi {
  // Both called from API threads; the provider does its own locking.
  std::function<std::vector<membership::MemberInfo>()> members;
  std::function<std::optional<membership::MemberInfo>(std::string_view)> member;
  const membership::Clock* clock;
};

void add_member_routes(Router& router, MembersApi api);

}  // namespace heartbeatd::transport
