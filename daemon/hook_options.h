// HookOptions: what HookRunner (daemon/hooks.h) runs and its bounds. A header of its own so
// that Config can hold it (the hooks.* keys read into it) without HookRunner's includes: each
// default and its reason is written here once.
//
// Thread safety: a plain value.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace heartbeatd {

struct HookOptions {
  std::string on_member_change;  // empty: none
  std::string on_user_change;    // empty: none
  std::string node;              // HEARTBEATD_NODE
  unsigned max_concurrent = 4;   // workers: a few slow hooks never hold up the others
  std::chrono::milliseconds timeout{30'000};  // then killed: a hung hook frees its worker
  std::size_t max_queue = 1000;  // events waiting in all; beyond, dropped and counted
};

}  // namespace heartbeatd
