#include "transport/api/cluster_routes.h"

#include <fmt/format.h>
#include <boost/json.hpp>

#include "base/host_port.h"
#include "membership/member.h"
#include "transport/api/query.h"

namespace heartbeatd::transport {
namespace {

namespace json = boost::json;

std::int64_t ms(membership::Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

Response bad_request(const std::string& message) {
  return error_response(http::status::bad_request, "bad_request", message);
}

// The body of POST /v1/join, or the 400 that says what is wrong with it.
std::variant<std::vector<SeedHost>, Response> join_targets(const std::string& body) {
  json::error_code ec;
  const json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) {
    return bad_request(R"(expected a JSON object {"addresses":["host:port",...]})");
  }
  const auto& o = v.get_object();
  for (const auto& [key, value] : o) {
    if (key != "addresses")
      return bad_request(fmt::format("unknown field \"{}\"", std::string_view(key)));
  }
  const auto* list = o.if_contains("addresses");
  if (!list || !list->is_array()) {
    return bad_request(R"("addresses" must be an array of "host:port" strings)");
  }
  const auto& a = list->get_array();
  if (a.empty()) {
    return bad_request(
        fmt::format("\"addresses\" is empty: give 1 to {} host:port addresses", kMaxJoinAddresses));
  }
  if (a.size() > kMaxJoinAddresses) {
    return bad_request(fmt::format("\"addresses\" has {} entries; at most {} per request", a.size(),
                                   kMaxJoinAddresses));
  }
  std::vector<SeedHost> targets;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!a[i].is_string()) return bad_request(fmt::format("addresses[{}] is not a string", i));
    const std::string_view text = a[i].get_string();
    std::string why;
    const auto hp = parse_host_port(text, &why);
    if (!hp) {
      return bad_request(
          fmt::format("addresses[{}] '{}': {} (expected host:port, such as "
                      "10.0.0.2:7701, [fd00::2]:7701 or node-b.internal:7701)",
                      i, text, why));
    }
    targets.push_back({hp->host, hp->port});
  }
  return targets;
}

Response join_answer(const JoinReport& r) {
  if (!r.unresolved.empty()) {
    std::string names;
    for (const auto& [host, why] : r.unresolved) {
      names += fmt::format("{}{} ({})", names.empty() ? "" : "; ", host, why);
    }
    return error_response(http::status::bad_request, "unresolvable",
                          "no address for " + names + "; nothing was sent");
  }
  json::array joined, failed;
  std::string why;
  for (const auto& t : r.targets) {
    if (!t.member.empty()) {
      joined.push_back(json::object{{"address", t.given}, {"member", t.member}});
    } else {
      failed.push_back(json::object{{"address", t.given}, {"error", t.error}});
      why += fmt::format("{}{}: {}", why.empty() ? "" : "; ", t.given, t.error);
    }
  }
  if (joined.empty()) {
    return error_response(http::status::bad_gateway, "join_failed", "no address joined: " + why);
  }
  json::object body;
  body["joined"] = std::move(joined);
  body["failed"] = std::move(failed);
  return json_response(http::status::ok, json::serialize(body));
}

Response force_leave_answer(const std::string& name,
                            const std::optional<membership::ForceLeaveResult>& r) {
  using Outcome = membership::ForceLeaveResult::Outcome;
  if (!r) {
    return error_response(http::status::service_unavailable, "cluster_unavailable",
                          "the cluster transport is not running (the daemon is stopping)");
  }
  const std::string before(membership::to_string(r->before));
  switch (r->outcome) {
    case Outcome::unknown:
      return error_response(http::status::not_found, "unknown_member",
                            fmt::format("no member named {}", name));
    case Outcome::self:
      return error_response(http::status::bad_request, "self",
                            fmt::format("{} is this node: stop it with systemctl stop; a "
                                        "stopping node announces left itself",
                                        name));
    case Outcome::alive:
      return error_response(http::status::conflict, "member_alive",
                            fmt::format("{} is alive as this node sees it: force-leave is for "
                                        "members that are gone (dead, or suspect and silent "
                                        "here); stop a live node on its host",
                                        name));
    case Outcome::heard_recently:
      return error_response(
          http::status::conflict, "member_reachable",
          fmt::format("{} is suspect, but this node heard from it {} ms ago, within its "
                      "detection time ({} ms): it may only be cut off from the others; retry "
                      "once it is dead",
                      name, ms(r->heard_ago), ms(r->detection_time)));
    case Outcome::left:
    case Outcome::forgotten:
      break;
  }
  json::object body{{"member", name},
                    {"state", "left"},
                    {"previous_state", before},
                    {"forgotten", r->outcome == Outcome::forgotten}};
  return json_response(http::status::ok, json::serialize(body));
}

}  // namespace

void add_cluster_routes(Router& router, ClusterAdminApi api) {
  router.add_async(http::verb::post, "/v1/join", Scope::admin,
                   [api](const Request& req, const RouteMatch& m, Respond respond) {
                     if (!m.query.empty()) {
                       return respond(bad_request("POST /v1/join takes no query parameters"));
                     }
                     auto targets = join_targets(req.body());
                     if (auto* err = std::get_if<Response>(&targets))
                       return respond(std::move(*err));
                     api.join(std::move(std::get<std::vector<SeedHost>>(targets)), api.join_wait,
                              [respond](JoinReport r) { respond(join_answer(r)); });
                   });
  router.add(
      http::verb::post, "/v1/members/{name}/leave", Scope::admin,
      [api](const Request&, const RouteMatch& m) {
        const std::string name(m.param("name"));
        if (!membership::valid_name(name)) {
          return bad_request(fmt::format("'{}' is not a member name", name));
        }
        auto params = parse_query(m.query, {"prune"});
        if (auto* why = std::get_if<std::string>(&params)) return bad_request(*why);
        bool prune = false;
        for (const auto& p : std::get<std::vector<QueryParam>>(params)) {
          if (p.value != "true" && p.value != "false") {
            return bad_request(fmt::format("prune: expected true or false, got '{}'", p.value));
          }
          prune = p.value == "true";
        }
        return force_leave_answer(name, api.force_leave(name, prune));
      });
}

}  // namespace heartbeatd::transport
