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

// One poll of a UserWatch (what the daemon does every 100 ms for GET /v1/events and
// hooks.users) over N watched users among the million of the shared table.
void BM_UserWatchPoll(benchmark::State& state) {
  using heartbeatd::membership::UserWatch;
  PresenceTable& table = shared_table();
  const auto n = static_cast<std::size_t>(state.range(0));
  UserWatch watch(n);
  std::vector<std::uint64_t> ids;
  std::mt19937_64 rng(7);
  while (ids.size() < n) ids.push_back(rng() % kKnownUsers);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  std::vector<UserWatch::State> states;
  watch.add(ids, table, now(), &states);
  std::vector<UserWatch::Transition> out;
  for (auto _ : state) {
    out.clear();
    watch.poll(table, now(), out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(ids.size()));
}
BENCHMARK(BM_UserWatchPoll)->Arg(10'000)->Arg(100'000)->Arg(1'000'000)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
