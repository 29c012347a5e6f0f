// heartbeatd: command line, config loading, then Daemon::run(). Exceptions stop here.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "base/log.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/journal.h"
#include "heartbeatd/version.h"

namespace {

constexpr std::string_view kHelp = R"(Usage: heartbeatd [--config FILE]
       heartbeatd --check-config FILE [--quiet]
       heartbeatd --version | --help

heartbeatd is a failure detector: it tracks which machines of a cluster are alive
(UDP heartbeats between daemons) and which end users are online (HTTP heartbeats),
and answers local services over HTTP and a Unix socket.

Options:
  --config FILE        run with the YAML configuration FILE (keys and defaults:
                       examples/heartbeatd.yaml). Without it, built-in defaults run a
                       single node: API on a Unix socket only (api.http adds TCP),
                       cluster heartbeats on UDP 127.0.0.1:7701 (docs/PROTOCOL.md). A
                       cluster.bind beyond loopback needs cluster.key_file (or
                       cluster.plaintext: true); an api.http beyond loopback needs
                       api.tls.* and api.tokens_file (or api.insecure: true). With
                       api.tls.cert_file and api.tls.key_file, the TCP API speaks
                       HTTPS only (docs/API.md).
  --check-config FILE  validate FILE, and the files it names (cluster.key_file,
                       api.tokens_file, api.tls.*, hooks, ...) as a reload would,
                       print the effective configuration, and exit.
  --quiet              with --check-config: print only "FILE: valid" (or the error),
                       one line for a journal; the unit's ExecReload runs it before
                       SIGHUP, so `systemctl reload` fails on a file SIGHUP would
                       reject.
  --version            print the version and exit.
  --help               print this help and exit.

Signals:
  SIGTERM, SIGINT      stop gracefully (within 2 s), announcing "left" to the cluster,
                       then write a final snapshot of the state to node.data_dir
                       (about 0.05 s per million users).
  SIGHUP               re-read the --config file (as POST /v1/reload does, which
                       answers with what it applied); apply log.level, log.format,
                       node.tags (announced at a new incarnation), membership.*,
                       presence.timeout, persist.presence_interval and
                       the cluster keyring (cluster.key_file, read again even if its
                       path did not change; cluster.seal_outgoing,
                       cluster.require_sealed, cluster.plaintext), the API tokens
                       (api.tokens_file, read again likewise), api.unix_scopes and the
                       API's TLS certificate, key and client CA (api.tls.*, read again
                       too; open connections keep the old certificate); log the keys
                       that need a restart. An invalid file, key file, tokens file or
                       TLS file is rejected and the running config stays in force.

Logs:                  on stderr, as text or one JSON object per line (log.format);
                       under systemd's journal, journal entries with fields MEMBER=,
                       STATE=, USER=, ... (README.md, "Logs").

Exit codes:
  0  stopped normally (or --check-config found the file valid)
  1  could not start (API or cluster address in use, socket path taken), or the
     final snapshot of a graceful stop failed
  2  bad command line or configuration (the message names the key and its line;
     an unreadable or malformed cluster.key_file, presence.redis.password_file or
     api.tokens_file too; with presence.backend dynamodb, no region, no AWS
     credentials in any standard place, or a table missing (without
     presence.dynamodb.create_table), with another key schema, or refused; a tokens file others may read, a non-loopback
     cluster.bind without cluster.key_file or cluster.plaintext, a non-loopback
     api.http without TLS and tokens or api.insecure; an api.tls file missing, not
     PEM, a key not matching its certificate or readable by others)
  3  node.data_dir unusable: its parent missing, not writable, or the disk full;
     or the directory of api.unix_socket unsafe: owned by another user, writable by
     group or others (unless sticky, like /tmp), a symbolic link, or under a
     directory another user may change (the message names it and the fix)
  4  node.data_dir in use by another heartbeatd (the message names its pid)
  5  node.data_dir holds state that cannot be read (damaged); left untouched
  6  node.data_dir written in a format this build does not read; left untouched
  State in node.data_dir: docs/PERSISTENCE.md.
)";

int usage_error(std::string_view message) {
  std::fprintf(stderr, "heartbeatd: %.*s\nTry 'heartbeatd --help'.\n",
               static_cast<int>(message.size()), message.data());
  return heartbeatd::kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace heartbeatd;
  std::optional<std::string> config_path;
  bool check_only = false;
  bool quiet = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fwrite(kHelp.data(), 1, kHelp.size(), stdout);
      return kExitOk;
    }
    if (arg == "--version") {
      std::printf("heartbeatd %s\n", kVersion);
      return kExitOk;
    }
    if (arg == "--quiet") {
      quiet = true;
      continue;
    }
    if (arg == "--config" || arg == "--check-config") {
      if (i + 1 >= argc) return usage_error(fmt::format("{} needs a FILE argument", arg));
      if (config_path) return usage_error("only one --config or --check-config may be given");
      config_path = argv[++i];
      check_only = arg == "--check-config";
      continue;
    }
    return usage_error(fmt::format("unknown argument '{}'", arg));
  }
  if (quiet && !check_only) return usage_error("--quiet goes with --check-config");

  log::init();
  if (journal_available()) log::set_journal_sink(&send_to_journal);
  Config config = default_config();
  if (config_path) {
    auto loaded = load_config_file(*config_path);
    if (auto* err = std::get_if<ConfigError>(&loaded)) {
      std::fprintf(stderr, "heartbeatd: config error: %s\n", err->message.c_str());
      return kExitUsage;
    }
    config = std::move(std::get<Config>(loaded));
  }
  if (check_only) {
    std::printf("%s: valid\n", config_path->c_str());
    if (quiet) return kExitOk;
    for (const auto& [key, value] : describe(config)) {
      std::printf("%s: %s\n", key.c_str(), value.empty() ? "\"\"" : value.c_str());
    }
    return kExitOk;
  }

  // Before the daemon is built: it logs while it sets up.
  log::set_level(config.log.level);
  log::set_format(config.log.format);

  // Hooks are waited for: an inherited "ignore SIGCHLD" would have the kernel reap them
  // before their exit status is read.
  std::signal(SIGCHLD, SIG_DFL);
  try {
    Daemon daemon(std::move(config), config_path);
    return daemon.run();
  } catch (const std::exception& e) {
    log::error("fatal: {}", e.what());
    return kExitRuntime;
  }
}
