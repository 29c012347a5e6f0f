// membership_sim_report: the membership protocol (membership/protocol.h) with default
// ProtocolTimings on the deterministic simulated network (tests/support/sim_cluster.h), at
// 10, 100 and 1000 nodes, with and without loss. For each configuration it does a rolling
// start, waits for every node to know every node, runs a steady period, then crashes and
// restarts random nodes one at a time, and prints the failure detector's quality of service
// in the terms of Chen, Toueg and Aguilera ("On the quality of service of failure
// detectors", 2002: detection time T_D, mistake recurrence time T_MR, mistake duration T_M,
// query accuracy probability P_A) next to the protocol's message load. A command-line tool,
// not a test; the figures go to bench/RESULTS.md.
//
//   cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DHEARTBEATD_BENCH=ON
//   cmake --build build-bench --target membership_sim_report
//   build-bench/bin/membership_sim_report [--sizes 10,100,1000] [--seed S] [--trials T]
//                                         [--loss P]
//
// Every size runs at --loss (default 0) and again at 5% loss. Progress goes to stderr, the
// report to stdout; the report is the same for the same seed except the wall-clock column.
// The default run takes about two minutes on 2 cores, almost all of it at N = 1000.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "membership/protocol.h"
#include "tests/support/sim_cluster.h"

namespace {

using namespace std::chrono_literals;
using heartbeatd::membership::Duration;
using heartbeatd::membership::MemberState;
using heartbeatd::membership::ProtocolTimings;
using heartbeatd::membership::TimePoint;
using heartbeatd::sim::NetworkFaults;
using heartbeatd::sim::SimCluster;

constexpr double kLossyPass = 0.05;
// All durations are simulated time.
constexpr Duration kSampleEvery = 100ms;    // P_A sampling period
constexpr Duration kConvergeLimit = 600s;   // rolling start -> every node knows N members
constexpr Duration kWaitLimit = 30s;        // crash -> seen dead; restart -> seen alive
constexpr Duration kRelearnLimit = 300s;    // restart -> the node knows N members again
constexpr Duration kSettle = 5s;            // after convergence, before the steady phase
constexpr Duration kSteady = 60s;           // steady phase
constexpr std::size_t kLargeCluster = 100;  // above this, fewer trials (wall time)
constexpr std::size_t kTrials = 20;         // N <= kLargeCluster
constexpr std::size_t kTrialsLarge = 5;     // N > kLargeCluster

double ms(Duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}
double seconds(Duration d) {
  return std::chrono::duration<double>(d).count();
}

std::uint64_t splitmix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

struct Options {
  std::vector<std::size_t> sizes{10, 100, 1000};
  std::uint64_t seed = 1;
  std::optional<std::size_t> trials;
  double loss = 0.0;
};

struct Plan {
  std::size_t n = 0;
  double loss = 0.0;
  std::size_t trials = 0;
  Duration steady{};
  std::uint64_t seed = 0;
};

struct Result {
  Plan plan;
  bool converged = false;
  Duration converge_time{};
  std::vector<Duration> detection;        // crash -> every other up node sees it dead
  std::vector<Duration> first_detection;  // crash -> the first node sees it dead
  std::vector<Duration> seen_alive;       // restart -> every other up node sees it alive
  std::vector<Duration> relearned;        // restart -> it knows all N members again
  std::size_t undetected = 0;             // crashes not seen by all within kWaitLimit
  std::size_t not_seen_alive = 0;         // restarts not seen alive within kWaitLimit
  std::size_t not_relearned = 0;          // restarts not knowing N within kRelearnLimit
  std::size_t mistakes = 0;               // false dead verdicts, whole run
  std::size_t mistakes_in_join = 0;       // of which before convergence
  std::size_t false_suspicions = 0;       // suspect verdicts about up members, whole run
  std::vector<Duration> mistake_durations;
  std::size_t mistakes_unresolved = 0;  // not followed by alive at that observer
  double node_hours = 0.0;              // observer exposure for the mistake rate
  double accuracy = 0.0;                // P_A
  double msgs_per_node_s = 0.0;
  std::size_t view_mismatches = 0;  // observation log vs the nodes' own views
  Duration simulated{};
  double wall_s = 0.0;
};

// Every node's view of every node (N x N), rebuilt from the simulator's log of observed state
// changes, so that reading all views every 100 ms costs a scan of N*N bytes rather than N*N
// protocol lookups. Checked against the nodes' own views once per run (view_mismatches).
class Views {
 public:
  static constexpr std::uint8_t kUnknown = 0xff;

  explicit Views(const SimCluster& c)
      : c_(c), n_(c.size()), state_(n_ * n_, kUnknown), since_(n_ * n_) {
    for (std::size_t i = 0; i < n_; ++i) index_.emplace(c.name(i), i);
  }

  std::size_t index(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? n_ : it->second;
  }

  // Applies the observations logged since the last call.
  void sync() {
    const auto& log = c_.observations();
    for (; next_ < log.size(); ++next_) {
      const auto& o = log[next_];
      const auto m = index(o.member);
      if (m == n_) continue;
      state_[o.observer * n_ + m] = static_cast<std::uint8_t>(o.state);
      since_[o.observer * n_ + m] = o.at;
    }
  }

  // A restarted node remembers nothing.
  void forget(std::size_t observer) {
    sync();
    std::fill_n(state_.begin() + static_cast<std::ptrdiff_t>(observer * n_), n_, kUnknown);
  }

  bool is(std::size_t observer, std::size_t member, MemberState s) const {
    return state_[observer * n_ + member] == static_cast<std::uint8_t>(s);
  }
  std::optional<MemberState> state(std::size_t observer, std::size_t member) const {
    const auto s = state_[observer * n_ + member];
    if (s == kUnknown) return std::nullopt;
    return static_cast<MemberState>(s);
  }
  TimePoint since(std::size_t observer, std::size_t member) const {
    return since_[observer * n_ + member];
  }

  // Does every up node other than `subject` hold it in state `s`?
  bool all_see(std::size_t subject, MemberState s) const {
    for (std::size_t i = 0; i < n_; ++i) {
      if (i != subject && c_.up(i) && !is(i, subject, s)) return false;
    }
    return true;
  }

  // (observer, member) pairs of distinct up nodes, and how many of them are held alive.
  std::pair<std::uint64_t, std::uint64_t> alive_pairs() const {
    std::uint64_t pairs = 0, alive = 0;
    for (std::size_t i = 0; i < n_; ++i) {
      if (!c_.up(i)) continue;
      const auto* row = &state_[i * n_];
      for (std::size_t j = 0; j < n_; ++j) {
        if (j == i || !c_.up(j)) continue;
        ++pairs;
        alive += row[j] == static_cast<std::uint8_t>(MemberState::alive);
      }
    }
    return {pairs, alive};
  }

 private:
  const SimCluster& c_;
  std::size_t n_;
  std::vector<std::uint8_t> state_;
  std::vector<TimePoint> since_;
  std::unordered_map<std::string, std::size_t> index_;
  std::size_t next_ = 0;
};

struct Crash {
  TimePoint at;
  TimePoint restarted = TimePoint::max();
  std::uint64_t incarnation = 0;  // the member's incarnation when it crashed
};

// Was a dead or suspect verdict about `member` (crash history `crashes`) at `at` about a
// member that really was down? A verdict about the incarnation that crashed stays true
// after the restart (late news about the old life).
bool really_down(const std::vector<Crash>& crashes, TimePoint at, std::uint64_t incarnation) {
  for (const auto& c : crashes) {
    if (c.at <= at && (at < c.restarted || incarnation <= c.incarnation)) return true;
  }
  return false;
}

// Mistakes (false dead verdicts), their durations and false suspicions, from the whole
// observation log.
void count_mistakes(const SimCluster& c, const Views& views,
                    const std::vector<std::vector<Crash>>& crashes, TimePoint converged_at,
                    Result& r) {
  std::map<std::pair<std::size_t, std::size_t>, TimePoint> open;  // (observer, member)
  for (const auto& o : c.observations()) {
    const auto m = views.index(o.member);
    if (m == c.size() || m == o.observer) continue;
    const std::pair key{o.observer, m};
    if (o.state == MemberState::alive) {
      auto it = open.find(key);
      if (it == open.end()) continue;
      // If the observer crashed meanwhile, its mistake ended with it: not a duration.
      bool observer_crashed = false;
      for (const auto& k : crashes[o.observer]) {
        observer_crashed |= k.at >= it->second && k.at <= o.at;
      }
      if (observer_crashed) {
        ++r.mistakes_unresolved;
      } else {
        r.mistake_durations.push_back(o.at - it->second);
      }
      open.erase(it);
      continue;
    }
    if (o.state != MemberState::dead && o.state != MemberState::suspect) continue;
    if (really_down(crashes[m], o.at, o.incarnation)) continue;
    if (o.state == MemberState::suspect) {
      ++r.false_suspicions;
      continue;
    }
    ++r.mistakes;
    if (o.at < converged_at) ++r.mistakes_in_join;
    open.emplace(key, o.at);
  }
  r.mistakes_unresolved += open.size();
}

Duration median(std::vector<Duration> v) {
  if (v.empty()) return Duration::zero();
  std::sort(v.begin(), v.end());
  const auto k = v.size() / 2;
  return v.size() % 2 ? v[k] : (v[k - 1] + v[k]) / 2;
}

Result run(const Plan& plan) {
  const auto wall_start = std::chrono::steady_clock::now();
  Result r;
  r.plan = plan;
  const ProtocolTimings timings;
  NetworkFaults faults;
  faults.loss = plan.loss;
  SimCluster c(plan.seed, timings, faults);
  const auto t0 = c.now();

  // Rolling start over max(interval, N x 10 ms), one node at a time so each start time is
  // known (the same spread as add_nodes(N, spread)).
  const auto spread = std::max<Duration>(timings.interval, plan.n * 10ms);
  std::vector<TimePoint> started(plan.n);
  for (std::size_t i = 0; i < plan.n; ++i) {
    started[i] = c.now();
    c.add_nodes(1, spread / plan.n);
  }
  r.converged = c.run_until(
      [&] {
        for (std::size_t i = 0; i < c.size(); ++i) {
          if (c.node(i).member_count() != plan.n) return false;
        }
        return true;
      },
      kConvergeLimit);
  const auto converged_at = c.now();
  r.converge_time = converged_at - t0;
  Views views(c);
  std::vector<std::vector<Crash>> crashes(plan.n);

  if (r.converged) {
    // Steady phase: load and query accuracy, nothing crashes.
    c.run_for(kSettle);
    const auto sent_before = c.datagrams_total();
    const auto steady_start = c.now();
    std::uint64_t pairs = 0, alive = 0;
    while (c.now() - steady_start < plan.steady) {
      c.run_for(kSampleEvery);
      views.sync();
      const auto [p, a] = views.alive_pairs();
      pairs += p;
      alive += a;
    }
    r.accuracy = pairs ? static_cast<double>(alive) / static_cast<double>(pairs) : 0.0;
    r.msgs_per_node_s = static_cast<double>(c.datagrams_total() - sent_before) /
                        static_cast<double>(plan.n) / seconds(c.now() - steady_start);
    for (std::size_t i = 0; i < plan.n; ++i) {
      for (std::size_t j = 0; j < plan.n; ++j) {
        if (c.view(i, j) != views.state(i, j) && i != j) ++r.view_mismatches;
      }
    }

    // Trials: crash one random node, wait until all see it dead; restart it, wait until all
    // see it alive and it knows every member again (so the next crash has N - 1 informed
    // observers); pause 1-2 s so crashes fall at random phases.
    std::mt19937_64 rng(splitmix(plan.seed ^ 0x7269616cull));
    std::uniform_int_distribution<std::size_t> pick(0, plan.n - 1);
    std::uniform_int_distribution<Duration::rep> pause(Duration(1s).count(), Duration(2s).count());
    for (std::size_t t = 0; t < plan.trials; ++t) {
      const auto v = pick(rng);
      views.sync();
      const auto crashed_at = c.now();
      crashes[v].push_back(Crash{crashed_at, TimePoint::max(), c.node(v).incarnation()});
      c.crash(v);
      const bool seen = c.run_until(
          [&] {
            views.sync();
            return views.all_see(v, MemberState::dead);
          },
          kWaitLimit);
      views.sync();
      if (seen) {
        auto last = crashed_at, first = TimePoint::max();
        for (std::size_t i = 0; i < plan.n; ++i) {
          if (i == v || !c.up(i)) continue;
          last = std::max(last, views.since(i, v));
          first = std::min(first, views.since(i, v));
        }
        r.detection.push_back(last - crashed_at);
        r.first_detection.push_back(first - crashed_at);
      } else {
        ++r.undetected;
      }

      views.forget(v);
      c.restart(v);
      crashes[v].back().restarted = c.now();
      const auto restarted_at = c.now();
      const bool alive_again = c.run_until(
          [&] {
            views.sync();
            return views.all_see(v, MemberState::alive);
          },
          kWaitLimit);
      if (alive_again) {
        r.seen_alive.push_back(c.now() - restarted_at);
      } else {
        ++r.not_seen_alive;
      }
      if (c.run_until([&] { return c.node(v).member_count() == plan.n; }, kRelearnLimit)) {
        r.relearned.push_back(c.now() - restarted_at);
      } else {
        ++r.not_relearned;
      }
      c.run_for(Duration(pause(rng)));
    }
  }

  views.sync();
  const auto end = c.now();
  r.simulated = end - t0;
  Duration exposure{};
  for (std::size_t i = 0; i < plan.n; ++i) {
    exposure += end - started[i];
    for (const auto& k : crashes[i]) exposure -= std::min(k.restarted, end) - k.at;
  }
  r.node_hours = std::chrono::duration<double, std::ratio<3600>>(exposure).count();
  count_mistakes(c, views, crashes, converged_at, r);
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  return r;
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string percent(double loss) {
  return fixed(loss * 100.0, loss * 100.0 == std::floor(loss * 100.0) ? 0 : 1) + "%";
}

// Display width of UTF-8 text (code points; the table has no wide characters).
std::size_t width(const std::string& s) {
  return static_cast<std::size_t>(
      std::count_if(s.begin(), s.end(), [](char ch) { return (ch & 0xc0) != 0x80; }));
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> w(rows.front().size(), 0);
  for (const auto& row : rows) {
    for (std::size_t k = 0; k < row.size(); ++k) w[k] = std::max(w[k], width(row[k]));
  }
  for (std::size_t r = 0; r < rows.size(); ++r) {
    std::string line;
    for (std::size_t k = 0; k < rows[r].size(); ++k) {
      if (k) line += "  ";
      line += std::string(w[k] - width(rows[r][k]), ' ') + rows[r][k];
    }
    std::cout << line << '\n';
    if (r == 0) {
      std::string rule;
      for (std::size_t k = 0; k < w.size(); ++k) {
        if (k) rule += "  ";
        rule += std::string(w[k], '-');
      }
      std::cout << rule << '\n';
    }
  }
}

std::vector<std::string> row_of(const Result& r) {
  const auto& p = r.plan;
  std::vector<std::string> row{std::to_string(p.n), percent(p.loss)};
  if (!r.converged) {
    row.push_back("did not converge in " + fixed(seconds(kConvergeLimit), 0) + " s");
    while (row.size() < 11) row.push_back("-");
  } else {
    const auto ms_or_dash = [](const std::vector<Duration>& v, bool max) {
      if (v.empty()) return std::string("-");
      return fixed(ms(max ? *std::max_element(v.begin(), v.end()) : median(v)), 0);
    };
    std::string trials = std::to_string(r.detection.size());
    if (r.undetected) trials += " (+" + std::to_string(r.undetected) + " undetected)";
    row.push_back(trials);
    row.push_back(ms_or_dash(r.detection, false));
    row.push_back(ms_or_dash(r.detection, true));
    row.push_back(ms_or_dash(r.first_detection, false));
    row.push_back(std::to_string(r.mistakes));
    row.push_back(r.mistakes ? fixed(r.node_hours / static_cast<double>(r.mistakes), 2) : "∞");
    if (r.mistake_durations.empty()) {
      row.push_back("-");
    } else {
      Duration sum{};
      for (auto d : r.mistake_durations) sum += d;
      row.push_back(fixed(ms(sum) / static_cast<double>(r.mistake_durations.size()), 0));
    }
    row.push_back(fixed(r.accuracy, 6));
    row.push_back(fixed(r.msgs_per_node_s, 1));
  }
  row.push_back(fixed(seconds(r.simulated), 1));
  row.push_back(fixed(r.wall_s, 2));
  return row;
}

std::vector<std::size_t> parse_sizes(const std::string& s) {
  std::vector<std::size_t> out;
  std::size_t pos = 0;
  while (pos <= s.size()) {
    const auto comma = std::min(s.find(',', pos), s.size());
    const auto item = s.substr(pos, comma - pos);
    char* endp = nullptr;
    const auto v = std::strtoull(item.c_str(), &endp, 10);
    if (item.empty() || *endp != '\0' || v < 2) {
      throw std::invalid_argument("--sizes wants node counts >= 2, e.g. 10,100");
    }
    out.push_back(static_cast<std::size_t>(v));
    pos = comma + 1;
  }
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << "usage: membership_sim_report [--sizes 10,100,1000] [--seed S] [--trials T]"
                   " [--loss P]\n"
                   "  --loss P: datagram loss probability of the first pass (0 <= P < 1);\n"
                   "            a second pass always runs at 0.05\n";
      std::exit(0);
    }
    if (arg != "--sizes" && arg != "--seed" && arg != "--trials" && arg != "--loss") {
      throw std::invalid_argument("unknown option " + arg + " (see --help)");
    }
    if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value (see --help)");
    const std::string value = argv[++i];
    char* endp = nullptr;
    if (arg == "--sizes") {
      o.sizes = parse_sizes(value);
    } else if (arg == "--seed") {
      o.seed = std::strtoull(value.c_str(), &endp, 10);
      if (value.empty() || *endp) throw std::invalid_argument("--seed wants an integer");
    } else if (arg == "--trials") {
      const auto t = std::strtoull(value.c_str(), &endp, 10);
      if (value.empty() || *endp) throw std::invalid_argument("--trials wants an integer");
      o.trials = static_cast<std::size_t>(t);
    } else {
      o.loss = std::strtod(value.c_str(), &endp);
      if (value.empty() || *endp || !(o.loss >= 0.0 && o.loss < 1.0)) {
        throw std::invalid_argument("--loss wants a probability, 0 <= P < 1");
      }
    }
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  try {
    opt = parse(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "membership_sim_report: " << e.what() << '\n';
    return 2;
  }
  std::vector<double> losses{opt.loss};
  if (opt.loss != kLossyPass) losses.push_back(kLossyPass);

  std::vector<Plan> plans;
  for (auto n : opt.sizes) {
    for (std::size_t pass = 0; pass < losses.size(); ++pass) {
      Plan p;
      p.n = n;
      p.loss = losses[pass];
      p.trials = opt.trials.value_or(n > kLargeCluster ? kTrialsLarge : kTrials);
      p.steady = kSteady;
      p.seed = splitmix(opt.seed ^ splitmix(n * 16 + pass));
      plans.push_back(p);
    }
  }

  std::vector<Result> results;
  for (const auto& p : plans) {
    std::cerr << "running N=" << p.n << " loss=" << percent(p.loss) << " trials=" << p.trials
              << " ..." << std::flush;
    results.push_back(run(p));
    std::cerr << " " << fixed(results.back().wall_s, 1) << " s\n";
  }

  const ProtocolTimings t;
  const auto bound = t.interval * t.miss_threshold + t.probe_timeout + t.suspicion_timeout;
  std::cout << "membership_sim_report --seed " << opt.seed << ": default ProtocolTimings"
            << " (interval " << ms(t.interval) << " ms, miss_threshold " << t.miss_threshold
            << ", probe_timeout " << ms(t.probe_timeout) << " ms, suspicion_timeout "
            << ms(t.suspicion_timeout) << " ms; bound " << ms(bound) << " ms)\n"
            << "network delay 0.1-1 ms uniform; steady phase " << seconds(kSteady) << " s after a "
            << seconds(kSettle) << " s settle; ";
  if (opt.trials) {
    std::cout << *opt.trials << " trials (--trials)\n\n";
  } else {
    std::cout << kTrials << " trials for N <= " << kLargeCluster << ", " << kTrialsLarge
              << " above (fewer, for wall time)\n\n";
  }

  std::vector<std::vector<std::string>> rows{{"N", "loss", "trials", "T_D med ms", "T_D max ms",
                                              "first med ms", "mistakes", "T_MR h", "T_M ms", "P_A",
                                              "msgs/node/s", "sim s", "wall s"}};
  for (const auto& r : results) rows.push_back(row_of(r));
  print_table(rows);

  std::cout << "\nT_D: crash -> every other up node holds it dead; first: crash -> the first "
               "node does.\n"
               "mistakes: dead verdicts about members that were up (whole run, join "
               "included); T_MR = 1/λ_M,\n"
               "  λ_M = mistakes per observer node-hour of simulated time; T_M = mean time "
               "from a false dead\n"
               "  verdict to the same observer holding the member alive again.\n"
               "P_A: fraction of (observer, other member) pairs held alive (suspect counts "
               "as not alive),\n"
               "  sampled every 100 ms of the steady phase. msgs/node/s: datagrams sent "
               "(lost ones included)\n"
               "  in the steady phase. false suspicions: suspect states entered by any "
               "observer about an up member.\n\n";
  for (const auto& r : results) {
    std::cout << "N=" << r.plan.n << " loss " << percent(r.plan.loss) << ": converged "
              << (r.converged ? "after " + fixed(seconds(r.converge_time), 1) + " s" : "NOT")
              << ", false suspicions " << r.false_suspicions << ", observer node-hours "
              << fixed(r.node_hours, 2);
    const auto med_max = [](const std::vector<Duration>& v) {
      return fixed(seconds(median(v)), 2) + "/" +
             fixed(seconds(*std::max_element(v.begin(), v.end())), 2) + " s";
    };
    if (!r.detection.empty()) {
      std::vector<Duration> spread;
      for (std::size_t k = 0; k < r.detection.size(); ++k) {
        spread.push_back(r.detection[k] - r.first_detection[k]);
      }
      std::cout << ";\n  first detection max "
                << fixed(ms(*std::max_element(r.first_detection.begin(), r.first_detection.end())),
                         0)
                << " ms; first -> all: median/max " << fixed(ms(median(spread)), 0) << "/"
                << fixed(ms(*std::max_element(spread.begin(), spread.end())), 0) << " ms";
    }
    if (!r.seen_alive.empty()) {
      std::cout << ";\n  restart -> seen alive by all: median/max " << med_max(r.seen_alive);
    }
    if (!r.relearned.empty()) {
      std::cout << "; restart -> knows all " << r.plan.n << " members: median/max "
                << med_max(r.relearned);
    }
    if (r.mistakes_in_join) std::cout << "; mistakes during the join " << r.mistakes_in_join;
    if (r.mistakes_unresolved) std::cout << "; mistakes never undone " << r.mistakes_unresolved;
    if (r.not_seen_alive) std::cout << "; restarts not seen alive in 30 s: " << r.not_seen_alive;
    if (r.not_relearned) {
      std::cout << "; restarts not knowing everyone in 300 s: " << r.not_relearned;
    }
    if (r.undetected) std::cout << "; crashes not seen dead by all in 30 s: " << r.undetected;
    if (r.view_mismatches) std::cout << "; VIEW LOG MISMATCHES " << r.view_mismatches;
    std::cout << '\n';
  }
  return 0;
}
