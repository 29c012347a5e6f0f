#include "daemon/hooks.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>

#include <fmt/format.h>

#include "base/log.h"
#include "membership/member.h"

extern char** environ;

namespace heartbeatd {
namespace {

constexpr std::size_t kMaxOutput = 4096;  // kept of a hook's stdout + stderr
constexpr std::size_t kLoggedOutput = 512;

// The daemon's environment for hooks, without what belongs to the daemon alone: systemd's
// notification and socket-activation variables, and stale HEARTBEATD_* values.
std::vector<std::string> base_environment() {
  static constexpr std::string_view kDropped[] = {"NOTIFY_SOCKET=", "WATCHDOG_USEC=",
                                                  "WATCHDOG_PID=",  "LISTEN_FDS=",
                                                  "LISTEN_PID=",    "LISTEN_FDNAMES=",
                                                  "HEARTBEATD_"};
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const std::string_view v(*e);
    bool keep = true;
    for (auto prefix : kDropped) keep = keep && !v.starts_with(prefix);
    if (keep) env.emplace_back(v);
  }
  return env;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exit status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {}", WTERMSIG(status));
  return fmt::format("wait status {}", status);
}

std::string one_line(std::string s) {
  if (s.size() > kLoggedOutput) s.resize(kLoggedOutput);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  std::string out;
  for (char c : s) {
    if (c == '\n') {
      out += " | ";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += '?';  // control bytes of a hook's output never reach the log as such
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

HookRunner::HookRunner(HookOptions options) : options_(std::move(options)) {}

HookRunner::~HookRunner() {
  stop();
}

log::Fields HookRunner::log_fields(const Job& job) {
  const char* kind = job.kind == kMember ? "member" : "user";
  return {{"hook", kind}, {kind, job.subject_id}};
}

const std::string& HookRunner::path(Kind kind) const {
  return kind == kMember ? options_.on_member_change : options_.on_user_change;
}

void HookRunner::start() {
  if (options_.on_member_change.empty() && options_.on_user_change.empty()) return;
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  const std::size_t n = std::max(1u, options_.max_concurrent);
  for (std::size_t i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>());
  for (auto& w : workers_) w->thread = std::thread([this, w = w.get()] { work(*w); });
}

void HookRunner::stop() {
  if (stopping_.exchange(true)) return;
  if (stop_fd_ >= 0) {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto r = write(stop_fd_, &one, sizeof one);
  }
  for (auto& w : workers_) {
    {
      std::lock_guard lock(w->mu);
      for (const auto& job : w->queue) counters_[job.kind].dropped.fetch_add(1);
      w->queue.clear();
    }
    w->cv.notify_all();
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
  if (stop_fd_ >= 0) close(stop_fd_);
  stop_fd_ = -1;
}

void HookRunner::member(const transport::MemberEvent& e) {
  if (options_.on_member_change.empty()) return;
  Job job{kMember,
          {"HEARTBEATD_EVENT=member", "HEARTBEATD_NODE=" + options_.node,
           "HEARTBEATD_TIME_MS=" + std::to_string(e.time_ms), "HEARTBEATD_MEMBER_NAME=" + e.name,
           "HEARTBEATD_MEMBER_ADDRESS=" + e.address,
           "HEARTBEATD_MEMBER_STATE=" + std::string(membership::to_string(e.state)),
           "HEARTBEATD_MEMBER_PREVIOUS_STATE=" +
               (e.previous ? std::string(membership::to_string(*e.previous)) : std::string()),
           "HEARTBEATD_MEMBER_INCARNATION=" + std::to_string(e.incarnation),
           "HEARTBEATD_MEMBER_TAGS=" + transport::tags_json(e.tags)},
          "member " + e.name, e.name};
  enqueue(std::hash<std::string>{}(e.name), std::move(job));
}

void HookRunner::user(const transport::UserEvent& e) {
  if (options_.on_user_change.empty()) return;
  Job job{kUser,
          {"HEARTBEATD_EVENT=user", "HEARTBEATD_NODE=" + options_.node,
           "HEARTBEATD_TIME_MS=" + std::to_string(e.time_ms),
           "HEARTBEATD_USER_ID=" + std::to_string(e.user),
           std::string("HEARTBEATD_USER_STATE=") + (e.online ? "online" : "offline"),
           "HEARTBEATD_USER_LAST_SEEN_MS=" +
               (e.last_seen_ms ? std::to_string(*e.last_seen_ms) : std::string())},
          "user " + std::to_string(e.user), std::to_string(e.user)};
  enqueue(std::hash<std::uint64_t>{}(e.user), std::move(job));
}

void HookRunner::enqueue(std::size_t subject_hash, Job job) {
  if (workers_.empty()) return;  // start() was not called: no hooks configured
  Worker& w = *workers_[subject_hash % workers_.size()];
  // One bound for all the queues (hooks.max_queue), so one busy subject may use all of it.
  if (queued_.fetch_add(1) < options_.max_queue) {
    std::lock_guard lock(w.mu);
    if (!stopping_) {
      w.queue.push_back(std::move(job));
      w.cv.notify_one();
      return;
    }
  }
  queued_.fetch_sub(1);
  const auto dropped = counters_[job.kind].dropped.fetch_add(1) + 1;
  // One line per power of two: a flood is visible without flooding the log.
  if ((dropped & (dropped - 1)) == 0) {
    log::warning(log_fields(job),
                 "hooks: queue full (hooks.max_queue {}), event for {} dropped ({} so far)",
                 options_.max_queue, job.subject, dropped);
  }
}

void HookRunner::work(Worker& w) {
  while (true) {
    Job job;
    {
      std::unique_lock lock(w.mu);
      w.cv.wait(lock, [&] { return stopping_ || !w.queue.empty(); });
      if (stopping_) return;
      job = std::move(w.queue.front());
      w.queue.pop_front();
    }
    queued_.fetch_sub(1);
    run(job);
  }
}

void HookRunner::run(const Job& job) {
  const std::string& program = path(job.kind);
  auto& count = counters_[job.kind];
  std::vector<std::string> env = base_environment();
  env.insert(env.end(), job.env.begin(), job.env.end());
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string arg0 = program;
  char* argv[] = {arg0.data(), nullptr};

  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    count.failed.fetch_add(1);
    log::warning(log_fields(job), "hook {} for {}: cannot make a pipe: {}", program, job.subject,
                 std::strerror(errno));
    return;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, out[1], 2);
  // Nothing else of the daemon's: Asio's sockets are not close-on-exec, and a hook (or
  // what it leaves running) holding a listener or a client connection would keep the port
  // taken after a restart, or a closed connection open.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own process group, so a timeout kills whatever it started too; default signal
  // handling and an empty mask, whatever the daemon's threads had.
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  pid_t pid = -1;
  const auto t0 = std::chrono::steady_clock::now();
  const int rc = posix_spawn(&pid, program.c_str(), &actions, &attr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(out[1]);
  if (rc != 0) {
    close(out[0]);
    count.failed.fetch_add(1);
    log::warning(log_fields(job), "hook {} for {}: cannot run: {}", program, job.subject,
                 std::strerror(rc));
    return;
  }
  fcntl(out[0], F_SETFL, O_NONBLOCK);
  // The raw syscall: glibc 2.36's <sys/pidfd.h> lacks extern "C" for C++.
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));

  std::string output;
  auto read_output = [&] {
    char buf[4096];
    while (true) {
      const ssize_t n = read(out[0], buf, sizeof buf);
      if (n <= 0) return n == 0;  // true at end of output
      if (output.size() < kMaxOutput) {
        output.append(buf, std::min<std::size_t>(static_cast<std::size_t>(n),
                                                 kMaxOutput - output.size()));
      }
    }
  };
  const auto deadline = t0 + options_.timeout;
  bool exited = false, timed_out = false, stopped = false, out_open = true;
  while (!exited) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    // Without a pidfd (kernels before 5.3) the exit is checked every 10 ms.
    pollfd fds[3] = {{stop_fd_, POLLIN, 0}, {out_open ? out[0] : -1, POLLIN, 0},
                     {pidfd, POLLIN, 0}};
    const int wait_ms = pidfd >= 0 ? static_cast<int>(std::min<std::int64_t>(left.count(), 60'000))
                                   : 10;
    if (poll(fds, pidfd >= 0 ? 3 : 2, wait_ms) < 0 && errno != EINTR) break;
    if (fds[0].revents) {
      stopped = true;
      break;
    }
    if (fds[1].revents && read_output()) out_open = false;
    if (pidfd >= 0) {
      exited = fds[2].revents != 0;
    } else {
      siginfo_t info{};
      exited = waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
               info.si_pid == pid;
    }
  }
  if (!exited) kill(-pid, SIGKILL);
  int status = 0;
  pid_t waited;
  while ((waited = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  // Only if SIGCHLD were ignored (main() resets it) would the kernel reap it for us.
  const bool status_known = waited == pid;
  if (out_open) read_output();  // what it wrote before exiting
  if (pidfd >= 0) close(pidfd);
  close(out[0]);

  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - t0);
  if (stopped) {
    count.dropped.fetch_add(1);
    log::warning(log_fields(job), "hook {} for {}: killed, heartbeatd is stopping", program,
                 job.subject);
  } else if (timed_out) {
    count.timed_out.fetch_add(1);
    log::warning(log_fields(job), "hook {} for {}: killed after hooks.timeout ({} ms); output: {}",
                 program, job.subject, options_.timeout.count(), one_line(output));
  } else if (!status_known) {
    count.failed.fetch_add(1);
    log::warning(log_fields(job), "hook {} for {}: exit status unknown ({}); output: {}", program,
                 job.subject, std::strerror(errno), one_line(output));
  } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    count.succeeded.fetch_add(1);
    log::debug(log_fields(job), "hook {} for {}: done in {} ms", program, job.subject,
               took.count());
  } else {
    count.failed.fetch_add(1);
    log::warning(log_fields(job), "hook {} for {}: {} after {} ms; output: {}", program,
                 job.subject, describe_status(status), took.count(), one_line(output));
  }
}

std::size_t HookRunner::queued() const {
  // An event being refused counts for a moment before it is taken back out.
  return std::min(queued_.load(), options_.max_queue);
}

HookStats HookRunner::stats(Kind kind) const {
  const auto& c = counters_[kind];
  return {c.succeeded.load(), c.failed.load(), c.timed_out.load(), c.dropped.load()};
}

}  // namespace heartbeatd
