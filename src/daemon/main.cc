// umacvlan-daemon: the umacvlan daemon (what `umacvlan daemon` runs, and what
// the CLI starts on demand): its options, its log, then daemon::run().
//
//   umacvlan-daemon [ --socket PATH ] [ --state PATH ] [ --log-file PATH ]
//                   [ --netns PATH ] [ --workers N ] [ --tap-io auto|uring|syscalls ]
//                   [ --poll-us N ] [ --steer adaptive|flow ] [ --max-devices N ]
//                   [ --max-sources N ]
//                   [ --idle-exit SECONDS ] [ --cleanup ] [ --metrics [HOST]:PORT ]
//                   [ --config FILE ]
//
// Logs to stdout (without time stamps, with syslog priorities when that is
// the journal), or to --log-file.
//
// Plain GNU long options (CLI11); --workers, --tap-io, --poll-us, --steer,
// --metrics and --config fall back to UMACVLAN_WORKERS, UMACVLAN_TAP_IO,
// UMACVLAN_POLL_US, UMACVLAN_STEER, UMACVLAN_METRICS and UMACVLAN_CONFIG, so a daemon the CLI
// starts on demand
// takes them from the caller's environment. Exit status: daemon::run()'s, 1 for bad options.
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "control/control_channel.h"
#include "daemon/daemon.h"
#include "daemon/dataplane.h"
#include "daemon/metrics.h"

namespace umacvlan::daemon {
namespace {

constexpr int kExitUsage = 1;

// Under systemd the log (stdout) goes to the journal, which says so in
// JOURNAL_STREAM (device:inode of the stream).
bool stdout_is_journal() {
  const char* env = std::getenv("JOURNAL_STREAM");
  unsigned long long dev = 0, ino = 0;
  if (env == nullptr || std::sscanf(env, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  return ::fstat(STDOUT_FILENO, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

// "%*": the level as the journal reads it, a "<N>" syslog priority prefix
// (so that `journalctl -p warning` works).
class JournalPriority : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    // trace, debug, info, warn, err, critical, off
    static constexpr const char* kPriority[] = {"<7>", "<7>", "<6>", "<4>", "<3>", "<2>", "<6>"};
    const char* p = kPriority[static_cast<int>(msg.level)];
    dest.append(p, p + std::strlen(p));
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JournalPriority>();
  }
};

int daemon_main(int argc, char** argv) {
  CLI::App app{"umacvlan daemon: creates the macvlan links and moves their frames", "daemon"};
  std::string socket = control::default_socket_path();
  std::string state;
  std::string log_file;
  bool foreground = false;
  bool cleanup = false;
  int idle_exit_seconds = 0;
  // One dataplane thread per CPU: each reads its own queue of every TAP and
  // its own ring on the lower.
  std::size_t workers =
      std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, kMaxWorkers);
  core::PortLimits limits;
  app.add_option("--socket", socket, "control socket path")->capture_default_str();
  app.add_option("--state", state,
                 "state file (default: /var/lib/umacvlan/state.json for the default socket, "
                 "else NAME.state.json beside NAME.sock)");
  app.add_option("--log-file", log_file, "append the log to this file instead of stderr");
  std::string netns;
  if (const char* env = std::getenv("UMACVLAN_DAEMON_NETNS"); env != nullptr) netns = env;
  app.add_option("--netns", netns,
                 "network namespace to live in, as a path (default $UMACVLAN_DAEMON_NETNS, else "
                 "the host's: that of PID 1)");
  app.add_flag("--foreground", foreground,
               "accepted for scripts: the daemon always runs in the foreground");
  app.add_flag("--cleanup", cleanup,
               "remove every device this daemon made (and its state file), then exit");
  app.add_option("--workers", workers, "dataplane threads")
      ->envname("UMACVLAN_WORKERS")
      ->check(CLI::Range(std::size_t{1}, kMaxWorkers))
      ->capture_default_str();
  std::string tap_io = "auto";
  app.add_option("--tap-io", tap_io,
                 "how workers read and write TAPs: uring (a burst per system call), syscalls "
                 "(one per frame), auto (uring where the kernel allows)")
      ->envname("UMACVLAN_TAP_IO")
      ->check(CLI::IsMember({"auto", "uring", "syscalls"}))
      ->capture_default_str();
  int poll_us = 0;
  app.add_option("--poll-us", poll_us,
                 "microseconds a worker keeps polling after its last frame before it sleeps "
                 "(lower latency under traffic, a busy core meanwhile; idle costs nothing)")
      ->envname("UMACVLAN_POLL_US")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  std::string steer = "adaptive";
  app.add_option("--steer", steer,
                 "which worker gets a frame: adaptive (each worker pinned to a CPU takes the "
                 "frames that arrive on it, a saturated CPU's go to one that is not), flow "
                 "(by flow hash, workers unpinned)")
      ->envname("UMACVLAN_STEER")
      ->check(CLI::IsMember({"adaptive", "flow"}))
      ->capture_default_str();
  app.add_option("--max-devices", limits.max_devices, "devices per lower")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--max-sources", limits.max_sources, "source-list entries per device")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  std::string metrics;
  app.add_option("--metrics", metrics,
                 "serve Prometheus metrics over HTTP at http://HOST:PORT/metrics (HOST:PORT, "
                 "[IPV6]:PORT or :PORT for 127.0.0.1; default: off)")
      ->envname("UMACVLAN_METRICS")
      ->check(
          [](const std::string& text) {
            MetricsAddress at;
            std::string why;
            return parse_metrics_address(text, &at, &why) ? std::string() : why;
          },
          "[HOST]:PORT");
  std::string config;
  if (const char* env = std::getenv("UMACVLAN_CONFIG"); env != nullptr) config = env;
  app.add_option("--config", config,
                 "config file applied at start and on SIGHUP (default $UMACVLAN_CONFIG, else "
                 "/etc/umacvlan/umacvlan.toml for the default socket and none for another)");
  app.add_option("--idle-exit", idle_exit_seconds,
                 "exit after this many seconds without links or clients (0: never)")
      ->check(CLI::NonNegativeNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitUsage;  // --help is not an error
  }
  if (log_file.empty() && stdout_is_journal()) {
    // The journal has its own time stamps.
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<JournalPriority>('*').set_pattern("%*%v");
    spdlog::set_formatter(std::move(formatter));
  }
  if (!log_file.empty()) {
    try {
      spdlog::set_default_logger(spdlog::basic_logger_mt("umacvlan", log_file));
      spdlog::flush_on(spdlog::level::info);
    } catch (const spdlog::spdlog_ex& e) {
      std::fprintf(stderr, "Cannot log to \"%s\": %s\n", log_file.c_str(), e.what());
      return kExitUsage;
    }
  }
  Options options;
  options.socket_path = socket;
  options.state_path = state;
  options.netns = netns;
  options.idle_exit_seconds = idle_exit_seconds;
  options.workers = workers;
  options.poll_us = poll_us;
  options.steer = steer == "flow" ? Steer::kFlow : Steer::kAdaptive;
  options.tap_io = tap_io == "uring"      ? TapIo::kUring
                   : tap_io == "syscalls" ? TapIo::kSyscalls
                                          : TapIo::kAuto;
  options.limits = limits;
  options.cleanup = cleanup;
  options.metrics = metrics;
  if (config.empty() && std::getenv("UMACVLAN_CONFIG") == nullptr &&
      socket == control::kDefaultSocketPath) {
    config = "/etc/umacvlan/umacvlan.toml";
  }
  options.config_path = config;
  return run(options);
}

}  // namespace
}  // namespace umacvlan::daemon

int main(int argc, char** argv) {
  return umacvlan::daemon::daemon_main(argc, argv);
}
