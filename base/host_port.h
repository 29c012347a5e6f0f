// HostPort: an address as written in the config and on heartbeatctl's command line,
// "host:port" or "[v6]:port". Parsed here, resolved (if a name) by whoever connects or binds.
// Shared by the daemon's config and the client so that both accept the same addresses.
//
// Thread safety: a plain value; parse_host_port is a pure function.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace heartbeatd {

struct HostPort {
  std::string host;  // IP literal (IPv6 without brackets) or DNS name
  std::uint16_t port = 0;
  std::string to_string() const;  // "host:port", "[v6]:port"
  bool operator==(const HostPort&) const = default;
};

// nullopt with `why` (if given) filled when `text` is not host:port with a port 1..65535 and
// a host that is an IPv4 literal, a bracketed IPv6 literal or a DNS name.
std::optional<HostPort> parse_host_port(std::string_view text, std::string* why);

}  // namespace heartbeatd
