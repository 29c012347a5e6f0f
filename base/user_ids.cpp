#include "base/user_ids.h"

#include <bit>
#include <charconv>
#include <cstring>

#include <fmt/format.h>

namespace heartbeatd {
namespace {

constexpr std::string_view kShape = R"(expected a body {"users":[id,...]})";

bool is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// The offending token as written, for messages: up to the next delimiter, at most 40 bytes.
std::string token_at(std::string_view s, std::size_t pos) {
  std::size_t end = pos;
  if (end < s.size() && s[end] == '"') {
    end = s.find('"', pos + 1);
    end = end == std::string_view::npos ? s.size() : end + 1;
  } else {
    while (end < s.size() && !is_ws(s[end]) && s[end] != ',' && s[end] != ']' && s[end] != '}') {
      ++end;
    }
  }
  std::string t(s.substr(pos, std::min<std::size_t>(end - pos, 40)));
  if (end - pos > 40) t += "...";
  return t;
}

std::string_view json_type_at(char c) {
  switch (c) {
    case '"':
      return "a string";
    case '{':
      return "an object";
    case '[':
      return "an array";
    case 't':
    case 'f':
      return "a boolean";
    case 'n':
      return "null";
    default:
      return "";
  }
}

// Why `token` (which starts a JSON value) is not a user id; empty when it is one.
std::string id_problem(std::string_view token, std::uint64_t* out) {
  if (token.empty()) return "nothing";
  if (auto type = json_type_at(token.front()); !type.empty()) {
    return type == "null" ? std::string(type) : fmt::format("{} {}", type, token);
  }
  if (token.front() == '-') return fmt::format("{} (negative)", token);
  std::size_t digits = 0;
  while (digits < token.size() && is_digit(token[digits])) ++digits;
  if (digits == 0) return fmt::format("{} (not a number)", token);
  if (digits < token.size()) {
    const char c = token[digits];
    if (c == '.' || c == 'e' || c == 'E') return fmt::format("{} (not an integer)", token);
    return fmt::format("{} (not a number)", token);
  }
  if (digits > 1 && token.front() == '0') return fmt::format("{} (leading zero)", token);
  auto [p, ec] = std::from_chars(token.data(), token.data() + token.size(), *out);
  if (ec == std::errc::result_out_of_range) return fmt::format("{} (above 2^64-1)", token);
  if (ec != std::errc() || p != token.data() + token.size()) {
    return fmt::format("{} (not a number)", token);
  }
  return "";
}

// Why the contents of a JSON string are not a user id in decimal; empty when they are one.
std::string string_id_problem(std::string_view text, std::uint64_t* out) {
  if (text.empty()) return "an empty string";
  const std::string shown = text.size() > 40 ? std::string(text.substr(0, 40)) + "..." : std::string(text);
  for (const char c : text) {
    if (!is_digit(c)) return fmt::format("the string \"{}\" (not a decimal number)", shown);
  }
  if (text.size() > 1 && text.front() == '0') {
    return fmt::format("the string \"{}\" (leading zero)", shown);
  }
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  if (ec != std::errc() || p != text.data() + text.size()) {
    return fmt::format("the string \"{}\" (above 2^64-1)", shown);
  }
  return "";
}

// More ids than presence.max_batch, in the same words for the JSON and the binary form (a
// client may match on them); too_many makes it a 413.
UserIdsError too_many_ids(std::size_t max_batch) {
  return UserIdsError{fmt::format("users: more than {} ids (presence.max_batch)", max_batch),
                      true};
}

class BodyParser {
 public:
  BodyParser(std::string_view s, std::size_t max_batch) : s_(s), max_(max_batch) {}

  UserIdsResult parse() {
    skip_ws();
    if (at_end()) return fail(fmt::format("request body is empty; {}", kShape));
    if (!eat('{')) return fail(fmt::format("body is not a JSON object; {}", kShape));
    skip_ws();
    if (!peek('"')) return fail(fmt::format("missing field \"users\"; {}", kShape));
    const std::size_t key_start = pos_ + 1;
    const std::size_t key_end = s_.find('"', key_start);
    if (key_end == std::string_view::npos) return fail("unterminated string in body");
    const std::string_view key = s_.substr(key_start, key_end - key_start);
    if (key != "users") return fail(fmt::format("unknown field \"{}\"; {}", key, kShape));
    pos_ = key_end + 1;
    skip_ws();
    if (!eat(':')) return fail(fmt::format("expected ':' after \"users\" at byte {}", pos_));
    skip_ws();
    if (!eat('[')) {
      return fail(fmt::format("users: expected an array of user ids, got {}",
                              at_end() ? "nothing" : token_at(s_, pos_)));
    }
    std::vector<std::uint64_t> ids;
    skip_ws();
    if (eat(']')) return fail("users: the array is empty; send at least one user id");
    while (true) {
      skip_ws();
      if (ids.size() == max_) {
        return too_many_ids(max_);
      }
      const std::size_t start = pos_;
      std::uint64_t id = 0;
      if (peek('"')) {
        // A decimal string: JavaScript's numbers lose ids above 2^53, so clients may quote them.
        const std::size_t end = s_.find('"', start + 1);
        if (end == std::string_view::npos) return fail("unterminated string in body");
        const std::string_view text = s_.substr(start + 1, end - start - 1);
        if (text.find('\\') != std::string_view::npos) {
          return fail(fmt::format("users[{}]: expected a user id, got the string {} (escapes "
                                  "are not allowed in an id)",
                                  ids.size(), token_at(s_, start)));
        }
        if (auto problem = string_id_problem(text, &id); !problem.empty()) {
          return fail(fmt::format("users[{}]: expected a user id (unsigned 64-bit integer), got {}",
                                  ids.size(), problem));
        }
        pos_ = end + 1;
      } else if (!fast_id(&id)) {
        pos_ = start;
        const std::string token = token_at(s_, start);
        if (auto problem = id_problem(token, &id); !problem.empty()) {
          return fail(fmt::format("users[{}]: expected a user id (unsigned 64-bit integer), got {}",
                                  ids.size(), problem));
        }
        pos_ = start + token.size();
      }
      ids.push_back(id);
      skip_ws();
      if (eat(',')) continue;
      if (eat(']')) break;
      return fail(fmt::format("users: expected ',' or ']' after element {} at byte {}",
                              ids.size() - 1, pos_));
    }
    skip_ws();
    if (eat(',')) return fail(fmt::format("only the field \"users\" is allowed; {}", kShape));
    if (!eat('}')) return fail(fmt::format("expected '}}' at byte {}", pos_));
    skip_ws();
    if (!at_end())
      return fail(fmt::format("unexpected data after the JSON object at byte {}", pos_));
    return ids;
  }

 private:
  // The common case without building a token: canonical digits followed by a delimiter.
  bool fast_id(std::uint64_t* id) {
    const std::size_t start = pos_;
    while (!at_end() && is_digit(s_[pos_])) ++pos_;
    const std::size_t n = pos_ - start;
    if (n == 0 || (n > 1 && s_[start] == '0')) return false;
    if (!at_end() && !is_ws(s_[pos_]) && s_[pos_] != ',' && s_[pos_] != ']') return false;
    auto [p, ec] = std::from_chars(s_.data() + start, s_.data() + pos_, *id);
    return ec == std::errc() && p == s_.data() + pos_;
  }

  static UserIdsResult fail(std::string message) { return UserIdsError{std::move(message)}; }
  bool at_end() const { return pos_ >= s_.size(); }
  bool peek(char c) const { return !at_end() && s_[pos_] == c; }
  bool eat(char c) {
    if (!peek(c)) return false;
    ++pos_;
    return true;
  }
  void skip_ws() {
    while (!at_end() && is_ws(s_[pos_])) ++pos_;
  }

  std::string_view s_;
  std::size_t max_;
  std::size_t pos_ = 0;
};

}  // namespace

std::optional<std::uint64_t> parse_user_id(std::string_view text, std::string* why) {
  std::uint64_t id = 0;
  std::string problem = id_problem(text, &id);
  if (problem.empty()) return id;
  if (why) *why = "expected a user id (unsigned 64-bit integer), got " + problem;
  return std::nullopt;
}

UserIdsResult parse_user_ids_body(std::string_view body, std::size_t max_batch) {
  return BodyParser(body, max_batch).parse();
}

UserIdsResult parse_user_ids_binary(std::string_view body, std::size_t max_batch) {
  constexpr std::string_view kBinaryShape = "8 bytes per id, little-endian";
  if (body.size() % 8 != 0) {
    return UserIdsError{fmt::format("binary body of {} bytes is not a whole number of ids ({}); "
                                    "{} byte(s) left over",
                                    body.size(), kBinaryShape, body.size() % 8)};
  }
  const std::size_t n = body.size() / 8;
  if (n == 0) {
    return UserIdsError{
        fmt::format("request body is empty; send at least one user id ({})", kBinaryShape)};
  }
  if (n > max_batch) return too_many_ids(max_batch);  // the JSON form's words
  std::vector<std::uint64_t> ids(n);
  std::memcpy(ids.data(), body.data(), body.size());
  if constexpr (std::endian::native == std::endian::big) {
    for (auto& id : ids) id = __builtin_bswap64(id);  // std::byteswap is C++23
  }
  return ids;
}

}  // namespace heartbeatd
