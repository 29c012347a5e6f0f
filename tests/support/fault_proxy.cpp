#include "tests/support/fault_proxy.h"

#include <sys/wait.h>

#include <boost/json/parse.hpp>

#include <filesystem>

#include "tests/support/daemon_process.h"
#include "tests/support/dynalite_server.h"
#include "tests/support/http_client.h"

namespace heartbeatd::test {

std::string DynamoFaultProxy::script() {
  return DynaliteServer::dynamodb_dir() + "/fault_proxy.js";
}

std::string DynamoFaultProxy::problem() {
  if (DynaliteServer::node_binary().empty()) return "node is not on PATH: run scripts/setup";
  if (!std::filesystem::exists(script())) return script() + " missing";
  return "";
}

DynamoFaultProxy::DynamoFaultProxy(std::uint16_t upstream_port)
    : upstream_(upstream_port), port_(free_tcp_port()) {}

DynamoFaultProxy::~DynamoFaultProxy() {
  stop();
}

std::string DynamoFaultProxy::endpoint() const {
  return "http://127.0.0.1:" + std::to_string(port_);
}

std::string DynamoFaultProxy::log() const {
  return read_file(dir_.file("fault_proxy.log"));
}

bool DynamoFaultProxy::start(std::chrono::milliseconds deadline) {
  if (!problem().empty()) return false;
  stop();
  pid_ = spawn_logged({DynaliteServer::node_binary(), script(), "--port", std::to_string(port_),
                       "--upstream-port", std::to_string(upstream_)},
                      dir_.file("fault_proxy.log"));
  if (pid_ <= 0) return false;
  const bool up = eventually(
      [&] {
        if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
          pid_ = -1;
          return true;
        }
        return http_tcp(port_, "GET", "/__stats").status == 200;
      },
      deadline);
  return up && pid_ > 0;
}

void DynamoFaultProxy::stop() {
  kill_and_reap(pid_);
}

bool DynamoFaultProxy::control(const std::string& json) {
  return http_tcp(port_, "POST", "/__fault", json).status == 200;
}

bool DynamoFaultProxy::throttle(int n) {
  return control(R"({"throttle":)" + std::to_string(n) + "}");
}

bool DynamoFaultProxy::fail(int status, int n) {
  return control(R"({"status":)" + std::to_string(status) + R"(,"count":)" + std::to_string(n) +
                 "}");
}

bool DynamoFaultProxy::unprocessed(int n) {
  return control(R"({"unprocessed":)" + std::to_string(n) + "}");
}

bool DynamoFaultProxy::delay(std::chrono::milliseconds by, int n) {
  return control(R"({"delay_ms":)" + std::to_string(by.count()) + R"(,"count":)" +
                 std::to_string(n) + "}");
}

bool DynamoFaultProxy::reset() {
  return control(R"({"reset":true})");
}

bool DynamoFaultProxy::reset_stats() {
  return http_tcp(port_, "POST", "/__stats/reset", "{}").status == 200;
}

std::optional<FaultProxyStats> DynamoFaultProxy::stats() const {
  const HttpResult r = http_tcp(port_, "GET", "/__stats");
  if (r.status != 200) return std::nullopt;
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(r.body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  FaultProxyStats s;
  s.raw = v.as_object();
  const auto number = [](const boost::json::object& o, const char* key) -> std::int64_t {
    const auto* p = o.if_contains(key);
    return p != nullptr && p->is_int64() ? p->as_int64() : 0;
  };
  if (const auto* req = s.raw.if_contains("requests"); req != nullptr && req->is_object()) {
    for (const auto& [op, n] : req->as_object()) {
      if (n.is_int64()) s.requests[std::string(op)] = n.as_int64();
    }
  }
  s.total_requests = number(s.raw, "total_requests");
  s.items_written = number(s.raw, "items_written");
  s.items_deleted = number(s.raw, "items_deleted");
  s.items_read = number(s.raw, "items_read");
  if (const auto* f = s.raw.if_contains("faults"); f != nullptr && f->is_object()) {
    const auto& fo = f->as_object();
    s.throttled = number(fo, "throttle");
    s.failed_500 = number(fo, "status_500");
    s.failed_503 = number(fo, "status_503");
    s.failed_other = number(fo, "status_other");
    s.unprocessed = number(fo, "unprocessed");
    s.delayed = number(fo, "delay");
  }
  return s;
}

}  // namespace heartbeatd::test
