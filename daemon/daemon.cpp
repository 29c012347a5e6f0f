#include "daemon/daemon.h"

#include <unistd.h>

#include <boost/asio/ip/udp.hpp>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <thread>
#include <variant>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "base/log.h"
#include "base/wall_clock.h"
#include "base/wall_time.h"
#include "heartbeatd/version.h"
#include "transport/api/access.h"
#include "transport/api/api_routes.h"
#include "transport/api/cluster_routes.h"
#include "transport/api/key_routes.h"
#include "transport/api/member_routes.h"
#include "transport/presence/memory_store.h"
#include "transport/api/presence_routes.h"
#include "transport/presence/dynamodb_store.h"
#include "transport/presence/redis_store.h"
#include "transport/api/socket_dir.h"
#include "transport/api/rate_limiter.h"
#include "transport/api/reload_routes.h"
#include "transport/api/tls_context.h"
#include "transport/api/ui_routes.h"

namespace heartbeatd {

namespace {

// SIGTERM must end the process within 2 s even if a connection refuses to wind down.
constexpr std::chrono::milliseconds kStopDeadline{1500};

transport::TlsFiles tls_files(const Config::Api::Tls& t) {
  return {t.cert_file, t.key_file, t.client_ca_file};
}

// Resolves cluster.advertise (IP literal or DNS name) to its first UDP address, once.
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

// The API's access policy from api.tokens_file (read now) and api.unix_scopes; null when
// neither is set (every caller has every scope, at no cost per request).
// `tokens` (optional) receives the entries read, for a reload to tell whether they changed.
std::variant<std::shared_ptr<const transport::AccessPolicy>, std::string> make_access(
    const Config& c, std::vector<transport::TokenEntry>* tokens = nullptr) {
  transport::AccessPolicy::Options o;
  o.unix_scopes = c.api.unix_scopes;
  o.own_uid = static_cast<unsigned>(getuid());
  if (!c.api.tokens_file.empty()) {
    auto loaded = transport::load_tokens_file(c.api.tokens_file);
    if (auto* e = std::get_if<transport::TokensError>(&loaded)) {
      return "api.tokens_file " + e->message;
    }
    o.tokens = std::move(std::get<std::vector<transport::TokenEntry>>(loaded));
    if (tokens) *tokens = *o.tokens;
  }
  if (!o.tokens && o.unix_scopes.empty()) return std::shared_ptr<const transport::AccessPolicy>();
  return std::make_shared<const transport::AccessPolicy>(std::move(o));
}

// "log.level: info -> debug" -> "log.level" (ReloadPlan's changes start with their key).
std::string change_key(const std::string& change) {
  return change.substr(0, change.find(':'));
}

bool same_tokens(const std::vector<transport::TokenEntry>& a,
                 const std::vector<transport::TokenEntry>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
    return x.name == y.name && x.scopes == y.scopes && x.digest == y.digest;
  });
}

// "6d2f0e9a41c3b8d7,0b44ac19e0f2d3a6" (the sealing key first), or "none".
std::string fingerprints_text(const std::vector<std::string>& fps) {
  return fps.empty() ? std::string("none") : fmt::format("{}", fmt::join(fps, ","));
}

// Tells whether the TLS files changed between reloads, without keeping their contents: a
// hash of the three files' bytes (a file that cannot be read counts as empty).
std::size_t tls_files_digest(const Config::Api::Tls& t) {
  std::string all;
  for (const auto* path : {&t.cert_file, &t.key_file, &t.client_ca_file}) {
    if (path->empty()) continue;
    std::ifstream in(*path, std::ios::binary);
    all.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    all.push_back('\0');
  }
  const std::size_t digest = std::hash<std::string>{}(all);
  std::fill(all.begin(), all.end(), '\0');  // held a private key
  return digest;
}

void log_access(const Config& c, const transport::AccessPolicy* policy, std::string_view when) {
  if (!policy) return;
  if (policy->has_tokens()) {
    log::info("{}API tokens: {} from {}; every TCP request needs one", when, policy->token_count(),
              c.api.tokens_file);
  }
  for (const auto& r : c.api.unix_scopes) {
    log::info("{}api.unix_scopes: {} -> [{}]", when, r.source,
              transport::scopes_to_string(r.scopes));
  }
}

}  // namespace

Daemon::Daemon(Config config, std::optional<std::string> config_path)
    : io_(static_cast<int>(config.api.threads)),
      strand_(boost::asio::make_strand(io_)),
      signals_(strand_, SIGTERM, SIGINT, SIGHUP),
      started_(clock_.now()),
      config_(std::make_shared<const Config>(std::move(config))),
      config_path_(std::move(config_path)),
      presence_(make_presence_store()),
      events_(std::make_unique<transport::EventHub>(transport::EventHubOptions{
          presence_.get(),
          [] { return SystemWallClock::instance().unix_us() / 1000; },
          // Streams never take more than half the connections: requests need the rest.
          std::min(config_->events.max_subscribers,
                   std::max<std::size_t>(1, config_->api.limits.max_connections / 2)),
          config_->events.max_watched_users,
          config_->events.max_queue_bytes})),
      hooks_(std::make_unique<HookRunner>(HookOptions{
          config_->hooks.on_member_change, config_->hooks.on_user_change, config_->node.name,
          config_->hooks.max_concurrent, config_->hooks.timeout, config_->hooks.max_queue})),
      server_(io_, router_, config_->api.server_limits(), config_->api.threads) {
  transport::add_health_routes(
      router_, {config_->node.name, &clock_, started_, [this, dir = config_->node.data_dir] {
                  transport::PersistenceHealth h;
                  h.data_dir = dir;
                  if (!snapshotter_) return h;
                  const auto st = snapshotter_->stats();
                  h.last_snapshot_ms = st.last_ms;
                  h.last_snapshot_users = st.users;
                  h.last_snapshot_bytes = st.bytes;
                  h.last_snapshot_duration_ms = static_cast<std::uint64_t>(st.duration.count());
                  h.disk_bytes = st.disk_bytes;
                  h.failures = st.failures;
                  h.last_error = st.last_error;
                  return h;
                },
                [this] {
                  std::lock_guard lock(warnings_mu_);
                  return warnings_;
                },
                [this] { return presence_->health(); }, config_->presence.max_batch});
  transport::add_presence_routes(router_, {presence_.get(), config_->presence.max_batch,
                                           presence_counters_, count_history_});
  transport::add_member_routes(
      router_, {[this] { return cluster_->members(); },
                [this](std::string_view name) { return cluster_->member(name); }, &clock_});
  transport::add_key_routes(router_, [this] { return cluster_->key_usage(); });
  // A join waits for answers well within the connection's read timeout.
  transport::add_cluster_routes(
      router_,
      {[this](std::vector<transport::SeedHost> targets, membership::Duration wait,
              std::function<void(transport::JoinReport)> done) {
         cluster_->join(std::move(targets), wait, std::move(done));
       },
       [this](std::string name, bool prune) { return cluster_->force_leave(std::move(name), prune); },
       std::min<membership::Duration>(std::chrono::seconds(2), config_->api.limits.read_timeout / 2)});
  transport::add_event_routes(router_, *events_, config_->events.max_watched_users);
  transport::add_metrics_route(router_, [this](MetricsWriter& w) { write_metrics(w); });
  transport::add_ui_routes(router_);
  // On the strand, like SIGHUP: reloads never overlap, whoever asks for them.
  transport::add_reload_route(router_, [this](std::function<void(transport::ReloadOutcome)> done) {
    boost::asio::post(strand_, [this, done = std::move(done)] { done(reload("POST /v1/reload")); });
  });
}

Daemon::~Daemon() {
  // The snapshot thread reads cluster_: stop it before cluster_ goes (on every path; a
  // normal stop has stopped it already). cluster_, which feeds events_ and hooks_, is
  // declared after them, so it stops first.
  if (snapshotter_) snapshotter_->stop();
}

int Daemon::start_cluster() {
  const auto& c = config_->cluster;
  transport::ClusterOptions o;
  o.node_name = config_->node.name;
  o.cluster_name = c.name;
  o.bind_host = c.bind.host;
  o.bind_port = c.bind.port;
  o.timings = config_->membership.protocol_timings();
  o.tags = config_->node.tags;
  std::string why;
  if (c.advertise) {
    o.advertise = resolve(*c.advertise, &why);
    if (!o.advertise) {
      log::error("cluster.advertise {}: {}", c.advertise->to_string(), why);
      return kExitUsage;
    }
  }
  // Names are looked up by the transport, again at every join attempt round: a seed missing
  // from DNS at start is found later, and start-up never waits for DNS.
  for (const auto& seed : c.seeds) o.seeds.push_back({seed.host, seed.port});
  if (!c.key_file.empty()) {
    auto keys = transport::read_key_file(c.key_file, &why);
    if (!keys) {
      log::error("cluster.key_file {}", why);
      return kExitUsage;
    }
    o.keys = std::move(*keys);
  }
  o.seal_policy = {c.sends_sealed(), c.requires_sealed()};
  // The incarnation to start at is written before the node can use it: a crash right after
  // start-up must not bring it back at a number peers have already seen.
  o.restored_incarnation = restored_.incarnation;
  o.restored_members = std::move(restored_.members);
  if (auto err = store_->write(
          {persist::SelfRecord{config_->node.name, restored_.incarnation}, std::nullopt})) {
    log::error("node.data_dir: {}", *err);
    return kExitDataUnusable;
  }
  o.on_incarnation = [this](std::uint64_t) {
    if (snapshotter_) snapshotter_->request_membership();
  };
  o.on_member_change = [this](const membership::MemberInfo& m,
                              std::optional<membership::MemberState> before) {
    events_->member_changed(m, before);
  };
  o.on_member_forgotten = [this](const std::string& name) { events_->member_forgotten(name); };
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

int Daemon::open_store() {
  const std::string& dir = config_->node.data_dir;
  // Parents are created for the built-in default path only; a configured one must have its
  // parent already, so a typo is reported instead of becoming a new tree.
  const bool is_default = dir == default_config().node.data_dir;
  auto opened = persist::Store::open(dir, {.create_parents = is_default});
  auto exit_code = [](persist::StoreErrorKind k) {
    switch (k) {
      case persist::StoreErrorKind::unusable:
        return kExitDataUnusable;
      case persist::StoreErrorKind::locked:
        return kExitDataLocked;
      case persist::StoreErrorKind::corrupted:
        return kExitDataCorrupted;
      case persist::StoreErrorKind::incompatible:
        return kExitDataIncompatible;
    }
    return kExitRuntime;
  };
  if (auto* err = std::get_if<persist::StoreError>(&opened)) {
    log::error("node.data_dir {}", err->message);
    return exit_code(err->kind);
  }
  store_ = std::move(std::get<std::unique_ptr<persist::Store>>(opened));

  const auto t0 = std::chrono::steady_clock::now();
  const auto now = clock_.now();
  const persist::WallConverter wall(now, *wall_anchor_);
  membership::PresenceTable::RestoreResult users;
  // A store that keeps users elsewhere (Redis) has none of this node's to restore.
  membership::PresenceTable* table = presence_->local_table();
  auto loaded = store_->load([&](std::vector<persist::UserRecord>& chunk) {
    if (!table) return;
    const auto r = table->restore(persist::to_table_records(chunk, wall), now);
    users.restored += r.restored;
    users.forgotten += r.forgotten;
    users.over_limit += r.over_limit;
  });
  if (auto* err = std::get_if<persist::StoreError>(&loaded)) {
    log::error("node.data_dir {}", err->message);
    return exit_code(err->kind);
  }
  if (auto err = store_->begin_writing()) {
    log::error("node.data_dir {}", err->message);
    return exit_code(err->kind);
  }
  const auto& state = std::get<persist::LoadedState>(loaded);
  if (state.self && state.self->name != config_->node.name) {
    log::warning("node.data_dir {}: written by node {}, this is {}: its incarnation is not reused",
                 dir, state.self->name, config_->node.name);
  }
  restored_ = persist::restore_membership(state, config_->node.name, wall);
  if (restored_.unreadable) {
    log::warning("node.data_dir {}: {} persisted members with an unreadable address skipped", dir,
                 restored_.unreadable);
  }
  const auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  if (!state.self && !state.presence) {
    log::info("node.data_dir {}: new state (format {})", dir, state.format);
  } else {
    log::info(
        "node.data_dir {}: restored {} members, incarnation {}, {} users ({} online) from the "
        "snapshot of {} ms ago in {} ms; {} past forget_after, {} over presence.max_users",
        dir, restored_.members.size(), restored_.incarnation, users.restored,
        table ? table->counts(now).online : 0,
        state.presence ? wall.to_unix_ms(now) - state.presence->taken_ms : 0, took.count(),
        users.forgotten, users.over_limit);
  }
  return kExitOk;
}

bool Daemon::open_listeners() {
  const auto& api = config_->api;
  std::shared_ptr<boost::asio::ssl::context> tls;
  if (api.tls.enabled()) {
    std::string why;
    auto made = transport::make_server_tls_context(tls_files(api.tls), &why);
    if (!made.context) {  // the config check read the same files a moment ago
      log::error("{}", why);
      return false;
    }
    log::info("api.http serves HTTPS{}: {}", made.mutual ? " with client certificates" : "",
              made.identity.to_string());
    tls_digest_ = tls_files_digest(api.tls);
    tls = std::move(made.context);
  }
  try {
    if (api.http) server_.listen_tcp(api.http->host, api.http->port, std::move(tls));
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

std::unique_ptr<transport::PresenceStore> Daemon::make_presence_store() {
  const auto& p = config_->presence;
  if (p.backend == PresenceBackend::memory) {
    presence_description_ = fmt::format("in memory (at most {} users)", p.max_users);
    return std::make_unique<transport::MemoryPresenceStore>(
        io_, membership::PresenceOptions{p.timeout, p.forget_after, p.max_users}, clock_,
        wall_anchor_);
  }
  if (p.backend == PresenceBackend::dynamodb) return make_dynamodb_store();
  const auto& r = p.redis;
  transport::redis::PresenceOptions o;
  for (const auto& n : r.nodes) o.nodes.push_back({n.host, n.port});
  o.cluster = r.cluster;
  o.username = r.username;
  if (!r.password_file.empty()) {
    std::string why;
    if (auto secret = read_secret_file(r.password_file, &why)) {
      o.password = std::move(*secret);
    } else {
      presence_setup_error_ =
          fmt::format("presence.redis.password_file {}: {}", r.password_file, why);
    }
  }
  o.key_prefix = r.key_prefix;
  o.shards = r.shards;
  o.pool.min = r.pool.min;
  o.pool.max = r.pool.max;
  o.pool.wait = r.pool.wait;
  o.pool.idle_timeout = r.pool.idle_timeout;
  o.pool.max_waiters = r.pool.max_waiters;
  o.pool.connect_timeout = r.timeout;
  o.command_timeout = r.timeout;
  // With the config rule 2 x (wait + timeout) <= api.read_timeout, a request is answered
  // (503 at worst) before the server's 504 safety net.
  o.request_deadline = r.pool.wait + r.timeout;
  o.dedup_window = r.dedup_window;
  o.sweep_interval = r.sweep_interval;
  o.timeout = p.timeout;
  o.forget_after = p.forget_after;
  o.node_name = config_->node.name;  // in its sweeper leases, so an operator sees who sweeps
  std::string nodes;
  for (const auto& n : r.nodes) nodes.append(nodes.empty() ? "" : ", ").append(n.to_string());
  presence_description_ =
      fmt::format("on Redis{} at {} (key prefix {}, {} shards, pool {}..{})",
                  r.cluster ? " Cluster" : "", nodes, r.key_prefix, r.shards, r.pool.min, r.pool.max);
  // Nodes sharing Redis compare last-seen times written by each other: the system clock,
  // kept in step by NTP, is the only clock they share (docs/REDIS.md).
  return std::make_unique<transport::RedisPresenceStore>(
      io_, std::move(o), [] { return SystemWallClock::instance().unix_us(); });
}

std::unique_ptr<transport::PresenceStore> Daemon::make_dynamodb_store() {
  const auto& p = config_->presence;
  const auto& d = p.dynamodb;
  auto env = [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    return v ? std::optional<std::string>(v) : std::nullopt;
  };
  transport::DynamoPresenceOptions o;
  o.table = d.table;
  o.client.region = d.region;
  if (o.client.region.empty()) o.client.region = env("AWS_REGION").value_or(env("AWS_DEFAULT_REGION").value_or(""));
  std::string endpoint = d.endpoint;
  if (endpoint.empty() && !o.client.region.empty())
    endpoint = fmt::format("https://dynamodb.{}.amazonaws.com", o.client.region);
  std::string why;
  o.client.pool.endpoint = transport::aws::Endpoint::parse(endpoint, &why);
  if (o.client.region.empty()) {
    presence_setup_error_ =
        "presence.backend is dynamodb but no region is set: set presence.dynamodb.region (or "
        "AWS_REGION in the daemon's environment)";
  } else if (o.client.pool.endpoint.host.empty()) {
    presence_setup_error_ = fmt::format("presence.dynamodb.endpoint: {}", why);
  }
  o.client.pool.ca_file = d.ca_file;
  o.client.pool.min = d.pool.min;
  o.client.pool.max = d.pool.max;
  o.client.pool.wait = d.pool.wait;
  o.client.pool.idle_timeout = d.pool.idle_timeout;
  o.client.pool.max_waiters = d.pool.max_waiters;
  o.client.pool.connect_timeout = d.timeout;
  o.client.attempt_timeout = d.timeout;
  // With the config rule 2 x (wait + timeout) <= api.read_timeout, a request is answered
  // (503 at worst) before the server's 504 safety net.
  o.request_deadline = d.pool.wait + d.timeout;
  o.dedup_window = d.dedup_window;
  o.watch_interval = d.watch_interval;
  o.count_users = d.count_interval.count() > 0;  // 0: never scan
  o.count_interval = d.count_interval;
  o.timeout = p.timeout;
  o.forget_after = p.forget_after;
  transport::aws::CredentialOptions co;
  co.profile = d.profile;
  co.env = env;
  if (presence_setup_error_.empty()) {
    if (auto creds = transport::aws::resolve_credentials(co, &why)) {
      o.credentials = std::move(*creds);
    } else {
      presence_setup_error_ = fmt::format("presence.backend is dynamodb: {}", why);
    }
  }
  o.refresh_credentials = [co](std::string* why) { return transport::aws::resolve_credentials(co, why); };
  presence_description_ = fmt::format(
      "on DynamoDB table {} at {} (region {}, credentials from {}, pool {}..{})", d.table,
      o.client.pool.endpoint.to_string(), o.client.region, o.credentials.source, d.pool.min,
      d.pool.max);
  o.create_table = d.create_table;
  presence_prepare_ = [o]() -> std::string {
    const auto check = transport::prepare_dynamodb_table(o, std::chrono::seconds(10));
    for (const auto& n : check.notes) log::info("{}", n);
    for (const auto& w : check.warnings) log::warning("{}", w);
    return check.error;
  };
  // Nodes sharing the table compare last-seen times written by each other: the system
  // clock, kept in step by NTP, is the only clock they share (as on Redis).
  return std::make_unique<transport::DynamoPresenceStore>(
      io_, std::move(o), [] { return SystemWallClock::instance().unix_us(); });
}

int Daemon::run() {
  log::set_level(config_->log.level);
  log::set_format(config_->log.format);
  log::info("heartbeatd {} starting: node {}, {} API threads", kVersion, config_->node.name,
            config_->api.threads);
  if (!presence_setup_error_.empty()) {
    log::error("{}", presence_setup_error_);
    return kExitUsage;
  }
  if (presence_prepare_) {
    if (const auto error = presence_prepare_(); !error.empty()) {
      log::error("{}", error);
      return kExitUsage;
    }
  }
  // Before the store: the default data_dir may lie in the socket's directory, which must be
  // ours before anything goes in it.
  if (!config_->api.unix_socket.empty()) {
    if (auto why = transport::prepare_socket_dir(config_->api.unix_socket)) {
      log::error("api.unix_socket {}: {}", config_->api.unix_socket, *why);
      return kExitSocketDirUnsafe;
    }
  }
  {
    auto access = make_access(*config_, &tokens_);
    if (auto* why = std::get_if<std::string>(&access)) {
      log::error("{}", *why);
      return kExitUsage;
    }
    auto& policy = std::get<std::shared_ptr<const transport::AccessPolicy>>(access);
    log_access(*config_, policy.get(), "");
    router_.set_access(std::move(policy));
    if (const auto& rl = config_->api.rate_limit; rl.requests_per_second > 0) {
      router_.set_rate_limiter(
          std::make_shared<transport::RateLimiter>(transport::RateLimiter::Options{
              rl.requests_per_second, rl.effective_burst(), rl.max_clients}));
      log::info("API rate limit: {} requests/s, burst {}, per token or client",
                rl.requests_per_second, rl.effective_burst());
    }
  }
  if (const int code = open_store(); code != kExitOk) return code;
  if (!open_listeners()) {
    server_.stop();
    return kExitRuntime;
  }
  // Made before the cluster starts: its thread may ask for a membership write (a refutation)
  // at once. The snapshot thread starts after, since it reads cluster_.
  snapshotter_ = std::make_unique<persist::Snapshotter>(
      *store_, presence_->local_table(), clock_, wall_anchor_,
      [this, name = config_->node.name]() -> std::optional<persist::MembershipView> {
        return persist::MembershipView{name, cluster_->incarnation(), cluster_->members()};
      },
      config_->persist.presence_interval);
  if (const int code = start_cluster(); code != kExitOk) {
    server_.stop();
    return code;
  }
  snapshotter_->start();
  set_security_warnings(security_warnings(*config_));
  events_->seed_members(cluster_->members());
  if (config_->hooks.on_user_change.empty() && !config_->hooks.users.empty()) {
    log::warning("hooks.users lists {} users but hooks.on_user_change is not set: ignored",
                 config_->hooks.users.size());
  }
  // After the restore: users online before a restart are not reported as coming online.
  if (!config_->hooks.on_member_change.empty() || !config_->hooks.on_user_change.empty()) {
    const auto& users = config_->hooks.on_user_change.empty() ? std::vector<std::uint64_t>{}
                                                              : config_->hooks.users;
    hooks_->start();                         // its workers exist before any event reaches it
    events_->set_sink(hooks_.get(), users);  // within events.max_watched_users (config check)
  }
  presence_->start();
  log::info("presence {}", presence_description_);
  server_.start();
  do_await_signal();

  std::string listening;
  for (const auto& ep : server_.endpoints())
    listening.append(listening.empty() ? "" : ", ").append(ep);
  log::info("ready: API on {}, cluster on UDP {}", listening, cluster_->local_endpoint());
  notifier_.ready("serving the API on " + listening);
  notifier_.start_watchdog(strand_);  // keep-alives follow READY=1
  boost::asio::post(strand_, [this] { do_sample_history(); });

  std::vector<std::thread> threads;
  for (unsigned i = 1; i < config_->api.threads; ++i) threads.emplace_back([this] { io_.run(); });
  io_.run();
  for (auto& t : threads) t.join();
  server_.join();  // the API's own loops end as their connections close
  {
    std::lock_guard lock(stop_mu_);
    io_done_ = true;
  }
  stop_cv_.notify_all();
  if (stop_guard_.joinable()) stop_guard_.join();
  return finish_stop();
}

// After the API and the cluster stopped: nothing can change any more, so the last snapshot
// holds everything.
int Daemon::finish_stop() {
  snapshotter_->stop();
  if (auto err = snapshotter_->snapshot_on_stop()) {
    log::error("stopped, but the final snapshot failed: {}", *err);
    return kExitRuntime;
  }
  const auto st = snapshotter_->stats();
  log::info("stopped; final snapshot: {} users, {} bytes, in {} ms", st.users, st.bytes,
            st.duration.count());
  return kExitOk;
}

void Daemon::do_await_signal() {
  signals_.async_wait([this](const boost::system::error_code& ec, int signal) {
    if (ec) return;  // cancelled while stopping
    if (signal == SIGHUP) {
      reload("SIGHUP");
      do_await_signal();
    } else {
      begin_stop(signal);
    }
  });
}

void Daemon::do_sample_history() {
  presence_->counts([history = count_history_](transport::StoreFailure f, transport::UserCounts c) {
    // A store that cannot count now (Redis down, DynamoDB counting off) leaves a gap.
    if (!f) history->add(SystemWallClock::instance().unix_us() / 1000, c);
  });
  // Re-armed from the last expiry, so samples do not drift; the first from now.
  const auto last = history_timer_.expiry();
  history_timer_.expires_at(
      (last == boost::asio::steady_timer::time_point{} ? boost::asio::steady_timer::clock_type::now()
                                                       : last) +
      count_history_->interval());
  history_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) do_sample_history();
  });
}

void Daemon::begin_stop(int signal) {
  log::info("{} received: stopping", signal == SIGINT ? "SIGINT" : "SIGTERM");
  stopping_ = true;
  notifier_.stopping();
  notifier_.stop_watchdog();
  cluster_->leave_and_stop();  // peers see "left" now, not "dead" later
  hooks_->stop();              // queued events dropped, running hooks killed
  boost::system::error_code ignored;
  signals_.cancel(ignored);
  history_timer_.cancel();
  server_.stop();
  // Requests still waiting for Redis lose their connection with the server's; stopping the
  // store ends its timers (and closes a remote store's connections).
  presence_->stop();
  // Everything above lets run() return on its own once connections close. The guard bounds
  // that; it is a thread rather than a timer because a pending timer would itself keep run()
  // from returning.
  stop_guard_ = std::thread([this] {
    std::unique_lock lock(stop_mu_);
    if (!stop_cv_.wait_for(lock, kStopDeadline, [this] { return io_done_; })) {
      log::warning("connections did not close within {}ms; stopping anyway", kStopDeadline.count());
      io_.stop();
      server_.halt();
    }
  });
}

void Daemon::set_security_warnings(std::vector<std::string> warnings) {
  for (const auto& w : warnings) log::warning("{}", w);
  std::lock_guard lock(warnings_mu_);
  warnings_ = std::move(warnings);
}

transport::ReloadOutcome Daemon::reload(std::string_view trigger) {
  using Result = transport::ReloadOutcome::Result;
  transport::ReloadOutcome out;
  auto reject = [&](std::string why, std::string_view notify) {
    out.result = Result::rejected;
    out.error = std::move(why);
    notifier_.ready(std::string(notify));
    return out;
  };
  if (stopping_) {
    out.result = Result::stopping;
    out.error = "the daemon is stopping";
    return out;
  }
  if (!config_path_) {
    log::info({{"reload", "unchanged"}},
              "{}: running on built-in defaults (no --config); nothing to reload", trigger);
    out.result = Result::no_config_file;
    out.error =
        "heartbeatd was started without --config and runs on built-in defaults: there is no "
        "file to re-read; restart it with --config FILE to change its configuration";
    return out;
  }
  notifier_.reloading();
  auto loaded = load_config_file(*config_path_);
  if (auto* err = std::get_if<ConfigError>(&loaded)) {
    log::error({{"reload", "rejected"}},
               "{}: new config rejected, the running config stays in force: {}", trigger,
               err->message);
    return reject(err->message, "reload rejected: config invalid");
  }
  ReloadPlan plan = plan_reload(*config_, std::get<Config>(loaded));
  if (plan.error) {
    log::error({{"reload", "rejected"}},
               "{}: new config rejected, the running config stays in force: {}", trigger,
               *plan.error);
    return reject(fmt::format("{}: {}", *config_path_, *plan.error),
                  "reload rejected: config invalid");
  }
  // The key file is re-read on every reload, changed path or not: rotating a key edits it.
  const auto& cluster = plan.effective.cluster;
  transport::Keyring keys;
  if (!cluster.key_file.empty()) {
    std::string why;
    auto read = transport::read_key_file(cluster.key_file, &why);
    if (!read) {
      log::error({{"reload", "rejected"}, {"config_key", "cluster.key_file"}},
                 "{}: new config rejected, the running config and keyring stay in force: "
                 "cluster.key_file {}",
                 trigger, why);
      return reject("cluster.key_file " + why, "reload rejected: cluster.key_file invalid");
    }
    keys = std::move(*read);
  }
  // So is the tokens file: adding or revoking a token edits it.
  std::vector<transport::TokenEntry> tokens;
  auto access = make_access(plan.effective, &tokens);
  if (auto* why = std::get_if<std::string>(&access)) {
    log::error(
        {{"reload", "rejected"}, {"config_key", "api.tokens_file"}},
        "{}: new config rejected, the running config and API tokens stay in force: "
        "{}",
        trigger, *why);
    return reject(*why, "reload rejected: api.tokens_file invalid");
  }
  // The certificate files too: a rotation replaces them in place. Open connections keep the
  // context they were made with; new ones get this one.
  transport::TlsContext tls;
  std::size_t tls_digest = 0;
  if (plan.effective.api.tls.enabled()) {
    std::string why;
    tls_digest = tls_files_digest(plan.effective.api.tls);
    tls = transport::make_server_tls_context(tls_files(plan.effective.api.tls), &why);
    if (!tls.context) {
      log::error({{"reload", "rejected"}, {"config_key", "api.tls"}},
                 "{}: new config rejected, the running config and TLS certificate stay in "
                 "force: {}",
                 trigger, why);
      return reject(why, "reload rejected: api.tls invalid");
    }
  }
  for (const auto& change : plan.applied) {
    log::info({{"reload", "applied"}, {"config_key", change_key(change)}}, "{}: applied {}",
              trigger, change);
  }
  for (const auto& change : plan.needs_restart) {
    log::warning({{"reload", "needs_restart"}, {"config_key", change_key(change)}},
                 "{}: needs a restart, not applied: {}", trigger, change);
  }
  out.applied = std::move(plan.applied);
  out.needs_restart = std::move(plan.needs_restart);
  // What the files named by unchanged paths brought, reported like the keys above.
  std::vector<std::string> old_fps;
  for (const auto& k : cluster_->key_usage().keys) old_fps.push_back(k.fingerprint);
  std::vector<std::string> new_fps;
  for (const auto& k : keys) new_fps.push_back(transport::fingerprint(k));
  if (new_fps != old_fps) {
    out.applied.push_back(fmt::format("cluster.key_file: keys {} -> {}",
                                      fingerprints_text(old_fps), fingerprints_text(new_fps)));
  }
  if (!same_tokens(tokens, tokens_)) {
    out.applied.push_back(fmt::format("api.tokens_file: tokens reloaded, {} in force (were {})",
                                      tokens.size(), tokens_.size()));
  }
  if (tls.context && tls_digest != tls_digest_) {
    out.applied.push_back("api.tls: certificate reloaded: " + tls.identity.to_string());
  }
  const bool envelope_changed =
      cluster_->set_keyring(std::move(keys), {cluster.sends_sealed(), cluster.requires_sealed()});
  if (out.applied.empty() && out.needs_restart.empty() && !envelope_changed && !tls.context) {
    log::info({{"reload", "unchanged"}}, "{}: config unchanged", trigger);
  }
  out.result = out.applied.empty() && out.needs_restart.empty() ? Result::unchanged
                                                                : Result::applied;
  tokens_ = std::move(tokens);
  auto& policy = std::get<std::shared_ptr<const transport::AccessPolicy>>(access);
  log_access(plan.effective, policy.get(), fmt::format("{}: ", trigger));
  router_.set_access(std::move(policy));
  if (tls.context) {
    tls_digest_ = tls_digest;
    server_.set_tls_context(std::move(tls.context));
    log::info("{}: TLS certificate (re)loaded for new connections: {}", trigger,
              tls.identity.to_string());
  }
  set_security_warnings(security_warnings(plan.effective));
  if (std::any_of(out.applied.begin(), out.applied.end(),
                  [](const std::string& c) { return c.starts_with("membership."); })) {
    cluster_->set_timings(plan.effective.membership.protocol_timings());
  }
  if (plan.effective.node.tags != config_->node.tags) cluster_->set_tags(plan.effective.node.tags);
  if (plan.effective.persist.presence_interval != config_->persist.presence_interval) {
    snapshotter_->set_interval(plan.effective.persist.presence_interval);
  }
  if (plan.effective.presence.timeout != config_->presence.timeout) {
    presence_->set_timeout(plan.effective.presence.timeout);
  }
  config_ = std::make_shared<const Config>(std::move(plan.effective));
  log::set_level(config_->log.level);
  log::set_format(config_->log.format);
  notifier_.ready("config reloaded");
  return out;
}

}  // namespace heartbeatd
