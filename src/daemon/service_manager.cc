#include "daemon/service_manager.h"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <algorithm>
#include <cstdlib>

namespace umacvlan::daemon {

ServiceManager::ServiceManager() : enabled_(std::getenv("NOTIFY_SOCKET") != nullptr) {
  std::uint64_t usec = 0;
  if (enabled_ && sd_watchdog_enabled(0, &usec) > 0) watchdog_usec_ = usec;
}

int ServiceManager::beat_ms() const {
  return watchdog_usec_ == 0 ? -1
                             : static_cast<int>(std::max<std::uint64_t>(watchdog_usec_ / 4000, 1));
}

void ServiceManager::status(const std::string& status) {
  if (!enabled_ || status == status_) return;
  status_ = status;
  send("STATUS=" + status);
}

void ServiceManager::watchdog(const Dataplane& dataplane) {
  const Clock::time_point now = Clock::now();
  const auto fresh_for = std::chrono::microseconds(watchdog_usec_ / 2);
  beats_.resize(dataplane.workers(), Beat{0, now});
  std::size_t stale = beats_.size();
  for (std::size_t w = 0; w < beats_.size(); ++w) {
    const std::uint64_t turns = dataplane.heartbeat(w);
    if (turns != beats_[w].turns) beats_[w] = Beat{turns, now};
    if (now - beats_[w].seen > fresh_for) stale = w;
  }
  if (stale == beats_.size()) {
    if (stalled_) spdlog::info("dataplane: every worker turns again");
    stalled_ = false;
    send("WATCHDOG=1");
    return;
  }
  if (!stalled_) {
    spdlog::error(
        "dataplane: worker {} has not turned for {} ms: no watchdog ping (the service manager "
        "restarts the daemon unless it recovers)",
        stale,
        std::chrono::duration_cast<std::chrono::milliseconds>(now - beats_[stale].seen).count());
  }
  stalled_ = true;
}

void ServiceManager::send(const std::string& state) {
  if (enabled_) sd_notify(0, state.c_str());
}

}  // namespace umacvlan::daemon
