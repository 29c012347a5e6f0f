#include "transport/presence_routes.h"

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "transport/user_ids.h"
#include "transport/wall_time.h"

namespace heartbeatd::transport {
namespace {

using membership::PresenceTable;
using membership::TimePoint;

// The longest status object: {"user":<20 digits>,"online":false,"last_seen_ms":<20>}.
constexpr std::size_t kMaxStatusJson = 96;

char* put(char* p, std::string_view text) {
  std::memcpy(p, text.data(), text.size());
  return p + text.size();
}

// Writes one status object at p (room for kMaxStatusJson bytes) and returns its end.
char* write_status(char* p, std::uint64_t id, bool online, std::optional<std::int64_t> unix_ms) {
  p = put(p, R"({"user":)");
  p = std::to_chars(p, p + 20, id).ptr;
  p = put(p, online ? R"(,"online":true,"last_seen_ms":)" : R"(,"online":false,"last_seen_ms":)");
  p = unix_ms ? std::to_chars(p, p + 21, *unix_ms).ptr : put(p, "null");
  *p++ = '}';
  return p;
}

char* write_status(char* p, std::uint64_t id, const PresenceTable::Status& st,
                   const WallTime& wall) {
  return write_status(p, id, st.online,
                      st.last_seen ? std::optional(wall.unix_ms(*st.last_seen)) : std::nullopt);
}

// The batch status body: {"users":[...]} with each status written by `one(p, i)`.
template <class WriteOne>
std::string batch_status_body(std::size_t n, WriteOne one) {
  std::string body(16 + n * (kMaxStatusJson + 1), '\0');
  char* p = put(body.data(), R"({"users":[)");
  for (std::size_t i = 0; i < n; ++i) {
    if (i) *p++ = ',';
    p = one(p, i);
  }
  p = put(p, "]}");
  body.resize(static_cast<std::size_t>(p - body.data()));
  return body;
}

// Redis could not answer: never a guess such as "offline". Retry-After: the pool's wait and
// a failover are both a matter of seconds.
Response unavailable(const redis::Failure& f) {
  Response res = error_response(http::status::service_unavailable, "presence_unavailable",
                                f.message);
  res.set(http::field::retry_after, "1");
  return res;
}

Response bad_id(std::string_view why) {
  return error_response(http::status::bad_request, "bad_request", why);
}

Response table_full(const PresenceApi& api, std::size_t refused) {
  return error_response(
      http::status::insufficient_storage, "too_many_users",
      fmt::format("presence.max_users ({}) users are tracked; {} new user(s) refused until others "
                  "are forgotten (presence.forget_after)",
                  api.max_users, refused));
}

// Decodes a batch body or answers the error (400, or 413 past max_batch).
std::optional<std::vector<std::uint64_t>> batch_or_error(const Request& req, std::size_t max_batch,
                                                         Response* error) {
  auto parsed = parse_user_ids_body(req.body(), max_batch);
  if (auto* e = std::get_if<UserIdsError>(&parsed)) {
    *error = e->too_many
                 ? error_response(http::status::payload_too_large, "batch_too_large", e->message)
                 : error_response(http::status::bad_request, "bad_request", e->message);
    return std::nullopt;
  }
  return std::move(std::get<std::vector<std::uint64_t>>(parsed));
}

}  // namespace

void add_presence_routes(Router& router, PresenceApi api) {
  if (!api.wall_anchor) api.wall_anchor = std::make_shared<std::atomic<std::int64_t>>(0);
  if (!api.counters) api.counters = std::make_shared<PresenceCounters>();
  router.add(http::verb::post, "/v1/users/{id}/heartbeat", Scope::write,
             [api](const Request&, const RouteMatch& m) {
               std::string why;
               const auto id = parse_user_id(m.param("id"), &why);
               if (!id) return bad_id(why);
               if (api.table->heartbeat(*id, api.clock->now()) ==
                   PresenceTable::HeartbeatResult::table_full) {
                 return table_full(api, 1);
               }
               api.counters->heartbeats.fetch_add(1, std::memory_order_relaxed);
               return empty_response();
             });

  router.add(http::verb::post, "/v1/users/heartbeat", Scope::write,
             [api](const Request& req, const RouteMatch&) {
    Response error;
    const auto ids = batch_or_error(req, api.max_batch, &error);
    if (!ids) return error;
    const auto r = api.table->heartbeat_batch(*ids, api.clock->now());
    api.counters->heartbeats.fetch_add(r.accepted, std::memory_order_relaxed);
    if (r.rejected_new > 0 && r.accepted == 0) return table_full(api, r.rejected_new);
    if (r.rejected_new > 0) {
      // Lost a race for the last free places with another batch: say what was kept.
      return error_response(
          http::status::insufficient_storage, "too_many_users",
          fmt::format("{} heartbeats accepted, {} new user(s) refused: presence.max_users ({}) "
                      "reached",
                      r.accepted, r.rejected_new, api.max_users));
    }
    return json_response(http::status::ok, fmt::format(R"({{"accepted":{}}})", r.accepted));
  });

  router.add(http::verb::get, "/v1/users/{id}", Scope::read,
             [api](const Request&, const RouteMatch& m) {
    std::string why;
    const auto id = parse_user_id(m.param("id"), &why);
    if (!id) return bad_id(why);
    const TimePoint now = api.clock->now();
    std::string body(kMaxStatusJson, '\0');
    char* end = write_status(body.data(), *id, api.table->status(*id, now),
                             WallTime(now, *api.wall_anchor));
    body.resize(static_cast<std::size_t>(end - body.data()));
    return json_response(http::status::ok, std::move(body));
  });

  router.add(http::verb::post, "/v1/users/status", Scope::read,
             [api](const Request& req, const RouteMatch&) {
    Response error;
    const auto ids = batch_or_error(req, api.max_batch, &error);
    if (!ids) return error;
    const TimePoint now = api.clock->now();
    const WallTime wall(now, *api.wall_anchor);
    std::vector<PresenceTable::Status> statuses(ids->size());
    api.table->status_batch(*ids, now, statuses);
    return json_response(http::status::ok,
                         batch_status_body(ids->size(), [&](char* p, std::size_t i) {
                           return write_status(p, (*ids)[i], statuses[i], wall);
                         }));
  });

  router.add(http::verb::delete_, "/v1/users/{id}", Scope::write,
             [api](const Request&, const RouteMatch& m) {
    std::string why;
    const auto id = parse_user_id(m.param("id"), &why);
    if (!id) return bad_id(why);
    api.table->logout(*id, api.clock->now());  // unknown user: already offline, still 204
    api.counters->logouts.fetch_add(1, std::memory_order_relaxed);
    return empty_response();
  });

  router.add(http::verb::get, "/v1/users", Scope::read, [api](const Request&, const RouteMatch&) {
    const auto c = api.table->counts(api.clock->now());
    return json_response(http::status::ok,
                         fmt::format(R"({{"online":{},"tracked":{}}})", c.online, c.tracked));
  });
}

void add_presence_routes(Router& router, RedisPresenceApi api) {
  if (!api.counters) api.counters = std::make_shared<PresenceCounters>();
  using redis::Failure;
  router.add_async(http::verb::post, "/v1/users/{id}/heartbeat", Scope::write,
                   [api](const Request&, const RouteMatch& m, Respond respond) {
                     std::string why;
                     const auto id = parse_user_id(m.param("id"), &why);
                     if (!id) return respond(bad_id(why));
                     api.presence->heartbeat({*id}, [api, respond](Failure f) {
                       if (f) return respond(unavailable(f));
                       api.counters->heartbeats.fetch_add(1, std::memory_order_relaxed);
                       respond(empty_response());
                     });
                   });

  router.add_async(http::verb::post, "/v1/users/heartbeat", Scope::write,
                   [api](const Request& req, const RouteMatch&, Respond respond) {
                     Response error;
                     auto ids = batch_or_error(req, api.max_batch, &error);
                     if (!ids) return respond(std::move(error));
                     const std::size_t n = ids->size();
                     api.presence->heartbeat(std::move(*ids), [api, respond, n](Failure f) {
                       if (f) return respond(unavailable(f));
                       api.counters->heartbeats.fetch_add(n, std::memory_order_relaxed);
                       respond(json_response(http::status::ok,
                                             fmt::format(R"({{"accepted":{}}})", n)));
                     });
                   });

  router.add_async(
      http::verb::get, "/v1/users/{id}", Scope::read, [api](const Request&, const RouteMatch& m,
                                               Respond respond) {
        std::string why;
        const auto id = parse_user_id(m.param("id"), &why);
        if (!id) return respond(bad_id(why));
        api.presence->status(
            {*id}, [respond, id = *id](Failure f, std::vector<redis::UserStatus> st) {
              if (f) return respond(unavailable(f));
              std::string body(kMaxStatusJson, '\0');
              char* end = write_status(body.data(), id, st[0].online, st[0].last_seen_ms);
              body.resize(static_cast<std::size_t>(end - body.data()));
              respond(json_response(http::status::ok, std::move(body)));
            });
      });

  router.add_async(
      http::verb::post, "/v1/users/status", Scope::read,
      [api](const Request& req, const RouteMatch&, Respond respond) {
        Response error;
        auto ids = batch_or_error(req, api.max_batch, &error);
        if (!ids) return respond(std::move(error));
        auto shared = std::make_shared<std::vector<std::uint64_t>>(std::move(*ids));
        api.presence->status(*shared, [respond, shared](Failure f,
                                                        std::vector<redis::UserStatus> st) {
          if (f) return respond(unavailable(f));
          respond(json_response(http::status::ok,
                                batch_status_body(shared->size(), [&](char* p, std::size_t i) {
                                  return write_status(p, (*shared)[i], st[i].online,
                                                      st[i].last_seen_ms);
                                })));
        });
      });

  router.add_async(http::verb::delete_, "/v1/users/{id}", Scope::write,
                   [api](const Request&, const RouteMatch& m, Respond respond) {
                     std::string why;
                     const auto id = parse_user_id(m.param("id"), &why);
                     if (!id) return respond(bad_id(why));
                     api.presence->logout(*id, [api, respond](Failure f) {
                       if (f) return respond(unavailable(f));
                       api.counters->logouts.fetch_add(1, std::memory_order_relaxed);
                       respond(empty_response());
                     });
                   });

  router.add_async(http::verb::get, "/v1/users", Scope::read,
                   [api](const Request&, const RouteMatch&, Respond respond) {
                     api.presence->counts([respond](Failure f, redis::PresenceCounts c) {
                       if (f) return respond(unavailable(f));
                       respond(json_response(
                           http::status::ok,
                           fmt::format(R"({{"online":{},"tracked":{}}})", c.online, c.tracked)));
                     });
                   });
}

}  // namespace heartbeatd::transport
