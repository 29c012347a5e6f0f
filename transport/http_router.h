// Router: maps (method, path) to a handler, and owns the API's error model: every error is
// {"error": CODE, "message": TEXT} with the matching status (400, 404, 405 + Allow, ...).
// Pure: requests in, responses out; no sockets. The same Router serves the TCP and the
// Unix-socket listeners.
//
// Thread safety: routes are added before serving starts; route() is const and may run on
// every API thread at once. Handlers must be safe to call concurrently.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace heartbeatd::transport {

namespace http = boost::beast::http;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// What a pattern such as "/v1/users/{id}" captured, plus the query string.
struct RouteMatch {
  std::vector<std::pair<std::string_view, std::string_view>> params;
  std::string_view query;  // after '?', without it
  std::string_view param(std::string_view name) const;
};

using Handler = std::function<Response(const Request&, const RouteMatch&)>;

// Builds a JSON error response in the API's one error format.
Response error_response(http::status status, std::string_view code, std::string_view message);
// A JSON response with the given body (already serialised).
Response json_response(http::status status, std::string body);
// 204 No Content.
Response empty_response();

class Router {
 public:
  // Pattern segments are literals or {name}; a literal segment wins over a parameter when
  // both match, so "/v1/users/status" is not taken for a user called "status".
  void add(http::verb method, std::string pattern, Handler handler);

  // Never throws: a handler's exception becomes a 500 with its message.
  Response route(const Request& request) const;

 private:
  struct Route {
    http::verb method;
    std::string pattern;
    std::vector<std::string> segments;
    Handler handler;
  };
  static bool match(const Route& r, const std::vector<std::string_view>& path, RouteMatch* m);

  std::vector<Route> routes_;
};

}  // namespace heartbeatd::transport
