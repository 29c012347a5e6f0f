// HttpServerLimits: the bounds HttpServer enforces (transport/api/http_server.h). A header of its
// own so that the daemon's Config can hold them without pulling in Asio: each default and its
// reason is written here once, and the api.* keys (examples/heartbeatd.yaml) read into it.
//
// Thread safety: a plain value.
#pragma once

#include <chrono>
#include <cstddef>

namespace heartbeatd::transport {

struct HttpServerLimits {
  std::size_t max_body_bytes = 1 << 20;     // 413 beyond; 1 MiB holds a batch of ~50k ids
  std::size_t max_header_bytes = 16 << 10;  // 431 beyond; ample for any real client
  // 503 + Retry-After beyond, so a connection flood cannot exhaust memory or descriptors.
  std::size_t max_connections = 1024;
  // One client's share: a TCP source address, or a uid on the Unix socket (Caller::client()).
  // A gateway's connection pool is a few dozen connections; 64 leaves it room while 14 such
  // clients still fit beside the Unix reserve.
  std::size_t max_connections_per_client = 64;
  // Connections only the Unix socket may use: TCP takes at most max_connections minus these,
  // so that no TCP flood locks local services out. Ignored without a Unix listener. Twice the
  // per-client share, so one local uid at its limit leaves room for the others.
  std::size_t unix_reserved_connections = 128;
  std::chrono::milliseconds read_timeout{10'000};  // for a whole request; 408 beyond
  std::chrono::milliseconds idle_timeout{60'000};  // a keep-alive connection between requests
  // Event streams: a comment line after this much silence, so dead clients are noticed and
  // proxies keep the connection. A stream write that takes longer than read_timeout (the
  // client stopped reading) closes the connection.
  std::chrono::milliseconds stream_keepalive{15'000};
};

}  // namespace heartbeatd::transport
