#include "transport/api_routes.h"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "heartbeatd/version.h"

namespace heartbeatd::transport {

void add_health_routes(Router& router, HealthInfo info) {
  router.add(http::verb::get, "/v1/health", [info](const Request&, const RouteMatch&) {
    const auto uptime =
        std::chrono::duration_cast<std::chrono::milliseconds>(info.clock->now() - info.started);
    boost::json::object o;
    o["status"] = "ok";
    o["node"] = info.node;
    o["version"] = kVersion;
    o["uptime_ms"] = uptime.count();
    return json_response(http::status::ok, boost::json::serialize(o));
  });
}

}  // namespace heartbeatd::transport
