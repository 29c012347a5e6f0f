// POST /v1/reload (admin): re-read the daemon's --config file, as SIGHUP does, and answer with
// what the reload did (docs/API.md, "POST /v1/reload"):
//   200 {"result":"applied"|"unchanged","applied":[TEXT,...],"needs_restart":[TEXT,...]}
//   422 {"error":"config_rejected","message":WHY,"result":"rejected"}: nothing changed
//   409 {"error":"no_config_file",...}: started without --config, nothing to re-read
// The route only checks the request and renders the outcome; the daemon runs the reload.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "transport/api/http_router.h"

namespace heartbeatd::transport {

// What one reload did (SIGHUP and the API share it).
struct ReloadOutcome {
  enum class Result {
    applied,         // accepted: `applied` in force now, `needs_restart` waits for a restart
    unchanged,       // the file and the files it names match what runs
    rejected,        // nothing changed: `error` says why, naming the key or file
    no_config_file,  // started without --config: built-in defaults, nothing to re-read
    stopping,        // the daemon is stopping
  };
  Result result = Result::unchanged;
  // Each "KEY: what changed", the key first: "log.level: info -> debug".
  std::vector<std::string> applied;
  std::vector<std::string> needs_restart;
  std::string error;  // rejected, no_config_file, stopping
};
std::string_view to_string(ReloadOutcome::Result r);

// The answer for an outcome, in the shapes above.
Response reload_response(const ReloadOutcome& outcome);

// Runs one reload and hands its outcome to `done` exactly once, from any thread.
using ReloadRunner = std::function<void(std::function<void(ReloadOutcome)> done)>;

// A request with a body or any query parameter is refused (400) before `run` is called.
void add_reload_route(Router& router, ReloadRunner run);

}  // namespace heartbeatd::transport
