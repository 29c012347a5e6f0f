// An HTTP/1.1 client pool to one endpoint (a DynamoDB endpoint, say), plain or TLS, with
// keep-alive: `min` connections kept open, more on demand up to `max`, idle ones beyond `min`
// closed after `idle_timeout`. A request that finds every connection busy waits in a bounded
// queue (`max_waiters`) for at most `wait`, then fails with pool_timeout (pool_full at once
// when the queue is full) — never unbounded memory, never a hang. Each request is bounded by
// its own timeout (connect + write + read); a timeout or a broken connection closes that
// connection and fails the request. A kept-alive connection that the server had closed
// (EOF or reset before any byte of the answer) is replaced and the request sent once more on
// a fresh connection, so the keep-alive race never reaches the caller.
//
// TLS: Beast's ssl_stream over OpenSSL, the server's certificate verified against `ca_file`
// (or the system's CAs) and the host name (SNI set); TLS 1.2 minimum.
//
// Thread safety: request() and stats() from any thread; callbacks run on the io_context's
// threads (never inside request()).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace heartbeatd::transport::aws {

struct Endpoint {
  bool tls = true;
  std::string host;
  std::uint16_t port = 443;
  // "https://dynamodb.eu-west-1.amazonaws.com", "http://127.0.0.1:8000"; nullopt-like
  // (host empty) with *why when it is not an http(s) URL with a host.
  static Endpoint parse(const std::string& url, std::string* why);
  std::string to_string() const;  // "https://host:port"
};

struct HttpPoolOptions {
  Endpoint endpoint;
  std::string ca_file;  // PEM CAs for TLS; empty: the system's default paths
  std::size_t min = 1;
  std::size_t max = 16;
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds wait{100};
  std::size_t max_waiters = 1024;
  std::chrono::milliseconds connect_timeout{1000};
};

struct HttpRequest {
  std::string method = "POST";
  std::string target = "/";
  // Sent as given; the pool adds Content-Length and keep-alive, nothing else (the caller
  // signs, so it sets Host itself).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct HttpResponse {
  unsigned status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // The first header of that name (case-insensitive), or "".
  std::string header(std::string_view name) const;
};

enum class HttpErrc {
  pool_timeout = 1,  // every connection stayed busy for `wait`
  pool_full,         // max_waiters requests are waiting already
  timeout,           // the request's own timeout passed
  stopped,           // the pool is stopping
  bad_response,      // not HTTP/1.1, or a body over 64 MiB
};
const boost::system::error_category& http_category();
boost::system::error_code make_error(HttpErrc e);

struct HttpPoolStats {
  std::size_t open = 0;
  std::size_t idle = 0;
  std::size_t waiting = 0;
  std::uint64_t connects = 0;
  std::uint64_t connect_failures = 0;
  std::uint64_t requests = 0;
  std::uint64_t failures = 0;  // requests answered with an error
  bool reachable = false;      // the last connect or request reached the server
  std::string last_error;      // of the last failure, "" after a success
};

class HttpPool {
 public:
  HttpPool(boost::asio::io_context& io, HttpPoolOptions options);
  ~HttpPool();
  HttpPool(const HttpPool&) = delete;
  HttpPool& operator=(const HttpPool&) = delete;

  void start();  // opens `min` connections in the background; never blocks
  // Closes every connection and fails waiting and running requests with `stopped`. Idempotent.
  void stop();
  void request(HttpRequest request, std::chrono::milliseconds timeout,
               std::function<void(boost::system::error_code, HttpResponse)> done);
  HttpPoolStats stats() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace heartbeatd::transport::aws
