#include "membership/member.h"

#include <algorithm>
#include <string>

namespace heartbeatd::membership {

namespace {

// Spelled out rather than std::isalnum, which depends on the locale.
bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

}  // namespace

bool valid_name(std::string_view name) {
  return !name.empty() && name.size() <= kMaxNameBytes &&
         std::all_of(name.begin(), name.end(), name_char);
}

bool valid_name_pattern(std::string_view pattern) {
  return !pattern.empty() && pattern.size() <= kMaxNamePatternBytes &&
         std::all_of(pattern.begin(), pattern.end(),
                     [](char c) { return name_char(c) || c == '*' || c == '?'; });
}

bool name_matches(std::string_view pattern, std::string_view name) {
  // Greedy, with one way back: the last '*' seen. On a mismatch that star takes one more
  // character and matching resumes after it. The star's position only moves forward, so this
  // is O(pattern x name) at worst, never exponential, whatever the pattern.
  std::size_t p = 0, n = 0;
  std::size_t star = std::string_view::npos, star_n = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p, ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_n = n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++star_n;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool valid_tag_key(std::string_view key) {
  return !key.empty() && key.size() <= kMaxTagKeyBytes &&
         std::all_of(key.begin(), key.end(), name_char);
}

bool valid_tag_value(std::string_view value) {
  return value.size() <= kMaxTagValueBytes &&
         std::all_of(value.begin(), value.end(), [](char c) { return c >= ' ' && c <= '~'; });
}

std::size_t tags_wire_size(const Tags& tags) {
  if (tags.empty()) return 0;
  std::size_t n = 1;
  for (const auto& [k, v] : tags) n += 2 + k.size() + v.size();
  return n;
}

std::optional<std::string> tags_problem(const Tags& tags) {
  for (const auto& [k, v] : tags) {
    if (!valid_tag_key(k)) {
      return "tag key \"" + k + "\": a key is 1 to " + std::to_string(kMaxTagKeyBytes) +
             " letters, digits, '.', '-' or '_'";
    }
    if (!valid_tag_value(v)) {
      return "tag " + k + ": a value is at most " + std::to_string(kMaxTagValueBytes) +
             " printable ASCII characters (space to '~')";
    }
  }
  if (tags.size() > kMaxTags) {
    return std::to_string(tags.size()) + " tags: at most " + std::to_string(kMaxTags) +
           " are allowed";
  }
  if (const auto size = tags_wire_size(tags); size > kMaxTagsBytes) {
    return "the tags take " + std::to_string(size) +
           " bytes encoded (their keys and values, 2 bytes per tag and 1): at most " +
           std::to_string(kMaxTagsBytes) + " are allowed";
  }
  return std::nullopt;
}

std::string_view to_string(MemberState s) {
  switch (s) {
    case MemberState::alive:
      return "alive";
    case MemberState::suspect:
      return "suspect";
    case MemberState::dead:
      return "dead";
    case MemberState::left:
      return "left";
  }
  return "unknown";
}

}  // namespace heartbeatd::membership
