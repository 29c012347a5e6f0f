#include "transport/api/query.h"

#include <algorithm>
#include <charconv>
#include <optional>

#include <fmt/format.h>

namespace heartbeatd::transport {
namespace {

std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      unsigned v = 0;
      const auto r = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (r.ec != std::errc() || r.ptr != s.data() + i + 3) return std::nullopt;
      out += static_cast<char>(v);
      i += 2;
    } else {
      out += s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

}  // namespace

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  if (s.empty()) return out;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = s.find(sep, start);
    out.push_back(s.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return out;
    start = end + 1;
  }
}

std::variant<std::vector<QueryParam>, std::string> parse_query(
    std::string_view query, std::initializer_list<std::string_view> known) {
  return parse_query(query, known, {});
}

std::variant<std::vector<QueryParam>, std::string> parse_query(
    std::string_view query, std::initializer_list<std::string_view> known,
    std::initializer_list<std::string_view> repeatable) {
  std::vector<QueryParam> params;
  for (auto param : split(query, '&')) {
    if (param.empty()) continue;
    const auto eq = param.find('=');
    const std::string_view key = param.substr(0, eq);
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string names;
      for (auto k : known) names += (names.empty() ? "" : ", ") + std::string(k);
      return known.size() == 0
                 ? fmt::format("unknown query parameter \"{}\" (this route takes none)", key)
                 : fmt::format("unknown query parameter \"{}\" (known: {})", key, names);
    }
    const bool once = std::find(repeatable.begin(), repeatable.end(), key) == repeatable.end();
    for (const auto& p : params) {
      if (once && p.key == key) return fmt::format("{} given twice", key);
    }
    auto value = percent_decode(eq == std::string_view::npos ? "" : param.substr(eq + 1));
    if (!value) return fmt::format("{}: bad percent-encoding", key);
    params.push_back({key, std::move(*value)});
  }
  return params;
}

std::optional<IdFormat> id_format(const std::vector<QueryParam>& params, std::string* why) {
  for (const auto& p : params) {
    if (p.key != "ids") continue;
    if (p.value == "number") return IdFormat::number;
    if (p.value == "string") return IdFormat::string;
    *why = fmt::format("ids: expected number or string, got \"{}\"", p.value);
    return std::nullopt;
  }
  return IdFormat::number;
}

}  // namespace heartbeatd::transport
