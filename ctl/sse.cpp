#include "ctl/sse.h"

namespace heartbeatd::ctl {

void SseParser::feed(std::string_view bytes, std::vector<SseEvent>& out) {
  while (!bytes.empty()) {
    if (after_cr_ && bytes.front() == '\n') bytes.remove_prefix(1);
    after_cr_ = false;
    const auto end = bytes.find_first_of("\r\n");
    if (end == std::string_view::npos) {
      line_.append(bytes);
      return;
    }
    line_.append(bytes.substr(0, end));
    after_cr_ = bytes[end] == '\r';
    bytes.remove_prefix(end + 1);
    end_line(out);
  }
}

void SseParser::end_line(std::vector<SseEvent>& out) {
  std::string_view line = line_;
  if (first_line_) {
    // A UTF-8 byte order mark may open the stream.
    if (line.starts_with("\xEF\xBB\xBF")) line.remove_prefix(3);
    first_line_ = false;
  }
  if (line.empty()) {
    if (has_data_) out.push_back(SseEvent{name_.empty() ? "message" : name_, data_});
    name_.clear();
    data_.clear();
    has_data_ = false;
  } else if (line.front() != ':') {
    const auto colon = line.find(':');
    const std::string_view field = line.substr(0, colon);
    std::string_view value;
    if (colon != std::string_view::npos) {
      value = line.substr(colon + 1);
      if (value.starts_with(' ')) value.remove_prefix(1);
    }
    if (field == "event") {
      name_ = value;
    } else if (field == "data") {
      if (has_data_) data_ += '\n';
      data_.append(value);
      has_data_ = true;
    }
    // id and retry concern reconnecting browsers; other fields are ignored by the standard.
  }
  line_.clear();
}

}  // namespace heartbeatd::ctl
