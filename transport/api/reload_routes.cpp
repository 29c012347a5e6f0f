#include "transport/api/reload_routes.h"

#include <boost/json.hpp>

#include "transport/api/query.h"

namespace heartbeatd::transport {

std::string_view to_string(ReloadOutcome::Result r) {
  switch (r) {
    case ReloadOutcome::Result::applied:
      return "applied";
    case ReloadOutcome::Result::unchanged:
      return "unchanged";
    case ReloadOutcome::Result::rejected:
      return "rejected";
    case ReloadOutcome::Result::no_config_file:
      return "no_config_file";
    case ReloadOutcome::Result::stopping:
      return "stopping";
  }
  return "unknown";
}

Response reload_response(const ReloadOutcome& o) {
  using R = ReloadOutcome::Result;
  switch (o.result) {
    case R::applied:
    case R::unchanged: {
      boost::json::object body;
      body["result"] = to_string(o.result);
      boost::json::array applied, needs_restart;
      for (const auto& a : o.applied) applied.emplace_back(a);
      for (const auto& n : o.needs_restart) needs_restart.emplace_back(n);
      body["applied"] = std::move(applied);
      body["needs_restart"] = std::move(needs_restart);
      return json_response(http::status::ok, boost::json::serialize(body));
    }
    case R::rejected: {
      // The common error body, plus "result" so a client reads every answer the same way.
      boost::json::object body{{"error", "config_rejected"},
                               {"message", o.error},
                               {"result", to_string(o.result)}};
      return json_response(http::status::unprocessable_entity, boost::json::serialize(body));
    }
    case R::no_config_file:
      return error_response(http::status::conflict, "no_config_file", o.error);
    case R::stopping:
      break;
  }
  return error_response(http::status::service_unavailable, "stopping", o.error);
}

void add_reload_route(Router& router, ReloadRunner run) {
  router.add_async(
      http::verb::post, "/v1/reload", Scope::admin,
      [run](const Request& req, const RouteMatch& m, Respond respond) {
        if (auto parsed = parse_query(m.query, {}); auto* why = std::get_if<std::string>(&parsed)) {
          return respond(error_response(http::status::bad_request, "bad_request", *why));
        }
        // The file to read is the daemon's own --config: there is nothing to say in a body,
        // and a client that sends one (a config, say) must not believe it was used.
        if (!req.body().empty()) {
          return respond(error_response(
              http::status::bad_request, "bad_request",
              "POST /v1/reload takes no body: it re-reads the daemon's --config file"));
        }
        run([respond = std::move(respond)](ReloadOutcome outcome) {
          respond(reload_response(outcome));
        });
      });
}

}  // namespace heartbeatd::transport
