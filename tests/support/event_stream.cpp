#include "tests/support/event_stream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/json/parse.hpp>

#include <cstring>

namespace heartbeatd::test {
using Clock = std::chrono::steady_clock;

boost::json::object SseEvent::json() const {
  return boost::json::parse(data).as_object();
}

EventStream EventStream::tcp(std::uint16_t port, const std::string& target, int rcvbuf) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return EventStream(-1, target);
  }
  return EventStream(fd, target);
}

EventStream EventStream::unix_socket(const std::string& path, const std::string& target) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return EventStream(-1, target);
  }
  return EventStream(fd, target);
}

EventStream::EventStream(int fd, const std::string& target) : fd_(fd) {
  if (fd_ < 0) return;
  const std::string req = "GET " + target + " HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n\r\n";
  if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) return;
  const auto until = Clock::now() + std::chrono::seconds(5);
  std::size_t end;
  while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    if (!fill(until)) return;
  }
  head_ = buffer_.substr(0, end + 4);
  buffer_.erase(0, end + 4);
  if (head_.size() > 12) status_ = std::atoi(head_.c_str() + 9);
}

EventStream::~EventStream() {
  if (fd_ >= 0) close(fd_);
}

EventStream::EventStream(EventStream&& o) noexcept
    : fd_(o.fd_),
      status_(o.status_),
      head_(std::move(o.head_)),
      buffer_(std::move(o.buffer_)),
      eof_(o.eof_),
      comments_(o.comments_) {
  o.fd_ = -1;
}

bool EventStream::fill(Clock::time_point until) {
  if (fd_ < 0 || eof_) return false;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
  if (left.count() <= 0) return false;
  pollfd p{fd_, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
  char buf[65536];
  const ssize_t n = recv(fd_, buf, sizeof buf, 0);
  if (n <= 0) {
    eof_ = true;
    return false;
  }
  buffer_.append(buf, static_cast<std::size_t>(n));
  return true;
}

std::optional<SseEvent> EventStream::next(std::chrono::milliseconds deadline) {
  const auto until = Clock::now() + deadline;
  while (true) {
    // One block ends at a blank line; lines are "field: value" or ": comment".
    const std::size_t end = buffer_.find("\n\n");
    if (end != std::string::npos) {
      const std::string block = buffer_.substr(0, end + 1);
      buffer_.erase(0, end + 2);
      SseEvent e;
      bool comment_only = true;
      std::size_t start = 0;
      while (start < block.size()) {
        const std::size_t nl = block.find('\n', start);
        const std::string line = block.substr(start, nl - start);
        start = nl + 1;
        if (line.starts_with(":")) continue;
        comment_only = false;
        if (line.starts_with("event: ")) e.event = line.substr(7);
        if (line.starts_with("data: ")) e.data += line.substr(6);
      }
      if (comment_only) {
        ++comments_;
        continue;
      }
      return e;
    }
    if (!fill(until)) return std::nullopt;
  }
}

bool EventStream::wait_closed(std::chrono::milliseconds deadline) {
  const auto until = Clock::now() + deadline;
  while (!eof_) {
    if (!fill(until) && !eof_) return false;
  }
  return true;
}

}  // namespace heartbeatd::test
