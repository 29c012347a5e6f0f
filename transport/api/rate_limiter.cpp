#include "transport/api/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace heartbeatd::transport {

RateLimiter::RateLimiter(Options options) : options_(options) {}

void RateLimiter::refill(Bucket& b, Clock::time_point now) const {
  if (now <= b.updated) return;  // a caller with an older `now` takes none back
  const double elapsed = std::chrono::duration<double>(now - b.updated).count();
  b.tokens = std::min(options_.burst, b.tokens + elapsed * options_.per_second);
  b.updated = now;
}

bool RateLimiter::take(std::string_view principal, Clock::time_point now,
                       std::chrono::seconds* retry_after) {
  std::lock_guard lock(mu_);
  // The least recently used bucket, if it has refilled completely, carries no information:
  // drop it. One look per request keeps idle buckets from accumulating.
  if (!lru_.empty()) {
    auto it = buckets_.find(lru_.back());
    Bucket copy = it->second;
    refill(copy, now);
    if (copy.tokens >= options_.burst && lru_.back() != principal) {
      lru_.pop_back();
      buckets_.erase(it);
    }
  }
  auto it = buckets_.find(std::string(principal));
  if (it == buckets_.end()) {
    if (buckets_.size() >= options_.max_clients) {
      buckets_.erase(lru_.back());
      lru_.pop_back();
    }
    lru_.emplace_front(principal);
    it = buckets_.emplace(lru_.front(), Bucket{options_.burst, now, lru_.begin()}).first;
  } else {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    refill(it->second, now);
  }
  Bucket& b = it->second;
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return true;
  }
  const double wait = (1.0 - b.tokens) / options_.per_second;
  *retry_after =
      std::chrono::seconds(std::max<long long>(1, static_cast<long long>(std::ceil(wait))));
  return false;
}

std::size_t RateLimiter::tracked() const {
  std::lock_guard lock(mu_);
  return buckets_.size();
}

}  // namespace heartbeatd::transport
