#include "daemon/systemd_notifier.h"

#include <systemd/sd-daemon.h>

#include <string>

#include "base/log.h"

namespace heartbeatd {

SystemdNotifier::SystemdNotifier() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) watchdog_ = std::chrono::microseconds(usec);
}

void SystemdNotifier::notify(std::string_view state) {
  const std::string s(state);
  const int r = sd_notify(0, s.c_str());
  if (r < 0) log::warning("sd_notify({}) failed: {}", s, std::strerror(-r));
}

void SystemdNotifier::ready(std::string_view status) {
  notify("READY=1\nSTATUS=" + std::string(status));
}

void SystemdNotifier::status(std::string_view status) {
  notify("STATUS=" + std::string(status));
}

void SystemdNotifier::stopping() {
  notify("STOPPING=1\nSTATUS=stopping");
}

void SystemdNotifier::reloading() {
  notify("RELOADING=1");
}

void SystemdNotifier::start_watchdog(const boost::asio::any_io_executor& executor) {
  if (!watchdog_) return;
  timer_ = std::make_unique<boost::asio::steady_timer>(executor);
  timer_->expires_after(*watchdog_ / 2);
  notify("WATCHDOG=1");
  do_watchdog();
}

void SystemdNotifier::do_watchdog() {
  timer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;  // cancelled: stopping
    notify("WATCHDOG=1");
    timer_->expires_at(timer_->expiry() + *watchdog_ / 2);
    do_watchdog();
  });
}

void SystemdNotifier::stop_watchdog() {
  if (timer_) timer_->cancel();
}

}  // namespace heartbeatd
