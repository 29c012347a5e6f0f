// heartbeatctl: the pure parts (command line, requests, tables, exit-code decisions, the SSE
// parser) on canned input, then the real binary against real daemons over the Unix socket
// and TCP, a fake event-stream server for watch, and the Python example client.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "ctl/commands.h"
#include "ctl/options.h"
#include "ctl/sse.h"
#include "tests/support/daemon_process.h"
#include "tests/support/test_util.h"

namespace heartbeatd::test {
namespace {

using namespace std::chrono_literals;
using namespace heartbeatd::ctl;
namespace json = boost::json;

// ---------------------------------------------------------------------------------------------
// Command line

Environment fake_env(std::map<std::string, std::string> vars, std::vector<std::string> files = {}) {
  return Environment{[vars](const char* name) -> std::optional<std::string> {
                       auto it = vars.find(name);
                       return it == vars.end() ? std::nullopt
                                               : std::optional<std::string>(it->second);
                     },
                     [files](const std::string& path) {
                       return std::find(files.begin(), files.end(), path) != files.end();
                     },
                     1000,
                     {}};
}

Options parse_ok(std::vector<std::string> args) {
  auto r = parse_args(args, fake_env({}));
  if (auto* e = std::get_if<UsageError>(&r)) ADD_FAILURE() << e->message;
  EXPECT_TRUE(std::holds_alternative<Options>(r));
  return std::holds_alternative<Options>(r) ? std::get<Options>(r) : Options{};
}

std::string usage_error(std::vector<std::string> args) {
  auto r = parse_args(args, fake_env({}));
  if (auto* e = std::get_if<UsageError>(&r)) return e->message;
  ADD_FAILURE() << "expected a usage error";
  return "";
}

TEST(CtlOptions, DefaultSocketFollowsTheDocumentedOrder) {
  EXPECT_EQ(default_socket_path(fake_env({})), "/tmp/heartbeatd-1000/heartbeatd.sock");
  EXPECT_EQ(default_socket_path(fake_env({{"XDG_RUNTIME_DIR", "/run/user/1000"}})),
            "/run/user/1000/heartbeatd.sock");
  EXPECT_EQ(default_socket_path(fake_env({{"XDG_RUNTIME_DIR", ""}})),
            "/tmp/heartbeatd-1000/heartbeatd.sock");
  EXPECT_EQ(default_socket_path(fake_env({{"XDG_RUNTIME_DIR", "/run/user/1000"}},
                                         {std::string(kSystemdSocket)})),
            kSystemdSocket);
  EXPECT_EQ(default_socket_path(fake_env({{"HEARTBEATD_SOCKET", "/x/y.sock"},
                                          {"XDG_RUNTIME_DIR", "/run/user/1000"}},
                                         {std::string(kSystemdSocket)})),
            "/x/y.sock");
  EXPECT_EQ(default_socket_path(fake_env({{"XDG_RUNTIME_DIR", "/" + std::string(120, 'd')}})),
            "/tmp/heartbeatd-1000.sock");
}

TEST(CtlOptions, ParsesGlobalOptionsBeforeAndAfterTheCommand) {
  auto o = parse_ok({"--json", "members", "--socket", "/s.sock", "--timeout=250ms"});
  EXPECT_EQ(o.command, Command::members);
  EXPECT_TRUE(o.json);
  EXPECT_EQ(o.socket_path, "/s.sock");
  EXPECT_EQ(o.timeout, 250ms);
  EXPECT_FALSE(o.http);

  o = parse_ok({"--http", "[::1]:7700", "user", "18446744073709551615"});
  ASSERT_TRUE(o.http);
  EXPECT_EQ(o.http->host, "::1");
  EXPECT_EQ(o.http->port, 7700);
  EXPECT_EQ(o.users, std::vector<std::uint64_t>{18446744073709551615ull});
  EXPECT_EQ(o.timeout, 5s);

  o = parse_ok({"--http", "https://db-3.example:7700", "--ca-file", "/ca.pem", "health"});
  ASSERT_TRUE(o.http);
  EXPECT_EQ(o.http->host, "db-3.example");
  EXPECT_TRUE(o.tls.enabled);
  EXPECT_EQ(o.tls.ca_file, "/ca.pem");
  o = parse_ok({"--http=http://127.0.0.1:7700", "health"});
  EXPECT_EQ(o.http->port, 7700);
  EXPECT_FALSE(o.tls.enabled);
  o = parse_ok({"health", "--http", "https://[::1]:7700", "--cert", "/c.pem", "--key=/c.key"});
  EXPECT_EQ(o.http->host, "::1");
  EXPECT_EQ(o.tls.cert_file, "/c.pem");
  EXPECT_EQ(o.tls.key_file, "/c.key");

  o = parse_ok({"watch", "--users", "1,2", "--members=db-1,db.2"});
  EXPECT_EQ(o.users, (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(o.members, (std::vector<std::string>{"db-1", "db.2"}));
  EXPECT_EQ(o.socket_path, "/tmp/heartbeatd-1000/heartbeatd.sock");

  EXPECT_TRUE(std::holds_alternative<ShowHelp>(parse_args({"bogus", "--help"}, fake_env({}))));
  EXPECT_TRUE(std::holds_alternative<ShowVersion>(parse_args({"--version"}, fake_env({}))));
}

TEST(CtlOptions, EveryBadInputNamesWhatWasWrong) {
  EXPECT_EQ(usage_error({}), "no command given");
  EXPECT_EQ(usage_error({"frobnicate"}), "unknown command 'frobnicate'");
  EXPECT_EQ(usage_error({"--verbose", "health"}), "unknown option '--verbose'");
  EXPECT_EQ(usage_error({"health", "extra"}), "health takes no arguments, got 'extra'");
  EXPECT_EQ(usage_error({"member"}), "member needs a NAME");
  EXPECT_EQ(usage_error({"member", "a", "b"}), "member takes exactly one NAME, got 2");
  EXPECT_EQ(usage_error({"users"}), "users needs at least one ID");
  EXPECT_EQ(usage_error({"heartbeat"}), "heartbeat needs at least one ID");
  EXPECT_EQ(usage_error({"user", "abc"}),
            "bad user id 'abc': expected a user id (unsigned 64-bit integer), got abc (not a number)");
  EXPECT_EQ(usage_error({"user", "-1"}),
            "bad user id '-1': expected a user id (unsigned 64-bit integer), got -1 (negative)");
  EXPECT_EQ(usage_error({"users", "1", "18446744073709551616"}),
            "bad user id '18446744073709551616': expected a user id (unsigned 64-bit integer), "
            "got 18446744073709551616 (above 2^64-1)");
  EXPECT_EQ(usage_error({"member", "a/b"}),
            "bad member name 'a/b': expected 1 to 128 letters, digits, '.', '-' or '_'");
  EXPECT_EQ(usage_error({"health", "--socket"}), "--socket needs a PATH argument");
  EXPECT_EQ(usage_error({"health", "--socket", ""}), "--socket: the path is empty");
  EXPECT_EQ(usage_error({"health", "--socket", "/a", "--socket", "/b"}), "--socket given twice");
  EXPECT_EQ(usage_error({"health", "--socket", "/a", "--http", "127.0.0.1:1"}),
            "--socket and --http cannot be used together");
  EXPECT_EQ(usage_error({"health", "--http", "127.0.0.1:7700", "--ca-file", "/ca.pem"}),
            "--ca-file needs --http https://HOST:PORT");
  EXPECT_EQ(usage_error({"health", "--cert", "/c.pem", "--key", "/c.key"}),
            "--cert needs --http https://HOST:PORT");
  EXPECT_EQ(usage_error({"health", "--http", "https://127.0.0.1:7700", "--cert", "/c.pem"}),
            "--cert and --key go together (a client certificate and its key)");
  EXPECT_EQ(usage_error({"health", "--http", "https://h:1", "--ca-file", "/a", "--ca-file=/b"}),
            "--ca-file given twice");
  EXPECT_EQ(usage_error({"health", "--http", "https://localhost"}),
            "--http: bad address 'https://localhost': missing :port (expected HOST:PORT, such as "
            "127.0.0.1:7700 or [::1]:7700)");
  EXPECT_EQ(usage_error({"health", "--http", "localhost"}),
            "--http: bad address 'localhost': missing :port (expected HOST:PORT, such as "
            "127.0.0.1:7700 or [::1]:7700)");
  EXPECT_EQ(usage_error({"health", "--http", "::1:7700"}),
            "--http: bad address '::1:7700': IPv6 addresses go in brackets (expected HOST:PORT, "
            "such as 127.0.0.1:7700 or [::1]:7700)");
  EXPECT_EQ(usage_error({"health", "--http", "127.0.0.1:0"}),
            "--http: bad address '127.0.0.1:0': port must be 1 to 65535 (expected HOST:PORT, such "
            "as 127.0.0.1:7700 or [::1]:7700)");
  EXPECT_EQ(usage_error({"health", "--timeout", "5"}),
            "--timeout: expected a duration from 1ms to 1h (such as 500ms, 5s, 1m), got '5'");
  EXPECT_EQ(usage_error({"health", "--timeout", "0"}),
            "--timeout: expected a duration from 1ms to 1h (such as 500ms, 5s, 1m), got '0'");
  EXPECT_EQ(usage_error({"health", "--json=yes"}), "--json takes no value");
  EXPECT_EQ(usage_error({"health", "--users", "1"}), "--users is an option of watch only");
  EXPECT_EQ(usage_error({"watch", "--users", "1,,2"}), "--users: empty item in '1,,2'");
  EXPECT_EQ(usage_error({"watch", "--members", "ok,not ok"}),
            "bad member name 'not ok': expected 1 to 128 letters, digits, '.', '-' or '_'");
  EXPECT_EQ(usage_error({"members", "--state", "zombie"}),
            "--state: unknown state 'zombie' (expected alive, suspect, dead or left)");
  EXPECT_EQ(usage_error({"members", "--state", "alive,,dead"}), "--state: empty item in 'alive,,dead'");
  EXPECT_EQ(usage_error({"members", "--state"}), "--state needs a STATE,... list argument");
  EXPECT_EQ(usage_error({"members", "--state", "alive", "--state", "dead"}), "--state given twice");
  EXPECT_EQ(usage_error({"members", "--name", "web/*"}),
            "--name: bad pattern 'web/*': expected 1 to 256 letters, digits, '.', '-', '_' and the "
            "wildcards '*' and '?'");
  EXPECT_EQ(usage_error({"members", "--name", ""}),
            "--name: bad pattern '': expected 1 to 256 letters, digits, '.', '-', '_' and the "
            "wildcards '*' and '?'");
  EXPECT_EQ(usage_error({"member", "db-1", "--state", "alive"}), "--state is an option of members only");
  EXPECT_EQ(usage_error({"watch", "--name", "db-*"}), "--name is an option of members only");
  EXPECT_EQ(usage_error({"members", "--tag", "ro le:db"}),
            "--tag: bad key 'ro le': expected KEY:VALUE or KEY, the key 1 to 64 letters, digits, "
            "'.', '-' or '_'");
  EXPECT_EQ(usage_error({"members", "--tag", ":db"}),
            "--tag: bad key '': expected KEY:VALUE or KEY, the key 1 to 64 letters, digits, '.', "
            "'-' or '_'");
  EXPECT_EQ(usage_error({"members", "--tag", "role:a\tb"}),
            "--tag: bad value for role: at most 128 printable ASCII characters");
  EXPECT_EQ(usage_error({"members", "--tag"}), "--tag needs a KEY:VALUE argument");
  EXPECT_EQ(usage_error({"user", "1", "--tag", "role"}), "--tag is an option of members only");
}

// ---------------------------------------------------------------------------------------------
// Requests and answers

// --token-file and $HEARTBEATD_TOKEN: the file wins, a file others may read is refused, and
// no message quotes the token.
TEST(CtlOptions, TokenFromFileOrEnvironment) {
  const std::string token = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA==";
  std::map<std::string, SecretFile> files = {
      {"/t/ok", {token + "\r\nignored second line\n", 0600, ""}},
      {"/t/group", {token + "\n", 0640, ""}},
      {"/t/world", {token + "\n", 0644, ""}},
      {"/t/empty", {"\n" + token, 0600, ""}},
      {"/t/junk", {"not a token!\n", 0600, ""}},
      {"/t/missing", {"", 0, "No such file or directory"}},
  };
  auto parse = [&](std::vector<std::string> args, std::map<std::string, std::string> vars) {
    Environment env = fake_env(std::move(vars));
    env.read_secret_file = [files](const std::string& path) { return files.at(path); };
    return parse_args(args, env);
  };
  auto token_of = [&](std::vector<std::string> args, std::map<std::string, std::string> vars) {
    auto r = parse(std::move(args), std::move(vars));
    if (auto* e = std::get_if<UsageError>(&r)) ADD_FAILURE() << e->message;
    return std::holds_alternative<Options>(r) ? std::get<Options>(r).token : "(error)";
  };
  auto error_of = [&](std::vector<std::string> args, std::map<std::string, std::string> vars) {
    auto r = parse(std::move(args), std::move(vars));
    auto* e = std::get_if<UsageError>(&r);
    EXPECT_TRUE(e);
    if (e) {
      EXPECT_EQ(e->message.find(token), std::string::npos) << e->message;
    }
    return e ? e->message : "";
  };
  EXPECT_EQ(token_of({"health"}, {}), "");
  EXPECT_EQ(token_of({"health"}, {{"HEARTBEATD_TOKEN", ""}}), "");
  EXPECT_EQ(token_of({"health"}, {{"HEARTBEATD_TOKEN", "env-token"}}), "env-token");
  EXPECT_EQ(token_of({"--token-file", "/t/ok", "health"}, {}), token);
  EXPECT_EQ(token_of({"health", "--token-file=/t/group"}, {{"HEARTBEATD_TOKEN", "env-token"}}),
            token);
  EXPECT_EQ(error_of({"--token-file", "/t/world", "health"}, {}),
            "--token-file /t/world: readable or writable by others (mode 0644); it holds an API "
            "token: chmod o-rwx /t/world");
  EXPECT_EQ(error_of({"--token-file", "/t/empty", "health"}, {}),
            "--token-file /t/empty: the first line is empty");
  EXPECT_NE(error_of({"--token-file", "/t/junk", "health"}, {}).find("is not a token"),
            std::string::npos);
  EXPECT_EQ(error_of({"--token-file", "/t/missing", "health"}, {}),
            "--token-file /t/missing: No such file or directory");
  EXPECT_EQ(error_of({"--token-file", "/t/ok", "--token-file", "/t/ok", "health"}, {}),
            "--token-file given twice");
  EXPECT_EQ(error_of({"health", "--token-file"}, {}), "--token-file needs a FILE argument");
  EXPECT_NE(error_of({"health"}, {{"HEARTBEATD_TOKEN", "a b"}})
                .find("HEARTBEATD_TOKEN is not a "
                      "token"),
            std::string::npos);
}

TEST(CtlCommands, BuildsTheRequestsOfDocsApi) {
  auto req = [](std::vector<std::string> args) { return build_request(parse_ok(args)); };
  auto check = [](const HttpRequest& r, std::string method, std::string target, std::string body) {
    EXPECT_EQ(r.method, method);
    EXPECT_EQ(r.target, target);
    EXPECT_EQ(r.body, body);
  };
  check(req({"health"}), "GET", "/v1/health", "");
  check(req({"members"}), "GET", "/v1/members", "");
  check(req({"members", "--state", "alive,suspect"}), "GET", "/v1/members?state=alive,suspect", "");
  check(req({"members", "--name=web-*"}), "GET", "/v1/members?name=web-*", "");
  // '?' would start the query: escaped.
  check(req({"--state", "dead", "members", "--name", "db-?"}), "GET",
        "/v1/members?state=dead&name=db-%3F", "");
  // Every --tag is one tag= parameter; value bytes a query would misread are escaped.
  check(req({"members", "--tag", "role:db", "--tag=zone", "--state", "alive"}), "GET",
        "/v1/members?state=alive&tag=role:db&tag=zone", "");
  check(req({"members", "--name", "w*", "--tag", "note:a b&c%d+e#f"}), "GET",
        "/v1/members?name=w*&tag=note:a%20b%26c%25d%2Be%23f", "");
  check(req({"keys"}), "GET", "/v1/keys", "");
  check(req({"reload"}), "POST", "/v1/reload", "");
  check(req({"member", "db-3"}), "GET", "/v1/members/db-3", "");
  check(req({"user", "42"}), "GET", "/v1/users/42", "");
  check(req({"users", "42", "7"}), "POST", "/v1/users/status", R"({"users":[42,7]})");
  check(req({"heartbeat", "42"}), "POST", "/v1/users/42/heartbeat", "");
  check(req({"heartbeat", "1", "18446744073709551615"}), "POST", "/v1/users/heartbeat",
        R"({"users":[1,18446744073709551615]})");
  check(req({"offline", "42"}), "DELETE", "/v1/users/42", "");
  check(req({"watch"}), "GET", "/v1/events", "");
  check(req({"watch", "--users", "1,2"}), "GET", "/v1/events?users=1,2", "");
  check(req({"watch", "--members", "a", "--users", "3"}), "GET", "/v1/events?users=3&members=a", "");
}

constexpr std::int64_t kNow = 1795916285000;

Outcome answer(std::vector<std::string> args, int status, std::string body) {
  return interpret(parse_ok(args), HttpAnswer{status, "application/json", std::move(body)}, kNow);
}

TEST(CtlCommands, JoinAndForceLeave) {
  auto req = [](std::vector<std::string> args) { return build_request(parse_ok(args)); };
  auto r = req({"join", "10.0.0.12:7701", "db-4.internal:7701"});
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/v1/join");
  EXPECT_EQ(r.body, R"({"addresses":["10.0.0.12:7701","db-4.internal:7701"]})");
  r = req({"force-leave", "db-2"});
  EXPECT_EQ(r.target, "/v1/members/db-2/leave");
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(req({"--prune", "force-leave", "db-2"}).target, "/v1/members/db-2/leave?prune=true");

  EXPECT_EQ(usage_error({"join"}), "join needs at least one ADDRESS");
  EXPECT_EQ(usage_error({"join", "10.0.0.1"}).rfind("join: bad address '10.0.0.1': ", 0), 0u);
  std::vector<std::string> many(18, "a:1");
  many[0] = "join";
  EXPECT_EQ(usage_error(many), "join takes at most 16 ADDRESS arguments, got 17");
  EXPECT_EQ(usage_error({"force-leave"}), "force-leave needs a NAME");
  EXPECT_EQ(usage_error({"force-leave", "a b"}).rfind("bad member name 'a b'", 0), 0u);
  EXPECT_EQ(usage_error({"members", "--prune"}), "--prune is an option of force-leave only");
  EXPECT_EQ(usage_error({"force-leave", "x", "--prune=yes"}), "--prune takes no value");

  auto ok = answer({"join", "a:1", "b:2"}, 200,
                   R"({"joined":[{"address":"a:1","member":"db-1"}],)"
                   R"("failed":[{"address":"b:2","error":"no answer within 2000 ms"}]})");
  EXPECT_EQ(ok.exit_code, 1);
  EXPECT_EQ(ok.out, "joined a:1 (member db-1)\n");
  EXPECT_EQ(ok.err, "heartbeatctl: join b:2 failed: no answer within 2000 ms\n");
  auto none = answer({"join", "b:2"}, 502,
                     R"({"error":"join_failed","message":"no address joined: b:2: no answer"})");
  EXPECT_EQ(none.exit_code, 1);  // the daemon answered: the addresses failed
  EXPECT_EQ(none.err, "heartbeatctl: join failed: no address joined: b:2: no answer\n");
  EXPECT_EQ(answer({"join", "b:2"}, 502, "<html>bad gateway</html>").exit_code, 3);  // a proxy's

  auto left = answer({"force-leave", "db-2", "--prune"}, 200,
                     R"({"member":"db-2","state":"left","previous_state":"dead","forgotten":true})");
  EXPECT_EQ(left.exit_code, 0);
  EXPECT_EQ(left.out, "db-2 left and forgotten (was dead)\n");
  auto alive = answer({"force-leave", "db-1"}, 409,
                      R"({"error":"member_alive","message":"db-1 is alive as this node sees it"})");
  EXPECT_EQ(alive.exit_code, 1);
  EXPECT_NE(alive.err.find("409 member_alive: db-1 is alive"), std::string::npos) << alive.err;
  EXPECT_EQ(answer({"force-leave", "x"}, 404, R"({"error":"unknown_member","message":"m"})").err,
            "heartbeatctl: unknown member x\n");
}

TEST(CtlCommands, HealthIsKeyValueLinesAndDegradedExitsOne) {
  const std::string body =
      R"({"status":"ok","node":"db-3","version":"0.1.0","uptime_ms":81234,)"
      R"("persistence":{"data_dir":"/var/lib/heartbeatd","last_snapshot_ms":null,"failures":0}})";
  auto out = answer({"health"}, 200, body);
  EXPECT_EQ(out.exit_code, 0);
  EXPECT_EQ(out.out,
            "status                        ok\n"
            "node                          db-3\n"
            "version                       0.1.0\n"
            "uptime_ms                     81234\n"
            "persistence.data_dir          /var/lib/heartbeatd\n"
            "persistence.last_snapshot_ms  -\n"
            "persistence.failures          0\n");
  EXPECT_EQ(out.err, "");
  auto degraded = answer({"--json", "health"}, 200, R"({"status" : "degraded", "node":"x"})");
  EXPECT_EQ(degraded.exit_code, 1);
  EXPECT_EQ(degraded.out, "{\"status\":\"degraded\",\"node\":\"x\"}\n");
}

TEST(CtlCommands, KeysTableCountsMembersPerKey) {
  const std::string body =
      R"({"keys":[{"fingerprint":"0f1e2d3c4b5a6978","primary":true,"members":4},)"
      R"({"fingerprint":"8899aabbccddeeff","primary":false,"members":1}],)"
      R"("plaintext_members":0,"unknown_members":2,"seal_outgoing":true,"require_sealed":false})";
  auto out = answer({"keys"}, 200, body);
  EXPECT_EQ(out.exit_code, 0);
  EXPECT_EQ(out.out,
            "KEY               PRIMARY  MEMBERS\n"
            "0f1e2d3c4b5a6978  yes      4\n"
            "8899aabbccddeeff  no       1\n"
            "plaintext         -        0\n"
            "unknown           -        2\n"
            "seal_outgoing: true, require_sealed: false\n");
  EXPECT_EQ(out.err, "");
  EXPECT_EQ(answer({"--json", "keys"}, 200, body).out.rfind("{\"keys\":[{", 0), 0u);
  // No keyring: plain datagrams only.
  EXPECT_EQ(answer({"keys"}, 200,
                   R"({"keys":[],"plaintext_members":3,"unknown_members":0,)"
                   R"("seal_outgoing":false,"require_sealed":false})")
                .out,
            "KEY        PRIMARY  MEMBERS\n"
            "plaintext  -        3\n"
            "unknown    -        0\n"
            "seal_outgoing: false, require_sealed: false\n");
  EXPECT_EQ(answer({"keys"}, 200, R"({"keys":{}})").exit_code, 3);
  EXPECT_EQ(usage_error({"keys", "x"}), "keys takes no arguments, got 'x'");
}

TEST(CtlCommands, ReloadPrintsWhatChangedAndExitsFourWhenARestartIsNeeded) {
  auto done = answer({"reload"}, 200,
                     R"({"result":"applied","applied":["log.level: info -> debug",)"
                     R"j("api.tokens_file: tokens reloaded, 3 in force (were 2)"],"needs_restart":[]})j");
  EXPECT_EQ(done.exit_code, 0);
  EXPECT_EQ(done.out,
            "applied: log.level: info -> debug\n"
            "applied: api.tokens_file: tokens reloaded, 3 in force (were 2)\n");
  EXPECT_EQ(done.err, "");

  auto same = answer({"reload"}, 200, R"({"result":"unchanged","applied":[],"needs_restart":[]})");
  EXPECT_EQ(same.exit_code, 0);
  EXPECT_EQ(same.out, "unchanged: the file matches the running configuration\n");

  const std::string restart =
      R"({"result":"applied","applied":["presence.timeout: 30s -> 10s"],)"
      R"("needs_restart":["api.http: 127.0.0.1:7700 -> 127.0.0.1:7800"]})";
  auto partly = answer({"reload"}, 200, restart);
  EXPECT_EQ(partly.exit_code, kExitNeedsRestart);
  EXPECT_EQ(kExitNeedsRestart, 4);
  EXPECT_EQ(partly.out,
            "applied: presence.timeout: 30s -> 10s\n"
            "needs a restart: api.http: 127.0.0.1:7700 -> 127.0.0.1:7800\n");
  auto json_out = answer({"--json", "reload"}, 200, restart);
  EXPECT_EQ(json_out.exit_code, 4);
  EXPECT_EQ(json_out.out, restart + "\n");

  // Rejected: nothing applied, exit 1, the reason on stderr (and the answer with --json).
  const std::string rejected =
      R"({"error":"config_rejected","message":"/etc/heartbeatd/heartbeatd.yaml:4: api.threads: )"
      R"(expected an integer from 1 to 256, got lots","result":"rejected"})";
  auto no = answer({"reload"}, 422, rejected);
  EXPECT_EQ(no.exit_code, 1);
  EXPECT_EQ(no.out, "");
  EXPECT_EQ(no.err,
            "heartbeatctl: the daemon rejected the new configuration; the running one stays in "
            "force: 422 config_rejected: /etc/heartbeatd/heartbeatd.yaml:4: api.threads: expected "
            "an integer from 1 to 256, got lots\n");
  auto no_json = answer({"--json", "reload"}, 422, rejected);
  EXPECT_EQ(no_json.exit_code, 1);
  EXPECT_EQ(no_json.out, rejected + "\n");

  auto no_file = answer({"reload"}, 409,
                        R"({"error":"no_config_file","message":"started without --config"})");
  EXPECT_EQ(no_file.exit_code, 1);
  EXPECT_EQ(no_file.err, "heartbeatctl: the daemon refused the request: 409 no_config_file: "
                         "started without --config\n");
  EXPECT_EQ(answer({"reload"}, 403, R"({"error":"forbidden","message":"no"})").exit_code, 1);
  EXPECT_EQ(answer({"reload"}, 503, R"({"error":"stopping","message":"stopping"})").exit_code, 3);
  // Not the shape docs/API.md promises: not a heartbeatd answer.
  EXPECT_EQ(answer({"reload"}, 200, R"({"result":"maybe","applied":[],"needs_restart":[]})").exit_code,
            3);
  EXPECT_EQ(answer({"reload"}, 200, R"({"result":"applied","applied":[1],"needs_restart":[]})").err,
            "heartbeatctl: not a heartbeatd answer: \"applied\" holds a non-string\n");
  EXPECT_EQ(usage_error({"reload", "now"}), "reload takes no arguments, got 'now'");
}

TEST(CtlCommands, MembersTableIsAlignedWithAges) {
  const std::string body =
      R"({"members":[{"name":"db-1","address":"10.0.0.11:7701","state":"alive","incarnation":0,)"
      R"("last_seen_ms":1795916284600,"self":true,"tags":{"role":"db","zone":"b"}},)"
      R"({"name":"db-22","address":"[::1]:7701",)"
      R"("state":"dead","incarnation":12,"last_seen_ms":null,"self":false,"tags":{}}]})";
  auto out = answer({"members"}, 200, body);
  EXPECT_EQ(out.exit_code, 0);
  EXPECT_EQ(out.out,
            "NAME   ADDRESS         STATE  INCARNATION  LAST_SEEN  TAGS\n"
            "db-1   10.0.0.11:7701  alive  0            0.4s ago   role=db,zone=b\n"
            "db-22  [::1]:7701      dead   12           -          -\n");
}

TEST(CtlCommands, MemberExitsZeroOnlyWhenAlive) {
  auto member = [](std::string state) {
    return answer({"member", "db-2"}, 200,
                  R"({"name":"db-2","address":"10.0.0.12:7701","state":")" + state +
                      R"(","incarnation":3,"last_seen_ms":1795916281000,"self":false})");
  };
  EXPECT_EQ(member("alive").exit_code, 0);
  EXPECT_EQ(member("alive").out,
            "NAME  ADDRESS         STATE  INCARNATION  LAST_SEEN  TAGS\n"
            "db-2  10.0.0.12:7701  alive  3            4.0s ago   -\n");
  for (auto s : {"suspect", "dead", "left"}) EXPECT_EQ(member(s).exit_code, 1) << s;

  auto unknown = answer({"member", "nobody"}, 404,
                        R"({"error":"unknown_member","message":"no member named nobody in this node's view"})");
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(unknown.out, "");
  EXPECT_EQ(unknown.err, "heartbeatctl: unknown member nobody\n");
}

TEST(CtlCommands, UsersExitZeroOnlyWhenAllOnline) {
  auto user = answer({"user", "42"}, 200, R"({"user":42,"online":true,"last_seen_ms":1795916284000})");
  EXPECT_EQ(user.exit_code, 0);
  EXPECT_EQ(user.out, "USER  ONLINE  LAST_SEEN\n42    yes     1.0s ago\n");
  EXPECT_EQ(answer({"user", "7"}, 200, R"({"user":7,"online":false,"last_seen_ms":null})").exit_code, 1);

  const std::string both =
      R"({"users":[{"user":42,"online":true,"last_seen_ms":1795916284000},)"
      R"({"user":18446744073709551615,"online":false,"last_seen_ms":null}]})";
  auto mixed = answer({"users", "42", "18446744073709551615"}, 200, both);
  EXPECT_EQ(mixed.exit_code, 1);
  EXPECT_EQ(mixed.out,
            "USER                  ONLINE  LAST_SEEN\n"
            "42                    yes     1.0s ago\n"
            "18446744073709551615  no      never\n");
  auto all = answer({"users", "42"}, 200,
                    R"({"users":[{"user":42,"online":true,"last_seen_ms":1795916284000}]})");
  EXPECT_EQ(all.exit_code, 0);
}

TEST(CtlCommands, HeartbeatAndOfflinePrintWhatHappened) {
  EXPECT_EQ(answer({"heartbeat", "42"}, 204, "").out, "accepted 1\n");
  EXPECT_EQ(answer({"--json", "heartbeat", "42"}, 204, "").out, "");
  auto batch = answer({"heartbeat", "1", "2"}, 200, R"({"accepted":2})");
  EXPECT_EQ(batch.exit_code, 0);
  EXPECT_EQ(batch.out, "accepted 2\n");
  EXPECT_EQ(answer({"--json", "heartbeat", "1", "2"}, 200, R"({ "accepted": 2 })").out,
            "{\"accepted\":2}\n");
  auto off = answer({"offline", "42"}, 204, "");
  EXPECT_EQ(off.exit_code, 0);
  EXPECT_EQ(off.out, "user 42 offline\n");
}

TEST(CtlCommands, ErrorAnswersMapToExitCodes) {
  auto refused = answer({"heartbeat", "1", "2"}, 413,
                        R"({"error":"batch_too_large","message":"3 ids, at most 2"})");
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_EQ(refused.err,
            "heartbeatctl: the daemon refused the request: 413 batch_too_large: 3 ids, at most 2\n");
  // A 404 that is not unknown_member (a daemon without the route) is an API error too.
  auto no_route = answer({"member", "x"}, 404, R"({"error":"not_found","message":"no route"})");
  EXPECT_EQ(no_route.exit_code, 1);
  EXPECT_EQ(no_route.err, "heartbeatctl: the daemon refused the request: 404 not_found: no route\n");

  auto overloaded = answer({"health"}, 503, R"({"error":"overloaded","message":"too many"})");
  EXPECT_EQ(overloaded.exit_code, 3);
  EXPECT_EQ(overloaded.err, "heartbeatctl: the daemon failed: 503 overloaded: too many\n");
  EXPECT_EQ(answer({"health"}, 502, "Bad Gateway\n").err,
            "heartbeatctl: the daemon failed: 502 Bad Gateway \n");
  EXPECT_EQ(answer({"health"}, 301, "").exit_code, 3);

  auto not_json = answer({"members"}, 200, "<html>");
  EXPECT_EQ(not_json.exit_code, 3);
  EXPECT_EQ(not_json.err.rfind("heartbeatctl: not a heartbeatd answer: the answer is not JSON", 0), 0u)
      << not_json.err;
  EXPECT_EQ(answer({"members"}, 200, R"({"members":7})").err,
            "heartbeatctl: not a heartbeatd answer: \"members\" is not an array\n");
  EXPECT_EQ(answer({"user", "1"}, 200, R"({"user":1,"online":"yes","last_seen_ms":null})").err,
            "heartbeatctl: not a heartbeatd answer: \"online\" is not a boolean\n");
  EXPECT_EQ(answer({"watch"}, 200, "").exit_code, 3);  // 200 but not text/event-stream
}

TEST(CtlFormat, AgesTimesAndTables) {
  EXPECT_EQ(format_age(10'000, 9'600), "0.4s ago");
  EXPECT_EQ(format_age(10'000, 10'500), "0.0s ago");  // a clock ahead of ours
  EXPECT_EQ(format_age(200'000, 8'000), "3m12s ago");
  EXPECT_EQ(format_age(7'300'000, 0), "2h1m ago");
  EXPECT_EQ(format_age(90'000'000, 0), "1d1h ago");
  EXPECT_EQ(format_utc(1795946401234), "2026-11-29T10:00:01.234Z");
  EXPECT_EQ(format_utc(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_utc(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(format_table({{"A", "BB"}, {"ccc", "d"}}), "A    BB\nccc  d\n");
  EXPECT_EQ(usage_message("x"), "heartbeatctl: x\nTry 'heartbeatctl --help'.\n");
}

// ---------------------------------------------------------------------------------------------
// Server-Sent Events

const std::string kStream =
    ": keepalive\n"
    "event: member\n"
    "data: {\"name\":\"db-3\",\n"
    "data: \"state\":\"dead\"}\n"
    "\n"
    "event:user\r\n"
    "data:{\"user\":42}\r\n"
    "id: 7\r\n"
    "\r\n"
    "event: ignored-without-data\r"
    "\r"
    "data\n"
    "\n"
    "data:  two spaces\n"
    "\n";

const std::vector<SseEvent> kEvents = {
    {"member", "{\"name\":\"db-3\",\n\"state\":\"dead\"}"},
    {"user", "{\"user\":42}"},
    {"message", ""},
    {"message", " two spaces"},
};

TEST(CtlSse, ParsesAWholeStream) {
  SseParser p;
  EXPECT_EQ(p.feed(kStream), kEvents);
  EXPECT_EQ(p.pending_bytes(), 0u);
}

TEST(CtlSse, EventsSplitAtEveryByteGiveTheSameEvents) {
  for (std::size_t cut = 0; cut <= kStream.size(); ++cut) {
    SseParser p;
    auto events = p.feed(std::string_view(kStream).substr(0, cut));
    for (auto& e : p.feed(std::string_view(kStream).substr(cut))) events.push_back(e);
    EXPECT_EQ(events, kEvents) << "split at byte " << cut;
  }
  SseParser p;  // one byte at a time
  std::vector<SseEvent> events;
  for (char c : kStream) p.feed(std::string_view(&c, 1), events);
  EXPECT_EQ(events, kEvents);
}

TEST(CtlSse, CrAtTheEndOfAReadThenLfIsOneLineEnd) {
  SseParser p;
  EXPECT_TRUE(p.feed("data: a\r").empty());
  EXPECT_TRUE(p.feed("\n").empty());  // the LF of CRLF, not a blank line
  EXPECT_EQ(p.feed("\r\n"), (std::vector<SseEvent>{{"message", "a"}}));
}

TEST(CtlSse, ByteOrderMarkCommentsAndUnfinishedEvents) {
  SseParser p;
  EXPECT_EQ(p.feed("\xEF\xBB\xBF" "data: x\n\n:data: y\n\ndata: z\n"),
            (std::vector<SseEvent>{{"message", "x"}}));
  EXPECT_EQ(p.pending_bytes(), 0u);  // "data: z" is complete as a line, not yet as an event
  EXPECT_EQ(p.feed("\n"), (std::vector<SseEvent>{{"message", "z"}}));
}

TEST(CtlSse, EventLinesForTablesAndJson) {
  SseEvent change{"member",
                  R"({"name":"db-3","address":"10.0.0.13:7701","state":"dead","previous":"alive",)"
                  R"("incarnation":4,"time_ms":1795946401234,"initial":false})"};
  auto e = interpret_event(change, false);
  EXPECT_EQ(e.out, "2026-11-29T10:00:01.234Z member db-3 alive -> dead (incarnation 4)\n");
  EXPECT_FALSE(e.exit_code);

  SseEvent first{"member",
                 R"({"name":"db-3","address":"a:1","state":"alive","previous":null,)"
                 R"("incarnation":0,"time_ms":1795946401234,"initial":true})"};
  EXPECT_EQ(interpret_event(first, false).out,
            "2026-11-29T10:00:01.234Z member db-3 alive (incarnation 0, initial)\n");

  SseEvent user{"user", R"({"user":42,"online":true,"last_seen_ms":1795946401000,"time_ms":1795946401234,"initial":false})"};
  EXPECT_EQ(interpret_event(user, false).out, "2026-11-29T10:00:01.234Z user 42 online\n");
  SseEvent user_off{"user", R"({"user":42,"online":false,"last_seen_ms":null,"time_ms":1795946401234,"initial":true})"};
  EXPECT_EQ(interpret_event(user_off, false).out,
            "2026-11-29T10:00:01.234Z user 42 offline (initial)\n");

  auto as_json = json::parse(interpret_event(change, true).out).as_object();
  EXPECT_EQ(as_json.at("event").as_string(), "member");
  EXPECT_EQ(as_json.at("previous").as_string(), "alive");
  EXPECT_EQ(as_json.at("incarnation").as_int64(), 4);
  EXPECT_EQ(as_json.size(), 8u);

  auto dropped = interpret_event({"dropped", R"({"reason":"too slow"})"}, false);
  EXPECT_EQ(dropped.out, "");
  EXPECT_EQ(dropped.err, "heartbeatctl: the daemon dropped this watch: too slow\n");
  EXPECT_EQ(dropped.exit_code, 1);

  EXPECT_EQ(interpret_event({"message", "hello"}, false).out, "");  // not ours: ignored
  auto garbage = interpret_event({"user", "{oops"}, false);
  EXPECT_EQ(garbage.exit_code, 3);
  EXPECT_NE(garbage.err.find("not a heartbeatd event (user)"), std::string::npos) << garbage.err;
}

// ---------------------------------------------------------------------------------------------
// The real binary

ProgramResult ctl(const std::vector<std::string>& args, ProgramOptions options = {}) {
  options.env.emplace("HEARTBEATD_SOCKET", "");  // tests never reach a developer's own daemon
  return run_program(HEARTBEATCTL_BINARY, args, options);
}

// Both ways to reach a daemon.
std::vector<std::vector<std::string>> transports(const DaemonProcess& d) {
  return {{"--socket", d.socket_path()}, {"--http", "127.0.0.1:" + std::to_string(d.port())}};
}

std::vector<std::string> with(std::vector<std::string> transport, std::vector<std::string> args) {
  transport.insert(transport.end(), args.begin(), args.end());
  return transport;
}

json::object json_line(const ProgramResult& r) {
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  json::error_code ec;
  auto v = json::parse(r.out, ec);
  EXPECT_FALSE(ec) << r.out;
  return v.is_object() ? v.as_object() : json::object{};
}

class CtlDaemon : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(daemon_.start()) << daemon_.failure_reason(); }
  DaemonProcess daemon_{{{"presence.max_batch", "3"}}};
};

TEST_F(CtlDaemon, HealthTableAndJson) {
  for (const auto& t : transports(daemon_)) {
    auto r = ctl(with(t, {"health"}));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out.rfind("status ", 0), 0u) << r.out;
    EXPECT_NE(r.out.find("\nnode                      "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(" test-node\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\npersistence.data_dir "), std::string::npos) << r.out;
    EXPECT_EQ(r.err, "");

    auto j = ctl(with(t, {"health", "--json"}));
    EXPECT_EQ(j.exit_code, 0) << j.err;
    auto o = json_line(j);
    EXPECT_EQ(o["status"], "ok");
    EXPECT_EQ(o["node"], "test-node");
    EXPECT_TRUE(o["persistence"].is_object());
  }
}

TEST_F(CtlDaemon, KeysWithoutAKeyring) {
  auto r = ctl(with(transports(daemon_).front(), {"keys"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "KEY        PRIMARY  MEMBERS\n"
            "plaintext  -        1\n"
            "unknown    -        0\n"
            "seal_outgoing: false, require_sealed: false\n");
}

TEST_F(CtlDaemon, MembersAndMember) {
  for (const auto& t : transports(daemon_)) {
    auto r = ctl(with(t, {"members"}));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out.rfind("NAME       ADDRESS", 0), 0u) << r.out;
    EXPECT_NE(r.out.find("\ntest-node  " + daemon_.cluster_address() + "  alive  0 "),
              std::string::npos)
        << r.out;

    auto j = json_line(ctl(with(t, {"--json", "members"})));
    ASSERT_TRUE(j["members"].is_array());
    ASSERT_EQ(j["members"].as_array().size(), 1u);
    EXPECT_EQ(j["members"].as_array()[0].at("name"), "test-node");
    EXPECT_EQ(j["members"].as_array()[0].at("self"), true);

    auto self = ctl(with(t, {"member", "test-node"}));
    EXPECT_EQ(self.exit_code, 0) << self.err;
    EXPECT_NE(self.out.find("test-node  " + daemon_.cluster_address() + "  alive"), std::string::npos);
    EXPECT_EQ(json_line(ctl(with(t, {"member", "test-node", "--json"})))["state"], "alive");

    auto unknown = ctl(with(t, {"member", "nobody"}));
    EXPECT_EQ(unknown.exit_code, 1);
    EXPECT_EQ(unknown.out, "");
    EXPECT_EQ(unknown.err, "heartbeatctl: unknown member nobody\n");
  }
}

// --state and --name reach the daemon's filter: the table keeps its header when nothing
// matches, and --json prints the daemon's filtered answer.
TEST_F(CtlDaemon, MembersFilteredByStateAndName) {
  for (const auto& t : transports(daemon_)) {
    auto alive = ctl(with(t, {"members", "--state", "alive,suspect", "--name", "test-*"}));
    EXPECT_EQ(alive.exit_code, 0) << alive.err;
    EXPECT_NE(alive.out.find("\ntest-node  "), std::string::npos) << alive.out;

    auto none = ctl(with(t, {"members", "--state=dead,left"}));
    EXPECT_EQ(none.exit_code, 0) << none.err;
    EXPECT_EQ(none.out, "NAME  ADDRESS  STATE  INCARNATION  LAST_SEEN  TAGS\n");

    auto j = json_line(ctl(with(t, {"--json", "members", "--name", "test-nod?"})));
    ASSERT_EQ(j["members"].as_array().size(), 1u);
    EXPECT_EQ(j["members"].as_array()[0].at("name"), "test-node");
    EXPECT_EQ(j.size(), 1u) << "no next_cursor without a limit";
    EXPECT_TRUE(json_line(ctl(with(t, {"--json", "members", "--name", "other-*"})))["members"]
                    .as_array()
                    .empty());
  }
}

TEST_F(CtlDaemon, UserOnlineThenOffline) {
  std::uint64_t id = 40;
  for (const auto& t : transports(daemon_)) {
    const std::string user = std::to_string(++id);
    auto never = ctl(with(t, {"user", user}));
    EXPECT_EQ(never.exit_code, 1) << never.err;
    EXPECT_EQ(never.out, "USER  ONLINE  LAST_SEEN\n" + user + "    no      never\n");
    EXPECT_EQ(never.err, "");

    auto beat = ctl(with(t, {"heartbeat", user}));
    EXPECT_EQ(beat.exit_code, 0) << beat.err;
    EXPECT_EQ(beat.out, "accepted 1\n");

    auto online = ctl(with(t, {"user", user}));
    EXPECT_EQ(online.exit_code, 0) << online.err;
    EXPECT_EQ(online.out.rfind("USER  ONLINE  LAST_SEEN\n" + user + "    yes     0.", 0), 0u)
        << online.out;
    auto j = json_line(ctl(with(t, {"--json", "user", user})));
    EXPECT_EQ(j["user"].to_number<std::uint64_t>(), id);
    EXPECT_EQ(j["online"], true);
    EXPECT_TRUE(j["last_seen_ms"].is_int64());

    auto off = ctl(with(t, {"offline", user}));
    EXPECT_EQ(off.exit_code, 0) << off.err;
    EXPECT_EQ(off.out, "user " + user + " offline\n");
    EXPECT_EQ(ctl(with(t, {"--json", "offline", user})).out, "");

    auto offline = ctl(with(t, {"--json", "user", user}));
    EXPECT_EQ(offline.exit_code, 1);
    auto o = json_line(offline);
    EXPECT_EQ(o["online"], false);
    EXPECT_TRUE(o["last_seen_ms"].is_int64());  // logout keeps the last-seen time
  }
}

TEST_F(CtlDaemon, BatchesOfUsers) {
  for (const auto& t : transports(daemon_)) {
    auto beat = ctl(with(t, {"heartbeat", "1", "2", "18446744073709551615"}));
    EXPECT_EQ(beat.exit_code, 0) << beat.err;
    EXPECT_EQ(beat.out, "accepted 3\n");
    EXPECT_EQ(json_line(ctl(with(t, {"--json", "heartbeat", "1", "2"})))["accepted"], 2);

    auto all = ctl(with(t, {"users", "1", "2", "18446744073709551615"}));
    EXPECT_EQ(all.exit_code, 0) << all.err;
    EXPECT_EQ(all.out.rfind("USER                  ONLINE  LAST_SEEN\n1                     yes", 0), 0u)
        << all.out;
    EXPECT_NE(all.out.find("\n18446744073709551615  yes     0."), std::string::npos) << all.out;

    auto some = ctl(with(t, {"users", "1", "99"}));
    EXPECT_EQ(some.exit_code, 1) << some.err;
    EXPECT_NE(some.out.find("\n99    no      never\n"), std::string::npos) << some.out;
    auto j = json_line(ctl(with(t, {"--json", "users", "99", "1"})));
    auto& users = j["users"].as_array();
    ASSERT_EQ(users.size(), 2u);
    EXPECT_EQ(users[0].at("user"), 99);
    EXPECT_EQ(users[0].at("online"), false);
    EXPECT_EQ(users[1].at("online"), true);

    // presence.max_batch is 3: the daemon's 413 and its message, exit 1.
    auto refused = ctl(with(t, {"heartbeat", "1", "2", "3", "4"}));
    EXPECT_EQ(refused.exit_code, 1);
    EXPECT_EQ(refused.out, "");
    EXPECT_EQ(refused.err.rfind("heartbeatctl: the daemon refused the request: 413 batch_too_large: ", 0),
              0u)
        << refused.err;
  }
}

TEST_F(CtlDaemon, DefaultSocketFromTheEnvironment) {
  ProgramOptions env;
  env.env = {{"HEARTBEATD_SOCKET", daemon_.socket_path()}};
  auto r = run_program(HEARTBEATCTL_BINARY, {"health"}, env);
  EXPECT_EQ(r.exit_code, 0) << r.err;

  if (access(std::string(kSystemdSocket).c_str(), F_OK) != 0) {
    // XDG_RUNTIME_DIR: the daemon's socket dir stands in for /run/user/<uid>.
    TempDir runtime;
    ASSERT_EQ(symlink(daemon_.socket_path().c_str(), runtime.file("heartbeatd.sock").c_str()), 0);
    env.env = {{"HEARTBEATD_SOCKET", ""}, {"XDG_RUNTIME_DIR", runtime.path()}};
    r = run_program(HEARTBEATCTL_BINARY, {"member", "test-node"}, env);
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
}

TEST(CtlExit, UsageErrorsExitTwoWithTheHint) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {}, {"bogus"}, {"user", "abc"}, {"user", "-1"}, {"user", "18446744073709551616"},
           {"users"}, {"--http", "nohost", "health"}, {"--timeout", "soon", "health"},
           {"health", "--frob"}}) {
    auto r = ctl(args);
    EXPECT_EQ(r.exit_code, 2) << testing::PrintToString(args);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err.rfind("heartbeatctl: ", 0), 0u) << r.err;
    EXPECT_TRUE(r.err.ends_with("\nTry 'heartbeatctl --help'.\n")) << r.err;
  }
  auto r = ctl({"user", "abc"});
  EXPECT_EQ(r.err,
            "heartbeatctl: bad user id 'abc': expected a user id (unsigned 64-bit integer), got abc "
            "(not a number)\nTry 'heartbeatctl --help'.\n");
}

TEST(CtlExit, HelpAndVersion) {
  auto help = ctl({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_EQ(help.out.rfind("Usage: heartbeatctl", 0), 0u);
  auto version = ctl({"--version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.out.rfind("heartbeatctl ", 0), 0u);
}

// --help and the man page name the same commands, options, variables and exit codes.
TEST(CtlExit, HelpAndManPageAgree) {
  const std::string help = ctl({"--help"}).out;
  const std::string man = read_file(std::string(HEARTBEATD_SOURCE_DIR) + "/docs/heartbeatctl.1");
  ASSERT_FALSE(man.empty());
  auto in_man = [&](std::string word) {
    // roff escapes '-' as '\-' in option names.
    std::string escaped;
    for (char c : word) escaped += c == '-' ? std::string("\\-") : std::string(1, c);
    return man.find(word) != std::string::npos || man.find(escaped) != std::string::npos;
  };
  for (std::string word :
       {"health", "members", "member", "user", "users", "heartbeat", "offline", "watch", "keys",
        "reload", "join", "force-leave", "--prune",
        "--socket", "--http", "--timeout", "--json", "--version", "--help", "--users", "--members",
        "--state", "--name", "GLOB", "--tag", "--ca-file", "--cert", "--key", "https://",
        "HEARTBEATD_SOCKET", "XDG_RUNTIME_DIR", "/run/heartbeatd/heartbeatd.sock",
        "/tmp/heartbeatd-", "18446744073709551615", "[::1]:7700"}) {
    EXPECT_NE(help.find(word), std::string::npos) << word << " missing from --help";
    EXPECT_TRUE(in_man(word)) << word << " missing from docs/heartbeatctl.1";
  }
}

TEST(CtlExit, NobodyListeningExitsThree) {
  TempDir dir;
  auto missing = ctl({"--socket", dir.file("none.sock"), "health"});
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_EQ(missing.err, "heartbeatctl: cannot connect to the daemon at unix socket " +
                             dir.file("none.sock") +
                             ": No such file or directory (is heartbeatd running? see --socket)\n");

  // A socket file left behind by a daemon that is gone.
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string stale = dir.file("stale.sock");
  std::strncpy(addr.sun_path, stale.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  close(fd);
  auto refused = ctl({"--socket", stale, "user", "1"});
  EXPECT_EQ(refused.exit_code, 3);
  EXPECT_NE(refused.err.find("Connection refused"), std::string::npos) << refused.err;

  auto closed_port = ctl({"--http", "127.0.0.1:" + std::to_string(free_tcp_port()), "members"});
  EXPECT_EQ(closed_port.exit_code, 3);
  EXPECT_NE(closed_port.err.find("cannot connect to the daemon at http://127.0.0.1:"),
            std::string::npos)
      << closed_port.err;
  EXPECT_NE(closed_port.err.find("Connection refused"), std::string::npos) << closed_port.err;
}

// A loopback TCP listener the test drives by hand: accepts one client and answers it with
// whatever the test writes.
class FakeServer {
 public:
  FakeServer() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd_, 4) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("cannot listen on loopback");
    }
    port_ = ntohs(addr.sin_port);
  }
  ~FakeServer() {
    if (client_ >= 0) close(client_);
    close(fd_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // Accepts the client and reads its request header (within the deadline).
  std::string accept_request(std::chrono::milliseconds deadline = 10s) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(deadline.count())) != 1) return "";
    client_ = accept(fd_, nullptr, nullptr);
    std::string request;
    while (request.find("\r\n\r\n") == std::string::npos) {
      pollfd c{client_, POLLIN, 0};
      if (poll(&c, 1, static_cast<int>(deadline.count())) != 1) break;
      char buf[1024];
      const ssize_t n = recv(client_, buf, sizeof buf, 0);
      if (n <= 0) break;
      request.append(buf, static_cast<std::size_t>(n));
    }
    return request;
  }
  void send(const std::string& bytes) { ::send(client_, bytes.data(), bytes.size(), MSG_NOSIGNAL); }
  void close_client() {
    close(client_);
    client_ = -1;
  }

 private:
  int fd_ = -1;
  int client_ = -1;
  std::uint16_t port_ = 0;
};

TEST(CtlExit, NoAnswerWithinTheTimeoutOrNotHttpExitsThree) {
  FakeServer silent;  // accepts (through the backlog) and never answers
  auto r = ctl({"--http", silent.address(), "--timeout", "300ms", "health"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.err, "heartbeatctl: no answer from the daemon at http://" + silent.address() +
                       " within 300ms\n");

  FakeServer garbage;
  std::thread server([&] {
    garbage.accept_request();
    garbage.send("SSH-2.0-OpenSSH_9.2\r\n\r\n");
    garbage.close_client();
  });
  r = ctl({"--http", garbage.address(), "health"});
  server.join();
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("is not HTTP"), std::string::npos) << r.err;
}

// ---------------------------------------------------------------------------------------------
// watch against a hand-driven event stream (the daemon's route is tested with the daemon).

const std::string kStreamHeader =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    "Connection: close\r\n\r\n";
const std::string kMemberEvent =
    "event: member\ndata: {\"name\":\"db-3\",\"address\":\"10.0.0.13:7701\",\"state\":\"dead\","
    "\"previous\":\"alive\",\"incarnation\":4,\"time_ms\":1795946401234,\"initial\":false}\n\n";
const std::string kUserEvent =
    "event: user\r\ndata: {\"user\":42,\"online\":true,\"last_seen_ms\":1795946401000,"
    "\"time_ms\":1795946401234,\"initial\":true}\r\n\r\n";

TEST(CtlWatch, PrintsEventsUntilTheDaemonClosesTheStream) {
  FakeServer fake;
  std::string request;
  std::thread server([&] {
    request = fake.accept_request();
    fake.send(kStreamHeader + ": hello\n\n" + kMemberEvent.substr(0, 30));
    fake.send(kMemberEvent.substr(30) + kUserEvent);
    fake.close_client();
  });
  auto r = ctl({"--http", fake.address(), "watch", "--users", "42", "--members", "db-3"});
  server.join();
  EXPECT_EQ(request.rfind("GET /v1/events?users=42&members=db-3 HTTP/1.1\r\n", 0), 0u) << request;
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out,
            "2026-11-29T10:00:01.234Z member db-3 alive -> dead (incarnation 4)\n"
            "2026-11-29T10:00:01.234Z user 42 online (initial)\n");
  EXPECT_EQ(r.err, "heartbeatctl: the daemon at http://" + fake.address() +
                       " closed the event stream\n");
}

TEST(CtlWatch, DroppedExitsOneAndJsonTagsEvents) {
  FakeServer fake;
  std::thread server([&] {
    fake.accept_request();
    fake.send(kStreamHeader + kUserEvent + "event: dropped\ndata: {\"reason\":\"too slow\"}\n\n");
    fake.close_client();
  });
  auto r = ctl({"--http", fake.address(), "--json", "watch"});
  server.join();
  EXPECT_EQ(r.exit_code, 1);
  auto o = json_line(r);
  EXPECT_EQ(o["event"], "user");
  EXPECT_EQ(o["user"], 42);
  EXPECT_EQ(o["initial"], true);
  EXPECT_EQ(r.err, "heartbeatctl: the daemon dropped this watch: too slow\n");
}

TEST(CtlWatch, SigtermEndsTheWatchWithExitZero) {
  for (int sig : {SIGTERM, SIGINT}) {
    FakeServer fake;
    std::thread server([&] {
      fake.accept_request();
      fake.send(kStreamHeader + kMemberEvent);
    });
    ProgramOptions options;
    options.while_running = [&](pid_t pid, const std::function<std::string()>& out) {
      // Signal once the event is printed: the watch is then surely streaming.
      EXPECT_TRUE(eventually([&] { return out().find("member db-3") != std::string::npos; }));
      kill(pid, sig);
    };
    auto r = ctl({"--http", fake.address(), "watch"}, options);
    server.join();
    EXPECT_EQ(r.exit_code, 0) << strsignal(sig) << ": " << r.err;
    EXPECT_EQ(r.out, "2026-11-29T10:00:01.234Z member db-3 alive -> dead (incarnation 4)\n");
    EXPECT_EQ(r.err, "");
  }
}

TEST(CtlWatch, ARefusedWatchShowsTheDaemonsError) {
  FakeServer fake;
  std::thread server([&] {
    fake.accept_request();
    const std::string body = R"({"error":"bad_request","message":"users: bad id x"})";
    fake.send("HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: " +
              std::to_string(body.size()) + "\r\n\r\n" + body);
  });
  auto r = ctl({"--http", fake.address(), "watch"});
  server.join();
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "heartbeatctl: the daemon refused the request: 400 bad_request: users: bad id x\n");
}

// Against the daemon's own stream: the initial state, a change as it happens, SIGTERM.
TEST_F(CtlDaemon, WatchFollowsTheDaemonsEventStream) {
  ProgramOptions options;
  options.while_running = [&](pid_t pid, const std::function<std::string()>& out) {
    EXPECT_TRUE(eventually([&] { return out().find("user 77 offline (initial)") != std::string::npos; }))
        << out();
    EXPECT_EQ(http_tcp(daemon_.port(), "POST", "/v1/users/77/heartbeat").status, 204);
    EXPECT_TRUE(eventually([&] { return out().find("user 77 online\n") != std::string::npos; }))
        << out();
    kill(pid, SIGTERM);
  };
  auto r = ctl({"--socket", daemon_.socket_path(), "watch", "--users", "77"}, options);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(" member test-node alive (incarnation "), std::string::npos) << r.out;
  EXPECT_LT(r.out.find("user 77 offline (initial)"), r.out.find("user 77 online\n")) << r.out;
}

// ---------------------------------------------------------------------------------------------
// Two daemons: member NAME follows the peer's fate.

TEST(CtlCluster, MemberExitsOneOnceTheKilledPeerIsNoLongerAlive) {
  DaemonProcess seed{{{"node.name", "node-0"}}};
  ASSERT_TRUE(seed.start()) << seed.failure_reason();
  DaemonProcess peer{{{"node.name", "node-1"}, {"cluster.seeds", "[" + seed.cluster_address() + "]"}}};
  ASSERT_TRUE(peer.start()) << peer.failure_reason();
  const std::vector<std::string> args{"--socket", seed.socket_path(), "member", "node-1"};

  ASSERT_TRUE(eventually([&] { return ctl(args).exit_code == 0; }, 10s))
      << "node-0 never reported node-1 alive: " << ctl(args).err;
  auto alive = ctl(args);
  EXPECT_NE(alive.out.find("\nnode-1  " + peer.cluster_address() + "  alive"), std::string::npos)
      << alive.out;

  peer.signal(SIGKILL);
  ASSERT_TRUE(peer.wait_exit());
  ProgramResult last;
  ASSERT_TRUE(eventually([&] { return (last = ctl(args)).exit_code == 1; }, 10s))
      << "still " << last.out << last.err;
  EXPECT_TRUE(last.out.find(" suspect ") != std::string::npos ||
              last.out.find(" dead ") != std::string::npos)
      << last.out;
  // And eventually convicted.
  EXPECT_TRUE(eventually([&] { return ctl(args).out.find(" dead ") != std::string::npos; }, 10s));
}

// ---------------------------------------------------------------------------------------------
// The Python client package (clients/python, standard library only), run as a command:
// `PYTHONPATH=clients/python python3 -m heartbeatd ...`. Its own tests are clients/python/tests.

bool python_client_runs() {
  return run_program("python3", {"-c", "import sys; assert sys.version_info >= (3, 9)"}).exit_code ==
         0;
}

ProgramResult python_client(const std::vector<std::string>& args, ProgramOptions options = {}) {
  options.env["PYTHONPATH"] = std::string(HEARTBEATD_SOURCE_DIR) + "/clients/python";
  options.env["PYTHONDONTWRITEBYTECODE"] = "1";  // nothing written into the source tree
  std::vector<std::string> full{"-m", "heartbeatd"};
  full.insert(full.end(), args.begin(), args.end());
  return run_program("python3", full, options);
}

class PythonClient : public CtlDaemon {
 protected:
  void SetUp() override {
    CtlDaemon::SetUp();
    if (!python_client_runs()) {
      GTEST_SKIP() << "python3 (3.9 or later) is not installed: the Python client is not tested";
    }
  }
  ProgramResult py(const std::vector<std::string>& args, ProgramOptions options = {}) {
    return python_client(args, std::move(options));
  }
};

TEST_F(PythonClient, HeartbeatStatusAndMembersOverBothTransports) {
  const std::vector<std::vector<std::string>> ways{
      {"--socket", daemon_.socket_path()}, {"--http", "127.0.0.1:" + std::to_string(daemon_.port())}};
  std::uint64_t base = 1000;
  for (const auto& t : ways) {
    const auto a = std::to_string(++base), b = std::to_string(++base), c = std::to_string(++base);
    auto beat = py(with(t, {"heartbeat", a}));
    EXPECT_EQ(beat.exit_code, 0) << beat.err;
    EXPECT_EQ(beat.out, "heartbeat " + a + "\n");
    auto many = py(with(t, {"heartbeat", b, c}));
    EXPECT_EQ(many.exit_code, 0) << many.err;
    EXPECT_EQ(many.out, "accepted 2\n");

    auto one = py(with(t, {"online", a}));
    EXPECT_EQ(one.exit_code, 0) << one.err;
    EXPECT_EQ(one.out, a + " online\n");
    auto none = py(with(t, {"online", "999999"}));
    EXPECT_EQ(none.exit_code, 1) << none.err;
    EXPECT_EQ(none.out, "999999 offline\n");

    auto st = py(with(t, {"status", a, "999999", c}));
    EXPECT_EQ(st.exit_code, 1) << st.err;
    EXPECT_EQ(st.out, a + " online\n999999 offline\n" + c + " online\n");
    auto all = py(with(t, {"status", a, b}));
    EXPECT_EQ(all.exit_code, 0) << all.err;

    auto members = py(with(t, {"members"}));
    EXPECT_EQ(members.exit_code, 0) << members.err;
    EXPECT_EQ(members.out, "test-node " + daemon_.cluster_address() + " alive\n");
  }
  auto bad = py({"--socket", daemon_.socket_path(), "status", "abc"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("abc"), std::string::npos) << bad.err;
  // More ids than presence.max_batch (3): split into requests the daemon takes.
  auto split = py({"--socket", daemon_.socket_path(), "heartbeat", "1", "2", "3", "4"});
  EXPECT_EQ(split.exit_code, 0) << split.err;
  EXPECT_EQ(split.out, "accepted 4\n");
  auto refused = py({"--socket", daemon_.socket_path(), "member", "nobody"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("404 unknown_member"), std::string::npos) << refused.err;
  // watch: JSON lines, the initial state first, then changes; SIGTERM ends it.
  ProgramOptions options;
  options.while_running = [&](pid_t pid, const std::function<std::string()>& out) {
    EXPECT_TRUE(eventually([&] { return out().find("\"user\": 555") != std::string::npos; })) << out();
    EXPECT_EQ(http_tcp(daemon_.port(), "POST", "/v1/users/555/heartbeat").status, 204);
    EXPECT_TRUE(eventually([&] {
      const std::string text = out();
      return std::count(text.begin(), text.end(), '\n') >= 2;
    })) << out();
    kill(pid, SIGTERM);
  };
  auto watch = py({"--socket", daemon_.socket_path(), "watch", "--users", "555", "--members", ""},
                  options);
  EXPECT_EQ(watch.exit_code, 0) << watch.err;
  std::vector<json::object> events;
  std::size_t start = 0;
  while (start < watch.out.size()) {
    const std::size_t nl = watch.out.find('\n', start);
    events.push_back(json::parse(watch.out.substr(start, nl - start)).as_object());
    start = nl + 1;
  }
  ASSERT_GE(events.size(), 2u) << watch.out;
  EXPECT_EQ(events[0]["event"], "user");
  EXPECT_EQ(events[0]["user"], 555);
  EXPECT_EQ(events[0]["online"], false);
  EXPECT_EQ(events[0]["initial"], true);
  EXPECT_EQ(events[1]["online"], true);
  EXPECT_EQ(events[1]["initial"], false);

  TempDir dir;
  auto gone = py({"--socket", dir.file("none.sock"), "members"});
  EXPECT_EQ(gone.exit_code, 3);
  EXPECT_NE(gone.err.find("cannot reach heartbeatd"), std::string::npos) << gone.err;
}

// Against a daemon with api.tokens_file: a token from --token-file or HEARTBEATD_TOKEN, 401
// and 403 explained with exit 1, and the token never printed.
TEST(CtlTokens, SendsTheTokenAndExplainsRefusals) {
  const std::string writer = "writer-token-0123456789abcdef";
  const std::string reader = "reader-token-0123456789abcdef";
  TempDir secrets;
  secrets.write("tokens", "w write,read " + writer + "\nr read " + reader + "\n");
  chmod(secrets.file("tokens").c_str(), 0600);
  secrets.write("writer", writer + "\n");
  chmod(secrets.file("writer").c_str(), 0600);
  DaemonProcess d({{"api.tokens_file", secrets.file("tokens")}});
  ASSERT_TRUE(d.start()) << d.failure_reason();
  const std::vector<std::string> tcp = {"--http", "127.0.0.1:" + std::to_string(d.port())};

  auto r = ctl(with(tcp, {"heartbeat", "5"}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("the daemon wants a valid API token: 401 unauthenticated"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("--token-file FILE or HEARTBEATD_TOKEN"), std::string::npos) << r.err;

  r = ctl(with(tcp, {"--token-file", secrets.file("writer"), "heartbeat", "5"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;

  ProgramOptions env;
  env.env = {{"HEARTBEATD_TOKEN", reader}};
  r = ctl(with(tcp, {"user", "5"}), env);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = ctl(with(tcp, {"offline", "5"}), env);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("may not do that: 403 forbidden"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(reader), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find(reader), std::string::npos) << r.out;

  // The Python client, the same way.
  if (python_client_runs()) {
    r = python_client(with(tcp, {"heartbeat", "6"}));
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("heartbeatd wants a valid API token: 401 unauthenticated"),
              std::string::npos)
        << r.err;
    r = python_client(with(tcp, {"--token-file", secrets.file("writer"), "heartbeat", "6"}));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    r = python_client(with(tcp, {"online", "6"}), env);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    r = python_client(with(tcp, {"heartbeat", "6"}), env);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("may not do that: 403 forbidden"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find(reader), std::string::npos) << r.err;
  }

  chmod(secrets.file("writer").c_str(), 0644);
  r = ctl(with(tcp, {"--token-file", secrets.file("writer"), "heartbeat", "5"}));
  if (python_client_runs()) {
    auto p = python_client(with(tcp, {"--token-file", secrets.file("writer"), "online", "6"}));
    EXPECT_EQ(p.exit_code, 2);
    EXPECT_NE(p.err.find("readable or writable by others"), std::string::npos) << p.err;
    EXPECT_EQ(p.err.find(writer), std::string::npos) << p.err;
  }
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("readable or writable by others"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(writer), std::string::npos) << r.err;
}

}  // namespace
}  // namespace heartbeatd::test
