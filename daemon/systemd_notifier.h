// SystemdNotifier: the sd_notify protocol (READY=1, STATUS=, WATCHDOG=1, STOPPING=1). Outside
// systemd ($NOTIFY_SOCKET unset) every call is a no-op. The watchdog keep-alive runs on an
// Asio timer at half of $WATCHDOG_USEC, re-armed from its expiry so it does not drift.
//
// Thread safety: methods may be called from any thread, except that stop_watchdog() must run
// on the executor passed to start_watchdog() (a strand), where the timer's handler runs.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string_view>

namespace heartbeatd {

class SystemdNotifier {
 public:
  SystemdNotifier();
  void ready(std::string_view status);
  void status(std::string_view status);
  void stopping();
  void reloading();
  // Starts sending WATCHDOG=1 when the service manager asked for it.
  void start_watchdog(const boost::asio::any_io_executor& executor);
  void stop_watchdog();
  std::optional<std::chrono::microseconds> watchdog_interval() const { return watchdog_; }

 private:
  void notify(std::string_view state);
  void do_watchdog();

  std::optional<std::chrono::microseconds> watchdog_;
  std::unique_ptr<boost::asio::steady_timer> timer_;
};

}  // namespace heartbeatd
