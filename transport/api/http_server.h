// HttpServer: HTTP/1.1 with keep-alive over TCP and over a Unix stream socket, one Router for
// both. Bounded everywhere: body and header size (413, 431), time to receive a whole request
// once its first byte arrived (408, then close), idle keep-alive time (close), concurrent
// connections: in all, from one client, and over TCP, which may not take the connections
// reserved for the Unix socket (503 + Retry-After beyond any of them, counted as a refusal
// "over_limit"). A connection that sends garbage gets a 400 and is closed; no other
// connection notices.
//
// A route may answer with a ResponseStream (Server-Sent Events): the connection then carries
// that stream until it ends, the client leaves or the server stops; it still counts against
// max_connections. An asynchronous route (Router::add_async) leaves the connection waiting
// for its answer, which may come from any thread; one that has not come after read_timeout
// is answered 504 and the connection closed.
//
// Time limits are checked by one periodic timer per connection (every quarter of the shorter
// limit, at most every second) rather than a timer per request, so a limit is never enforced
// early and at most two check periods late.
//
// With a TLS context, the TCP listener speaks only HTTPS: the handshake comes first and is
// bounded by read_timeout like a request (a client that connects and says nothing, or stalls
// mid-handshake, is closed); a failed handshake (plain HTTP, garbage, TLS 1.1) just closes that
// connection. Everything after the handshake is the same Session code over either stream.
//
// Threads: with `loops` = 0 every connection runs on its own strand of the io_context given,
// and handlers run concurrently across connections on whatever threads run it. With
// `loops` = N > 0 the server runs N event loops of its own, one thread each (started by
// start(), named "hb-api-K"); the listeners still accept on the io_context given, and each
// accepted connection is handed to the next loop in turn and lives there for its whole life.
// A request then never crosses threads: the thread that reads it runs its handler and writes
// its answer, with no strand and no wake-up of another thread (an asynchronous route's answer
// is the one post back). The kernel's SO_REUSEPORT would spread connections without the
// hand-off, but by a hash, unevenly over a few dozen connections, and not on a Unix socket;
// the hand-off costs one post per connection, not per request.
//
// Thread safety: listen_*() and start() before io_context::run(); stop(), halt() and
// set_tls_context() from any thread; join() from any thread but the server's own loops.
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "transport/api/http_limits.h"
#include "transport/api/http_router.h"

namespace boost::asio::ssl {
class context;
}

namespace heartbeatd::transport {

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, const Router& router, HttpServerLimits limits,
             unsigned loops = 0);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Both throw std::runtime_error with the address and the cause. A Unix socket path left
  // behind by a crashed process is replaced; one that a live process accepts on is refused.
  // With `tls`, that listener serves HTTPS only (transport/api/tls_context.h makes the context).
  void listen_tcp(const std::string& host, std::uint16_t port,
                  std::shared_ptr<boost::asio::ssl::context> tls = nullptr);
  void listen_unix(const std::string& path);

  void start();
  // Stops accepting, closes every connection and removes the Unix socket file (if it is
  // still the one we created). Idempotent. The server's own loops end once their connections
  // have closed: join() waits for that.
  void stop();
  // After stop(): waits for the server's own loops to end (at once without loops). The
  // destructor stops and joins.
  void join();
  // Ends the server's own loops now, whatever they still run (a stop that overran its
  // deadline); join() then returns promptly.
  void halt();

  // Certificate rotation: connections accepted from now on use `tls`; open ones keep the
  // context they were made with. Ignored when no TCP listener has TLS.
  void set_tls_context(std::shared_ptr<boost::asio::ssl::context> tls);

  // "127.0.0.1:7700", "https://127.0.0.1:7700", "unix:/run/x.sock"
  std::vector<std::string> endpoints() const;
  std::size_t connections() const;  // being served, both listeners
  std::size_t clients() const;      // distinct clients with a connection being served

  struct State;  // shared with the listeners and connections; defined in http_server.cpp
  struct Loops;  // the server's own event loops and their threads

 private:
  std::shared_ptr<State> state_;
  std::unique_ptr<Loops> loops_;  // null without loops
};

}  // namespace heartbeatd::transport
