// Daemon: the wiring of one heartbeatd process. Its members are the architecture: the
// io_context and its threads, the signal set, the clock, the API router and server, the
// cluster transport (UDP membership, on a thread of its own), the systemd notifier, and the
// config in force.
//
// Thread safety: run() is called once, from main(). Signal handling (stop, reload) and the
// reloads POST /v1/reload asks for run on strand_, so reloads never overlap.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "daemon/config.h"
#include "daemon/hooks.h"
#include "daemon/steady_clock.h"
#include "daemon/systemd_notifier.h"
#include "persist/snapshotter.h"
#include "persist/store.h"
#include "transport/cluster/cluster_transport.h"
#include "transport/api/event_hub.h"
#include "transport/api/http_router.h"
#include "transport/api/http_server.h"
#include "base/metrics.h"
#include "transport/api/presence_routes.h"
#include "transport/api/reload_routes.h"
#include "transport/presence/store.h"

namespace heartbeatd {

// Process exit codes, documented in --help and README.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntime = 1;  // could not start (address in use, ...), or the
                                        // snapshot of a graceful stop failed
inline constexpr int kExitUsage = 2;    // bad command line or config
// node.data_dir (docs/PERSISTENCE.md):
inline constexpr int kExitDataUnusable = 3;      // missing parent, not writable, disk full
inline constexpr int kExitDataLocked = 4;        // another heartbeatd uses it
inline constexpr int kExitDataCorrupted = 5;     // holds state that cannot be read
inline constexpr int kExitDataIncompatible = 6;  // written in a format this build cannot read
// Also 3, "a directory heartbeatd needs is unusable": the Unix socket's directory belongs to
// another user, is writable by others or is a symbolic link (transport/api/socket_dir.h).
inline constexpr int kExitSocketDirUnsafe = 3;

class Daemon {
 public:
  // config_path: the file SIGHUP re-reads; nullopt when running on embedded defaults.
  Daemon(Config config, std::optional<std::string> config_path);
  ~Daemon();
  int run();
  // The API's routes, all registered by the constructor (tests/openapi_test.cpp checks them
  // against docs/openapi.yaml without starting anything).
  const transport::Router& router() const { return router_; }

 private:
  int open_store();  // kExitOk, or the exit code to stop with; restores the state
  int finish_stop();
  bool open_listeners();
  int start_cluster();  // kExitOk, or the exit code to stop with
  void do_await_signal();
  // Re-reads the --config file and the files it names (key, tokens, TLS), applies what may
  // change at run time, logs it (each line starting with `trigger`: "SIGHUP") and says what
  // it did. On strand_ only: SIGHUP and POST /v1/reload share it.
  transport::ReloadOutcome reload(std::string_view trigger);
  // Logs them, and /v1/health shows them until the next reload.
  void set_security_warnings(std::vector<std::string> warnings);
  void begin_stop(int signal);
  void do_sample_history();  // samples the counts now, then every presence.history.interval
  void write_metrics(MetricsWriter& w);  // daemon_metrics.cpp
  // presence.backend: the one place that knows which stores there are.
  std::unique_ptr<transport::PresenceStore> make_presence_store();
  std::unique_ptr<transport::PresenceStore> make_dynamodb_store();

  boost::asio::io_context io_;
  // The daemon's own timers (signals, watchdog) share one strand: with
  // several API threads, the stop path cancelling a timer must not race its handler
  // re-arming it on another thread.
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::signal_set signals_;
  SteadyClock clock_;
  const membership::TimePoint started_;
  std::shared_ptr<const Config> config_;  // touched only by the signal chain after start
  const std::optional<std::string> config_path_;
  // Monotonic -> Unix ms offset shared by the presence API and the snapshots, so that a
  // last-seen time reads the same before and after a restart (base/wall_time.h).
  std::shared_ptr<std::atomic<std::int64_t>> wall_anchor_ =
      std::make_shared<std::atomic<std::int64_t>>(0);
  // Set by make_presence_store() when a file the store needs cannot be read: run() exits 2.
  std::string presence_setup_error_;
  // A store's own check before serving (DynamoDB: the table), blocking, in run(): an error
  // stops the daemon with exit 2.
  std::function<std::string()> presence_prepare_;
  std::string presence_description_;  // for the start-up log
  // Where users' heartbeats live (presence.backend). Declared before the server, so the
  // server goes first.
  std::unique_ptr<transport::PresenceStore> presence_;
  std::shared_ptr<transport::PresenceCounters> presence_counters_ =
      std::make_shared<transport::PresenceCounters>();
  // The online count over the last presence.history.points × interval, sampled by
  // history_timer_ (on strand_) for GET /v1/users/history.
  std::shared_ptr<transport::CountHistory> count_history_ =
      std::make_shared<transport::CountHistory>(config_->presence.history.interval,
                                                config_->presence.history.points);
  boost::asio::steady_timer history_timer_{strand_};
  // Member changes and watched users' transitions, to /v1/events and the hooks.
  std::unique_ptr<transport::EventHub> events_;
  std::unique_ptr<HookRunner> hooks_;
  transport::Router router_;
  transport::HttpServer server_;
  std::unique_ptr<persist::Store> store_;
  std::unique_ptr<persist::Snapshotter> snapshotter_;
  persist::RestoredMembership restored_;  // handed to the cluster at start
  std::unique_ptr<transport::ClusterTransport> cluster_;
  SystemdNotifier notifier_;
  std::mutex warnings_mu_;             // /v1/health reads from API threads, reload() writes
  std::vector<std::string> warnings_;  // guarded by warnings_mu_

  // What the last start or reload read from the files the config names, to report what a
  // reload changed. On strand_ (or before serving) only, like config_.
  std::vector<transport::TokenEntry> tokens_;
  std::size_t tls_digest_ = 0;
  bool stopping_ = false;  // set by begin_stop(); a reload asked for later is refused

  std::thread stop_guard_;  // ends run() if connections outlive kStopDeadline
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool io_done_ = false;  // guarded by stop_mu_
};

}  // namespace heartbeatd
