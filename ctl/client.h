// heartbeatctl's connection to the daemon: one HTTP/1.1 request over the Unix socket or TCP,
// the whole exchange (resolve, connect, send, receive) bounded by --timeout. Blocking calls
// for the caller; inside, Asio operations run on a private io_context until they finish or
// the deadline passes (plain blocking socket calls cannot be given a deadline).
#pragma once

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "ctl/commands.h"
#include "ctl/options.h"

namespace heartbeatd::ctl {

// The daemon could not be asked: no socket, refused, timeout, not HTTP (exit code 3).
struct Unreachable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Sends `request` and returns the whole answer. Throws Unreachable.
HttpAnswer fetch(const Options& o, const HttpRequest& request);

// For watch: sends `request` (the connection and the response header within the timeout).
// An answer other than 200 text/event-stream is returned whole, for interpret(). Otherwise the
// body goes to on_bytes as it arrives, without a deadline, until on_bytes returns false
// (returns nullopt), SIGINT or SIGTERM arrives (returns nullopt and sets *interrupted), or the
// stream ends or breaks (throws Unreachable).
std::optional<HttpAnswer> stream(const Options& o, const HttpRequest& request,
                                 const std::function<bool(std::string_view)>& on_bytes,
                                 bool* interrupted);

}  // namespace heartbeatd::ctl
