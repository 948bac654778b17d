// ConfigApplier: the daemon's config file, applied at start and on every
// reload (SIGHUP) by the CLI, as a child of the control loop.
//
// Contract: start() runs `umacvlan --socket SOCKET --no-start config apply
// FILE` (the CLI beside the daemon's program, else from PATH) without the
// service manager's variables. The child talks to the daemon like any
// client, so the loop never waits for it: its output (stdout and stderr,
// one pipe) is logged line by line from on_output(), its end seen through a
// pidfd (on_exit()); both fds are handed to the loop with watch(fd, tag).
// A start while a run is going queues one more run after it. Without a
// file, or when it does not exist, start() only logs why nothing happens.
// Without a pidfd the loop calls on_exit() on its ticks
// (running_without_pidfd()).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>

#include "io/owned_fd.h"

namespace umacvlan::daemon {

class ConfigApplier {
 public:
  using Watch = std::function<void(int fd, std::uint64_t tag)>;

  ConfigApplier(std::string file, std::string socket, Watch watch, std::uint64_t output_tag,
                std::uint64_t exit_tag)
      : file_(std::move(file)),
        socket_(std::move(socket)),
        watch_(std::move(watch)),
        output_tag_(output_tag),
        exit_tag_(exit_tag) {}

  void start(const char* why);
  // output_tag: logs the complete lines read so far.
  void on_output();
  // exit_tag (or a tick without a pidfd): logs the status when the child
  // has ended, then starts the queued run.
  void on_exit();
  bool running_without_pidfd() const { return pid_ > 0 && !pidfd_.valid(); }

 private:
  void log_lines(bool flush);

  std::string file_;
  std::string socket_;
  Watch watch_;
  std::uint64_t output_tag_;
  std::uint64_t exit_tag_;
  pid_t pid_ = -1;
  io::OwnedFd output_;
  io::OwnedFd pidfd_;
  std::string partial_;
  bool again_ = false;
};

}  // namespace umacvlan::daemon
