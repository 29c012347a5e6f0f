// HttpsClient: a blocking HTTPS/1.1 client for tests (boost::asio::ssl over OpenSSL), one
// keep-alive connection, a deadline on every call. It can present a client certificate,
// restrict the protocol versions it offers (to play an outdated client), and report the
// server certificate's subject and serial, so a test can see which certificate a connection
// was served with (rotation).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "tests/support/http_client.h"

namespace heartbeatd::test {

struct TlsClientOptions {
  std::string ca_file;    // verify the server's chain (and IP SAN 127.0.0.1); empty: no check
  std::string cert_file;  // client certificate (mutual TLS); empty: none
  std::string key_file;
  int min_version = 0;  // TLS1_VERSION, ...; 0: OpenSSL's default
  int max_version = 0;
};

class HttpsClient {
 public:
  // Connects to 127.0.0.1:port and completes the handshake within `deadline`.
  HttpsClient(std::uint16_t port, TlsClientOptions options,
              std::chrono::milliseconds deadline = std::chrono::seconds(5));
  ~HttpsClient();
  HttpsClient(const HttpsClient&) = delete;
  HttpsClient& operator=(const HttpsClient&) = delete;

  bool connected() const { return error_.empty(); }
  const std::string& connect_error() const { return error_; }
  std::string peer_subject() const;  // "/CN=server-1"
  std::string peer_serial() const;   // hex, "1001"

  HttpResult request(const std::string& method, const std::string& target,
                     const std::string& body = "",
                     std::chrono::milliseconds deadline = std::chrono::seconds(5));
  // Raw bytes inside TLS, and what comes back until `needle` (or the deadline or the end).
  bool send_raw(const std::string& bytes,
                std::chrono::milliseconds deadline = std::chrono::seconds(5));
  std::string read_until(const std::string& needle,
                         std::chrono::milliseconds deadline = std::chrono::seconds(5));

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string error_;
};

}  // namespace heartbeatd::test
