#include "membership/member.h"

#include <algorithm>

namespace heartbeatd::membership {

bool valid_name(std::string_view name) {
  // Spelled out rather than std::isalnum, which depends on the locale.
  auto ok = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  };
  return !name.empty() && name.size() <= kMaxNameBytes && std::all_of(name.begin(), name.end(), ok);
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
