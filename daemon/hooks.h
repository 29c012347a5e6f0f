// HookRunner: runs the operator's executables on events (hooks.on_member_change,
// hooks.on_user_change), with the event in HEARTBEATD_* environment variables, as Serf's
// event handlers do. It is an EventSink of the EventHub: events arrive on the cluster thread
// or the presence tick and are only queued there, so a slow or hung hook never delays
// detection.
//
// Bounded: hooks.max_concurrent workers, each with its own queue; all events of one subject
// (a member name, a user id) go to the same worker, so they run in the order they happened,
// while different subjects run side by side. The queues hold hooks.max_queue events in all;
// an event beyond that is dropped, counted and logged. A hook gets none of the daemon's
// descriptors but stdin (/dev/null), stdout and stderr (a pipe to the daemon). A hook running longer than hooks.timeout
// is killed with its whole process group. Its exit status and the start of its output are
// logged. On stop, queued events are dropped and running hooks killed.
//
// Thread safety: member()/user() from any thread; start() and stop() from one thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/log.h"
#include "daemon/hook_options.h"
#include "transport/api/event_hub.h"

namespace heartbeatd {

struct HookStats {
  std::uint64_t succeeded = 0;
  std::uint64_t failed = 0;     // non-zero exit, killed by a signal, or could not be started
  std::uint64_t timed_out = 0;  // killed at hooks.timeout
  std::uint64_t dropped = 0;    // queue full, or still queued at stop
};

class HookRunner final : public transport::EventSink {
 public:
  explicit HookRunner(HookOptions options);
  ~HookRunner() override;
  HookRunner(const HookRunner&) = delete;
  HookRunner& operator=(const HookRunner&) = delete;

  void start();
  void stop();

  void member(const transport::MemberEvent& e) override;
  void user(const transport::UserEvent& e) override;

  enum Kind { kMember = 0, kUser = 1 };
  HookStats stats(Kind kind) const;
  // Events waiting for a worker, both hooks together (at most hooks.max_queue).
  std::size_t queued() const;

 private:
  struct Job {
    Kind kind;
    std::vector<std::string> env;  // NAME=value, added to the daemon's environment
    std::string subject;           // for the log: "member db-3", "user 42"
    std::string subject_id;        // for the log's fields: "db-3", "42"
  };
  struct Worker {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Job> queue;  // guarded by mu
    std::thread thread;
  };
  void enqueue(std::size_t subject_hash, Job job);
  void work(Worker& w);
  void run(const Job& job);
  const std::string& path(Kind kind) const;
  static log::Fields log_fields(const Job& job);  // hook (member|user), member or user

  const HookOptions options_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<std::size_t> queued_{0};  // jobs in all queues, at most max_queue
  std::atomic<bool> stopping_{false};
  int stop_fd_ = -1;  // an eventfd, readable once stopping: wakes hooks being waited for
  struct Counters {
    std::atomic<std::uint64_t> succeeded{0}, failed{0}, timed_out{0}, dropped{0};
  };
  Counters counters_[2];
};

}  // namespace heartbeatd
