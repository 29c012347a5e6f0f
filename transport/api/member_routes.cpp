#include "transport/api/member_routes.h"

#include <memory>

#include <boost/json.hpp>

#include "base/wall_time.h"
#include "membership/member.h"

namespace heartbeatd::transport {
namespace {

boost::json::object to_json(const membership::MemberInfo& m, const WallTime& wall) {
  boost::json::object o;
  o["name"] = m.name;
  o["address"] = m.address.to_string();
  o["state"] = std::string(membership::to_string(m.state));
  o["incarnation"] = m.incarnation;
  if (m.last_seen) {
    o["last_seen_ms"] = wall.unix_ms(*m.last_seen);
  } else {
    o["last_seen_ms"] = nullptr;
  }
  o["self"] = m.self;
  return o;
}

}  // namespace

void add_member_routes(Router& router, MembersApi api) {
  auto anchor = std::make_shared<std::atomic<std::int64_t>>(0);
  router.add(http::verb::get, "/v1/members", Scope::read,
             [api, anchor](const Request&, const RouteMatch&) {
    const WallTime wall(api.clock->now(), *anchor);
    boost::json::array list;
    for (const auto& m : api.members()) list.push_back(to_json(m, wall));
    boost::json::object body;
    body["members"] = std::move(list);
    return json_response(http::status::ok, boost::json::serialize(body));
  });
  router.add(
      http::verb::get, "/v1/members/{name}", Scope::read,
      [api, anchor](const Request&, const RouteMatch& match) {
        const auto name = match.param("name");
        if (!membership::valid_name(name)) {
          return error_response(http::status::bad_request, "bad_request",
                                "a member name is 1 to 128 letters, digits, '.', '-' or '_'");
        }
        auto m = api.member(name);
        if (!m) {
          return error_response(http::status::not_found, "unknown_member",
                                "no member named " + std::string(name) + " in this node's view");
        }
        const WallTime wall(api.clock->now(), *anchor);
        return json_response(http::status::ok, boost::json::serialize(to_json(*m, wall)));
      });
}

}  // namespace heartbeatd::transport
