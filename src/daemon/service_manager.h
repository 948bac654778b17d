// ServiceManager: what the service manager (systemd, Type=notify) hears
// from the daemon through sd_notify(): READY=1 once it serves, STATUS=
// lines, STOPPING=1, and WATCHDOG=1 while the control loop and every
// dataplane worker turn.
//
// Contract: without NOTIFY_SOCKET in the environment it says nothing and
// costs nothing. watchdog() is called on the control loop's watchdog timer
// (every beat_ms()): it sends WATCHDOG=1 only when every worker's heartbeat
// moved within the last half timeout, so a stuck worker, or a stuck control
// loop that never calls it, lets the timeout run out and the manager
// restart the daemon (which re-adopts its devices). Control thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "daemon/dataplane.h"

namespace umacvlan::daemon {

class ServiceManager {
 public:
  ServiceManager();

  // The watchdog timeout the manager asked for (WATCHDOG_USEC), 0: none.
  std::uint64_t watchdog_usec() const { return watchdog_usec_; }
  // How often workers turn and the control loop checks them: a quarter of
  // the timeout, so a ping never comes late and a single late turn is no
  // false alarm; -1 without a watchdog.
  int beat_ms() const;

  void ready(const std::string& status) { send("READY=1\nSTATUS=" + status); }
  void failed(int err, const std::string& why) {
    send("STATUS=" + why + "\nERRNO=" + std::to_string(err));
  }
  void stopping(const std::string& status) { send("STOPPING=1\nSTATUS=" + status); }
  // Sent only when it changed.
  void status(const std::string& status);
  // WATCHDOG=1 when every worker's heartbeat moved within the last half
  // timeout; else nothing (logged once per stall).
  void watchdog(const Dataplane& dataplane);

 private:
  using Clock = std::chrono::steady_clock;
  struct Beat {
    std::uint64_t turns;
    Clock::time_point seen;  // when turns was last seen to change
  };

  void send(const std::string& state);

  bool enabled_;
  std::uint64_t watchdog_usec_ = 0;
  std::string status_;
  std::vector<Beat> beats_;
  bool stalled_ = false;
};

}  // namespace umacvlan::daemon
