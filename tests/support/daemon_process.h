// DaemonProcess: starts the real build/bin/heartbeatd on free loopback ports with a generated
// config in a scratch directory, and waits for readiness through the systemd notify protocol
// (a NOTIFY_SOCKET datagram socket the helper owns). Every integration test uses it.
//
// Config keys are given dotted ("presence.timeout" -> "2s") and rendered as YAML; the helper
// sets node.name, node.data_dir, api.http, api.unix_socket, cluster.bind (a free loopback UDP
// port) and log.level unless overridden.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/http_client.h"
#include "tests/support/test_util.h"

namespace heartbeatd::test {

std::string heartbeatd_binary();
std::uint16_t free_tcp_port();
std::uint16_t free_udp_port();
// {"a.b": "1", "a.c": "x"} -> "a:\n  b: 1\n  c: x\n" (values written as given).
std::string render_yaml(const std::map<std::string, std::string>& keys);

// Runs heartbeatd with `args` to completion (bounded by `deadline`), capturing its output.
struct RunResult {
  int exit_code = -1;  // -1: did not finish in time (it was killed)
  std::string output;  // stdout and stderr together
};
RunResult run_heartbeatd(const std::vector<std::string>& args,
                         std::chrono::milliseconds deadline = std::chrono::seconds(10));

// Runs any program to completion, its stdout and stderr captured apart.
struct ProgramResult {
  int exit_code = -1;  // -1: killed by a signal, or did not finish in time (then SIGKILLed)
  std::string out;
  std::string err;
};
struct ProgramOptions {
  std::chrono::milliseconds deadline = std::chrono::seconds(10);
  std::map<std::string, std::string> env;  // set (or replace) these environment variables
  bool merge_output = false;               // stderr into `out` too
  // Called once the program runs, with its pid and a reader of its stdout so far (say, to
  // wait for a line and then signal it). The deadline counts from after it returns.
  std::function<void(pid_t, const std::function<std::string()>& stdout_so_far)> while_running;
};
// `program` without a '/' is looked up in PATH (exit code 127 if it cannot be run).
ProgramResult run_program(const std::string& program, const std::vector<std::string>& args,
                          const ProgramOptions& options = {});

class DaemonProcess;
// The value of one sample ("name" or "name{labels}", as printed) of the daemon's GET
// /metrics, or -1 when it is not there.
double metric(const DaemonProcess& d, const std::string& series);

class DaemonProcess {
 public:
  using Keys = std::map<std::string, std::string>;
  DaemonProcess() : DaemonProcess(Keys{}) {}
  explicit DaemonProcess(Keys config);
  ~DaemonProcess();  // SIGKILLs a daemon still running
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  // Writes the config, spawns the daemon and waits for READY=1. False (with the daemon's
  // log in failure_reason()) if it exits or does not get ready within the deadline.
  bool start(std::chrono::milliseconds deadline = std::chrono::seconds(15));
  // Rewrites the config file (the daemon re-reads it on SIGHUP).
  void write_config(const std::map<std::string, std::string>& config);
  void write_config_text(const std::string& yaml);

  void signal(int sig);
  // Exit code, or -signal when killed by one; nullopt if still running at the deadline.
  std::optional<int> wait_exit(std::chrono::milliseconds deadline = std::chrono::seconds(10));
  bool running();

  // Notify-socket messages received so far ("READY=1\nSTATUS=...", "WATCHDOG=1", ...).
  std::vector<std::string> notifications();
  // When each of notifications() arrived (kernel receive time).
  std::vector<std::chrono::system_clock::time_point> notification_times();
  // Waits for a message containing `needle` among those from index `since` on.
  bool wait_notification(const std::string& needle,
                         std::chrono::milliseconds deadline = std::chrono::seconds(10),
                         std::size_t since = 0);

  std::string log() const;  // the daemon's stderr so far
  bool wait_log(const std::string& needle,
                std::chrono::milliseconds deadline = std::chrono::seconds(10)) const;

  std::uint16_t port() const { return port_; }
  // The UDP port of cluster.bind (127.0.0.1), chosen once so restarts keep the address.
  std::uint16_t cluster_port() const { return cluster_port_; }
  std::string cluster_address() const { return "127.0.0.1:" + std::to_string(cluster_port_); }
  const std::string& socket_path() const { return socket_path_; }
  const std::string& config_path() const { return config_path_; }
  const TempDir& dir() const { return dir_; }
  const std::string& failure_reason() const { return failure_; }
  pid_t pid() const { return pid_; }
  std::map<std::string, std::string>& env() { return env_; }  // extra environment variables
  // A command the daemon runs under, given "heartbeatd --config PATH" as its arguments (say
  // `unshare -rm sh -c '...; exec "$0" "$@"'`); it must exec the daemon in the same process.
  std::vector<std::string>& wrapper() { return wrapper_; }

  HttpClient tcp_client() const { return HttpClient::tcp(port_); }
  HttpClient unix_client() const { return HttpClient::unix_socket(socket_path_); }

 private:
  void drain_notifications();

  TempDir dir_;
  std::map<std::string, std::string> config_;
  std::map<std::string, std::string> env_;
  std::vector<std::string> wrapper_;
  std::uint16_t port_ = 0;
  std::uint16_t cluster_port_ = 0;
  std::string socket_path_;
  std::string config_path_;
  std::string notify_path_;
  int notify_fd_ = -1;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::vector<std::string> notifications_;
  std::vector<std::chrono::system_clock::time_point> notification_times_;
  std::string failure_;
};

}  // namespace heartbeatd::test
