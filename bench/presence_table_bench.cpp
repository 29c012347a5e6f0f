// PresenceTable throughput (heartbeats and lookups of known users, 1 and 2 threads) and
// memory per tracked user at 10^6, 10^7 and 10^8 users, for ids dense below 2^32 and for
// random 64-bit ids. Run: build/bin/presence_table_bench (figures in bench/RESULTS.md).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <random>

#include "membership/presence_table.h"
#include "membership/user_watch.h"

namespace {

using heartbeatd::membership::PresenceOptions;
using heartbeatd::membership::PresenceTable;
using heartbeatd::membership::TimePoint;

constexpr std::uint64_t kKnownUsers = 1'000'000;

TimePoint now() {
  return std::chrono::steady_clock::now();
}

// One table of a million users shared by the throughput benchmarks and their threads.
PresenceTable& shared_table() {
  static PresenceTable* table = [] {
    auto* t = new PresenceTable(PresenceOptions{}, now());
    for (std::uint64_t id = 0; id < kKnownUsers; ++id) t->heartbeat(id, now());
    return t;
  }();
  return *table;
}

void BM_Heartbeat(benchmark::State& state) {
  PresenceTable& table = shared_table();
  std::mt19937_64 rng(state.thread_index());
  for (auto _ : state) {
    benchmark::DoNotOptimize(table.heartbeat(rng() % kKnownUsers, now()));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Heartbeat)->Threads(1)->Threads(2)->UseRealTime();

void BM_Lookup(benchmark::State& state) {
  PresenceTable& table = shared_table();
  std::mt19937_64 rng(state.thread_index() + 100);
  for (auto _ : state) {
    benchmark::DoNotOptimize(table.status(rng() % kKnownUsers, now()));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Lookup)->Threads(1)->Threads(2)->UseRealTime();

// Batches of 1000 random known users, as POST /v1/users/status and /v1/users/heartbeat see
// them; items are users.
void BM_StatusBatch(benchmark::State& state) {
  PresenceTable& table = shared_table();
  std::mt19937_64 rng(state.thread_index() + 200);
  std::vector<heartbeatd::membership::UserId> ids(1000);
  std::vector<PresenceTable::Status> out(ids.size());
  for (auto _ : state) {
    for (auto& id : ids) id = rng() % kKnownUsers;
    table.status_batch(ids, now(), out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(ids.size()));
}
BENCHMARK(BM_StatusBatch)->Threads(1)->Threads(2)->UseRealTime();

void BM_HeartbeatBatch(benchmark::State& state) {
  PresenceTable& table = shared_table();
  std::mt19937_64 rng(state.thread_index() + 300);
  std::vector<heartbeatd::membership::UserId> ids(1000);
  for (auto _ : state) {
    for (auto& id : ids) id = rng() % kKnownUsers;
    benchmark::DoNotOptimize(table.heartbeat_batch(ids, now()));
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(ids.size()));
}
BENCHMARK(BM_HeartbeatBatch)->Threads(1)->Threads(2)->UseRealTime();

std::size_t rss_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

// Builds a table of N users; reports the table's own accounting and the process's resident
// memory growth, both per user. args: N, 0 = dense ids below 2^32, 1 = random 64-bit ids.
void BM_BytesPerUser(benchmark::State& state) {
  const auto n = static_cast<std::uint64_t>(state.range(0));
  const bool random64 = state.range(1) != 0;
  for (auto _ : state) {
    const std::size_t rss_before = rss_bytes();
    PresenceOptions options;
    options.max_users = n;
    auto table = std::make_unique<PresenceTable>(options, now());
    std::mt19937_64 rng(42);
    const TimePoint t = now();
    for (std::uint64_t i = 0; i < n; ++i) table->heartbeat(random64 ? rng() : i, t);
    state.counters["table_bytes_per_user"] =
        static_cast<double>(table->memory_bytes()) / static_cast<double>(n);
    state.counters["rss_bytes_per_user"] =
        static_cast<double>(rss_bytes() - rss_before) / static_cast<double>(n);
    state.counters["inserts_per_s"] =
        benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsRate);
  }
}
BENCHMARK(BM_BytesPerUser)
    ->ArgsProduct({{1'000'000, 10'000'000, 100'000'000}, {0, 1}})
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();

}  // namespace

// The event-driven UserWatch (GET /v1/events?users= and hooks.users) with N watched users:
// what a heartbeat of a watched user costs (it replaced a poll of every watched user every
// 100 ms: 24 ms per poll at 10^5 users), and what reporting N users going offline at once
// costs per user. While nothing happens, a watch costs nothing: no timer but the earliest
// deadline's.
void BM_UserWatchHeartbeat(benchmark::State& state) {
  using heartbeatd::membership::UserWatch;
  const auto n = static_cast<std::uint64_t>(state.range(0));
  UserWatch watch(std::chrono::seconds(30));
  const auto t0 = now();
  for (std::uint64_t id = 0; id < n; ++id) watch.add(id, true, t0);
  std::vector<UserWatch::Transition> out;
  std::mt19937_64 rng(7);
  auto t = t0;
  for (auto _ : state) {
    t += std::chrono::microseconds(1);
    watch.heartbeat(rng() % n, t, out);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_UserWatchHeartbeat)->Arg(10'000)->Arg(100'000)->Arg(1'000'000);

void BM_UserWatchExpireAll(benchmark::State& state) {
  using heartbeatd::membership::UserWatch;
  const auto n = static_cast<std::uint64_t>(state.range(0));
  std::vector<UserWatch::Transition> out;
  for (auto _ : state) {
    state.PauseTiming();
    UserWatch watch(std::chrono::seconds(30));
    const auto t0 = now();
    for (std::uint64_t id = 0; id < n; ++id) watch.add(id, true, t0);
    out.clear();
    out.reserve(n);
    state.ResumeTiming();
    watch.expire(t0 + std::chrono::seconds(30), out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}
BENCHMARK(BM_UserWatchExpireAll)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
