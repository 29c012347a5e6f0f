// heartbeatctl: command line in, one request to the local heartbeatd, a table (or the
// daemon's JSON) and an exit code out. The logic lives in hb_ctl (options, commands, sse);
// this file only wires it to argv, the environment, the clock and the terminal.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "ctl/client.h"
#include "ctl/commands.h"
#include "ctl/options.h"
#include "ctl/sse.h"
#include "heartbeatd/version.h"

namespace {

using namespace heartbeatd::ctl;

constexpr std::string_view kHelp = R"(Usage: heartbeatctl [OPTIONS] COMMAND [ARGUMENTS]
       heartbeatctl --version | --help

Asks the local heartbeatd which cluster members are alive and which users are online,
and reports user heartbeats. Prints a table (or, with --json, the daemon's JSON) and
exits with a status a script can test.

Commands:
  health                  the daemon's status, version, uptime, warnings (such as an
                          unauthenticated cluster) and persistence; exit 0 if "ok",
                          1 if "degraded"
  members [--state STATE,...] [--name GLOB] [--tag KEY:VALUE]...
                          cluster members: NAME ADDRESS STATE INCARNATION LAST_SEEN
                          TAGS; without options every member; --state keeps those in
                          one of the STATEs (alive, suspect, dead, left), --name those
                          whose name matches GLOB ('*' any run of characters, '?'
                          one; quote it from the shell), each --tag those with that
                          tag (KEY alone: with the key, any value); exit 0, also if
                          none match
  keys                    the cluster keyring: KEY (fingerprint) PRIMARY MEMBERS, the
                          live members last seen sealing with each key, sending plain
                          (plaintext) or not heard from directly (unknown); then
                          whether this node seals and requires sealed datagrams
  reload                  make the daemon re-read its --config file (as SIGHUP does;
                          POST /v1/reload, admin scope) and print what it applied
                          and which changed keys need a restart; exit 0 if applied
                          or unchanged, 4 if some key needs a restart, 1 if the file
                          was rejected (the reason on stderr; the running
                          configuration stays) or the daemon has no --config file
  member NAME             one member; exit 0 if alive, 1 if suspect, dead, left or
                          unknown to this node
  user ID                 one user: USER ONLINE LAST_SEEN; exit 0 if online, 1 if not
  users ID...             several users in one request; exit 0 if all are online, 1 if
                          any is not
  heartbeat ID...         report a heartbeat for each user (one request); exit 0
  offline ID              log the user out: offline at once; exit 0
  join ADDRESS...         join the cluster through these nodes now: their cluster
                          (UDP) addresses, HOST:PORT, at most 16; names are looked
                          up by the daemon. Waits until each answered (at most 2 s)
                          and prints joined ADDRESS (member NAME) for each that did;
                          exit 0 if all joined, 1 if any failed (why, on stderr).
                          Admin scope
  force-leave NAME [--prune]
                          mark a member that is gone (dead, or suspect and not heard
                          from here within its detection time) left on every node;
                          --prune also forgets it everywhere at once. Refused (exit
                          1) for this node and for a member alive here. Admin scope
  watch [--users ID,...] [--members NAME,...]
                          print state changes as they happen, one line per event,
                          starting with the current state; without --users and
                          --members, every change. Runs until SIGINT or SIGTERM
                          (exit 0), the daemon drops the watch (exit 1) or the stream
                          ends (exit 3)

  User ids are unsigned 64-bit integers in decimal (0 to 18446744073709551615).
  Member names are 1 to 128 letters, digits, '.', '-' or '_'.

Options (before or after the command):
  --socket PATH           the daemon's Unix socket (default: see below)
  --http HOST:PORT        use TCP instead, e.g. 127.0.0.1:7700 or [::1]:7700;
                          https://HOST:PORT for a daemon with api.tls (HTTPS)
  --ca-file FILE          HTTPS: verify the daemon's certificate against the CA
                          certificates in FILE (PEM; default: the system's CAs)
  --cert FILE, --key FILE HTTPS: present this client certificate and key (PEM), for
                          a daemon with api.tls.client_ca_file (mutual TLS)
  --timeout DURATION      bound for connecting and the whole request, e.g. 500ms,
                          5s, 1m (default 5s; for watch, until the stream starts)
  --token-file FILE       send the API token on FILE's first line ("Authorization:
                          Bearer"), needed over TCP when the daemon has
                          api.tokens_file; the file must not be readable by others.
                          Default: $HEARTBEATD_TOKEN if set (--token-file wins)
  --json                  print the daemon's JSON, one compact document per line
                          (watch: each event's data with an added "event" field;
                          heartbeat of one user and offline print nothing;
                          reload: the daemon's answer, also when it rejected the file)
  --version               print the version and exit
  --help                  print this help and exit

Default socket, the first that applies:
  $HEARTBEATD_SOCKET, if set
  /run/heartbeatd/heartbeatd.sock, if it exists (the systemd service)
  $XDG_RUNTIME_DIR/heartbeatd.sock, if XDG_RUNTIME_DIR is set
  /tmp/heartbeatd-<uid>/heartbeatd.sock
  (a path longer than 107 bytes is replaced by /tmp/heartbeatd-<uid>.sock, as the
  daemon does)

Exit codes:
  0  alive, online, ok, or done
  1  not alive, not online, degraded; or the daemon refused the request (4xx, such
     as an unknown member, 401 no valid token, 403 the token lacks the scope), its
     message on stderr; or the daemon dropped a watch
  2  usage error: unknown command or option, missing or invalid argument
  3  the daemon is unreachable: no socket, connection refused, no answer within
     --timeout, an answer that is not HTTP or not heartbeatd's, a 5xx error, or a
     watch stream that ended
  4  reload: the new configuration was applied, but it changes keys that only a
     restart applies (listed as "needs a restart")
Manual: man heartbeatctl. HTTP API: docs/API.md.
)";

Environment process_environment() {
  return Environment{
      [](const char* name) -> std::optional<std::string> {
        const char* v = std::getenv(name);
        return v ? std::optional<std::string>(v) : std::nullopt;
      },
      [](const std::string& path) {
        struct stat st;
        return stat(path.c_str(), &st) == 0;
      },
      static_cast<unsigned>(getuid()),
      [](const std::string& path) {
        SecretFile f;
        const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
        struct stat st {};
        if (fd < 0 || fstat(fd, &st) != 0) {
          f.error = std::strerror(errno);
          if (fd >= 0) close(fd);
          return f;
        }
        f.mode = st.st_mode & 07777;
        f.text.resize(4096);
        ssize_t n = read(fd, f.text.data(), f.text.size());
        close(fd);
        if (n < 0) {
          f.error = std::strerror(errno);
          n = 0;
        }
        f.text.resize(static_cast<std::size_t>(n));
        return f;
      }};
}

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

void print(std::FILE* f, const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), f);
  std::fflush(f);
}

int finish(const Outcome& outcome) {
  print(stdout, outcome.out);
  print(stderr, outcome.err);
  return outcome.exit_code;
}

int watch(const Options& o) {
  SseParser parser;
  std::vector<SseEvent> events;
  std::optional<int> exit_code;
  bool interrupted = false;
  const auto answer = stream(
      o, build_request(o),
      [&](std::string_view bytes) {
        events.clear();
        parser.feed(bytes, events);
        for (const auto& event : events) {
          const EventOutcome e = interpret_event(event, o.json);
          print(stdout, e.out);
          print(stderr, e.err);
          if (e.exit_code) {
            exit_code = e.exit_code;
            return false;
          }
        }
        return true;
      },
      &interrupted);
  if (answer) return finish(interpret(o, *answer, now_ms()));
  if (exit_code) return *exit_code;
  return kExitOk;  // interrupted
}

}  // namespace

int main(int argc, char** argv) {
  const auto parsed = parse_args(std::vector<std::string>(argv + 1, argv + argc), process_environment());
  if (std::holds_alternative<ShowHelp>(parsed)) {
    print(stdout, std::string(kHelp));
    return kExitOk;
  }
  if (std::holds_alternative<ShowVersion>(parsed)) {
    print(stdout, std::string("heartbeatctl ") + heartbeatd::kVersion + "\n");
    return kExitOk;
  }
  if (const auto* usage = std::get_if<UsageError>(&parsed)) {
    print(stderr, usage_message(usage->message));
    return kExitUsage;
  }
  const Options& o = std::get<Options>(parsed);
  try {
    if (o.command == Command::watch) return watch(o);
    const HttpAnswer answer = fetch(o, build_request(o));
    return finish(interpret(o, answer, now_ms()));
  } catch (const Unreachable& e) {
    print(stderr, std::string("heartbeatctl: ") + e.what() + "\n");
    return kExitUnreachable;
  }
}
