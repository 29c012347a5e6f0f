// Address: where a member receives datagrams (IPv4 or IPv6 literal plus UDP port). A plain
// value so the protocol core can name peers without depending on a socket library; the
// daemon converts to and from Asio endpoints at the edge.
//
// Thread safety: a value type.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace heartbeatd::membership {

struct Address {
  // IPv4 addresses use the first 4 bytes; the rest stay zero so comparison is plain.
  std::array<std::uint8_t, 16> ip{};
  std::uint16_t port = 0;
  bool v6 = false;

  static Address v4(std::uint32_t host_order_ip, std::uint16_t port);
  // "1.2.3.4:7701" or "[::1]:7701".
  std::string to_string() const;
  auto operator<=>(const Address&) const = default;
};

// Parses the form to_string() prints ("1.2.3.4:7701", "[::1]:7701"); nullopt otherwise.
std::optional<Address> parse_address(std::string_view text);

struct AddressHash {
  std::size_t operator()(const Address& a) const;
};

}  // namespace heartbeatd::membership
