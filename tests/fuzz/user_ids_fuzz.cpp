// libFuzzer target for the user-id decoders (base/user_ids.h): any bytes must give
// either ids or an error, never a crash; accepted ids must survive a round trip through
// their canonical JSON, and binary ones through their 8 little-endian bytes; and a path segment accepted by parse_user_id must print back as
// itself (ids are canonical decimal). Built and run by scripts/fuzz, not by scripts/test.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "base/user_ids.h"

using heartbeatd::parse_user_id;
using heartbeatd::parse_user_ids_binary;
using heartbeatd::parse_user_ids_body;
using heartbeatd::UserIdsError;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  constexpr std::size_t kMax = 64;

  auto result = parse_user_ids_body(input, kMax);
  if (auto* ids = std::get_if<std::vector<std::uint64_t>>(&result)) {
    if (ids->empty() || ids->size() > kMax) std::abort();
    std::string canonical = "{\"users\":[";
    for (std::size_t i = 0; i < ids->size(); ++i) {
      if (i) canonical += ',';
      canonical += std::to_string((*ids)[i]);
    }
    canonical += "]}";
    auto again = parse_user_ids_body(canonical, kMax);
    auto* same = std::get_if<std::vector<std::uint64_t>>(&again);
    if (!same || *same != *ids) std::abort();
  } else if (std::get<UserIdsError>(result).message.empty()) {
    std::abort();  // every refusal says why
  }

  auto binary = parse_user_ids_binary(input, kMax);
  if (auto* ids = std::get_if<std::vector<std::uint64_t>>(&binary)) {
    if (ids->empty() || ids->size() > kMax || ids->size() * 8 != size) std::abort();
    std::string bytes;
    for (const std::uint64_t id : *ids) {
      for (int b = 0; b < 8; ++b) bytes += static_cast<char>(id >> (8 * b) & 0xff);
    }
    if (bytes != input) std::abort();
  } else if (std::get<UserIdsError>(binary).message.empty()) {
    std::abort();
  }

  std::string why;
  if (auto id = parse_user_id(input, &why)) {
    if (std::to_string(*id) != input) std::abort();
  } else if (why.empty()) {
    std::abort();
  }
  return 0;
}
