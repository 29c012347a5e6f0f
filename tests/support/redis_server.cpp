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
  return eventually([&] { return command("*1\r\n$4\r\nPING\r\n") == "+PONG\r\n"; }, deadline);
}

void RedisServer::stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::string RedisServer::command(const std::string& resp) const {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_);
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      send(fd, resp.data(), resp.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(resp.size())) {
    pollfd p{fd, POLLIN, 0};
    char buf[4096];
    if (poll(&p, 1, 1000) > 0) {
      const ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n > 0) out.assign(buf, static_cast<std::size_t>(n));
    }
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
