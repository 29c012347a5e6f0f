#include "tests/support/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <cctype>
#include <cerrno>
#include <cstring>

namespace heartbeatd::test {
namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;

namespace {

int remaining_ms(Clock::time_point until) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

}  // namespace

std::string HttpResult::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

HttpClient HttpClient::tcp(std::uint16_t port, const std::string& host) {
  return tcp_from("", port, host);
}

HttpClient HttpClient::tcp_from(const std::string& source, std::uint16_t port,
                                const std::string& host) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (!source.empty()) {
    sockaddr_in from{};
    from.sin_family = AF_INET;
    inet_pton(AF_INET, source.c_str(), &from.sin_addr);
    if (bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) {
      std::string err = "bind " + source + ": " + std::strerror(errno);
      close(fd);
      return HttpClient(-1, err);
    }
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::string err = std::strerror(errno);
    close(fd);
    return HttpClient(-1, err);
  }
  return HttpClient(fd, "");
}

HttpClient HttpClient::unix_socket(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::string err = std::strerror(errno);
    close(fd);
    return HttpClient(-1, err);
  }
  return HttpClient(fd, "");
}

HttpClient::~HttpClient() {
  if (fd_ >= 0) close(fd_);
}

HttpClient::HttpClient(HttpClient&& other) noexcept
    : fd_(other.fd_),
      connect_error_(std::move(other.connect_error_)),
      pending_(std::move(other.pending_)) {
  other.fd_ = -1;
}

bool HttpClient::send_raw(const std::string& bytes) {
  if (fd_ < 0) return false;
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

HttpResult HttpClient::request(const std::string& method, const std::string& target,
                               const std::string& body, std::chrono::milliseconds deadline) {
  return request(method, target, std::vector<std::string>{}, body, deadline);
}

HttpResult HttpClient::request(const std::string& method, const std::string& target,
                               const std::vector<std::string>& header_lines,
                               const std::string& body, std::chrono::milliseconds deadline) {
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: test\r\n";
  for (const auto& line : header_lines) req += line + "\r\n";
  if (!body.empty() || method == "POST" || method == "PUT") {
    req +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n" + body;
  if (!send_raw(req)) {
    HttpResult r;
    r.error = fd_ < 0 ? "not connected: " + connect_error_ : "send failed";
    return r;
  }
  return read_response(deadline);
}

HttpResult HttpClient::read_response(std::chrono::milliseconds deadline) {
  HttpResult result;
  if (fd_ < 0) {
    result.error = "not connected: " + connect_error_;
    return result;
  }
  const auto until = Clock::now() + deadline;
  http::response_parser<http::string_body> parser;
  parser.eager(true);
  parser.body_limit(64 << 20);
  boost::beast::error_code ec;
  std::string buf = std::move(pending_);
  pending_.clear();
  char chunk[16384];
  bool eof = false;
  while (true) {
    if (!buf.empty()) {
      const std::size_t used = parser.put(boost::asio::buffer(buf), ec);
      buf.erase(0, used);
      if (ec == http::error::need_more) ec = {};
      if (ec) {
        result.error = "bad response: " + ec.message();
        return result;
      }
      if (parser.is_done()) break;
      if (used > 0) continue;
    }
    if (eof) {
      // put_eof() before any byte is a precondition failure Beast only asserts: in a Release
      // build it "completes" an empty 200 response.
      if (!parser.got_some()) {
        result.error = "connection closed before a complete response";
        return result;
      }
      parser.put_eof(ec);
      if (ec || !parser.is_done()) {
        result.error = "connection closed before a complete response";
        result.closed = true;
        return result;
      }
      break;
    }
    pollfd p{fd_, POLLIN, 0};
    const int ready = poll(&p, 1, remaining_ms(until));
    if (ready <= 0) {
      result.error = "no response within the deadline";
      return result;
    }
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      eof = true;
      result.closed = true;
      continue;
    }
    buf.append(chunk, static_cast<std::size_t>(n));
  }
  pending_ = std::move(buf);
  auto res = parser.release();
  result.status = static_cast<int>(res.result_int());
  result.body = std::move(res.body());
  for (const auto& field : res) {
    std::string name(field.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    result.headers[name] = std::string(field.value());
  }
  if (!res.keep_alive()) result.closed = true;
  return result;
}

bool HttpClient::wait_closed(std::chrono::milliseconds deadline) {
  if (fd_ < 0) return true;
  const auto until = Clock::now() + deadline;
  char chunk[4096];
  while (true) {
    pollfd p{fd_, POLLIN, 0};
    const int ready = poll(&p, 1, remaining_ms(until));
    if (ready <= 0) return false;
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;
  }
}

HttpResult http_tcp(std::uint16_t port, const std::string& method, const std::string& target,
                    const std::string& body) {
  return HttpClient::tcp(port).request(method, target, body);
}

HttpResult http_unix(const std::string& path, const std::string& method, const std::string& target,
                     const std::string& body) {
  return HttpClient::unix_socket(path).request(method, target, body);
}

HttpResult http_tcp_token(std::uint16_t port, const std::string& token, const std::string& method,
                          const std::string& target, const std::string& body) {
  return HttpClient::tcp(port).request(method, target, {"Authorization: Bearer " + token}, body);
}

}  // namespace heartbeatd::test
