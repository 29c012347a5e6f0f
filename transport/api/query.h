// Query strings of API requests: split into parameters and percent-decoded, each route
// checking its own names. Pure functions, so every bad query is a clear 400 before any work.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace heartbeatd::transport {

struct QueryParam {
  std::string_view key;
  std::string value;  // percent-decoded ('+' is a space)
};

// The parameters in order (empty pieces between '&' skipped), or why not: a parameter not in
// `known`, one given twice, or bad percent-encoding — each message names the parameter.
std::variant<std::vector<QueryParam>, std::string> parse_query(
    std::string_view query, std::initializer_list<std::string_view> known);
// The same, except that the names in `repeatable` (each also in `known`) may be given any
// number of times (`state=alive&state=dead`), every occurrence kept in order.
std::variant<std::vector<QueryParam>, std::string> parse_query(
    std::string_view query, std::initializer_list<std::string_view> known,
    std::initializer_list<std::string_view> repeatable);

// How a response writes user ids: JSON numbers (the default), or decimal strings for clients
// whose numbers are doubles (JavaScript loses ids above 2^53). Chosen per request with
// `ids=number|string`.
enum class IdFormat { number, string };

// Reads `ids` from parameters parsed by parse_query; nullopt with `why` for another value.
std::optional<IdFormat> id_format(const std::vector<QueryParam>& params, std::string* why);

// Splits on `sep`; "" gives no pieces, "a," gives "a" and "".
std::vector<std::string_view> split(std::string_view s, char sep);

}  // namespace heartbeatd::transport
