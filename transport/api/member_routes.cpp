#include "transport/api/member_routes.h"

#include <openssl/evp.h>

#include <algorithm>
#include <memory>
#include <stdexcept>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "base/wall_time.h"
#include "membership/member.h"
#include "transport/api/member_query.h"
#include "transport/api/query.h"

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
  o["tags"] = tags_object(m.tags);
  return o;
}

// A strong validator of exactly these bytes: the first 128 bits of their SHA-256, quoted.
// Computed from the body itself, so it changes whenever the answer would (a state, an
// incarnation, a last_seen_ms, the page), and only then.
std::string etag_of(std::string_view body) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (EVP_Digest(body.data(), body.size(), md, &len, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("SHA-256 failed");
  }
  std::string tag = "\"";
  for (unsigned i = 0; i < 16; ++i) tag += fmt::format("{:02x}", md[i]);
  return tag + "\"";
}

// If-None-Match (RFC 9110 13.1.2): a list of entity tags, or "*"; compared weakly (a W/ prefix
// is ignored). Every If-None-Match field of the request counts.
bool none_match_fails(const Request& req, std::string_view etag) {
  const auto [first, last] = req.equal_range(http::field::if_none_match);
  for (auto field = first; field != last; ++field) {
    for (auto item : split(field->value(), ',')) {
      while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
      while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
      if (item.starts_with("W/")) item.remove_prefix(2);
      if (item == "*" || item == etag) return true;
    }
  }
  return false;
}

// The 200 with its ETag, or a bodiless 304 when the client already holds it.
Response conditional_json(const Request& req, std::string body) {
  const std::string etag = etag_of(body);
  if (none_match_fails(req, etag)) {
    Response res{http::status::not_modified, 11};
    res.set(http::field::etag, etag);
    return res;
  }
  auto res = json_response(http::status::ok, std::move(body));
  res.set(http::field::etag, etag);
  return res;
}

}  // namespace

boost::json::object tags_object(const membership::Tags& tags) {
  boost::json::object o;
  for (const auto& [k, v] : tags) o[k] = v;
  return o;
}

void add_member_routes(Router& router, MembersApi api) {
  auto anchor = std::make_shared<std::atomic<std::int64_t>>(0);
  router.add(http::verb::get, "/v1/members", Scope::read,
             [api, anchor](const Request& req, const RouteMatch& match) {
    auto parsed = parse_member_query(match.query);
    if (const auto* why = std::get_if<std::string>(&parsed)) {
      return error_response(http::status::bad_request, "bad_request", *why);
    }
    const auto& q = std::get<MemberQuery>(parsed);
    const WallTime wall(api.clock->now(), *anchor);
    const auto members = api.members();  // sorted by name
    auto it = members.begin();
    if (!q.after.empty()) {
      it = std::upper_bound(members.begin(), members.end(), q.after,
                            [](const std::string& name, const membership::MemberInfo& m) {
                              return name < m.name;
                            });
    }
    boost::json::array list;
    const membership::MemberInfo* last = nullptr;
    bool more = false;
    for (; it != members.end(); ++it) {
      if (!q.matches(*it)) continue;
      if (q.limit && list.size() == *q.limit) {
        more = true;
        break;
      }
      list.push_back(to_json(*it, wall));
      last = &*it;
    }
    boost::json::object body;
    body["members"] = std::move(list);
    // Only paged answers carry next_cursor, so that the unparameterised answer is unchanged.
    if (q.limit) {
      if (more) {
        body["next_cursor"] = encode_member_cursor(last->name);
      } else {
        body["next_cursor"] = nullptr;
      }
    }
    return conditional_json(req, boost::json::serialize(body));
  });
  router.add(
      http::verb::get, "/v1/members/{name}", Scope::read,
      [api, anchor](const Request& req, const RouteMatch& match) {
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
        return conditional_json(req, boost::json::serialize(to_json(*m, wall)));
      });
}

}  // namespace heartbeatd::transport
