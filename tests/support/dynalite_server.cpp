#include "tests/support/dynalite_server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "tests/support/daemon_process.h"

#ifndef HEARTBEATD_SOURCE_DIR
#error "HEARTBEATD_SOURCE_DIR must be defined (tests/CMakeLists.txt)"
#endif

namespace heartbeatd::test {

std::string DynaliteServer::dynamodb_dir() {
  return std::string(HEARTBEATD_SOURCE_DIR) + "/tests/dynamodb";
}

std::string DynaliteServer::node_binary() {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    std::size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    const std::string dir = end > start ? dirs.substr(start, end - start) : ".";
    const std::string candidate = dir + "/node";
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

std::string DynaliteServer::problem() {
  if (node_binary().empty()) return "node is not on PATH: run scripts/setup";
  if (!std::filesystem::exists(dynamodb_dir() + "/node_modules/dynalite/cli.js")) {
    return dynamodb_dir() + "/node_modules missing: run scripts/setup";
  }
  return "";
}

DynaliteServer::DynaliteServer(std::vector<std::string> extra_args)
    : extra_(std::move(extra_args)), port_(free_tcp_port()) {}

DynaliteServer::~DynaliteServer() {
  stop();
}

std::string DynaliteServer::endpoint() const {
  return "http://127.0.0.1:" + std::to_string(port_);
}

std::string DynaliteServer::log() const {
  return read_file(dir_.file("dynalite.log"));
}

bool DynaliteServer::start(std::chrono::milliseconds deadline) {
  if (!problem().empty()) return false;
  stop();
  // In memory (no --path); tables change state at once instead of after 500 ms.
  std::vector<std::string> args = {node_binary(),
                                   dynamodb_dir() + "/node_modules/dynalite/cli.js",
                                   "--host",
                                   "127.0.0.1",
                                   "--port",
                                   std::to_string(port_),
                                   "--createTableMs",
                                   "0",
                                   "--deleteTableMs",
                                   "0",
                                   "--updateTableMs",
                                   "0"};
  args.insert(args.end(), extra_.begin(), extra_.end());
  pid_ = spawn_logged(args, dir_.file("dynalite.log"));
  if (pid_ <= 0) return false;
  const bool up = eventually(
      [&] {
        if (waitpid(pid_, nullptr, WNOHANG) == pid_) {  // exited (say, the port was taken)
          pid_ = -1;
          return true;
        }
        return dynamo_request(port_, "ListTables", "{}", std::chrono::seconds(1)).status == 200;
      },
      deadline);
  return up && pid_ > 0;
}

void DynaliteServer::stop() {
  kill_and_reap(pid_);
}

HttpResult dynamo_request(std::uint16_t port, const std::string& operation,
                          const std::string& body, std::chrono::milliseconds deadline) {
  // dynalite only looks at the shape of these; the body goes as application/json, which it
  // accepts as well as application/x-amz-json-1.0.
  const std::vector<std::string> headers = {
      "X-Amz-Target: DynamoDB_20120810." + operation,
      "X-Amz-Date: 20260101T000000Z",
      "Authorization: AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/dynamodb/aws4_request, "
      "SignedHeaders=host;x-amz-date, Signature=00",
  };
  auto client = HttpClient::tcp(port);
  if (!client.connected()) {
    HttpResult r;
    r.error = "connect: " + client.connect_error();
    return r;
  }
  return client.request("POST", "/", headers, body, deadline);
}

pid_t spawn_logged(const std::vector<std::string>& argv_strings, const std::string& log_path) {
  std::vector<std::string> args = argv_strings;
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    const int null_fd = open("/dev/null", O_RDONLY);
    const int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(null_fd, STDIN_FILENO);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

void kill_and_reap(pid_t& pid) {
  if (pid <= 0) return;
  kill(pid, SIGKILL);
  int status;
  waitpid(pid, &status, 0);
  pid = -1;
}

std::map<std::string, std::string> dynalite_credentials() {
  return {{"AWS_ACCESS_KEY_ID", "AKIDHEARTBEATDTEST"},
          {"AWS_SECRET_ACCESS_KEY", "heartbeatd-test-secret"},
          {"AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/heartbeatd-test/credentials"},
          {"AWS_CONFIG_FILE", "/nonexistent/heartbeatd-test/config"},
          {"AWS_EC2_METADATA_DISABLED", "true"}};
}

bool create_dynamo_table(std::uint16_t port, const std::string& table, const std::string& key,
                         const std::string& type) {
  const std::string body = R"({"TableName":")" + table +
                           R"(","AttributeDefinitions":[{"AttributeName":")" + key +
                           R"(","AttributeType":")" + type +
                           R"("}],"KeySchema":[{"AttributeName":")" + key +
                           R"(","KeyType":"HASH"}],"BillingMode":"PAY_PER_REQUEST"})";
  if (dynamo_request(port, "CreateTable", body).status != 200) return false;
  // ACTIVE on dynalite's next event-loop turn, not always by the time CreateTable answers.
  return eventually([&] {
    const auto d = dynamo_request(port, "DescribeTable", R"({"TableName":")" + table + "\"}");
    return d.status == 200 && d.body.find("\"ACTIVE\"") != std::string::npos;
  });
}

}  // namespace heartbeatd::test
