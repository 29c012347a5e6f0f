// Router: maps (method, path) to a handler, and owns the API's error model: every error is
// {"error": CODE, "message": TEXT} with the matching status (400, 404, 405 + Allow, ...).
// Pure: requests in, responses out; no sockets. The same Router serves the TCP and the
// Unix-socket listeners. It also counts requests by route, method and status, with their
// handling time, for /metrics.
//
// Access control lives here too, in one place: dispatch() asks the AccessPolicy who the caller
// is (token or Unix credentials), applies the rate limit, then checks the matched route's
// scope before its handler runs.
//
// Thread safety: routes are added before serving starts; route() is const and may run on
// every API thread at once. set_access() may run at any time (SIGHUP). Handlers must be safe
// to call concurrently.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/metrics.h"

namespace heartbeatd::transport {

namespace http = boost::beast::http;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// Who sent a request, as the server knows it before reading it: the listener, the peer's
// address (TCP) or credentials (Unix socket, SO_PEERCRED), and whether TLS carried it.
struct Caller {
  enum class Via { internal, tcp, unix_socket };
  Via via = Via::internal;  // internal: tests and in-process calls
  std::string address;      // TCP: the source IP; Unix socket: empty
  std::optional<unsigned> uid, gid;  // Unix socket only
  bool tls = false;
  // How logs and per-client limits name this caller: "203.0.113.7", "uid 1000", "internal".
  std::string client() const;
};

// What a route lets a caller do; every route declares exactly one at registration, and
// Router::dispatch checks it before the handler runs (docs/API.md, "Tokens and scopes").
// A set of scopes is a bit mask (Scopes). `none` is not a scope a token can hold: it marks a
// public route, reachable without a token even when tokens are required, for what holds no
// data (the status page's static files, /ui); every other route still answers 401 first.
enum class Scope : std::uint8_t { none = 0, read = 1, write = 2, admin = 4, metrics = 8 };
using Scopes = std::uint8_t;
inline constexpr Scopes kAllScopes = 0x0f;
inline constexpr Scopes bit(Scope s) {
  return static_cast<Scopes>(s);
}
std::string_view to_string(Scope s);
// "read,write"; "" for none.
std::string scopes_to_string(Scopes s);

class AccessPolicy;  // transport/api/access.h
class RateLimiter;   // transport/api/rate_limiter.h

// Why a request or connection was turned away, counted in heartbeatd_api_refused_total.
enum class Refusal { unauthenticated, forbidden, over_limit, rate_limited };
std::string_view to_string(Refusal r);

// What a pattern such as "/v1/users/{id}" captured, plus the query string.
struct RouteMatch {
  std::vector<std::pair<std::string_view, std::string_view>> params;
  std::string_view query;  // after '?', without it
  std::string_view param(std::string_view name) const;
};

using Handler = std::function<Response(const Request&, const RouteMatch&)>;

// A response whose body is produced over time (Server-Sent Events). The server sends a 200
// head with `content_type`, then whatever take() hands over each time wake() is called,
// until take() says the stream ended; the end of the body is the end of the connection.
class ResponseStream {
 public:
  virtual ~ResponseStream() = default;
  virtual std::string_view content_type() const = 0;
  // Called once, before anything else; `wake` may be called from any thread, any number of
  // times, until detach().
  virtual void attach(std::function<void()> wake) = 0;
  // Appends pending bytes to `out`; false once the stream has ended (after those bytes).
  virtual bool take(std::string& out) = 0;
  // The connection is gone (the client left, a write failed, the server stops). Called once.
  virtual void detach() = 0;
};

// An asynchronous route's way to answer later (after a Redis round trip): called exactly
// once, from any thread. A Respond must not be dropped uncalled: the connection waits for it
// (the server gives up after api.read_timeout with a 504).
using Respond = std::function<void(Response)>;
// The handler must not keep references into the request or the match: both are gone when it
// returns. It may call `respond` before returning.
using AsyncHandler = std::function<void(const Request&, const RouteMatch&, Respond respond)>;

// What a route produced: a response, or (stream routes only) a stream, or (asynchronous
// routes only) nothing yet: the response will go to the Respond given to dispatch().
struct Routed {
  Response response;
  std::shared_ptr<ResponseStream> stream;  // set: `response` is unused
  bool deferred = false;                   // set: `response` and `stream` are unused
};
using StreamHandler = std::function<Routed(const Request&, const RouteMatch&)>;

// Builds a JSON error response in the API's one error format.
Response error_response(http::status status, std::string_view code, std::string_view message);
// A JSON response with the given body (already serialised).
Response json_response(http::status status, std::string body);
// 204 No Content.
Response empty_response();

// One registered route as routes() lists it: what it answers and the scope it needs.
struct RouteInfo {
  http::verb method;
  std::string pattern;  // as registered: "/v1/users/{id}"
  Scope scope;
};

class Router {
 public:
  // Pattern segments are literals or {name}; a literal segment wins over a parameter when
  // both match, so "/v1/users/status" is not taken for a user called "status".
  // `scope` is what a caller needs to reach the route (checked in dispatch(), before the
  // handler); it is a required argument so that no route can be added without one.
  void add(http::verb method, std::string pattern, Scope scope, Handler handler);
  // A route whose handler may answer with a stream (or with an error response).
  void add_stream(http::verb method, std::string pattern, Scope scope, StreamHandler handler);
  // A route that answers later through its Respond.
  void add_async(http::verb method, std::string pattern, Scope scope, AsyncHandler handler);

  // Every route, in registration order (read-only; for checks such as tests/openapi_test.cpp,
  // which holds docs/openapi.yaml to the routes the daemon really serves).
  std::vector<RouteInfo> routes() const;

  // Who may do what (api.tokens_file, api.unix_scopes): swapped whole by SIGHUP while
  // requests are in flight; each request uses the policy it read first. Null (the default):
  // every caller has every scope, as before access control existed.
  void set_access(std::shared_ptr<const AccessPolicy> policy);
  // api.rate_limit, per token or client; null (the default): no limit. Set before serving.
  void set_rate_limiter(std::shared_ptr<RateLimiter> limiter);

  // Never throws: a handler's exception becomes a 500 with its message (an asynchronous
  // handler's too, if it threw before responding). An asynchronous route answers through
  // `later` (counted and timed when it does) and returns deferred; without `later` its
  // answer is waited for here, which only tests should do.
  Routed dispatch(const Request& request, Respond later = nullptr,
                  const Caller& caller = Caller{}) const;
  Response route(const Request& request, const Caller& caller = Caller{}) const;

  // Counts a response the server made without routing (400 malformed, 408, 413, 431, 503).
  void count_unrouted(http::status status) const;
  // Counts a refusal by reason and logs it (with `detail`) at most once a minute per client
  // and reason, so that a client hammering the API cannot flood the log.
  void refused(Refusal reason, const Caller& caller, std::string_view detail) const;
  // heartbeatd_api_requests_total and heartbeatd_api_request_duration_seconds.
  void write_metrics(MetricsWriter& w) const;

 private:
  struct Stats {
    std::array<std::atomic<std::uint64_t>, 500> by_status{};  // index: status - 100
    LatencyHistogram latency;
    void count(unsigned status);
  };
  struct Route {
    http::verb method;
    std::string pattern;
    Scope scope;
    std::vector<std::string> segments;
    StreamHandler handler;         // unset for asynchronous routes
    AsyncHandler async_handler;    // set for asynchronous routes
    std::shared_ptr<Stats> stats;  // counters that change behind a const Router
  };
  void add_route(http::verb method, std::string pattern, Scope scope, StreamHandler handler,
                 AsyncHandler async_handler = nullptr);
  static bool match(const Route& r, const std::vector<std::string_view>& path, RouteMatch* m);
  // The route for `method` on `path` (most literal segments wins), its captures in `*m`;
  // null if none. `allowed` (optional) collects the methods the path has.
  const Route* find(http::verb method, const std::vector<std::string_view>& path, RouteMatch* m,
                    std::vector<http::verb>* allowed) const;

  std::vector<Route> routes_;
  // Requests that matched no route (404, 405), and responses made before routing.
  std::shared_ptr<Stats> unmatched_ = std::make_shared<Stats>();
  std::shared_ptr<Stats> unrouted_ = std::make_shared<Stats>();
  struct Refusals {
    std::array<std::atomic<std::uint64_t>, 4> by_reason{};
    std::mutex mu;
    // (client, reason) -> when it was last logged; bounded (cleared when it grows large).
    std::unordered_map<std::string, std::chrono::steady_clock::time_point> logged;
  };
  std::shared_ptr<Refusals> refusals_ = std::make_shared<Refusals>();
  struct Access {
    // A mutex, not std::atomic<std::shared_ptr>: libstdc++ 12's lock-bit implementation is
    // opaque to ThreadSanitizer (it reported a race on every reload), and one uncontended
    // lock per request is not measurable next to the request.
    mutable std::mutex mu;
    std::shared_ptr<const AccessPolicy> policy;  // guarded by mu
    std::shared_ptr<RateLimiter> limiter;  // set before serving, then only read
  };
  std::shared_ptr<Access> access_ = std::make_shared<Access>();
};

}  // namespace heartbeatd::transport
