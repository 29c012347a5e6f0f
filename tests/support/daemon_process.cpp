#include "tests/support/daemon_process.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

extern char** environ;

namespace heartbeatd::test {

std::string heartbeatd_binary() {
  return HEARTBEATD_BINARY;
}

namespace {
std::uint16_t free_port(int type) {
  int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    throw std::runtime_error("cannot find a free port");
  }
  close(fd);
  return ntohs(addr.sin_port);
}
}  // namespace

std::uint16_t free_tcp_port() {
  return free_port(SOCK_STREAM);
}
std::uint16_t free_udp_port() {
  return free_port(SOCK_DGRAM);
}

std::string render_yaml(const std::map<std::string, std::string>& keys) {
  // Sorted dotted keys group naturally; open each path segment when it changes.
  std::string out;
  std::vector<std::string> open;
  for (const auto& [key, value] : keys) {
    std::vector<std::string> parts;
    std::size_t start = 0, dot;
    while ((dot = key.find('.', start)) != std::string::npos) {
      parts.push_back(key.substr(start, dot - start));
      start = dot + 1;
    }
    const std::string leaf = key.substr(start);
    std::size_t common = 0;
    while (common < open.size() && common < parts.size() && open[common] == parts[common]) {
      ++common;
    }
    open.resize(common);
    for (std::size_t i = common; i < parts.size(); ++i) {
      out += std::string(2 * i, ' ') + parts[i] + ":\n";
      open.push_back(parts[i]);
    }
    out += std::string(2 * parts.size(), ' ') + leaf + ": " + value + "\n";
  }
  return out;
}

RunResult run_heartbeatd(const std::vector<std::string>& args, std::chrono::milliseconds deadline) {
  ProgramOptions options;
  options.deadline = deadline;
  options.merge_output = true;
  const ProgramResult r = run_program(heartbeatd_binary(), args, options);
  return RunResult{r.exit_code, r.out};
}

ProgramResult run_program(const std::string& program, const std::vector<std::string>& args,
                          const ProgramOptions& options) {
  TempDir dir;
  const std::string out_path = dir.file("out.log");
  const std::string err_path = options.merge_output ? out_path : dir.file("err.log");
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    const std::string_view kv = *e;
    if (!options.env.count(std::string(kv.substr(0, kv.find('='))))) env_strings.emplace_back(kv);
  }
  for (const auto& [k, v] : options.env) env_strings.push_back(k + "=" + v);
  std::vector<std::string> argv_s{program};
  argv_s.insert(argv_s.end(), args.begin(), args.end());

  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    const int out_fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err_fd =
        options.merge_output ? out_fd : open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out_fd, STDOUT_FILENO);
    dup2(err_fd, STDERR_FILENO);
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (auto& kv : env_strings) envp.push_back(kv.data());
    envp.push_back(nullptr);
    execvpe(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  if (options.while_running) options.while_running(pid, [&] { return read_file(out_path); });
  ProgramResult result;
  int status = 0;
  const bool done =
      eventually([&] { return waitpid(pid, &status, WNOHANG) == pid; }, options.deadline);
  if (!done) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  } else if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  }
  result.out = read_file(out_path);
  if (!options.merge_output) result.err = read_file(err_path);
  return result;
}

DaemonProcess::DaemonProcess(Keys config) : config_(std::move(config)) {
  socket_path_ = dir_.file("api.sock");
  config_path_ = dir_.file("heartbeatd.yaml");
  notify_path_ = dir_.file("notify.sock");
  cluster_port_ = free_udp_port();

  notify_fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, notify_path_.c_str(), sizeof addr.sun_path - 1);
  if (bind(notify_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    throw std::runtime_error("cannot bind notify socket " + notify_path_);
  }
  // The kernel stamps each message on arrival, so cadence checks do not depend on how
  // often the test polls.
  const int on = 1;
  setsockopt(notify_fd_, SOL_SOCKET, SO_TIMESTAMP, &on, sizeof on);
}

DaemonProcess::~DaemonProcess() {
  if (pid_ > 0 && !exit_code_) {
    kill(pid_, SIGKILL);
    int status;
    waitpid(pid_, &status, 0);
  }
  if (notify_fd_ >= 0) close(notify_fd_);
}

void DaemonProcess::write_config(const std::map<std::string, std::string>& config) {
  std::map<std::string, std::string> full = {
      {"node.name", "test-node"},
      {"node.data_dir", dir_.file("data")},
      {"api.http", "127.0.0.1:" + std::to_string(port_)},
      {"api.unix_socket", socket_path_},
      {"api.threads", "2"},
      {"cluster.bind", cluster_address()},
      {"log.level", "debug"},
  };
  for (const auto& [k, v] : config) full[k] = v;
  write_config_text(render_yaml(full));
}

void DaemonProcess::write_config_text(const std::string& yaml) {
  dir_.write("heartbeatd.yaml", yaml);
}

bool DaemonProcess::start(std::chrono::milliseconds deadline) {
  // A free port can be taken by a parallel test between our probe and the daemon's bind:
  // try again with another port when that happens.
  for (int attempt = 0; attempt < 5; ++attempt) {
    port_ = free_tcp_port();
    write_config(config_);
    exit_code_.reset();
    notifications_.clear();
    notification_times_.clear();

    const std::string log_path = dir_.file("stderr.log");
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e) {
      const std::string_view kv = *e;
      if (kv.starts_with("NOTIFY_SOCKET=") || kv.starts_with("WATCHDOG_") ||
          kv.starts_with("JOURNAL_STREAM=") ||
          env_.count(std::string(kv.substr(0, kv.find('='))))) {
        continue;
      }
      env_strings.emplace_back(kv);
    }
    env_strings.push_back("NOTIFY_SOCKET=" + notify_path_);
    for (const auto& [k, v] : env_) env_strings.push_back(k + "=" + v);

    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      // A test that crashes takes its daemons with it instead of leaving them running.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      const int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(log_fd, STDERR_FILENO);
      dup2(log_fd, STDOUT_FILENO);
      std::vector<char*> envp;
      for (auto& s : env_strings) envp.push_back(s.data());
      envp.push_back(nullptr);
      std::vector<std::string> args = wrapper_;
      args.insert(args.end(), {heartbeatd_binary(), "--config", config_path_});
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execvpe(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    if (wait_notification("READY=1", deadline)) return true;
    if (running()) {
      failure_ = "not ready within the deadline; log:\n" + log();
      return false;
    }
    failure_ = "daemon exited with " + std::to_string(exit_code_.value_or(-1)) + "; log:\n" + log();
    if (log().find("Address already in use") == std::string::npos) return false;
  }
  return false;
}

void DaemonProcess::signal(int sig) {
  if (pid_ > 0 && !exit_code_) kill(pid_, sig);
}

bool DaemonProcess::running() {
  if (pid_ <= 0 || exit_code_) return false;
  int status;
  const pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    return false;
  }
  return true;
}

std::optional<int> DaemonProcess::wait_exit(std::chrono::milliseconds deadline) {
  eventually([this] { return !running(); }, deadline);
  // A daemon that does not exit is a hang to explain: where each thread is, if gdb is here.
  if (!exit_code_ && pid_ > 0 && access("/usr/bin/gdb", X_OK) == 0) {
    std::fprintf(stderr, "[ hang ] heartbeatd %d did not exit; its threads:\n", pid_);
    std::fflush(stderr);
    const std::string cmd = "/usr/bin/gdb -p " + std::to_string(pid_) +
                            " -batch -ex 'thread apply all bt 25' 2>/dev/null | grep -E '^(Thread|#)' >&2";
    [[maybe_unused]] const int rc = std::system(cmd.c_str());
  }
  return exit_code_;
}

void DaemonProcess::drain_notifications() {
  char buf[4096];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timeval))];
  while (true) {
    iovec iov{buf, sizeof buf};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = recvmsg(notify_fd_, &msg, 0);
    if (n <= 0) break;
    auto at = std::chrono::system_clock::now();
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMP) {
        timeval tv;
        std::memcpy(&tv, CMSG_DATA(c), sizeof tv);
        at = std::chrono::system_clock::time_point(std::chrono::seconds(tv.tv_sec) +
                                                   std::chrono::microseconds(tv.tv_usec));
      }
    }
    notifications_.emplace_back(buf, static_cast<std::size_t>(n));
    notification_times_.push_back(at);
  }
}

std::vector<std::chrono::system_clock::time_point> DaemonProcess::notification_times() {
  drain_notifications();
  return notification_times_;
}

std::vector<std::string> DaemonProcess::notifications() {
  drain_notifications();
  return notifications_;
}

bool DaemonProcess::wait_notification(const std::string& needle, std::chrono::milliseconds deadline,
                                      std::size_t since) {
  bool found = false;
  auto scan = [&] {
    drain_notifications();
    for (std::size_t i = since; i < notifications_.size() && !found; ++i) {
      found = notifications_[i].find(needle) != std::string::npos;
    }
    return found;
  };
  eventually([&] { return scan() || !running(); }, deadline);
  return scan();
}

std::string DaemonProcess::log() const {
  return read_file(dir_.file("stderr.log"));
}

bool DaemonProcess::wait_log(const std::string& needle, std::chrono::milliseconds deadline) const {
  return eventually([&] { return log().find(needle) != std::string::npos; }, deadline);
}

double metric(const DaemonProcess& d, const std::string& series) {
  const auto r = http_tcp(d.port(), "GET", "/metrics");
  const std::string needle = "\n" + series + " ";
  const auto at = r.body.find(needle);
  return at == std::string::npos ? -1 : std::stod(r.body.substr(at + needle.size()));
}

}  // namespace heartbeatd::test
