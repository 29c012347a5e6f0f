// Config: every tunable of heartbeatd, loaded from YAML (yaml-cpp) and validated before
// anything starts. The key table in config.cpp is the single source of truth for key names,
// types, ranges, defaults-as-text and which keys SIGHUP may change; examples/heartbeatd.yaml
// documents each key with its default and reason.
//
// Where a component has an options struct, Config holds that struct (api.limits,
// membership.timings, membership.phi, hooks) or takes its defaults from it (presence), so each
// default is written once, beside the component that obeys it.
//
// Thread safety: Config is a plain value. The daemon shares it as shared_ptr<const Config>.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "base/duration.h"
#include "base/host_port.h"
#include "base/log.h"
#include "daemon/hook_options.h"
#include "membership/detection.h"
#include "membership/presence_table.h"
#include "membership/protocol.h"
#include "transport/api/access.h"
#include "transport/api/http_limits.h"

namespace heartbeatd {

enum class MachineDetector { miss_threshold, phi_accrual };
enum class PresenceBackend { memory, redis, dynamodb };

struct Config {
  struct Node {
    std::string name;
    std::string data_dir;
    membership::Tags tags;  // node.tags: announced with this node, shown in member views
  } node;
  struct Api {
    std::optional<HostPort> http;  // nullopt (the default): no TCP listener
    // Accept api.http on a non-loopback address without TLS and tokens (a config error
    // otherwise): for a network that is trusted as a whole.
    bool insecure = false;
    std::string unix_socket;       // empty: no Unix-socket listener
    unsigned threads = 1;
    // api.max_body_bytes, max_header_bytes, max_connections, read_timeout, idle_timeout, and
    // events.keepalive (as stream_keepalive). Its max_connections_per_client and
    // unix_reserved_connections are only the defaults for a large max_connections: the
    // values in force are connections_per_client() and unix_reserve().
    transport::HttpServerLimits limits;
    // nullopt: the server's default, lowered to fit a small max_connections.
    std::optional<std::size_t> max_connections_per_client;
    std::optional<std::size_t> unix_reserved_connections;
    std::size_t connections_per_client() const;  // at most max_connections
    std::size_t unix_reserve() const;            // default: at most a quarter of it
    transport::HttpServerLimits server_limits() const;  // limits with the two values in force
    // Bearer tokens with scopes (docs/API.md, "Tokens and scopes"); empty: none, and TCP
    // callers have every scope. Re-read on every SIGHUP.
    std::string tokens_file;
    // Scopes of Unix-socket peers by uid/gid (names resolved at load); empty: every scope.
    std::vector<transport::UnixScopeRule> unix_scopes;
    struct RateLimit {
      double requests_per_second = 0;  // 0: off
      std::size_t burst = 0;           // 0: one second's worth (at least 1)
      std::size_t max_clients = 10'000;
      double effective_burst() const;
    } rate_limit;
    // HTTPS on api.http (docs/API.md, "Securing the API"). The files are re-read on SIGHUP.
    struct Tls {
      std::string cert_file;       // empty: plain HTTP
      std::string key_file;        // set exactly when cert_file is
      std::string client_ca_file;  // empty: no client certificates asked for
      bool enabled() const { return !cert_file.empty(); }
    } tls;
  } api;
  struct Cluster {
    std::string name = "heartbeatd";
    HostPort bind{"127.0.0.1", 7701};  // loopback: wider needs a key or plaintext
    std::optional<HostPort> advertise;
    std::vector<HostPort> seeds;
    std::string key_file;  // empty: no keyring, plain datagrams
    // nullopt: true with a key_file, false without (true without one is a config error).
    std::optional<bool> seal_outgoing;
    std::optional<bool> require_sealed;
    bool plaintext = false;  // accept a non-loopback bind without a key
    bool sends_sealed() const { return seal_outgoing.value_or(!key_file.empty()); }
    bool requires_sealed() const { return require_sealed.value_or(!key_file.empty()); }
  } cluster;
  struct Membership {
    // Every membership.* key but detector and phi.*. timings.phi stays unset here:
    // protocol_timings() sets it from detector and phi.
    membership::ProtocolTimings timings;
    MachineDetector detector = MachineDetector::miss_threshold;
    // membership.phi.*, kept whichever the detector; its suspicion_timeout is
    // membership.suspicion_timeout.
    membership::PhiAccrualParams phi;
    membership::ProtocolTimings protocol_timings() const;  // what the protocol runs with
  } membership;
  struct Presence {
    // Defaults: the in-memory table's (membership::PresenceOptions), which the Redis backend
    // shares.
    Millis timeout = std::chrono::duration_cast<Millis>(membership::PresenceOptions{}.timeout);
    Millis forget_after =
        std::chrono::duration_cast<Millis>(membership::PresenceOptions{}.forget_after);
    std::size_t max_users = membership::PresenceOptions{}.max_users;
    std::size_t max_batch = 10'000;
    struct History {  // GET /v1/users/history: the online count, one sample per interval
      Millis interval{10'000};
      std::size_t points = 360;  // an hour at 10 s
    } history;
    PresenceBackend backend = PresenceBackend::memory;
    struct Redis {  // presence.backend: redis (docs/REDIS.md)
      std::vector<HostPort> nodes;  // cluster: seeds; standalone: exactly one
      bool cluster = false;
      std::string username;       // ACL user; empty: the default user
      std::string password_file;  // empty: no AUTH
      std::string key_prefix = "hb";
      unsigned shards = 64;
      struct Pool {
        std::size_t min = 2;
        std::size_t max = 16;
        Millis wait{100};
        Millis idle_timeout{60'000};
        std::size_t max_waiters = 1024;
      } pool;
      Millis timeout{1000};  // per pipeline
      Millis dedup_window{1000};
      Millis sweep_interval{60'000};
    } redis;
    struct Dynamodb {  // presence.backend: dynamodb (docs/BACKENDS.md)
      std::string table = "heartbeatd-presence";
      std::string region;    // empty: AWS_REGION, else AWS_DEFAULT_REGION
      std::string endpoint;  // empty: https://dynamodb.<region>.amazonaws.com
      std::string ca_file;   // empty: the system's CAs
      std::string profile;   // empty: AWS_PROFILE, else "default"
      bool create_table = false;
      struct Pool {
        std::size_t min = 2;
        std::size_t max = 32;
        Millis wait{100};
        Millis idle_timeout{60'000};
        std::size_t max_waiters = 1024;
      } pool;
      Millis timeout{1000};  // per HTTP exchange
      Millis dedup_window{1000};
      Millis watch_interval{1000};
      Millis count_interval{60'000};
    } dynamodb;
  } presence;
  struct Persist {
    Millis presence_interval{5000};
  } persist;
  struct Log {
    LogLevel level = LogLevel::info;
    LogFormat format = LogFormat::text;
  } log;
  struct Events {  // events.keepalive: api.limits.stream_keepalive (the server sends them)
    std::size_t max_subscribers = 64;
    std::size_t max_watched_users = 10'000;
    std::size_t max_queue_bytes = 256 << 10;  // per subscriber
  } events;
  // HookOptions::node is not a key: the daemon sets it to node.name.
  struct Hooks : HookOptions {
    std::vector<std::uint64_t> users;  // whose transitions run on_user_change
  } hooks;
};

// Built-in defaults; paths and the node name depend on the environment (see
// examples/heartbeatd.yaml: $STATE_DIRECTORY / $RUNTIME_DIRECTORY under systemd, XDG
// directories otherwise, /tmp as a last resort).
Config default_config();

// One clear message naming the file, line, key and what was expected.
struct ConfigError {
  std::string message;
};
using ConfigResult = std::variant<Config, ConfigError>;

ConfigResult load_config_text(const std::string& yaml, const std::string& origin);
ConfigResult load_config_file(const std::string& path);

// Every key with its effective value as text, in table order ("api.threads", "4").
std::vector<std::pair<std::string, std::string>> describe(const Config& c);

// SIGHUP: the keys of `next` that may change at run time are applied to a copy of `current`;
// the rest keep their current value and are reported as needing a restart. The mix of the two
// is checked like a loaded file: if it breaks a rule between keys (say a new presence.timeout
// beyond the running presence.forget_after), `error` says so and nothing may be applied.
struct ReloadPlan {
  Config effective;
  std::vector<std::string> applied;        // "log.level: info -> debug"
  std::vector<std::string> needs_restart;  // "api.http: 127.0.0.1:7700 -> 127.0.0.1:7800"
  std::optional<std::string> error;
};
ReloadPlan plan_reload(const Config& current, const Config& next);

// Is `host` a loopback IP literal (127.0.0.0/8, ::1, ::ffff:127.x)? Host names are not.
bool is_loopback(const std::string& host);

// What an operator should know about a valid config that runs unprotected (a cluster open
// beyond loopback without authentication): logged at start and reload, shown in /v1/health.
std::vector<std::string> security_warnings(const Config& c);

// The first line of a secret file (presence.redis.password_file), or nullopt with `why`.
std::optional<std::string> read_secret_file(const std::string& path, std::string* why);

}  // namespace heartbeatd
