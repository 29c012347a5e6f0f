// Cluster administration routes (docs/API.md, "Cluster administration"), admin scope:
//   POST /v1/join {"addresses":["host:port",...]}
//        -> 200 {"joined":[{"address","member"}],"failed":[{"address","error"}]} once every
//           address answered or the wait passed; 502 join_failed (the message says why
//           each failed) when none joined;
//           400 for an empty or too long list, an address that is not host:port, or a name
//           that does not resolve (nothing is sent then).
//   POST /v1/members/{name}/leave[?prune=true]
//        -> 200 {"member","state":"left","previous_state","forgotten"}; 409 for a member this
//           node can still reach (alive, or suspect but heard from within its detection time);
//           400 for this node itself; 404 unknown_member.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "membership/clock.h"
#include "membership/protocol.h"
#include "transport/api/http_router.h"
#include "transport/cluster/cluster_transport.h"

namespace heartbeatd::transport {

// Most addresses one join request may name: a join is a few seeds' worth, not a roster.
inline constexpr std::size_t kMaxJoinAddresses = 16;

struct ClusterAdminApi {
  // Both called from API threads; the provider does its own threading. `join` calls its
  // callback exactly once, from any thread.
  std::function<void(std::vector<SeedHost>, membership::Duration, std::function<void(JoinReport)>)>
      join;
  std::function<std::optional<membership::ForceLeaveResult>(std::string name, bool prune)>
      force_leave;
  membership::Duration join_wait = std::chrono::seconds(2);  // how long a join waits for answers
};

void add_cluster_routes(Router& router, ClusterAdminApi api);

}  // namespace heartbeatd::transport
