// HttpClient: a blocking HTTP/1.1 client for tests, over TCP or a Unix socket, with a deadline
// on every call. Responses are parsed with Beast's parser fed from a plain socket, so tests
// can also send raw, malformed bytes on the same connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace heartbeatd::test {

struct HttpResult {
  int status = 0;  // 0: no response (see error)
  std::string body;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string error;                           // transport failure, empty on success
  bool closed = false;                         // server closed after this response
  std::string header(const std::string& name) const;
};

class HttpClient {
 public:
  static HttpClient tcp(std::uint16_t port, const std::string& host = "127.0.0.1");
  // From a chosen loopback source address (all of 127.0.0.0/8 is loopback): to the server,
  // another client than 127.0.0.1.
  static HttpClient tcp_from(const std::string& source, std::uint16_t port,
                             const std::string& host = "127.0.0.1");
  static HttpClient unix_socket(const std::string& path);
  ~HttpClient();
  HttpClient(HttpClient&& other) noexcept;
  HttpClient& operator=(HttpClient&&) = delete;

  bool connected() const { return fd_ >= 0; }
  const std::string& connect_error() const { return connect_error_; }

  HttpResult request(const std::string& method, const std::string& target,
                     const std::string& body = "",
                     std::chrono::milliseconds deadline = std::chrono::seconds(5));
  // With extra header lines, sent as given ("Authorization: Bearer TOKEN", or malformed ones).
  HttpResult request(const std::string& method, const std::string& target,
                     const std::vector<std::string>& header_lines, const std::string& body = "",
                     std::chrono::milliseconds deadline = std::chrono::seconds(5));
  // Sends bytes as they are.
  bool send_raw(const std::string& bytes);
  // Reads one response (e.g. after send_raw).
  HttpResult read_response(std::chrono::milliseconds deadline = std::chrono::seconds(5));
  // True when the server has closed the connection (EOF or reset) within the deadline.
  bool wait_closed(std::chrono::milliseconds deadline = std::chrono::seconds(5));

 private:
  explicit HttpClient(int fd, std::string error) : fd_(fd), connect_error_(std::move(error)) {}
  int fd_;
  std::string connect_error_;
  std::string pending_;  // bytes read past the last response
};

// One request on a fresh connection.
HttpResult http_tcp(std::uint16_t port, const std::string& method, const std::string& target,
                    const std::string& body = "");
HttpResult http_unix(const std::string& path, const std::string& method, const std::string& target,
                     const std::string& body = "");
// The same with "Authorization: Bearer TOKEN".
HttpResult http_tcp_token(std::uint16_t port, const std::string& token, const std::string& method,
                          const std::string& target, const std::string& body = "");

}  // namespace heartbeatd::test
