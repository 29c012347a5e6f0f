#include "membership/member.h"

#include <algorithm>

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
