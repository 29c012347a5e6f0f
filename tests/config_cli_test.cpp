// The real binary's command line: --help, --version, --check-config, and every kind of bad
// config file giving exit code 2 with the file, line and key named.
#include <algorithm>
#include <regex>
#include <sstream>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/daemon_process.h"
#include "tests/support/test_util.h"

namespace heartbeatd::test {
namespace {

TEST(Cli, HelpAndVersion) {
  const auto help = run_heartbeatd({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.output.find("--check-config FILE"), std::string::npos);
  EXPECT_NE(help.output.find("Exit codes"), std::string::npos);
  const auto version = run_heartbeatd({"--version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.output.rfind("heartbeatd ", 0), 0u);
}

TEST(Cli, UnknownArgumentIsUsageError) {
  const auto r = run_heartbeatd({"--frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("unknown argument '--frobnicate'"), std::string::npos) << r.output;
  EXPECT_EQ(run_heartbeatd({"--config"}).exit_code, 2);
}

TEST(Cli, CheckConfigAcceptsTheExample) {
  const auto r = run_heartbeatd(
      {"--check-config", std::string(HEARTBEATD_SOURCE_DIR) + "/examples/heartbeatd.yaml"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("presence.timeout: 30s"), std::string::npos) << r.output;
}

// The systemd unit's ExecReload checks the file before it signals: its first command is
// --check-config --quiet of the file ExecStart runs with, which prints one line for the
// journal and fails (so `systemctl reload` fails, and no SIGHUP is sent) on a bad file.
TEST(Cli, ExecReloadChecksTheFileBeforeSignalling) {
  const std::string unit =
      read_file(std::string(HEARTBEATD_SOURCE_DIR) + "/examples/systemd/heartbeatd.service");
  std::vector<std::string> reload;
  std::string start;
  std::istringstream lines(unit);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("ExecReload=")) reload.push_back(line.substr(11));
    if (line.starts_with("ExecStart=")) start = line.substr(10);
  }
  const std::string config = start.substr(start.rfind(' ') + 1);
  EXPECT_EQ(start, "/usr/bin/heartbeatd --config " + config);
  ASSERT_EQ(reload.size(), 2u) << unit;
  EXPECT_EQ(reload[0], "/usr/bin/heartbeatd --check-config " + config + " --quiet");
  EXPECT_EQ(reload[1], "/bin/kill -HUP $MAINPID");

  TempDir dir;
  dir.write("good.yaml", "presence:\n  timeout: 10s\n");
  auto r = run_heartbeatd({"--check-config", dir.file("good.yaml"), "--quiet"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output, dir.file("good.yaml") + ": valid\n");
  dir.write("bad.yaml", "presence:\n  timeout: soon\n");
  r = run_heartbeatd({"--check-config", dir.file("bad.yaml"), "--quiet"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.output.rfind("heartbeatd: config error: " + dir.file("bad.yaml") +
                               ":2: presence.timeout: expected a duration",
                           0),
            0u)
      << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;

  r = run_heartbeatd({"--quiet", "--config", dir.file("good.yaml")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--quiet goes with --check-config"), std::string::npos) << r.output;
}

struct BadConfig {
  const char* kind;
  const char* yaml;
  const char* expected;  // substring of the message: file:line: key ...
  friend void PrintTo(const BadConfig& b, std::ostream* os) { *os << b.kind; }
};

class BadConfigTest : public ::testing::TestWithParam<BadConfig> {};

TEST_P(BadConfigTest, ExitsWith2NamingKeyAndLine) {
  TempDir dir;
  dir.write("bad.yaml", GetParam().yaml);
  const std::string file = dir.file("bad.yaml");
  for (const char* flag : {"--check-config", "--config"}) {
    const auto r = run_heartbeatd({flag, file});
    EXPECT_EQ(r.exit_code, 2) << flag << ": " << r.output;
    EXPECT_NE(r.output.find(file + ":" + GetParam().expected), std::string::npos)
        << flag << ": " << r.output;
  }
}

INSTANTIATE_TEST_SUITE_P(
    EachKind, BadConfigTest,
    ::testing::Values(BadConfig{"unknown_key", "api:\n  threads: 2\n  htp: 1\n",
                                "3: unknown key api.htp"},
                      BadConfig{"wrong_type", "presence:\n  timeout: [1, 2]\n",
                                "2: presence.timeout: expected a duration"},
                      BadConfig{"out_of_range", "node:\n  name: a\napi:\n  threads: 100000\n",
                                "4: api.threads: expected an integer from 1 to 256"},
                      BadConfig{"bad_address", "api:\n  http: 127.0.0.1:http\n",
                                "2: api.http: expected an address host:port"},
                      BadConfig{"bad_duration", "membership:\n  interval: 5 seconds\n",
                                "2: membership.interval: expected a duration"},
                      BadConfig{"invalid_yaml", "api: {http: \n", "2: not valid YAML"},
                      BadConfig{"non_loopback_bind_without_key", "cluster:\n  bind: 0.0.0.0:7701\n",
                                " cluster.bind 0.0.0.0:7701 is not a loopback address and there is "
                                "no cluster.key_file: anyone who can reach it could forge "
                                "heartbeats; set cluster.key_file, or cluster.plaintext: true to "
                                "accept an unauthenticated cluster"},
                      BadConfig{"seal_without_key", "cluster:\n  seal_outgoing: true\n",
                                " cluster.seal_outgoing is true but cluster.key_file is not set"}),
    [](const auto& info) { return std::string(info.param.kind); });

TEST(Cli, UnreadableConfigFile) {
  const auto r = run_heartbeatd({"--config", "/nonexistent/x.yaml"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("/nonexistent/x.yaml: cannot read"), std::string::npos) << r.output;
}

// The man page (docs/heartbeatd.8, installed by the package) names every option, signal,
// exit code and configuration key that --help names, so the two cannot drift apart.
TEST(Cli, HelpAndManPageAgree) {
  const std::string help = run_heartbeatd({"--help"}).output;
  std::string man = read_file(std::string(HEARTBEATD_SOURCE_DIR) + "/docs/heartbeatd.8");
  ASSERT_FALSE(man.empty());
  // roff writes '-' in option names as '\-'.
  man = std::regex_replace(man, std::regex(R"(\\-)"), "-");

  std::set<std::string> words;
  const std::regex option(R"(--[a-z][a-z-]*)"), signal(R"(\bSIG[A-Z]+)"),
      key(R"(\b[a-z_]+\.[a-z_]+(\.[a-z_*]+)*)");
  for (const auto* re : {&option, &signal, &key}) {
    for (std::sregex_iterator it(help.begin(), help.end(), *re), end; it != end; ++it) {
      const std::string w = it->str();
      if (w.ends_with(".yaml")) continue;  // file names, not keys
      words.insert(w);
    }
  }
  ASSERT_GT(words.size(), 20u) << help;
  for (const auto& w : words) {
    EXPECT_NE(man.find(w), std::string::npos) << w << " is in --help, not in docs/heartbeatd.8";
  }

  // Exit codes: a line "  N  ..." in --help, ".B N" under EXIT STATUS in the man page.
  const auto exit_status = man.find(".SH EXIT STATUS");
  ASSERT_NE(exit_status, std::string::npos);
  const std::string man_exits =
      man.substr(exit_status, man.find(".SH", exit_status + 1) - exit_status);
  const std::regex code(R"((^|\n)  ([0-9])  )");
  int codes = 0;
  for (std::sregex_iterator it(help.begin(), help.end(), code), end; it != end; ++it, ++codes) {
    const std::string c = (*it)[2].str();
    EXPECT_NE(man_exits.find(".TP\n.B " + c + "\n"), std::string::npos)
        << "exit code " << c << " is in --help, not under EXIT STATUS in docs/heartbeatd.8";
  }
  EXPECT_GE(codes, 7);
}

}  // namespace
}  // namespace heartbeatd::test
