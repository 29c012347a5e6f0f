// EventStream: a test client for GET /v1/events (Server-Sent Events) over TCP or a Unix
// socket. It sends the request, reads the head, then hands out events one at a time, each
// wait bounded by a deadline. It can also leave its socket unread (a slow consumer).
#pragma once

#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace heartbeatd::test {

struct SseEvent {
  std::string event;  // "member", "user", "dropped"
  std::string data;   // the JSON text
  boost::json::object json() const;
};

class EventStream {
 public:
  // `rcvbuf`: a small receive buffer makes a non-reading client fall behind quickly.
  static EventStream tcp(std::uint16_t port, const std::string& target, int rcvbuf = 0);
  static EventStream unix_socket(const std::string& path, const std::string& target);
  ~EventStream();
  EventStream(EventStream&& other) noexcept;
  EventStream& operator=(EventStream&&) = delete;

  // After construction: the response status (0 if none arrived within 5 s) and its head.
  int status() const { return status_; }
  const std::string& head() const { return head_; }
  const std::string& body_so_far() const { return buffer_; }  // for non-200 answers

  // The next event, skipping comments; nullopt at the deadline or when the stream ended.
  std::optional<SseEvent> next(std::chrono::milliseconds deadline = std::chrono::seconds(5));
  // Waits for the next event named `event` matching `pred` on its JSON, skipping others.
  template <class Pred>
  std::optional<SseEvent> next_matching(const std::string& event, Pred pred,
                                        std::chrono::milliseconds deadline);
  // Comments (": keepalive") seen so far.
  int comments() const { return comments_; }
  // True when the server closed the stream (EOF) within the deadline; events before the end
  // are still returned by next().
  bool wait_closed(std::chrono::milliseconds deadline);
  bool closed() const { return eof_; }

 private:
  EventStream(int fd, const std::string& target);
  bool fill(std::chrono::steady_clock::time_point until);  // false: deadline or EOF
  int fd_ = -1;
  int status_ = 0;
  std::string head_;
  std::string buffer_;
  bool eof_ = false;
  int comments_ = 0;
};

template <class Pred>
std::optional<SseEvent> EventStream::next_matching(const std::string& event, Pred pred,
                                                   std::chrono::milliseconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    auto e = next(left);
    if (!e) return std::nullopt;
    if (e->event == event && pred(e->json())) return e;
  }
}

}  // namespace heartbeatd::test
