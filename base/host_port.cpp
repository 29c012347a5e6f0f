#include "base/host_port.h"

#include <arpa/inet.h>

#include <cctype>
#include <charconv>

#include <fmt/format.h>

#include "base/parse_int.h"

namespace heartbeatd {
namespace {

bool valid_hostname(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  std::size_t start = 0;
  while (start <= h.size()) {
    std::size_t dot = h.find('.', start);
    if (dot == std::string_view::npos) dot = h.size();
    std::string_view label = h.substr(start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
      return false;
    for (char c : label) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-')) return false;
    }
    start = dot + 1;
    if (dot == h.size()) break;
  }
  return true;
}

}  // namespace

std::string HostPort::to_string() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

std::optional<HostPort> parse_host_port(std::string_view s, std::string* why) {
  auto no = [&](std::string text) -> std::optional<HostPort> {
    if (why) *why = std::move(text);
    return std::nullopt;
  };
  std::string_view host, port;
  if (s.starts_with('[')) {
    const auto close = s.find(']');
    if (close == std::string_view::npos) return no("missing ']'");
    host = s.substr(1, close - 1);
    if (close + 1 >= s.size() || s[close + 1] != ':') return no("missing :port");
    port = s.substr(close + 2);
    in6_addr a6;
    if (inet_pton(AF_INET6, std::string(host).c_str(), &a6) != 1) return no("not an IPv6 address");
  } else {
    const auto colon = s.rfind(':');
    if (colon == std::string_view::npos) return no("missing :port");
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return no("IPv6 addresses go in brackets");
    in_addr a4;
    if (inet_pton(AF_INET, std::string(host).c_str(), &a4) != 1 && !valid_hostname(host)) {
      return no("not an IP address or host name");
    }
  }
  const auto p = parse_int<std::uint32_t>(port);
  if (!p || *p < 1 || *p > 65535) return no("port must be 1 to 65535");
  return HostPort{std::string(host), static_cast<std::uint16_t>(*p)};
}

}  // namespace heartbeatd
