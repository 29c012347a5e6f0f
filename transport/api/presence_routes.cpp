#include "transport/api/presence_routes.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <span>
#include <string>
#include <vector>

#include <boost/beast/core/string.hpp>

#include <fmt/format.h>

#include "base/user_ids.h"
#include "transport/api/query.h"

namespace heartbeatd::transport {
namespace {

// The longest status object: {"user":"<20 digits>","online":false,"last_seen_ms":<20>}.
constexpr std::size_t kMaxStatusJson = 98;

char* put(char* p, std::string_view text) {
  std::memcpy(p, text.data(), text.size());
  return p + text.size();
}

// Writes one status object at p (room for kMaxStatusJson bytes) and returns its end.
char* write_status(char* p, std::uint64_t id, bool online, std::optional<std::int64_t> unix_ms,
                   IdFormat ids) {
  p = put(p, R"({"user":)");
  if (ids == IdFormat::string) *p++ = '"';
  p = std::to_chars(p, p + 20, id).ptr;
  if (ids == IdFormat::string) *p++ = '"';
  p = put(p, online ? R"(,"online":true,"last_seen_ms":)" : R"(,"online":false,"last_seen_ms":)");
  p = unix_ms ? std::to_chars(p, p + 21, *unix_ms).ptr : put(p, "null");
  *p++ = '}';
  return p;
}

char* write_status(char* p, std::uint64_t id, const UserStatus& st, IdFormat ids) {
  return write_status(p, id, st.online, st.last_seen_ms, ids);
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

// The store could not answer (503, Retry-After: a pool's wait and a failover are both a matter
// of seconds), or refused new users (507).
Response failed(const StoreFailure& f) {
  if (f.kind == StoreFailure::Kind::full) {
    return error_response(http::status::insufficient_storage, "too_many_users", f.message);
  }
  Response res =
      error_response(http::status::service_unavailable, "presence_unavailable", f.message);
  res.set(http::field::retry_after, "1");
  return res;
}

// The `ids` parameter of a route that answers with user ids (the only parameter they take).
std::optional<IdFormat> ids_or_error(const RouteMatch& m, Response* error) {
  auto parsed = parse_query(m.query, {"ids"});
  std::string why;
  if (auto* e = std::get_if<std::string>(&parsed)) {
    why = std::move(*e);
  } else if (auto f = id_format(std::get<std::vector<QueryParam>>(parsed), &why)) {
    return f;
  }
  *error = error_response(http::status::bad_request, "bad_request", why);
  return std::nullopt;
}

// How POST /v1/users/status answers: JSON objects (the default), or with format=bits one bit
// per requested id (status_bits below).
enum class StatusFormat { json, bits };

struct StatusQuery {
  StatusFormat format = StatusFormat::json;
  IdFormat ids = IdFormat::number;
};

// The query of POST /v1/users/status: `ids` and `format`. `ids` says how ids are written, and
// format=bits writes none, so the two together are a 400 rather than a silently ignored one.
std::optional<StatusQuery> status_query_or_error(const RouteMatch& m, Response* error) {
  auto parsed = parse_query(m.query, {"ids", "format"});
  std::string why;
  if (auto* e = std::get_if<std::string>(&parsed)) {
    why = std::move(*e);
  } else {
    const auto& params = std::get<std::vector<QueryParam>>(parsed);
    StatusQuery q;
    bool ids_given = false;
    for (const auto& p : params) {
      if (p.key == "ids") ids_given = true;
      if (p.key != "format") continue;
      if (p.value == "bits") {
        q.format = StatusFormat::bits;
      } else if (p.value != "json") {
        why = fmt::format("format: expected json or bits, got \"{}\"", p.value);
      }
    }
    if (why.empty() && q.format == StatusFormat::bits && ids_given) {
      why = "ids: only with format=json (format=bits writes no ids)";
    }
    if (why.empty()) {
      if (auto f = id_format(params, &why)) {
        q.ids = *f;
        return q;
      }
    }
  }
  *error = error_response(http::status::bad_request, "bad_request", why);
  return std::nullopt;
}

// format=bits: the store's online_bits() as the body (bit i%8 of byte i/8, least significant
// first, is 1 when the i-th requested id is online; exactly ceil(n/8) bytes). A user never
// seen, or forgotten, is offline: 0, as in the JSON answer's "online":false.
Response bits_response(std::string bits, std::size_t n) {
  Response res{http::status::ok, 11};
  res.set(http::field::content_type, "application/octet-stream");
  res.set(kCountHeader, std::to_string(n));
  res.body() = std::move(bits);
  res.prepare_payload();
  return res;
}

Response bad_id(std::string_view why) {
  return error_response(http::status::bad_request, "bad_request", why);
}

// Content-Type application/octet-stream (any case, parameters ignored) says a batch body is
// binary, 8 bytes per id. Any other type, or none, is the JSON form, as it always was: clients
// have sent JSON without a Content-Type.
bool binary_batch(const Request& req) {
  std::string_view type = req[http::field::content_type];
  type = type.substr(0, type.find(';'));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
  return boost::beast::iequals(type, "application/octet-stream");
}

// Decodes a batch body, JSON or binary, or answers the error (400, or 413 past max_batch).
std::optional<std::vector<std::uint64_t>> batch_or_error(const Request& req, std::size_t max_batch,
                                                         Response* error) {
  auto parsed = binary_batch(req) ? parse_user_ids_binary(req.body(), max_batch)
                                  : parse_user_ids_body(req.body(), max_batch);
  if (auto* e = std::get_if<UserIdsError>(&parsed)) {
    *error = e->too_many
                 ? error_response(http::status::payload_too_large, "batch_too_large", e->message)
                 : error_response(http::status::bad_request, "bad_request", e->message);
    return std::nullopt;
  }
  return std::move(std::get<std::vector<std::uint64_t>>(parsed));
}

}  // namespace

CountHistory::CountHistory(std::chrono::milliseconds interval, std::size_t points)
    : interval_(interval), capacity_(std::max<std::size_t>(points, 1)) {}

void CountHistory::add(std::int64_t time_ms, UserCounts counts) {
  std::lock_guard lock(mu_);
  if (points_.size() == capacity_) points_.pop_front();
  points_.push_back({time_ms, counts});
}

std::string CountHistory::json() const {
  std::lock_guard lock(mu_);
  std::string out = fmt::format(R"({{"interval_ms":{},"points":[)", interval_.count());
  out.reserve(out.size() + points_.size() * 64 + 2);
  for (std::size_t i = 0; i < points_.size(); ++i) {
    const auto& p = points_[i];
    fmt::format_to(std::back_inserter(out), R"({}{{"time_ms":{},"online":{},"tracked":{}}})",
                   i ? "," : "", p.time_ms, p.counts.online, p.counts.tracked);
  }
  out += "]}";
  return out;
}

void add_presence_routes(Router& router, PresenceApi api) {
  if (!api.counters) api.counters = std::make_shared<PresenceCounters>();
  router.add_async(http::verb::post, "/v1/users/{id}/heartbeat", Scope::write,
                   [api](const Request&, const RouteMatch& m, Respond respond) {
                     std::string why;
                     const auto id = parse_user_id(m.param("id"), &why);
                     if (!id) return respond(bad_id(why));
                     api.store->heartbeat(
                         std::span(&*id, 1), [api, respond = std::move(respond)](StoreFailure f) {
                           if (f) return respond(failed(f));
                           api.counters->heartbeats.fetch_add(1, std::memory_order_relaxed);
                           respond(empty_response());
                         });
                   });

  router.add_async(
      http::verb::post, "/v1/users/heartbeat", Scope::write,
      [api](const Request& req, const RouteMatch&, Respond respond) {
        Response error;
        const auto ids = batch_or_error(req, api.max_batch, &error);
        if (!ids) return respond(std::move(error));
        const std::size_t n = ids->size();
        api.store->heartbeat(*ids, [api, respond = std::move(respond), n](StoreFailure f) {
          if (f) {
            api.counters->heartbeats.fetch_add(f.accepted, std::memory_order_relaxed);
            return respond(failed(f));
          }
          api.counters->heartbeats.fetch_add(n, std::memory_order_relaxed);
          respond(json_response(http::status::ok, fmt::format(R"({{"accepted":{}}})", n)));
        });
      });

  router.add_async(
      http::verb::get, "/v1/users/{id}", Scope::read,
      [api](const Request&, const RouteMatch& m, Respond respond) {
        Response error;
        const auto format = ids_or_error(m, &error);
        if (!format) return respond(std::move(error));
        std::string why;
        const auto id = parse_user_id(m.param("id"), &why);
        if (!id) return respond(bad_id(why));
        api.store->status(std::span(&*id, 1), [respond = std::move(respond), id = *id,
                                               format = *format](StoreFailure f,
                                                                 std::span<const UserStatus> st) {
          if (f) return respond(failed(f));
          std::string body(kMaxStatusJson, '\0');
          char* end = write_status(body.data(), id, st[0], format);
          body.resize(static_cast<std::size_t>(end - body.data()));
          respond(json_response(http::status::ok, std::move(body)));
        });
      });

  router.add_async(
      http::verb::post, "/v1/users/status", Scope::read,
      [api](const Request& req, const RouteMatch& m, Respond respond) {
        Response error;
        const auto query = status_query_or_error(m, &error);
        if (!query) return respond(std::move(error));
        auto ids = batch_or_error(req, api.max_batch, &error);
        if (!ids) return respond(std::move(error));
        if (query->format == StatusFormat::bits) {
          return api.store->online_bits(*ids, [respond = std::move(respond), n = ids->size()](
                                                  StoreFailure f, std::string bits) {
            if (f) return respond(failed(f));
            respond(bits_response(std::move(bits), n));
          });
        }
        auto shared = std::make_shared<std::vector<std::uint64_t>>(std::move(*ids));
        api.store->status(*shared, [respond = std::move(respond), shared, query = *query](
                                       StoreFailure f, std::span<const UserStatus> st) {
          if (f) return respond(failed(f));
          respond(json_response(http::status::ok,
                                batch_status_body(shared->size(), [&](char* p, std::size_t i) {
                                  return write_status(p, (*shared)[i], st[i], query.ids);
                                })));
        });
      });

  router.add_async(http::verb::delete_, "/v1/users/{id}", Scope::write,
                   [api](const Request&, const RouteMatch& m, Respond respond) {
                     std::string why;
                     const auto id = parse_user_id(m.param("id"), &why);
                     if (!id) return respond(bad_id(why));
                     // An unknown user is already offline: still 204.
                     api.store->logout(*id, [api, respond = std::move(respond)](StoreFailure f) {
                       if (f) return respond(failed(f));
                       api.counters->logouts.fetch_add(1, std::memory_order_relaxed);
                       respond(empty_response());
                     });
                   });

  if (api.history) {
    router.add(http::verb::get, "/v1/users/history", Scope::read,
               [history = api.history](const Request&, const RouteMatch&) {
                 return json_response(http::status::ok, history->json());
               });
  }

  router.add_async(
      http::verb::get, "/v1/users", Scope::read,
      [api](const Request&, const RouteMatch&, Respond respond) {
        api.store->counts([respond = std::move(respond)](StoreFailure f, UserCounts c) {
          if (f) return respond(failed(f));
          respond(json_response(http::status::ok, fmt::format(R"({{"online":{},"tracked":{}}})",
                                                              c.online, c.tracked)));
        });
      });
}

}  // namespace heartbeatd::transport
