// The real binary's command line: --help, --version, --check-config, and every kind of bad
// config file giving exit code 2 with the file, line and key named.
#include <gtest/gtest.h>

#include "tests/support/daemon_process.h"

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

}  // namespace
}  // namespace heartbeatd::test
