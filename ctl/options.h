// heartbeatctl's command line: global options, the command and its arguments, parsed into a
// plain value. Pure (the environment and the file system come in as functions) so every
// rule, and every usage error, is unit-tested.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/duration.h"
#include "base/host_port.h"

namespace heartbeatd::ctl {

// Exit codes (heartbeatctl --help, docs/heartbeatctl.1).
inline constexpr int kExitOk = 0;           // alive / online / success
inline constexpr int kExitNegative = 1;     // not alive / offline / degraded / API error
inline constexpr int kExitUsage = 2;        // bad command line
inline constexpr int kExitUnreachable = 3;  // no daemon, timeout, not HTTP, 5xx
// reload: done, but the file changes keys that only a restart applies. Distinct from 0 so a
// script (a config-management run) knows to schedule a restart; distinct from 1, which
// means nothing was applied (the file was rejected).
inline constexpr int kExitNeedsRestart = 4;

// Most addresses one join names: the daemon's limit (kMaxJoinAddresses of
// transport/api/cluster_routes.h), which the client does not link.
inline constexpr std::size_t kMaxJoinAddresses = 16;

enum class Command {
  health, members, member, user, users, heartbeat, offline, watch, keys, reload, join, force_leave
};

struct Options {
  // Exactly one of them: the Unix socket path, or --http.
  std::string socket_path;
  std::optional<HostPort> http;
  // HTTPS (--http https://HOST:PORT): the server is verified against ca_file (empty: the
  // system's CAs); cert_file and key_file, both or neither, are a client certificate.
  struct Tls {
    bool enabled = false;
    std::string ca_file, cert_file, key_file;
  } tls;
  std::chrono::milliseconds timeout{5000};
  bool json = false;
  Command command = Command::health;
  std::string member;                 // member NAME
  std::vector<std::uint64_t> users;   // user, users, heartbeat, offline; watch --users
  std::vector<std::string> members;   // watch --members
  std::vector<std::string> states;    // members --state: alive, suspect, dead, left
  std::string name_glob;              // members --name: '*' and '?' wildcards; empty: any
  std::vector<std::string> tags;      // members --tag: KEY:VALUE or KEY, every one required
  std::vector<std::string> addresses;  // join: host:port, as given (checked by parse_args)
  bool prune = false;                  // force-leave --prune
  // The API token sent as "Authorization: Bearer TOKEN" (over TCP and the socket alike), from
  // --token-file or else $HEARTBEATD_TOKEN; empty: none. Never printed.
  std::string token;
};

struct ShowHelp {};
struct ShowVersion {};
struct UsageError {
  std::string message;  // without the "heartbeatctl: " prefix and the --help hint
};
using ParseResult = std::variant<Options, ShowHelp, ShowVersion, UsageError>;

// Where the client looks for the daemon's socket when --socket and --http are absent:
// $HEARTBEATD_SOCKET; /run/heartbeatd/heartbeatd.sock if it exists (the systemd unit);
// $XDG_RUNTIME_DIR/heartbeatd.sock; /tmp/heartbeatd-<uid>/heartbeatd.sock. Like the daemon,
// a path longer than a socket address holds becomes /tmp/heartbeatd-<uid>.sock.
// A file read for --token-file: its first bytes and its permission bits, or why it could not
// be read.
struct SecretFile {
  std::string text;   // at most the first 4 KiB
  unsigned mode = 0;  // st_mode & 07777
  std::string error;  // set: could not be read (strerror)
};
struct Environment {
  std::function<std::optional<std::string>(const char*)> getenv;
  std::function<bool(const std::string&)> exists;
  unsigned uid = 0;
  std::function<SecretFile(const std::string&)> read_secret_file;
};
inline constexpr std::string_view kSystemdSocket = "/run/heartbeatd/heartbeatd.sock";
std::string default_socket_path(const Environment& env);

// argv without the program name.
ParseResult parse_args(const std::vector<std::string>& args, const Environment& env);

}  // namespace heartbeatd::ctl
