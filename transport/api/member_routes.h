// The /v1/members routes: the cluster view of the local daemon (docs/API.md).
//   GET /v1/members        -> {"members":[{name, address, state, incarnation, last_seen_ms,
//                              self, tags}, ...]} sorted by name; filtered and paged by
//                              ?state=&name=&limit=&cursor= (transport/api/member_query.h),
//                              with "next_cursor" when `limit` is given
//   GET /v1/members/{name} -> one member; 404 unknown_member
// Both answer with an ETag (a hash of the body) and a bodiless 304 to a matching
// If-None-Match.
#pragma once

#include <boost/json/object.hpp>

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

// A member's tags as every member view and member event writes them: {"role":"db"}, {} for
// none.
boost::json::object tags_object(const membership::Tags& tags);

}  // namespace heartbeatd::transport
