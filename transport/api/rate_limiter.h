// RateLimiter: api.rate_limit, a token bucket per principal (a token's name, or a client's
// address or uid). Each bucket holds up to `burst` requests and refills at `per_second`; a
// request finding it empty is refused with the time until the next one fits (429 +
// Retry-After, in whole seconds, at least 1).
//
// Memory is bounded: at most `max_clients` buckets. A bucket that has refilled completely is
// the same as no bucket and is dropped when seen idle; past the bound, the least recently
// used bucket goes (its client starts again with a full burst — the bound, not fairness,
// is what matters against a flood of addresses).
//
// The clock comes in as an argument, so tests drive it by hand.
//
// Thread safety: take() may run on every API thread at once (one mutex).
#pragma once

#include <chrono>
#include <cstddef>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace heartbeatd::transport {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    double per_second = 0;  // > 0
    double burst = 1;       // >= 1
    std::size_t max_clients = 10'000;
  };
  explicit RateLimiter(Options options);

  // True: the request may go (it used one from the bucket). False: `*retry_after` is when
  // the next request would be allowed, rounded up to whole seconds (at least 1).
  bool take(std::string_view principal, Clock::time_point now, std::chrono::seconds* retry_after);

  std::size_t tracked() const;
  const Options& options() const { return options_; }

 private:
  struct Bucket {
    double tokens;
    Clock::time_point updated;
    std::list<std::string>::iterator lru;  // position in lru_
  };
  void refill(Bucket& b, Clock::time_point now) const;

  const Options options_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;  // guarded by mu_
  std::list<std::string> lru_;                       // guarded by mu_; front: most recent
};

}  // namespace heartbeatd::transport
