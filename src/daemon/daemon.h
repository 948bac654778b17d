// The umacvlan daemon: owns the ports, their devices (TAP) and lowers
// (AF_PACKET), serves the control socket, and runs the dataplane.
//
// Contract: run() listens on options.socket_path (mode 0600, peers must be
// root or hold CAP_NET_ADMIN), then loops until SIGTERM/SIGINT, or until it
// has had no devices and no client for idle_exit_seconds (0: never). On exit
// it removes the devices it made (unless keep_devices) and the socket.
// Returns a process exit status.
#pragma once

#include <string>

namespace umacvlan::daemon {

struct Options {
  std::string socket_path;
  bool foreground = true;
  int idle_exit_seconds = 0;
};

int run(const Options& options);

}  // namespace umacvlan::daemon
