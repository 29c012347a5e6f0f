#include "membership/address.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace heartbeatd::membership {

Address Address::v4(std::uint32_t host_order_ip, std::uint16_t port) {
  Address a;
  a.ip[0] = static_cast<std::uint8_t>(host_order_ip >> 24);
  a.ip[1] = static_cast<std::uint8_t>(host_order_ip >> 16);
  a.ip[2] = static_cast<std::uint8_t>(host_order_ip >> 8);
  a.ip[3] = static_cast<std::uint8_t>(host_order_ip);
  a.port = port;
  return a;
}

std::string Address::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(v6 ? AF_INET6 : AF_INET, ip.data(), buf, sizeof buf);
  std::string out = v6 ? "[" + std::string(buf) + "]" : std::string(buf);
  return out + ":" + std::to_string(port);
}

std::optional<Address> parse_address(std::string_view text) {
  Address a;
  std::string host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
    a.v6 = true;
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 ||
      port > 65535 || port_text.front() == '+') {
    return std::nullopt;
  }
  if (::inet_pton(a.v6 ? AF_INET6 : AF_INET, host.c_str(), a.ip.data()) != 1) {
    return std::nullopt;
  }
  a.port = static_cast<std::uint16_t>(port);
  return a;
}

std::size_t AddressHash::operator()(const Address& a) const {
  std::uint64_t h = 1469598103934665603ull;
  for (auto b : a.ip) h = (h ^ b) * 1099511628211ull;
  h = (h ^ a.port) * 1099511628211ull;
  return static_cast<std::size_t>(h ^ (a.v6 ? 0x9e37 : 0));
}

}  // namespace heartbeatd::membership
