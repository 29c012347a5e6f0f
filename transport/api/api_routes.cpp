#include "transport/api/api_routes.h"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "heartbeatd/version.h"

namespace heartbeatd::transport {

void add_health_routes(Router& router, HealthInfo info) {
  router.add(http::verb::get, "/v1/health", Scope::read, [info](const Request&, const RouteMatch&) {
    const auto uptime =
        std::chrono::duration_cast<std::chrono::milliseconds>(info.clock->now() - info.started);
    boost::json::object o;
    o["status"] = "ok";
    o["node"] = info.node;
    o["version"] = kVersion;
    o["uptime_ms"] = uptime.count();
    boost::json::array warnings;
    if (info.warnings) {
      for (const auto& w : info.warnings()) warnings.emplace_back(w);
    }
    o["warnings"] = std::move(warnings);
    if (info.persistence) {
      const auto p = info.persistence();
      boost::json::object j;
      j["data_dir"] = p.data_dir;
      if (p.last_snapshot_ms) {
        j["last_snapshot_ms"] = *p.last_snapshot_ms;
      } else {
        j["last_snapshot_ms"] = nullptr;
      }
      j["last_snapshot_users"] = p.last_snapshot_users;
      j["last_snapshot_bytes"] = p.last_snapshot_bytes;
      j["last_snapshot_duration_ms"] = p.last_snapshot_duration_ms;
      j["disk_bytes"] = p.disk_bytes;
      j["failures"] = p.failures;
      if (p.last_error) {
        j["last_error"] = *p.last_error;
        o["status"] = "degraded";
      } else {
        j["last_error"] = nullptr;
      }
      o["persistence"] = std::move(j);
    }
    if (info.presence) {
      const auto p = info.presence();
      boost::json::object j;
      j["backend"] = p.backend;
      j["status"] = p.ok ? "ok" : "unavailable";
      if (p.ok) {
        j["problem"] = nullptr;
      } else {
        j["problem"] = p.problem;
        o["status"] = "degraded";
      }
      boost::json::array nodes;
      for (const auto& n : p.servers) nodes.emplace_back(n);
      j["nodes"] = std::move(nodes);
      j["max_batch"] = info.presence_max_batch;
      o["presence"] = std::move(j);
    }
    return json_response(http::status::ok, boost::json::serialize(o));
  });
}

void add_metrics_route(Router& router, std::function<void(MetricsWriter&)> collect) {
  router.add(http::verb::get, "/metrics", Scope::metrics,
             [&router, collect](const Request&, const RouteMatch&) {
    MetricsWriter w;
    collect(w);
    router.write_metrics(w);
    Response res{http::status::ok, 11};
    res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    res.body() = w.take();
    res.prepare_payload();
    return res;
  });
}

}  // namespace heartbeatd::transport
