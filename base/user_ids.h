// Decoding user ids from requests: a path segment ("/v1/users/42"), the batch body
// {"users":[1,2,3]}, and the same batch as binary (8 bytes per id). Pure functions (bytes in,
// ids or an error out) so they can be tested exhaustively and fuzzed.
//
// A user id is an unsigned 64-bit integer in canonical decimal: "0" or digits without a
// leading zero, at most 18446744073709551615. A batch is all-or-nothing: the first bad
// element fails the whole body, and the error names it by position and value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace heartbeatd {

// nullopt with `why` filled when the segment is not a user id.
std::optional<std::uint64_t> parse_user_id(std::string_view text, std::string* why);

struct UserIdsError {
  std::string message;
  bool too_many = false;  // more ids than max_batch (the caller answers 413)
};
using UserIdsResult = std::variant<std::vector<std::uint64_t>, UserIdsError>;

// Parses exactly {"users":[id,...]} (whitespace allowed, nothing else): a non-empty array of
// at most max_batch ids, each a JSON number or a string of the same canonical decimal
// ("18446744073709551615": JavaScript clients cannot hold ids above 2^53 as numbers).
UserIdsResult parse_user_ids_body(std::string_view body, std::size_t max_batch);

// Parses a binary batch (Content-Type: application/octet-stream): n ids of 8 bytes each,
// little-endian, nothing else; n = size / 8, at least 1 and at most max_batch. Every 64-bit
// value is an id, so the only bad bodies are a size that is not a multiple of 8, an empty one,
// and one of more than max_batch ids (too_many, as in the JSON form).
UserIdsResult parse_user_ids_binary(std::string_view body, std::size_t max_batch);

}  // namespace heartbeatd
