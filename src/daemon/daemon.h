// The umacvlan daemon: owns the ports, their devices (TAP) and lowers
// (AF_PACKET), serves the control socket, and runs the dataplane.
//
// Threads: the calling thread is the control thread (the control socket
// and its streams: `capture` (capture_service.h) and `monitor`
// (monitor_service.h), rtnetlink events, the state file, namespace
// liveness, the config file (config_applier.h)); `workers`
// dataplane threads move the frames (dataplane.h). The control thread never
// makes a worker wait, and a slow client never makes the control thread
// wait (control_server.h).
//
// Contract: run() listens on options.socket_path (mode 0600, peers must be
// root or hold CAP_NET_ADMIN), re-adopts the devices the state file names,
// then loops until SIGTERM/SIGINT, or until it has had no devices and
// no client for idle_exit_seconds (0: never). Once it listens, and again on
// every SIGHUP, it applies options.config_path when that file exists: it
// runs `umacvlan --socket SOCKET --no-start config apply FILE` (the CLI
// beside this program) as a child, logs its output line by line and its
// exit status, and never waits for it (the child is a client like any
// other); a SIGHUP during a run queues one more run. Stopping never removes a
// device: the next start re-adopts them all. With cleanup, it re-adopts,
// then removes every device it made, its nftables tables and the state
// file, and returns. Returns a process exit status (non-zero when it could
// not listen, e.g. another daemon serves that socket). Under a service
// manager (NOTIFY_SOCKET) it reports READY=1 after re-adoption, STATUS,
// STOPPING=1, and WATCHDOG=1 only while the control loop and every worker
// turn.
#pragma once

#include <cstddef>
#include <string>

#include "core/port.h"
#include "daemon/dataplane.h"

namespace umacvlan::daemon {

struct Options {
  std::string socket_path;
  // The network namespace the daemon lives in (an nsfs path); empty: the
  // one of PID 1, the host's, whatever namespace the daemon was started from
  // (a CLI in a container or `ip netns exec` starts it on demand). It is
  // the one namespace the daemon keeps alive for good.
  std::string netns;
  std::string state_path;  // empty: control::default_state_path(socket_path)
  int idle_exit_seconds = 0;
  std::size_t workers = 1;
  TapIo tap_io = TapIo::kAuto;
  int poll_us = 0;                 // a worker polls this long after its last frame before it sleeps
  Steer steer = Steer::kAdaptive;  // which worker gets a frame (dataplane.h)
  core::PortLimits limits;
  bool cleanup = false;
  // Prometheus metrics over HTTP (metrics.h): HOST:PORT, [V6]:PORT or :PORT
  // (127.0.0.1); empty: none.
  std::string metrics;
  // The config file applied at start and on SIGHUP (cli/config_file.h);
  // empty: none.
  std::string config_path;
};

int run(const Options& options);

}  // namespace umacvlan::daemon
