#include "tests/support/redis_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "tests/support/daemon_process.h"

namespace heartbeatd::test {

std::string RedisServer::binary() {
  for (const char* p : {"/usr/bin/redis-server", "/usr/local/bin/redis-server"}) {
    if (access(p, X_OK) == 0) return p;
  }
  return "";
}

RedisServer::RedisServer(std::vector<std::string> extra_args)
    : extra_(std::move(extra_args)), port_(free_tcp_port()) {}

RedisServer::~RedisServer() {
  stop();
}

bool RedisServer::start(std::chrono::milliseconds deadline) {
  if (binary().empty()) return false;
  const auto until = std::chrono::steady_clock::now() + deadline;
  for (int attempt = 0;; ++attempt) {
    exited_ = false;
    std::vector<std::string> args = {binary(),      "--port",       std::to_string(port_),
                                     "--bind",      "127.0.0.1",    "--save",
                                     "",            "--appendonly", "no",
                                     "--dir",       dir_.path(),    "--daemonize",
                                     "no",          "--logfile",    dir_.file("redis.log")};
    args.insert(args.end(), extra_.begin(), extra_.end());
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      const int null_fd = open("/dev/null", O_RDWR);
      dup2(null_fd, STDIN_FILENO);
      dup2(null_fd, STDOUT_FILENO);
      dup2(null_fd, STDERR_FILENO);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    // PING until it answers, the deadline passes, or the server exits (a port taken).
    const bool up = eventually(
        [&] {
          int status;
          if (waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            exited_ = true;
            return true;
          }
          return command("*1\r\n$4\r\nPING\r\n") == "+PONG\r\n";
        },
        std::chrono::duration_cast<std::chrono::milliseconds>(until -
                                                              std::chrono::steady_clock::now()));
    if (up && !exited_) return started_ = true;
    if (!exited_ || started_ || attempt == 4 || std::chrono::steady_clock::now() >= until) {
      return false;
    }
    port_ = free_tcp_port();
  }
}

void RedisServer::stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

namespace {
// Where the RESP reply starting at `at` ends, or 0 while it is not all there yet.
std::size_t reply_end(const std::string& s, std::size_t at) {
  const std::size_t eol = s.find("\r\n", at);
  if (at >= s.size() || eol == std::string::npos) return 0;
  const long long n = std::strtoll(s.c_str() + at + 1, nullptr, 10);
  switch (s[at]) {
    case '$': {
      if (n < 0) return eol + 2;  // nil
      const std::size_t end = eol + 2 + static_cast<std::size_t>(n) + 2;
      return s.size() >= end ? end : 0;
    }
    case '*': {
      std::size_t end = eol + 2;
      for (long long i = 0; i < n && end != 0; ++i) end = reply_end(s, end);
      return end;
    }
    default:  // +simple, -error, :integer
      return eol + 2;
  }
}
}  // namespace

std::string RedisServer::command(const std::string& resp, int replies) const {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_);
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      send(fd, resp.data(), resp.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(resp.size())) {
    // A large reply (CLUSTER NODES, INFO) can arrive in several segments, and pipelined ones
    // one by one: read until all are whole, within two seconds in all (a WAIT with a timeout
    // of one second still answers).
    const auto whole = [&] {
      std::size_t end = 0;
      for (int i = 0; i < replies; ++i) {
        if ((end = reply_end(out, end)) == 0) return false;
      }
      return true;
    };
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    char buf[4096];
    while (!whole()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      pollfd p{fd, POLLIN, 0};
      if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      const ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    if (!whole()) out.clear();  // cut short: as if nothing came
  }
  close(fd);
  return out;
}

IoThreads::IoThreads() {
  for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io.run(); });
}

IoThreads::~IoThreads() {
  work_.reset();
  io.stop();
  for (auto& t : threads_) t.join();
}

}  // namespace heartbeatd::test
