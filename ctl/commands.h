// What each heartbeatctl command asks the daemon, and what its answer means: the request to
// send, then the text to print and the exit code. Pure (the clock comes in as a number), so
// tables, --json output and every exit-code decision are unit-tested without a daemon.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ctl/options.h"
#include "ctl/sse.h"

namespace heartbeatd::ctl {

struct HttpRequest {
  std::string method;  // "GET", "POST", "DELETE"
  std::string target;  // "/v1/users/42"
  std::string body;    // JSON, or empty
};

struct HttpAnswer {
  int status = 0;
  std::string content_type;
  std::string body;
};

// What to print and how to exit. `out` goes to stdout, `err` to stderr (each ends in '\n'
// when not empty).
struct Outcome {
  int exit_code = kExitOk;
  std::string out;
  std::string err;
};

HttpRequest build_request(const Options& o);

// Interprets the daemon's answer to build_request(o). now_ms: wall-clock Unix milliseconds,
// for ages ("0.4s ago").
Outcome interpret(const Options& o, const HttpAnswer& answer, std::int64_t now_ms);

// One event of `watch`: the line to print (empty for events this client does not know), and
// an exit code when the event ends the watch ("dropped", or data that is not JSON).
struct EventOutcome {
  std::string out;
  std::string err;
  std::optional<int> exit_code;
};
EventOutcome interpret_event(const SseEvent& event, bool json);

// Formatting, exposed for tests.
std::string format_utc(std::int64_t unix_ms);                    // "2026-11-29T10:00:01.234Z"
std::string format_age(std::int64_t now_ms, std::int64_t then_ms);  // "0.4s ago", "3m12s ago"
// Columns padded to their widest cell, two spaces apart; the last column is not padded.
std::string format_table(const std::vector<std::vector<std::string>>& rows);
// The stderr line for a usage error, with the --help hint.
std::string usage_message(std::string_view message);

}  // namespace heartbeatd::ctl
