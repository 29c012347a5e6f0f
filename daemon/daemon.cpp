#include "daemon/daemon.h"

#include <boost/asio/ip/udp.hpp>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <random>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "heartbeatd/version.h"
#include "transport/api_routes.h"
#include "transport/log.h"
#include "transport/member_routes.h"
#include "transport/presence_routes.h"

namespace heartbeatd {

namespace {

// SIGTERM must end the process within 2 s even if a connection refuses to wind down.
constexpr std::chrono::milliseconds kStopDeadline{1500};
constexpr std::chrono::milliseconds kPresenceTick{100};

transport::HttpServerLimits limits_from(const Config::Api& api) {
  return {api.max_body_bytes, api.max_header_bytes, api.max_connections, api.read_timeout,
          api.idle_timeout};
}

membership::ProtocolTimings timings_from(const Config::Membership& m) {
  membership::ProtocolTimings t;
  t.interval = m.interval;
  t.miss_threshold = m.miss_threshold;
  t.probe_timeout = m.probe_timeout;
  t.suspicion_timeout = m.suspicion_timeout;
  t.suspicion_max_timeout = m.suspicion_max_timeout;
  t.monitors = m.monitors;
  t.indirect_checks = m.indirect_checks;
  t.gossip_fanout = m.gossip_fanout;
  t.retransmit_mult = m.retransmit_mult;
  t.sync_interval = m.sync_interval;
  t.reconnect_interval = m.reconnect_interval;
  t.reap_after = m.reap_after;
  t.max_members = m.max_members;
  if (m.detector == MachineDetector::phi_accrual) {
    membership::PhiAccrualParams p;
    p.threshold = m.phi.threshold;
    p.window = m.phi.window;
    p.min_std_dev = m.phi.min_std_dev;
    p.acceptable_pause = m.phi.acceptable_pause;
    p.suspicion_timeout = m.suspicion_timeout;
    t.phi = p;
  }
  return t;
}

// Resolves a configured host:port (IP literal or DNS name) to the first UDP address.
std::optional<membership::Address> resolve(const HostPort& hp, std::string* why) {
  boost::asio::io_context io;
  boost::asio::ip::udp::resolver resolver(io);
  boost::system::error_code ec;
  auto results = resolver.resolve(hp.host, std::to_string(hp.port), ec);
  if (ec || results.empty()) {
    *why = ec ? ec.message() : "no address";
    return std::nullopt;
  }
  return transport::to_address(results.begin()->endpoint());
}

}  // namespace

Daemon::Daemon(Config config, std::optional<std::string> config_path)
    : io_(static_cast<int>(config.api.threads)),
      strand_(boost::asio::make_strand(io_)),
      signals_(strand_, SIGTERM, SIGINT, SIGHUP),
      started_(clock_.now()),
      config_(std::make_shared<const Config>(std::move(config))),
      config_path_(std::move(config_path)),
      presence_(std::make_unique<membership::PresenceTable>(
          membership::PresenceOptions{config_->presence.timeout, config_->presence.forget_after,
                                      config_->presence.max_users},
          started_)),
      presence_timer_(strand_),
      server_(io_, router_, limits_from(config_->api)) {
  transport::add_health_routes(router_, {config_->node.name, &clock_, started_});
  transport::add_presence_routes(router_, {presence_.get(), &clock_, config_->presence.max_batch,
                                           config_->presence.max_users});
  transport::add_member_routes(
      router_, {[this] { return cluster_->members(); },
                [this](std::string_view name) { return cluster_->member(name); }, &clock_});
}

int Daemon::start_cluster() {
  const auto& c = config_->cluster;
  transport::ClusterOptions o;
  o.node_name = config_->node.name;
  o.cluster_name = c.name;
  o.bind_host = c.bind.host;
  o.bind_port = c.bind.port;
  o.timings = timings_from(config_->membership);
  std::string why;
  if (c.advertise) {
    o.advertise = resolve(*c.advertise, &why);
    if (!o.advertise) {
      log::error("cluster.advertise {}: {}", c.advertise->to_string(), why);
      return kExitUsage;
    }
  }
  for (const auto& seed : c.seeds) {
    if (auto a = resolve(seed, &why)) {
      o.seeds.push_back(*a);
    } else {
      log::warning("cluster.seeds: {}: {}; skipped", seed.to_string(), why);
    }
  }
  if (!c.key_file.empty()) {
    o.key = transport::read_key_file(c.key_file, &why);
    if (!o.key) {
      log::error("cluster.key_file {}", why);
      return kExitUsage;
    }
  }
  cluster_ =
      std::make_unique<transport::ClusterTransport>(std::move(o), clock_, std::random_device{}());
  try {
    cluster_->start();
  } catch (const std::exception& e) {
    log::error("cluster.bind: {}", e.what());
    return kExitRuntime;
  }
  return kExitOk;
}

void Daemon::do_presence_tick() {
  // Every 100ms: the online count follows users crossing the timeout, and one shard of 256
  // is swept for users past forget_after (the whole table every ~26s).
  presence_timer_.expires_at(presence_timer_.expiry() + kPresenceTick);
  presence_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    const auto now = clock_.now();
    presence_->advance(now);
    presence_->sweep(now, 1);
    do_presence_tick();
  });
}

bool Daemon::prepare_data_dir() {
  namespace fs = std::filesystem;
  const std::string& dir = config_->node.data_dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    log::error("node.data_dir {}: cannot create: {}", dir, ec.message());
    return false;
  }
  if (!fs::is_directory(dir, ec)) {
    log::error("node.data_dir {}: not a directory", dir);
    return false;
  }
  return true;
}

bool Daemon::open_listeners() {
  const auto& api = config_->api;
  try {
    if (api.http) server_.listen_tcp(api.http->host, api.http->port);
  } catch (const std::exception& e) {
    log::error("api.http: {}", e.what());
    return false;
  }
  try {
    if (!api.unix_socket.empty()) server_.listen_unix(api.unix_socket);
  } catch (const std::exception& e) {
    log::error("api.unix_socket: {}", e.what());
    return false;
  }
  return true;
}

int Daemon::run() {
  log::set_level(config_->log.level);
  log::info("heartbeatd {} starting: node {}, {} API threads", kVersion, config_->node.name,
            config_->api.threads);
  if (!prepare_data_dir() || !open_listeners()) {
    server_.stop();
    return kExitRuntime;
  }
  if (const int code = start_cluster(); code != kExitOk) {
    server_.stop();
    return code;
  }
  server_.start();
  do_await_signal();
  presence_timer_.expires_after(std::chrono::milliseconds(0));
  do_presence_tick();
  notifier_.start_watchdog(strand_);

  std::string listening;
  for (const auto& ep : server_.endpoints())
    listening.append(listening.empty() ? "" : ", ").append(ep);
  log::info("ready: API on {}, cluster on UDP {}", listening, cluster_->local_endpoint());
  notifier_.ready("serving the API on " + listening);

  std::vector<std::thread> threads;
  for (unsigned i = 1; i < config_->api.threads; ++i) threads.emplace_back([this] { io_.run(); });
  io_.run();
  for (auto& t : threads) t.join();
  {
    std::lock_guard lock(stop_mu_);
    io_done_ = true;
  }
  stop_cv_.notify_all();
  if (stop_guard_.joinable()) stop_guard_.join();
  log::info("stopped");
  return kExitOk;
}

void Daemon::do_await_signal() {
  signals_.async_wait([this](const boost::system::error_code& ec, int signal) {
    if (ec) return;  // cancelled while stopping
    if (signal == SIGHUP) {
      reload();
      do_await_signal();
    } else {
      begin_stop(signal);
    }
  });
}

void Daemon::begin_stop(int signal) {
  log::info("{} received: stopping", signal == SIGINT ? "SIGINT" : "SIGTERM");
  notifier_.stopping();
  notifier_.stop_watchdog();
  cluster_->leave_and_stop();  // peers see "left" now, not "dead" later
  boost::system::error_code ignored;
  signals_.cancel(ignored);
  presence_timer_.cancel();
  server_.stop();
  // Everything above lets run() return on its own once connections close. The guard bounds
  // that; it is a thread rather than a timer because a pending timer would itself keep run()
  // from returning.
  stop_guard_ = std::thread([this] {
    std::unique_lock lock(stop_mu_);
    if (!stop_cv_.wait_for(lock, kStopDeadline, [this] { return io_done_; })) {
      log::warning("connections did not close within {}ms; stopping anyway", kStopDeadline.count());
      io_.stop();
    }
  });
}

void Daemon::reload() {
  if (!config_path_) {
    log::info("SIGHUP: running on built-in defaults (no --config); nothing to reload");
    return;
  }
  notifier_.reloading();
  auto loaded = load_config_file(*config_path_);
  if (auto* err = std::get_if<ConfigError>(&loaded)) {
    log::error("SIGHUP: new config rejected, the running config stays in force: {}", err->message);
    notifier_.ready("reload rejected: config invalid");
    return;
  }
  ReloadPlan plan = plan_reload(*config_, std::get<Config>(loaded));
  if (plan.error) {
    log::error("SIGHUP: new config rejected, the running config stays in force: {}", *plan.error);
    notifier_.ready("reload rejected: config invalid");
    return;
  }
  for (const auto& change : plan.applied) log::info("SIGHUP: applied {}", change);
  for (const auto& change : plan.needs_restart) {
    log::warning("SIGHUP: needs a restart, not applied: {}", change);
  }
  if (plan.applied.empty() && plan.needs_restart.empty()) log::info("SIGHUP: config unchanged");
  if (std::any_of(plan.applied.begin(), plan.applied.end(),
                  [](const std::string& c) { return c.starts_with("membership."); })) {
    cluster_->set_timings(timings_from(plan.effective.membership));
  }
  if (plan.effective.presence.timeout != config_->presence.timeout) {
    presence_->set_timeout(plan.effective.presence.timeout, clock_.now());
  }
  config_ = std::make_shared<const Config>(std::move(plan.effective));
  log::set_level(config_->log.level);
  notifier_.ready("config reloaded");
}

}  // namespace heartbeatd
