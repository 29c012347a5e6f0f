#include "transport/presence/redis_presence.h"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "base/log.h"
#include "membership/hash.h"
#include "membership/presence_rule.h"
#include "transport/presence/dedup_cache.h"
#include "transport/redis/subscriber.h"

namespace heartbeatd::transport::redis {

namespace asio = boost::asio;
using boost::system::error_code;
using std::chrono::milliseconds;

namespace {

// The scripts below run atomically on one shard, on keys that share its hash tag: KEYS[1] its
// sorted set of last-seen times, KEYS[2] its swept edge (the last-seen time up to which the
// expiry sweep has published users as offline), then the sweeper lease and the watched flag.
// The set itself is the deadline index: with one presence.timeout for all, a user's deadline
// is its last-seen time + timeout. A change is published (transport/presence/redis_changes.h) by
// the one script that made it, so never twice.

// A heartbeat batch in a watched shard: ARGV = now, timeout, channel, ids... (distinct). What
// ZADD GT does, and the transitions: unknown, logged out, or already published as offline ->
// online; expired but not yet swept -> offline then online (the sweep will not see it now).
constexpr std::string_view kHeartbeatScript = R"lua(
local now, t = ARGV[1], tonumber(ARGV[1])
local old = t - tonumber(ARGV[2])
local edge = redis.call('GET', KEYS[2])
edge = edge and tonumber(edge)
local ids = {}
for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
local prev = redis.call('ZMSCORE', KEYS[1], unpack(ids))
local seen, out = {}, {}
for i, id in ipairs(ids) do
  seen[2 * i - 1] = now; seen[2 * i] = id
  local p = prev[i] and tonumber(prev[i])
  if edge and t <= edge then
    -- this node's clock is a timeout behind the sweeper's: it would be swept at once
  elseif not p or p < 0 or (edge and p <= edge) then
    out[#out + 1] = '+' .. id .. ':' .. now
  elseif p <= old then
    out[#out + 1] = '-' .. id .. ':' .. prev[i]
    out[#out + 1] = '+' .. id .. ':' .. now
  end
end
redis.call('ZADD', KEYS[1], 'GT', unpack(seen))
if #out > 0 then redis.call('PUBLISH', ARGV[3], table.concat(out, ' ')) end
return #out
)lua";

// A logout: KEYS[3] = watched flag; ARGV = id, channel. Negates a positive score (the
// last-seen time is kept; an unknown or logged-out user is left alone, as the embedded table
// does). In a watched shard, "offline" is published unless the sweep published it already.
constexpr std::string_view kLogoutScript = R"lua(
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
local p = s and tonumber(s)
if p and p > 0 then
  redis.call('ZADD', KEYS[1], -p, ARGV[1])
  if redis.call('EXISTS', KEYS[3]) == 1 then
    local edge = redis.call('GET', KEYS[2])
    if not edge or p > tonumber(edge) then
      redis.call('PUBLISH', ARGV[2], '-' .. ARGV[1] .. ':' .. s)
    end
  end
end
return 0
)lua";

// The expiry sweep: KEYS[3] = lease, KEYS[4] = watched flag; ARGV = now, timeout, this node's
// token, lease ms, limit, channel, how long the edge outlives the last sweep (ms). -2: the
// shard is not watched (nothing to do, nothing kept); -1: another node holds the lease;
// otherwise the lease is this node's, renewed, and the number of users published as offline:
// those whose last-seen time the edge passed, in order. The first sweep of a watched shard
// only sets the edge. A run of equal times at the limit is taken whole, so that the edge never
// splits it.
constexpr std::string_view kExpireScript = R"lua(
if redis.call('EXISTS', KEYS[4]) == 0 then return -2 end
local holder = redis.call('GET', KEYS[3])
if holder and holder ~= ARGV[3] then return -1 end
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4])
local e = tonumber(ARGV[1]) - tonumber(ARGV[2])
local edge = redis.call('GET', KEYS[2])
if not edge then
  redis.call('SET', KEYS[2], string.format('%.0f', e), 'PX', ARGV[7])
  return 0
end
edge = tonumber(edge)
if e <= edge then
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
  return 0
end
local limit = tonumber(ARGV[5])
local r = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. string.format('%.0f', edge),
                     string.format('%.0f', e), 'WITHSCORES', 'LIMIT', 0, limit)
local out, new_edge = {}, e
if #r / 2 >= limit then
  local last = r[#r]
  new_edge = tonumber(last)
  for i = 1, #r, 2 do
    if tonumber(r[i + 1]) < new_edge then out[#out + 1] = '-' .. r[i] .. ':' .. r[i + 1] end
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], last, last)) do
    out[#out + 1] = '-' .. id .. ':' .. last
  end
else
  for i = 1, #r, 2 do out[#out + 1] = '-' .. r[i] .. ':' .. r[i + 1] end
end
redis.call('SET', KEYS[2], string.format('%.0f', new_edge), 'PX', ARGV[7])
if #out > 0 then redis.call('PUBLISH', ARGV[6], table.concat(out, ' ')) end
return #out
)lua";

constexpr int kMaxRedirects = 5;
// Ids per heartbeat script call: bounds Lua's unpack() and one call's time in Redis.
constexpr std::size_t kMaxIdsPerScript = 1000;
// Users one expiry sweep publishes per shard (beyond a run of equal times); more wait for the
// next one.
constexpr int kExpireLimit = 1000;
// A watching node sets its shards' watched flags this often, and they live this long: a
// shard is unwatched within kWatchFlagLife of its last watcher going.
constexpr milliseconds kWatchRefresh{1000};
constexpr milliseconds kWatchFlagLife{3000};
// A writer whose knowledge of a shard is older than this (no expiry sweep answered for it)
// treats it as watched. Not shorter: under a load that exhausts the pool some sweeps fail,
// and a node that fell back to the scripts everywhere would load Redis more (measured with
// 1 s: batch heartbeats 38% slower). Watching a user starts with its state this long after.
constexpr milliseconds kWatchedStale{3000};
// A swept edge outlives the last sweep by this much (then the next sweep starts afresh).
constexpr milliseconds kEdgeLife{10'000};

std::string sha1_hex(std::string_view text) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), md, &len, EVP_sha1(), nullptr);
  std::string out;
  for (unsigned int i = 0; i < len; ++i) out += fmt::format("{:02x}", md[i]);
  return out;
}

// A script run by its SHA1 (EVALSHA); a server that does not know it yet (NOSCRIPT: just
// started, or failed over) gets the body once with EVAL, which also caches it.
struct Script {
  std::string_view body;
  std::string sha;
  explicit Script(std::string_view b) : body(b), sha(sha1_hex(b)) {}
};
const Script& heartbeat_script() {
  static const Script s(kHeartbeatScript);
  return s;
}
const Script& logout_script() {
  static const Script s(kLogoutScript);
  return s;
}
const Script& expire_script() {
  static const Script s(kExpireScript);
  return s;
}

std::optional<double> score_of(const Value& v) {
  if (v.type != Value::Type::string) return std::nullopt;
  char* end = nullptr;
  const double d = std::strtod(v.str.c_str(), &end);
  if (end == v.str.c_str() || !std::isfinite(d)) return std::nullopt;
  return d;
}

// One command of a batch and its fate.
struct Op {
  std::uint16_t slot = 0;
  Command command;
  Value reply;
  bool answered = false;
  std::optional<NodeAddress> ask;  // ASK: the next attempt goes there, after ASKING
  std::string_view script;         // EVALSHA: the body, for EVAL after a NOSCRIPT
};

struct Batch {
  std::vector<Op> ops;
  std::function<void(Failure, std::vector<Op>&)> done;
  std::chrono::steady_clock::time_point deadline;  // no new round after it
  std::mutex mu;
  std::size_t outstanding = 0;  // node groups in flight this round
  int round = 0;
  bool retried_broken = false;  // a connection that broke before answering was retried
  Failure failure;
};


}  // namespace

struct Presence::State : std::enable_shared_from_this<Presence::State> {
  State(asio::io_context& i, PresenceOptions o, Clock c)
      : io(i),
        options(std::move(o)),
        wall(std::move(c)),
        strand(asio::make_strand(i)),
        sweep_timer(strand),
        refresh_timer(strand),
        expiry_timer(strand),
        watch_timer(strand),
        timeout_ms(options.timeout.count()),
        shard_watched(options.shards),
        shard_known_ms(options.shards),
        shard_watchers(options.shards, 0) {
    for (auto& k : shard_known_ms) k.store(-1);
    for (unsigned s = 0; s < options.shards; ++s) {
      keys.push_back(fmt::format("{}:{{{}}}", options.key_prefix, s));
      slots.push_back(key_slot(keys.back()));
      swept_keys.push_back(keys.back() + ":swept");
      lease_keys.push_back(keys.back() + ":sweeper");
      watched_keys.push_back(keys.back() + ":watched");
      channels.push_back(keys.back() + ":changes");
      shard_of_channel.emplace(channels.back(), s);
    }
    std::random_device rd;
    token = fmt::format("{}/{:08x}{:08x}", options.node_name, rd(), rd());
    if (!options.cluster && !options.nodes.empty()) {
      map = SlotMap::single(options.nodes.front());
      topology_problem.clear();
    }
  }

  asio::io_context& io;
  const PresenceOptions options;
  const Clock wall;
  asio::strand<asio::io_context::executor_type> strand;
  asio::steady_timer sweep_timer;
  asio::steady_timer refresh_timer;
  asio::steady_timer expiry_timer;
  asio::steady_timer watch_timer;
  std::atomic<std::int64_t> timeout_ms;
  std::vector<std::string> keys;          // by shard: last-seen times
  std::vector<std::uint16_t> slots;       // by shard
  std::vector<std::string> swept_keys;    // by shard: up to where the sweep published offline
  std::vector<std::string> lease_keys;    // by shard: who runs its expiry sweep
  std::vector<std::string> watched_keys;  // by shard: some node watches a user of it
  std::vector<std::string> channels;      // by shard: its users' changes
  std::unordered_map<std::string, unsigned> shard_of_channel;
  std::string token;  // this node's lease value
  DedupCache dedup;
  std::function<void(const std::vector<UserChange>&)> listener;  // set before start()
  std::atomic<bool> expiring{false};                             // an expiry sweep is in flight
  // What the last expiry sweep said, by shard: whether it is watched (its heartbeats publish
  // transitions), and when that was asked (steady ms; -1: never answered).
  std::vector<std::atomic<bool>> shard_watched;
  std::vector<std::atomic<std::int64_t>> shard_known_ms;
  bool expiry_failing = false;  // on the strand: logged once per outage

  mutable std::mutex watch_mu;                          // guards what follows
  std::unordered_map<std::uint64_t, unsigned> watched;  // id -> watch() count
  std::vector<unsigned> shard_watchers;                 // by shard: distinct watched ids
  std::shared_ptr<Subscriber> subscriber;               // from start(), with a listener

  mutable std::mutex mu;  // guards what follows
  std::optional<SlotMap> map;
  std::map<std::string, std::pair<NodeAddress, std::shared_ptr<Pool>>> pools;  // by address
  bool refreshing = false;
  bool stopped = false;
  std::string topology_problem = "the Redis Cluster slot map has not been read yet";
  std::chrono::steady_clock::time_point last_refresh{};

  std::atomic<std::uint64_t> commands{0}, moved{0}, asked{0}, refreshes{0}, failures{0},
      dedup_skipped{0}, noscript{0}, changes_received{0}, messages_rejected{0}, users_expired{0},
      leases_held{0}, resyncs{0};

  // The time a status or a count is judged at, in Unix ms: rounded down.
  std::int64_t now_ms() const {
    const std::int64_t us = wall();
    return us >= 0 ? us / 1000 : -((-us + 999) / 1000);
  }
  // A heartbeat's time: rounded up, so that judged - heartbeat >= timeout in whole
  // milliseconds means at least the timeout has really passed.
  std::int64_t heartbeat_ms() const {
    const std::int64_t us = wall();
    return us >= 0 ? (us + 999) / 1000 : -(-us / 1000);
  }

  static std::int64_t steady_ms() {
    return std::chrono::duration_cast<milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  // Whether a heartbeat in `shard` must tell its transitions: someone watches the shard, or
  // this node does not know (no expiry sweep answered for kWatchedStale).
  bool publishes(unsigned shard) const {
    const std::int64_t known = shard_known_ms[shard].load(std::memory_order_relaxed);
    return known < 0 || steady_ms() - known > kWatchedStale.count() ||
           shard_watched[shard].load(std::memory_order_relaxed);
  }

  unsigned shard_of(std::uint64_t id) const {
    return static_cast<unsigned>(membership::mix64(id) % options.shards);
  }

  // With mu held.
  std::shared_ptr<Pool> pool_locked(const NodeAddress& node) {
    auto& entry = pools[node.to_string()];
    if (!entry.second) {
      PoolOptions po = options.pool;
      po.host = node.host;
      po.port = node.port;
      if (!options.password.empty()) {
        po.on_connect.push_back(options.username.empty()
                                    ? Command{"AUTH", options.password}
                                    : Command{"AUTH", options.username, options.password});
      }
      entry = {node, std::make_shared<Pool>(io, std::move(po))};
      entry.second->start();
    }
    return entry.second;
  }

  void start() {
    {
      std::lock_guard lock(mu);
      if (map) {
        for (const auto& m : map->masters()) pool_locked(m);
      }
    }
    if (options.cluster) refresh();
    start_subscriber();
    asio::dispatch(strand, [self = shared_from_this()] {
      self->repeat(
          self->sweep_timer, [s = self.get()] { return s->options.sweep_interval; }, &State::sweep);
      self->repeat(
          self->expiry_timer, [s = self.get()] { return s->options.expiry_interval; },
          &State::expire);
      self->flag_watched({});
      self->repeat(
          self->watch_timer, [] { return kWatchRefresh; }, &State::refresh_watched);
      if (self->options.cluster) {
        // Every second while something is wrong, every ten while all is well: a failover is
        // seen within a second of the cluster completing it even if no request hits the
        // moved slots.
        self->repeat(
            self->refresh_timer,
            [s = self.get()] { return s->health().ok ? milliseconds(10'000) : milliseconds(1000); },
            &State::refresh);
      }
    });
  }

  void stop() {
    std::map<std::string, std::pair<NodeAddress, std::shared_ptr<Pool>>> gone;
    {
      std::lock_guard lock(mu);
      stopped = true;
      gone.swap(pools);
    }
    std::shared_ptr<Subscriber> sub;
    {
      std::lock_guard lock(watch_mu);
      sub = std::move(subscriber);
    }
    if (sub) sub->stop();
    asio::post(strand, [self = shared_from_this()] {
      self->sweep_timer.cancel();
      self->refresh_timer.cancel();
      self->expiry_timer.cancel();
      self->watch_timer.cancel();
    });
    for (auto& [_, p] : gone) p.second->stop();
  }

  // ---- topology ------------------------------------------------------------------------------

  // Runs `work` after each `interval()` on `timer` (a strand timer) until stop().
  void repeat(asio::steady_timer& timer, std::function<milliseconds()> interval,
              void (State::*work)()) {
    timer.expires_after(interval());
    timer.async_wait([self = shared_from_this(), &timer, interval = std::move(interval),
                      work](error_code ec) mutable {
      if (ec || self->is_stopped()) return;
      ((*self).*work)();
      self->repeat(timer, std::move(interval), work);
    });
  }

  // Reads CLUSTER SLOTS from the known masters, then the configured nodes, the first that
  // answers wins. At most one read at a time, and at most one per 100 ms.
  void refresh() {
    if (!options.cluster) return;
    std::vector<NodeAddress> candidates;
    {
      std::lock_guard lock(mu);
      const auto now = std::chrono::steady_clock::now();
      if (stopped || refreshing || now - last_refresh < milliseconds(100)) return;
      refreshing = true;
      last_refresh = now;
      if (map) candidates = map->masters();
      for (const auto& n : options.nodes) {
        if (std::find(candidates.begin(), candidates.end(), n) == candidates.end()) {
          candidates.push_back(n);
        }
      }
    }
    refreshes.fetch_add(1, std::memory_order_relaxed);
    try_refresh(std::move(candidates), 0, {});
  }

  void try_refresh(std::vector<NodeAddress> candidates, std::size_t i, std::string errors) {
    if (i == candidates.size()) {
      std::lock_guard lock(mu);
      refreshing = false;
      topology_problem = "no Redis Cluster node answered CLUSTER SLOTS (" + errors + ")";
      return;
    }
    std::shared_ptr<Pool> pool;
    {
      std::lock_guard lock(mu);
      if (stopped) {
        refreshing = false;
        return;
      }
      pool = pool_locked(candidates[i]);
    }
    auto self = shared_from_this();
    auto next = [self, candidates, i, errors](const std::string& why) {
      self->try_refresh(
          candidates, i + 1,
          errors + (errors.empty() ? "" : "; ") + candidates[i].to_string() + ": " + why);
    };
    pool->acquire([self, next, pool](error_code ec, Lease lease) {
      if (ec) return next(ec.message());
      auto held = std::make_shared<Lease>(std::move(lease));
      held->exec({{"CLUSTER", "SLOTS"}}, self->options.command_timeout,
                 [self, next, held](error_code e, std::vector<Value> replies) {
                   if (e) return next(e.message());
                   if (replies.empty() || replies[0].is_error()) {
                     return next(replies.empty() ? "no reply" : replies[0].str);
                   }
                   std::string why;
                   auto fresh = SlotMap::from_cluster_slots(replies[0], &why);
                   if (!fresh) return next(why);
                   self->install(std::move(*fresh));
                 });
    });
  }

  void install(SlotMap fresh) {
    std::vector<std::shared_ptr<Pool>> retired;
    {
      std::lock_guard lock(mu);
      refreshing = false;
      if (stopped) return;
      topology_problem.clear();
      std::size_t unassigned = 0;
      for (std::uint16_t s = 0; s < kSlots; ++s) unassigned += fresh.node_for(s) ? 0 : 1;
      if (unassigned > 0) {
        topology_problem = fmt::format("{} of the cluster's slots are not served", unassigned);
      }
      // Pools of nodes that are neither masters nor configured seeds go: a dead master's
      // pool would otherwise keep trying to reconnect for ever.
      for (auto it = pools.begin(); it != pools.end();) {
        const auto& node = it->second.first;
        const auto& masters = fresh.masters();
        const bool keep =
            std::find(masters.begin(), masters.end(), node) != masters.end() ||
            std::find(options.nodes.begin(), options.nodes.end(), node) != options.nodes.end();
        if (keep) {
          ++it;
        } else {
          retired.push_back(it->second.second);
          it = pools.erase(it);
        }
      }
      for (const auto& m : fresh.masters()) pool_locked(m);
      map = std::move(fresh);
    }
    for (auto& p : retired) p->stop();
  }

  // ---- commands ------------------------------------------------------------------------------

  void run(std::shared_ptr<Batch> b) {
    struct Group {
      NodeAddress node;
      std::shared_ptr<Pool> pool;
      std::vector<std::size_t> ops;
    };
    std::map<std::string, Group> groups;
    Failure unrouted;
    {
      std::lock_guard lock(mu);
      if (stopped) {
        unrouted = {{}, "heartbeatd is stopping"};
      } else if (!map) {
        unrouted = {{}, "Redis is not available: " + topology_problem};
      } else {
        for (std::size_t i = 0; i < b->ops.size(); ++i) {
          Op& op = b->ops[i];
          if (op.answered) continue;
          const NodeAddress* node = op.ask ? &*op.ask : map->node_for(op.slot);
          if (!node) {
            unrouted = {{}, fmt::format("Redis Cluster slot {} is served by no master", op.slot)};
            break;
          }
          auto& g = groups[node->to_string()];
          if (!g.pool) {
            g.node = *node;
            g.pool = pool_locked(*node);
          }
          g.ops.push_back(i);
        }
      }
    }
    if (unrouted) {
      failures.fetch_add(1, std::memory_order_relaxed);
      return b->done(std::move(unrouted), b->ops);
    }
    if (groups.empty()) return b->done({}, b->ops);
    {
      std::lock_guard lock(b->mu);
      b->outstanding = groups.size();
    }
    for (auto& [_, g] : groups) send(b, std::move(g.node), std::move(g.pool), std::move(g.ops));
  }

  void send(std::shared_ptr<Batch> b, NodeAddress node, std::shared_ptr<Pool> pool,
            std::vector<std::size_t> idx) {
    auto self = shared_from_this();
    pool->acquire([self, b, node, idx](error_code ec, Lease lease) mutable {
      if (ec == make_error(Errc::stopped) && !self->is_stopped()) {
        // The slot map was re-read and this node's pool retired meanwhile: the next round
        // routes these commands by the new map.
        return self->group_done(b, {});
      }
      if (ec) {
        Failure f{ec, "", false};
        if (ec == make_error(Errc::pool_timeout)) {
          f.pool_exhausted = true;
          f.message = fmt::format(
              "no Redis connection to {} became free in time "
              "(presence.redis.pool.max connections all busy for "
              "presence.redis.pool.wait)",
              node.to_string());
        } else if (ec == make_error(Errc::pool_full)) {
          f.pool_exhausted = true;
          f.message = fmt::format(
              "too many requests are waiting for a Redis connection to {} "
              "(presence.redis.pool.max_waiters)",
              node.to_string());
        } else {
          f.message = fmt::format("Redis at {} is unreachable: {}", node.to_string(), ec.message());
          self->refresh();
        }
        return self->group_done(b, std::move(f));
      }
      std::vector<Command> cmds;
      std::vector<int> reply_of(idx.size());  // index of each op's reply (after an ASKING)
      for (std::size_t k = 0; k < idx.size(); ++k) {
        Op& op = b->ops[idx[k]];
        if (op.ask) cmds.push_back({"ASKING"});
        reply_of[k] = static_cast<int>(cmds.size());
        cmds.push_back(op.command);
      }
      self->commands.fetch_add(cmds.size(), std::memory_order_relaxed);
      auto held = std::make_shared<Lease>(std::move(lease));
      held->exec(
          std::move(cmds), self->options.command_timeout,
          [self, b, node, idx, reply_of, held](error_code e, std::vector<Value> replies) mutable {
            held.reset();  // back to the pool before anything else
            if (e && e != boost::asio::error::timed_out && claim_retry(*b)) {
              // A connection that broke before answering (Redis restarted, an idle
              // socket found dead): once per request, on a fresh connection. Every
              // command here is idempotent.
              self->refresh();
              return self->group_done(b, {});
            }
            if (e) {
              self->refresh();
              return self->group_done(b, {e, fmt::format("Redis at {} did not answer: {}",
                                                         node.to_string(), e.message())});
            }
            Failure f;
            bool topology_changed = false;
            for (std::size_t k = 0; k < idx.size(); ++k) {
              Op& op = b->ops[idx[k]];
              Value& r = replies[static_cast<std::size_t>(reply_of[k])];
              op.ask.reset();
              if (r.type == Value::Type::nil && op.command[0] != "ZMSCORE") {
                // No command sent here answers nil (a RESP3 reply would be one).
                if (!f) {
                  f = {{},
                       fmt::format("Redis at {} answered {} with nothing", node.to_string(),
                                   op.command[0])};
                }
                continue;
              }
              if (r.is_error()) {
                if (!op.script.empty() && op.command[0] == "EVALSHA" &&
                    r.str.rfind("NOSCRIPT", 0) == 0) {
                  self->noscript.fetch_add(1, std::memory_order_relaxed);
                  op.command[0] = "EVAL";
                  op.command[1] = std::string(op.script);
                  continue;  // answered in the next round
                }
                if (auto redirect = parse_redirect(r.str)) {
                  if (redirect->ask) {
                    self->asked.fetch_add(1, std::memory_order_relaxed);
                    op.ask = redirect->node;
                  } else {
                    self->moved.fetch_add(1, std::memory_order_relaxed);
                    std::lock_guard lock(self->mu);
                    if (self->map) self->map->move(redirect->slot, redirect->node);
                    topology_changed = true;
                  }
                  continue;  // answered in the next round
                }
                if (!f) {
                  f = {{}, fmt::format("Redis at {} answered: {}", node.to_string(), r.str)};
                }
                if (r.str.rfind("CLUSTERDOWN", 0) == 0) topology_changed = true;
                continue;
              }
              op.reply = std::move(r);
              op.answered = true;
            }
            if (topology_changed) self->refresh();
            self->group_done(b, std::move(f));
          });
    });
  }

  void group_done(const std::shared_ptr<Batch>& b, Failure f) {
    {
      std::lock_guard lock(b->mu);
      if (f && !b->failure) b->failure = std::move(f);
      if (--b->outstanding > 0) return;
    }
    // Last group of the round: this thread owns the batch now.
    if (b->failure) {
      failures.fetch_add(1, std::memory_order_relaxed);
      return b->done(std::move(b->failure), b->ops);
    }
    const bool pending =
        std::any_of(b->ops.begin(), b->ops.end(), [](const Op& op) { return !op.answered; });
    if (!pending) return b->done({}, b->ops);
    if (std::chrono::steady_clock::now() >= b->deadline) {
      failures.fetch_add(1, std::memory_order_relaxed);
      return b->done({{},
                      "Redis did not answer in time (presence.redis.timeout; redirections "
                      "or a reconnect took the rest)"},
                     b->ops);
    }
    if (++b->round > kMaxRedirects) {
      failures.fetch_add(1, std::memory_order_relaxed);
      return b->done({{},
                      "Redis Cluster kept redirecting the request (slots are moving); "
                      "retry"},
                     b->ops);
    }
    run(b);
  }

  void submit(std::vector<Op> ops, std::function<void(Failure, std::vector<Op>&)> done) {
    auto b = std::make_shared<Batch>();
    b->ops = std::move(ops);
    b->done = std::move(done);
    b->deadline = std::chrono::steady_clock::now() + options.request_deadline;
    run(std::move(b));
  }

  bool is_stopped() const {
    std::lock_guard lock(mu);
    return stopped;
  }

  static bool claim_retry(Batch& b) {
    std::lock_guard lock(b.mu);
    return !std::exchange(b.retried_broken, true);
  }

  Op op_for_shard(unsigned shard, Command cmd) const {
    Op op;
    op.slot = slots[shard];
    op.command = std::move(cmd);
    return op;
  }

  // EVALSHA of `script` with this shard's keys: `extra` after its set and swept edge.
  Op script_op(unsigned shard, const Script& script, std::vector<std::string> extra,
               Command args) const {
    Command cmd{"EVALSHA", script.sha, std::to_string(2 + extra.size()), keys[shard],
                swept_keys[shard]};
    for (auto& k : extra) cmd.push_back(std::move(k));
    cmd.reserve(cmd.size() + args.size());
    for (auto& a : args) cmd.push_back(std::move(a));
    Op op = op_for_shard(shard, std::move(cmd));
    op.script = script.body;
    return op;
  }

  // ---- user changes --------------------------------------------------------------------------

  // Every expiry_interval, on the strand: in each watched shard, the users whose deadline
  // passed published as offline, where this node holds (or takes) the shard's lease; in the
  // others only a single-key EXISTS of the watched flag, which needs no script and goes
  // through a slot migration (a multi-key script may be answered TRYAGAIN then). The answers
  // tell this node which shards' heartbeats publish. One in flight at a time.
  void expire() {
    if (expiring.exchange(true)) return;
    const std::string now = std::to_string(now_ms());
    const std::string timeout = std::to_string(timeout_ms.load(std::memory_order_relaxed));
    const std::string lease = std::to_string(options.sweeper_lease.count());
    const std::string limit = std::to_string(kExpireLimit);
    const std::string edge_life = std::to_string(kEdgeLife.count());
    std::vector<Op> ops;
    ops.reserve(options.shards);
    for (unsigned s = 0; s < options.shards; ++s) {
      if (!shard_watched[s].load(std::memory_order_relaxed)) {
        ops.push_back(op_for_shard(s, {"EXISTS", watched_keys[s]}));
        continue;
      }
      ops.push_back(script_op(s, expire_script(), {lease_keys[s], watched_keys[s]},
                              {now, timeout, token, lease, limit, channels[s], edge_life}));
    }
    const std::int64_t asked = steady_ms();
    submit(std::move(ops), [self = shared_from_this(), asked](Failure f, std::vector<Op>& ops) {
      self->expiring.store(false);
      asio::post(self->strand, [self, failed = bool(f), message = f.message] {
        if (failed && !self->expiry_failing) {
          log::warning("expiring online users on Redis failed (retried every {} ms): {}",
                       self->options.expiry_interval.count(), message);
        } else if (!failed && self->expiry_failing) {
          log::info("expiring online users on Redis works again");
        }
        self->expiry_failing = failed;
      });
      // Shard by shard: one that failed (its master down, its slot moving) does not make this
      // node forget the others.
      std::uint64_t held = 0, expired = 0;
      for (std::size_t s = 0; s < ops.size(); ++s) {
        const auto& op = ops[s];
        if (!op.answered || op.reply.type != Value::Type::integer) continue;
        const bool script = op.command[0] != "EXISTS";
        const bool watched = script ? op.reply.integer != -2 : op.reply.integer == 1;
        self->shard_watched[s].store(watched, std::memory_order_relaxed);
        self->shard_known_ms[s].store(asked, std::memory_order_relaxed);
        if (script && op.reply.integer >= 0) {
          ++held;
          expired += static_cast<std::uint64_t>(op.reply.integer);
        }
      }
      if (f) return;
      self->leases_held.store(held, std::memory_order_relaxed);
      self->users_expired.fetch_add(expired, std::memory_order_relaxed);
    });
  }

  // Every kWatchRefresh: the watched flags of the shards this node watches users of.
  void refresh_watched() { flag_watched({}); }

  // Sets the watched flag of `shards` (empty: of every shard with a watched user), so that
  // every writer's heartbeats there publish their transitions from its next expiry sweep on.
  void flag_watched(std::vector<unsigned> shards, std::function<void()> then = {}) {
    if (shards.empty()) {
      std::lock_guard lock(watch_mu);
      for (unsigned s = 0; s < options.shards; ++s) {
        if (shard_watchers[s] > 0) shards.push_back(s);
      }
    }
    if (shards.empty()) {
      if (then) then();
      return;
    }
    const std::string life = std::to_string(kWatchFlagLife.count());
    std::vector<Op> ops;
    for (const auto s : shards)
      ops.push_back(op_for_shard(s, {"SET", watched_keys[s], "1", "PX", life}));
    submit(std::move(ops), [then = std::move(then)](Failure f, std::vector<Op>&) {
      if (f) log::debug("setting watched flags on Redis failed (retried): {}", f.message);
      if (then) then();
    });
  }

  // Users newly watched: their shards flagged at once. kWatchedStale after the flags are set,
  // every writer knows them (its last sweep came after) or treats every shard as watched (its
  // knowledge is stale): then the users' state goes to the listener, so that nothing that
  // happened before the writers published is missing.
  void started_watching(std::vector<unsigned> shards, std::vector<std::uint64_t> ids) {
    if (ids.empty()) return;
    std::weak_ptr<State> weak = shared_from_this();
    auto read_state = [weak, ids = std::move(ids)]() mutable {
      auto self = weak.lock();
      if (!self || self->is_stopped()) return;
      auto timer =
          std::make_shared<asio::steady_timer>(self->strand, kWatchedStale + milliseconds(100));
      timer->async_wait([self, timer, ids = std::move(ids)](error_code ec) mutable {
        if (ec || self->is_stopped()) return;
        for (std::size_t at = 0; at < ids.size(); at += kMaxIdsPerScript) {
          const auto end = std::min(ids.size(), at + kMaxIdsPerScript);
          self->resync_chunk(
              std::vector<std::uint64_t>(ids.begin() + static_cast<std::ptrdiff_t>(at),
                                         ids.begin() + static_cast<std::ptrdiff_t>(end)),
              0);
        }
      });
    };
    if (shards.empty()) return read_state();
    flag_watched(std::move(shards), std::move(read_state));
  }

  // Nodes the subscriber may connect to: any will do (PUBLISH reaches every cluster node).
  std::vector<NodeAddress> subscriber_candidates() const {
    std::lock_guard lock(mu);
    std::vector<NodeAddress> out;
    if (map) out = map->masters();
    for (const auto& n : options.nodes) {
      if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
    }
    return out;
  }

  void start_subscriber() {
    if (!listener) return;
    SubscriberOptions so;
    so.connect_timeout = options.pool.connect_timeout;
    so.ping_interval = options.subscriber_ping_interval;
    if (!options.password.empty()) {
      so.on_connect.push_back(options.username.empty()
                                  ? Command{"AUTH", options.password}
                                  : Command{"AUTH", options.username, options.password});
    }
    std::weak_ptr<State> weak = shared_from_this();
    auto sub = std::make_shared<Subscriber>(
        io, std::move(so),
        [weak] {
          auto self = weak.lock();
          return self ? self->subscriber_candidates() : std::vector<NodeAddress>{};
        },
        [weak](const std::string& channel, const std::string& payload) {
          if (auto self = weak.lock()) self->received(channel, payload);
        },
        [weak] {
          if (auto self = weak.lock()) self->resync();
        });
    std::lock_guard lock(watch_mu);
    if (is_stopped()) return;
    subscriber = sub;
    for (unsigned s = 0; s < options.shards; ++s) {
      if (shard_watchers[s] > 0) subscriber->subscribe(channels[s]);
    }
  }

  // On the subscriber's strand.
  void received(const std::string& channel, const std::string& payload) {
    const auto it = shard_of_channel.find(channel);
    if (it == shard_of_channel.end()) return;  // not ours (never subscribed to)
    auto changes = parse_user_changes(payload);
    const bool ours =
        changes && std::all_of(changes->begin(), changes->end(),
                               [&](const UserChange& c) { return shard_of(c.user) == it->second; });
    if (!ours) {
      // Someone with access to Redis published there: never ours to act on.
      if (messages_rejected.fetch_add(1, std::memory_order_relaxed) % 1000 == 0) {
        log::warning(
            "ignored a malformed message on Redis channel {} ({} bytes; counted in "
            "heartbeatd_redis_user_change_messages_rejected_total)",
            channel, payload.size());
      }
      return;
    }
    changes_received.fetch_add(changes->size(), std::memory_order_relaxed);
    deliver(*changes);
  }

  std::mutex listener_mu;  // the listener is never called concurrently
  void deliver(const std::vector<UserChange>& changes) {
    if (changes.empty()) return;
    std::lock_guard lock(listener_mu);
    if (listener) listener(changes);
  }

  // After the subscription was restored: what was published meanwhile is lost, so the current
  // state of every watched user is read and handed to the listener.
  void resync() {
    std::vector<std::uint64_t> ids;
    {
      std::lock_guard lock(watch_mu);
      ids.reserve(watched.size());
      for (const auto& [id, _] : watched) ids.push_back(id);
    }
    resyncs.fetch_add(1, std::memory_order_relaxed);
    for (std::size_t at = 0; at < ids.size(); at += kMaxIdsPerScript) {
      std::vector<std::uint64_t> chunk(
          ids.begin() + static_cast<std::ptrdiff_t>(at),
          ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), at + kMaxIdsPerScript)));
      resync_chunk(std::move(chunk), 0);
    }
  }

  void resync_chunk(std::vector<std::uint64_t> ids, int attempt) {
    auto copy = ids;
    status(std::move(copy), [self = shared_from_this(), ids = std::move(ids), attempt](
                                Failure f, std::vector<UserStatus> st) mutable {
      if (f) {
        if (attempt >= 10 || self->is_stopped()) {
          log::warning("re-reading watched users after a Redis reconnect failed: {}", f.message);
          return;
        }
        auto timer = std::make_shared<asio::steady_timer>(self->strand, milliseconds(500));
        timer->async_wait([self, timer, ids = std::move(ids), attempt](error_code ec) mutable {
          if (!ec && !self->is_stopped()) self->resync_chunk(std::move(ids), attempt + 1);
        });
        return;
      }
      std::vector<UserChange> changes;
      changes.reserve(ids.size());
      for (std::size_t i = 0; i < ids.size(); ++i) {
        changes.push_back({ids[i], st[i].online, st[i].last_seen_ms});
      }
      self->deliver(changes);
    });
  }

  void status(std::vector<std::uint64_t> ids,
              std::function<void(Failure, std::vector<UserStatus>)> done);

  // ---- forgetting ----------------------------------------------------------------------------

  // Removes users last seen forget_after ago or longer, logged out or not: scores in
  // [-(now - forget_after), now - forget_after].
  void sweep() {
    const std::int64_t edge = now_ms() - options.forget_after.count();
    if (edge <= 0) return;
    std::vector<Op> ops;
    for (unsigned s = 0; s < options.shards; ++s) {
      ops.push_back(op_for_shard(
          s, {"ZREMRANGEBYSCORE", keys[s], std::to_string(-edge), std::to_string(edge)}));
    }
    submit(std::move(ops), [](Failure f, std::vector<Op>&) {
      if (f) log::warning("presence sweep on Redis failed (retried next interval): {}", f.message);
    });
  }

  PresenceHealth health() const {
    PresenceHealth h;
    std::vector<std::pair<std::string, std::shared_ptr<Pool>>> masters;
    {
      std::lock_guard lock(mu);
      if (!map) {
        h.problem = topology_problem;
        return h;
      }
      h.problem = topology_problem;
      for (const auto& m : map->masters()) {
        h.masters.push_back(m.to_string());
        auto it = pools.find(m.to_string());
        if (it != pools.end()) masters.emplace_back(m.to_string(), it->second.second);
      }
    }
    for (const auto& [name, pool] : masters) {
      const auto st = pool->stats();
      if (!st.reachable && h.problem.empty()) {
        h.problem = fmt::format("Redis at {} is unreachable{}", name,
                                st.last_error.empty() ? "" : ": " + st.last_error);
      }
    }
    h.ok = h.problem.empty();
    return h;
  }
};

Presence::Presence(asio::io_context& io, PresenceOptions options, Clock wall_ms)
    : state_(std::make_shared<State>(io, std::move(options), std::move(wall_ms))) {}

Presence::~Presence() {
  stop();
}

void Presence::start() {
  state_->start();
}

void Presence::stop() {
  state_->stop();
}

void Presence::set_timeout(milliseconds timeout) {
  state_->timeout_ms.store(timeout.count(), std::memory_order_relaxed);
}

std::string Presence::key_of(std::uint64_t id) const {
  return state_->keys[state_->shard_of(id)];
}

void Presence::heartbeat(std::vector<std::uint64_t> ids, std::function<void(Failure)> done) {
  auto& st = *state_;
  const std::int64_t now = st.heartbeat_ms();
  const std::int64_t window = st.options.dedup_window.count();
  // Per shard, every id of the batch that was not written a moment ago: one ZADD GT, or in a
  // watched shard one heartbeat script (per kMaxIdsPerScript ids) that also publishes the
  // transitions.
  std::map<unsigned, std::vector<std::uint64_t>> by_shard;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> written;  // id, dedup generation
  for (const auto id : ids) {
    if (window > 0 && st.dedup.recent(id, now, window)) {
      st.dedup_skipped.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (window > 0) written.emplace_back(id, st.dedup.generation(id));
    by_shard[st.shard_of(id)].push_back(id);
  }
  if (by_shard.empty()) return done({});
  const std::string score = std::to_string(now);
  const std::string timeout = std::to_string(st.timeout_ms.load(std::memory_order_relaxed));
  std::vector<Op> ops;
  for (auto& [shard, shard_ids] : by_shard) {
    if (!st.publishes(shard)) {
      Command cmd{"ZADD", st.keys[shard], "GT"};
      cmd.reserve(3 + 2 * shard_ids.size());
      for (const auto id : shard_ids) {
        cmd.push_back(score);
        cmd.push_back(std::to_string(id));
      }
      ops.push_back(st.op_for_shard(shard, std::move(cmd)));
      continue;
    }
    // The script counts each id once (a batch's duplicates would read as two transitions).
    if (shard_ids.size() > 1) {
      std::sort(shard_ids.begin(), shard_ids.end());
      shard_ids.erase(std::unique(shard_ids.begin(), shard_ids.end()), shard_ids.end());
    }
    for (std::size_t at = 0; at < shard_ids.size(); at += kMaxIdsPerScript) {
      const std::size_t end = std::min(shard_ids.size(), at + kMaxIdsPerScript);
      Command args{score, timeout, st.channels[shard]};
      args.reserve(3 + end - at);
      for (std::size_t i = at; i < end; ++i) args.push_back(std::to_string(shard_ids[i]));
      ops.push_back(st.script_op(shard, heartbeat_script(), {}, std::move(args)));
    }
  }
  st.submit(std::move(ops), [state = state_, written = std::move(written), now,
                             done = std::move(done)](Failure f, std::vector<Op>&) {
    if (!f) {
      for (const auto& [id, generation] : written) state->dedup.remember(id, now, generation);
    }
    done(std::move(f));
  });
}

void Presence::logout(std::uint64_t id, std::function<void(Failure)> done) {
  auto& st = *state_;
  st.dedup.forget(id);  // the next heartbeat must be written, whatever the window
  const unsigned shard = st.shard_of(id);
  std::vector<Op> ops;
  ops.push_back(st.script_op(shard, logout_script(), {st.watched_keys[shard]},
                             {std::to_string(id), st.channels[shard]}));
  st.submit(
      std::move(ops), [state = state_, id, done = std::move(done)](Failure f, std::vector<Op>&) {
        state->dedup.forget(id);  // a heartbeat that raced the logout must not hide the next one
        done(std::move(f));
      });
}

void Presence::State::status(std::vector<std::uint64_t> ids,
                             std::function<void(Failure, std::vector<UserStatus>)> done) {
  auto& st = *this;
  // One ZMSCORE per shard; `where` maps each reply element back to its place in `ids`.
  std::map<unsigned, std::pair<Command, std::vector<std::size_t>>> by_shard;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const unsigned shard = st.shard_of(ids[i]);
    auto& [cmd, where] = by_shard[shard];
    if (cmd.empty()) cmd = {"ZMSCORE", st.keys[shard]};
    cmd.push_back(std::to_string(ids[i]));
    where.push_back(i);
  }
  std::vector<Op> ops;
  std::vector<std::vector<std::size_t>> places;
  for (auto& [shard, entry] : by_shard) {
    ops.push_back(st.op_for_shard(shard, std::move(entry.first)));
    places.push_back(std::move(entry.second));
  }
  const std::size_t n = ids.size();
  st.submit(std::move(ops), [state = shared_from_this(), places = std::move(places), n,
                             done = std::move(done)](Failure f, std::vector<Op>& ops) {
    std::vector<UserStatus> out(n);
    if (f) return done(std::move(f), std::move(out));
    // Judged when Redis answered, on this node's clock, as the embedded table judges.
    const std::int64_t now = state->now_ms();
    const std::int64_t timeout = state->timeout_ms.load(std::memory_order_relaxed);
    const std::int64_t forget = state->options.forget_after.count();
    for (std::size_t g = 0; g < ops.size(); ++g) {
      const Value& r = ops[g].reply;
      if (r.type != Value::Type::array || r.elements.size() != places[g].size()) {
        return done({{},
                     "Redis answered ZMSCORE with something else than one score per user "
                     "(Redis 6.2 or later is required)"},
                    std::move(out));
      }
      for (std::size_t k = 0; k < places[g].size(); ++k) {
        if (r.elements[k].type == Value::Type::nil) continue;  // unknown
        const auto score = score_of(r.elements[k]);
        if (!score) {
          return done({{}, "Redis answered ZMSCORE with a score that is not a number"},
                      std::move(out));
        }
        const bool logged_out = *score < 0;
        const auto seen = static_cast<std::int64_t>(std::llround(std::fabs(*score)));
        const auto verdict = membership::judge_user(milliseconds(now - seen), logged_out,
                                                    milliseconds(timeout), milliseconds(forget));
        if (verdict == membership::UserPresence::forgotten) continue;  // not yet swept
        UserStatus& s = out[places[g][k]];
        s.last_seen_ms = seen;
        s.online = verdict == membership::UserPresence::online;
      }
    }
    done({}, std::move(out));
  });
}

void Presence::status(std::vector<std::uint64_t> ids,
                      std::function<void(Failure, std::vector<UserStatus>)> done) {
  state_->status(std::move(ids), std::move(done));
}

void Presence::counts(std::function<void(Failure, PresenceCounts)> done) {
  auto& st = *state_;
  // Three ZCOUNTs per shard, each O(log n) on a sorted set's skiplist: nothing is scanned.
  const std::int64_t now = st.now_ms();
  const std::string online_edge = "(" + std::to_string(now - st.timeout_ms.load());
  const std::int64_t forget_edge = now - st.options.forget_after.count();
  const std::string tracked_edge = "(" + std::to_string(forget_edge);
  const std::string logged_out_edge = "(" + std::to_string(-forget_edge);
  std::vector<Op> ops;
  for (unsigned s = 0; s < st.options.shards; ++s) {
    ops.push_back(st.op_for_shard(s, {"ZCOUNT", st.keys[s], online_edge, "+inf"}));
    ops.push_back(st.op_for_shard(s, {"ZCOUNT", st.keys[s], tracked_edge, "+inf"}));
    ops.push_back(st.op_for_shard(s, {"ZCOUNT", st.keys[s], "-inf", logged_out_edge}));
  }
  st.submit(std::move(ops), [done = std::move(done)](Failure f, std::vector<Op>& ops) {
    PresenceCounts c;
    if (f) return done(std::move(f), c);
    for (std::size_t i = 0; i < ops.size(); ++i) {
      if (ops[i].reply.type != Value::Type::integer) {
        return done({{}, "Redis answered ZCOUNT with something else than an integer"}, c);
      }
      const auto n = static_cast<std::uint64_t>(std::max(0LL, ops[i].reply.integer));
      if (i % 3 == 0) {
        c.online += n;
      } else {
        c.tracked += n;
      }
    }
    done({}, c);
  });
}

void Presence::set_change_listener(std::function<void(const std::vector<UserChange>&)> listener) {
  // Under the lock deliver() calls it under: clearing it (the event hub going away) never
  // races a delivery.
  std::lock_guard lock(state_->listener_mu);
  state_->listener = std::move(listener);
}

void Presence::watch(std::span<const std::uint64_t> ids) {
  auto& st = *state_;
  std::vector<unsigned> new_shards;
  std::vector<std::uint64_t> new_ids;
  {
    std::lock_guard lock(st.watch_mu);
    for (const auto id : ids) {
      if (++st.watched[id] > 1) continue;
      new_ids.push_back(id);
      const unsigned shard = st.shard_of(id);
      if (++st.shard_watchers[shard] > 1) continue;
      new_shards.push_back(shard);
      // Under watch_mu, so that the subscriber sees (un)subscriptions in the counts' order.
      if (st.subscriber) st.subscriber->subscribe(st.channels[shard]);
    }
  }
  // Before start(): start() flags the shards, and the subscriber's first connection is then
  // followed by no re-read, so the state is read here too.
  st.started_watching(std::move(new_shards), std::move(new_ids));
}

void Presence::unwatch(std::span<const std::uint64_t> ids) {
  auto& st = *state_;
  std::lock_guard lock(st.watch_mu);
  for (const auto id : ids) {
    const auto it = st.watched.find(id);
    if (it == st.watched.end()) continue;  // not watched: nothing to release
    if (--it->second > 0) continue;
    st.watched.erase(it);
    const unsigned shard = st.shard_of(id);
    if (--st.shard_watchers[shard] == 0 && st.subscriber) {
      st.subscriber->unsubscribe(st.channels[shard]);
    }
  }
}

PresenceHealth Presence::health() const {
  return state_->health();
}

void Presence::write_metrics(MetricsWriter& w) const {
  const auto& st = *state_;
  w.counter("heartbeatd_redis_commands_total", "Commands sent to Redis (pipelined or not).",
            st.commands.load());
  w.family("heartbeatd_redis_redirects_total", "counter",
           "Redis Cluster redirections followed, by kind.");
  w.sample("heartbeatd_redis_redirects_total", {{"kind", "moved"}}, st.moved.load());
  w.sample("heartbeatd_redis_redirects_total", {{"kind", "ask"}}, st.asked.load());
  w.counter("heartbeatd_redis_topology_refreshes_total",
            "Reads of the Redis Cluster slot map (CLUSTER SLOTS).", st.refreshes.load());
  w.counter("heartbeatd_redis_failed_requests_total",
            "Presence requests Redis could not answer (the API answered 503).", st.failures.load());
  w.counter("heartbeatd_redis_heartbeats_deduplicated_total",
            "User heartbeats answered without a write: the user's last one was written less "
            "than presence.redis.dedup_window ago.",
            st.dedup_skipped.load());
  w.counter("heartbeatd_redis_noscript_total",
            "Scripts Redis did not know by their SHA1 (restarted, failed over), sent whole.",
            st.noscript.load());
  w.counter("heartbeatd_redis_user_changes_received_total",
            "User online/offline changes received on the watched shards' channels.",
            st.changes_received.load());
  w.counter("heartbeatd_redis_user_change_messages_rejected_total",
            "Messages on the changes channels that were malformed or named users of another "
            "shard, ignored (someone else published there).",
            st.messages_rejected.load());
  w.counter("heartbeatd_redis_users_expired_total",
            "Users this node's expiry sweeps took offline (heartbeats stopped) and published.",
            st.users_expired.load());
  {
    std::size_t watched_shards = 0;
    for (unsigned s = 0; s < st.options.shards; ++s) watched_shards += st.publishes(s) ? 1 : 0;
    w.gauge("heartbeatd_redis_watched_shards",
            "Shards whose heartbeats this node writes with the script that publishes "
            "transitions (someone watches a user there, or this node cannot tell).",
            static_cast<double>(watched_shards));
  }
  w.gauge("heartbeatd_redis_sweeper_leases",
          "Shards whose expiry sweep this node leads (it holds their lease).",
          static_cast<double>(st.leases_held.load()));
  w.counter("heartbeatd_redis_watch_resyncs_total",
            "Times the pub/sub connection was restored and the watched users were re-read.",
            st.resyncs.load());
  {
    std::shared_ptr<Subscriber> sub;
    {
      std::lock_guard lock(st.watch_mu);
      sub = st.subscriber;
    }
    const auto ss = sub ? sub->stats() : SubscriberStats{};
    w.gauge("heartbeatd_redis_subscriber_connected",
            "1 while the pub/sub connection for user changes is up and subscribed.",
            ss.connected ? 1.0 : 0.0);
    w.gauge("heartbeatd_redis_subscriber_channels",
            "Shards' change channels subscribed to (shards with a watched user).",
            static_cast<double>(ss.channels));
    w.counter("heartbeatd_redis_subscriber_connects_total",
              "Connections the pub/sub subscriber made (reconnects included).", ss.connects);
  }
  std::vector<std::pair<std::string, PoolStats>> pools;
  {
    std::lock_guard lock(st.mu);
    for (const auto& [name, entry] : st.pools) pools.emplace_back(name, entry.second->stats());
  }
  w.family("heartbeatd_redis_pool_connections", "gauge",
           "Connections of the pool to each Redis node, open (idle or in use) and idle.");
  for (const auto& [name, s] : pools) {
    w.sample("heartbeatd_redis_pool_connections", {{"node", name}, {"state", "open"}},
             static_cast<std::uint64_t>(s.open));
    w.sample("heartbeatd_redis_pool_connections", {{"node", name}, {"state", "idle"}},
             static_cast<std::uint64_t>(s.idle));
  }
  w.family("heartbeatd_redis_pool_waiting", "gauge",
           "Requests waiting for a connection of each node's pool.");
  for (const auto& [name, s] : pools) {
    w.sample("heartbeatd_redis_pool_waiting", {{"node", name}},
             static_cast<std::uint64_t>(s.waiting));
  }
  w.family("heartbeatd_redis_pool_exhausted_total", "counter",
           "Requests refused because no connection became free (reason=\"wait\") or the wait "
           "queue was full (reason=\"queue\").");
  for (const auto& [name, s] : pools) {
    w.sample("heartbeatd_redis_pool_exhausted_total", {{"node", name}, {"reason", "wait"}},
             s.timeouts);
    w.sample("heartbeatd_redis_pool_exhausted_total", {{"node", name}, {"reason", "queue"}},
             s.rejected);
  }
  w.family("heartbeatd_redis_connect_failures_total", "counter",
           "Failed connection attempts to each Redis node.");
  for (const auto& [name, s] : pools) {
    w.sample("heartbeatd_redis_connect_failures_total", {{"node", name}}, s.connect_failures);
  }
}

}  // namespace heartbeatd::transport::redis
