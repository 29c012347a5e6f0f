// An incremental parser of Server-Sent Events (the text/event-stream format of the HTML
// standard): bytes in as they arrive, complete events out. Events may be split anywhere
// across reads, lines end in LF, CRLF or CR (a CR at the end of one read and the LF at the
// start of the next are one line end), several data lines join with '\n', lines starting with
// ':' are comments (keepalives), and an event is dispatched at a blank line if it has data.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace heartbeatd::ctl {

struct SseEvent {
  std::string name = "message";  // the "event:" field; "message" when absent
  std::string data;              // the "data:" lines joined with '\n'
  bool operator==(const SseEvent&) const = default;
};

class SseParser {
 public:
  // Appends the events completed by `bytes` to `out`.
  void feed(std::string_view bytes, std::vector<SseEvent>& out);
  std::vector<SseEvent> feed(std::string_view bytes) {
    std::vector<SseEvent> out;
    feed(bytes, out);
    return out;
  }
  // Bytes of the line not yet terminated (for a caller that bounds memory).
  std::size_t pending_bytes() const { return line_.size(); }

 private:
  void end_line(std::vector<SseEvent>& out);

  std::string line_;
  bool after_cr_ = false;  // the last byte was a CR: an LF next is part of that line end
  bool first_line_ = true;
  std::string name_;
  std::string data_;
  bool has_data_ = false;
};

}  // namespace heartbeatd::ctl
