#include "daemon/daemon.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "control/control_channel.h"
#include "daemon/control_server.h"
#include "daemon/dataplane.h"
#include "daemon/link_service.h"
#include "daemon/metrics.h"
#include "daemon/service_manager.h"
#include "io/netns.h"
#include "io/netns_watch.h"
#include "io/owned_fd.h"

namespace umacvlan::daemon {
namespace {

// Link-layer multicast lists raise no event: they are read this often, one
// read per namespace that holds an up device.
constexpr long kTickMillis = 250;
// How often namespace liveness is checked without a trigger (a process that
// left a namespace with setns() raises none).
constexpr int kLivenessTicks = 20;

// Names this daemon's nftables tables (umacvlan_<instance>_N): 8 hex
// digits of the state file's path, so that daemons on different sockets
// never take each other's.
std::string instance_of(const std::string& state_path) {
  std::uint32_t h = 2166136261u;
  for (unsigned char c : state_path) h = (h ^ c) * 16777619u;
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", h);
  return buf;
}

enum Tag : std::uint64_t {
  kServer,
  kMonitor,
  kWatch,
  kNotices,
  kTimer,
  kSignal,
  kWatchdog,
  kMetrics,
  kConfigOutput,
  kConfigExit
};

std::string status_of(const LinkService& links) {
  return fmt::format("{} device(s) on {} lower(s)", links.device_count(), links.port_count());
}

// The CLI program beside ours (the build, PREFIX/sbin), else from PATH.
std::string cli_program() {
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    std::string path(self, static_cast<std::size_t>(n));
    path = path.substr(0, path.find_last_of('/') + 1) + "umacvlan";
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return "umacvlan";
}

// `umacvlan config apply FILE --socket SOCKET` as a child of the control
// loop: it talks to us like any client, so the loop must never wait for
// it. Its output (stdout and stderr, one pipe) is logged line by line, its
// exit through a pidfd. A reload asked for while one runs runs after it.
class ConfigApply {
 public:
  ConfigApply(std::string file, std::string socket)
      : file_(std::move(file)), socket_(std::move(socket)) {}

  // Starts a run, or queues one behind the running one; logs why not when
  // there is no file.
  // watch_fd(fd, tag) adds a descriptor to the loop.
  template <typename Watch>
  void start(const char* why, Watch&& watch_fd) {
    if (file_.empty()) {
      spdlog::info("{}: no config file to apply (--config, UMACVLAN_CONFIG)", why);
      return;
    }
    if (::access(file_.c_str(), F_OK) != 0) {
      spdlog::info("{}: config file {} does not exist: nothing to apply", why, file_);
      return;
    }
    if (pid_ > 0) {
      spdlog::info("{}: an apply of {} is running; another follows it", why, file_);
      again_ = true;
      return;
    }
    const std::string exe = cli_program();
    const char* argv[] = {exe.c_str(), "--socket", socket_.c_str(), "--no-start",
                          "config",    "apply",    file_.c_str(),   nullptr};
    // Our service manager's variables are ours alone.
    std::vector<char*> env;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view v(*e);
      if (v.starts_with("NOTIFY_SOCKET=") || v.starts_with("WATCHDOG_")) continue;
      env.push_back(*e);
    }
    env.push_back(nullptr);
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      spdlog::error("{}: cannot apply {}: pipe: {}", why, file_, std::strerror(errno));
      return;
    }
    sigset_t none;
    sigemptyset(&none);
    const pid_t pid = ::fork();
    if (pid == 0) {
      // Only async-signal-safe calls until exec: other threads exist.
      ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
      ::signal(SIGPIPE, SIG_DFL);
      const int null = ::open("/dev/null", O_RDONLY);
      if (null >= 0) ::dup2(null, STDIN_FILENO);
      ::dup2(fds[1], STDOUT_FILENO);
      ::dup2(fds[1], STDERR_FILENO);
      ::close_range(STDERR_FILENO + 1, ~0U, 0);
      ::execvpe(argv[0], const_cast<char* const*>(argv), env.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    io::OwnedFd output(fds[0]);
    if (pid < 0) {
      spdlog::error("{}: cannot apply {}: fork: {}", why, file_, std::strerror(errno));
      return;
    }
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pidfd < 0) {
      // Without a pidfd we cannot see it end without waiting: reap it in
      // the next ticks instead.
      spdlog::warn("{}: pidfd_open: {}", why, std::strerror(errno));
    }
    ::fcntl(output.get(), F_SETFL, O_NONBLOCK);
    spdlog::info("{}: applying {} ({} config apply, pid {})", why, file_, exe, pid);
    pid_ = pid;
    output_ = std::move(output);
    pidfd_.reset(pidfd);
    watch_fd(output_.get(), kConfigOutput);
    if (pidfd_.valid()) watch_fd(pidfd_.get(), kConfigExit);
  }

  // kConfigOutput: logs the complete lines read so far.
  void on_output() {
    if (!output_.valid()) return;
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(output_.get(), buf, sizeof buf);
      if (n > 0) {
        partial_.append(buf, static_cast<std::size_t>(n));
        log_lines(false);
        continue;
      }
      if (n == 0) {
        log_lines(true);
        output_.reset();  // closing it takes it out of the epoll set
      }
      return;
    }
  }

  // kConfigExit (or a tick without a pidfd): logs the status when the child
  // has ended, then starts the queued run.
  template <typename Watch>
  void on_exit(Watch&& watch_fd) {
    if (pid_ <= 0) return;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return;
    on_output();
    log_lines(true);
    output_.reset();
    pidfd_.reset();
    pid_ = -1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      spdlog::info("config apply of {}: done", file_);
    } else if (WIFEXITED(status)) {
      spdlog::warn("config apply of {}: exit status {}", file_, WEXITSTATUS(status));
    } else {
      spdlog::warn("config apply of {}: killed by signal {}", file_, WTERMSIG(status));
    }
    if (again_) {
      again_ = false;
      start("reload", watch_fd);
    }
  }

  bool running_without_pidfd() const { return pid_ > 0 && !pidfd_.valid(); }

 private:
  void log_lines(bool flush) {
    std::size_t start = 0;
    for (std::size_t nl; (nl = partial_.find('\n', start)) != std::string::npos; start = nl + 1) {
      spdlog::info("config: {}", partial_.substr(start, nl - start));
    }
    partial_.erase(0, start);
    if (flush && !partial_.empty()) {
      spdlog::info("config: {}", partial_);
      partial_.clear();
    }
  }

  std::string file_;
  std::string socket_;
  pid_t pid_ = -1;
  io::OwnedFd output_;
  io::OwnedFd pidfd_;
  std::string partial_;
  bool again_ = false;
};

}  // namespace

int run(const Options& options) {
  ServiceManager manager;
  const double started =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  // Before any thread exists: every thread and socket starts from here.
  {
    const std::string path = options.netns.empty() ? "/proc/1/ns/net" : options.netns;
    io::NetnsFd home(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    // Already there (a service manager started it in the host's namespace):
    // no setns(), which would need CAP_SYS_ADMIN for nothing.
    const bool there = home.valid() && home.inode() == io::current_netns_inode();
    if (!there && (!home.valid() || ::setns(home.get(), CLONE_NEWNET) != 0)) {
      if (!options.netns.empty()) {
        const int err = errno;
        spdlog::error("cannot enter the network namespace {}: {}", path, std::strerror(err));
        manager.failed(err, fmt::format("cannot enter the network namespace {}", path));
        return 1;
      }
      spdlog::warn("cannot enter the host's network namespace ({}); staying in our own",
                   std::strerror(errno));
    }
  }
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  // Blocked before any thread starts, so every thread inherits the mask and
  // only the signalfd sees them.
  ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  io::OwnedFd sfd(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));

  const std::string state_path = options.state_path.empty()
                                     ? control::default_state_path(options.socket_path)
                                     : options.state_path;
  // Under a service manager's watchdog, an idle worker still turns every
  // beat, so that its heartbeat tells a stuck worker from an idle one.
  Dataplane dataplane(options.workers, options.tap_io, options.poll_us, manager.beat_ms());
  io::NetnsWatch watch;
  if (int rc = io::NetnsWatch::open(&watch); rc < 0) {
    spdlog::error("cannot watch namespaces: {}", std::strerror(-rc));
    manager.failed(-rc, "cannot watch namespaces");
    return 1;
  }
  LinkServiceConfig config;
  config.state_path = state_path;
  config.instance = instance_of(state_path);
  config.limits = options.limits;
  LinkService links(config, dataplane, watch);

  ControlServer server;
  const int listened = ControlServer::open(
      options.socket_path,
      [&](const control::LinkRequest& req, const io::NetnsFd& caller) {
        return links.handle(req, caller);
      },
      &server);
  if (listened < 0) {
    spdlog::error("cannot listen on {}: {}{}", options.socket_path, std::strerror(-listened),
                  listened == -EADDRINUSE ? " (another umacvlan daemon serves it)" : "");
    manager.failed(-listened, fmt::format("cannot listen on {}", options.socket_path));
    return 1;
  }
  if (int rc = links.start(); rc < 0) {
    // EPERM here is a capability the service manager did not give.
    spdlog::error("cannot start: {}{}", std::strerror(-rc),
                  rc == -EPERM
                      ? " (the daemon needs CAP_NET_ADMIN, CAP_NET_RAW, CAP_NET_BROADCAST, "
                        "CAP_SYS_ADMIN, CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH)"
                      : "");
    manager.failed(-rc, "cannot start: cannot open rtnetlink");
    return 1;
  }
  if (options.cleanup) {
    spdlog::info("cleanup: removing {} device(s) and the state file {}", links.device_count(),
                 state_path);
    links.remove_everything();
    return 0;
  }
  // --metrics: scrapes wait (bounded) for this loop to take a snapshot.
  MetricsServer metrics;
  if (!options.metrics.empty()) {
    MetricsAddress at;
    std::string why;
    const int rc =
        parse_metrics_address(options.metrics, &at, &why) ? metrics.open(at, &why) : -EINVAL;
    if (rc < 0) {
      spdlog::error("{}", why);
      manager.failed(-rc, why);
      return 1;
    }
    spdlog::info("metrics on {}", at.url());
  }

  io::OwnedFd tfd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  itimerspec its{};
  its.it_interval.tv_nsec = kTickMillis * 1000000L;
  its.it_value = its.it_interval;
  ::timerfd_settime(tfd.get(), 0, &its, nullptr);

  io::OwnedFd ep(::epoll_create1(EPOLL_CLOEXEC));
  auto watch_fd = [&](int fd, Tag tag) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag;
    ::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev);
  };
  watch_fd(server.fd(), kServer);
  watch_fd(links.monitor_fd(), kMonitor);
  watch_fd(watch.fd(), kWatch);
  watch_fd(dataplane.notice_fd(), kNotices);
  watch_fd(tfd.get(), kTimer);
  watch_fd(sfd.get(), kSignal);
  if (metrics.fd() >= 0) watch_fd(metrics.fd(), kMetrics);
  // The watchdog's own timer: the loop pings only from here, so a loop
  // stuck anywhere else never pings.
  io::OwnedFd wdfd;
  if (manager.watchdog_usec() > 0) {
    wdfd.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    itimerspec beat{};
    beat.it_interval.tv_sec = manager.beat_ms() / 1000;
    beat.it_interval.tv_nsec = (manager.beat_ms() % 1000) * 1000000L;
    beat.it_value = beat.it_interval;
    ::timerfd_settime(wdfd.get(), 0, &beat, nullptr);
    watch_fd(wdfd.get(), kWatchdog);
  }
  spdlog::info("umacvlan daemon listening on {} ({} worker(s), state {}{})", options.socket_path,
               dataplane.workers(), state_path,
               manager.watchdog_usec() > 0
                   ? fmt::format(", watchdog {} ms", manager.watchdog_usec() / 1000)
                   : "");
  manager.ready(status_of(links));
  // The config file: once now that we listen, again on every SIGHUP.
  ConfigApply config_apply(options.config_path, options.socket_path);
  config_apply.start("start", watch_fd);

  long idle_ms = 0;
  int ticks = 0;
  bool running = true;
  epoll_event evs[16];
  while (running) {
    const int n = ::epoll_wait(ep.get(), evs, 16, server.next_timeout_ms());
    if (n < 0 && errno != EINTR) {
      spdlog::error("epoll_wait: {}", std::strerror(errno));
      break;
    }
    server.process();  // also expires deadlines when epoll_wait timed out
    for (int i = 0; i < n; ++i) {
      switch (evs[i].data.u64) {
        case kServer:
          break;  // served above
        case kMonitor:
          links.process_events();
          break;
        case kWatch:
          if (auto gone = watch.scan(); !gone.empty()) links.on_orphaned(gone);
          break;
        case kNotices:
          links.on_notices(dataplane.take_notices());
          break;
        case kTimer: {
          std::uint64_t expirations = 0;
          (void)!::read(tfd.get(), &expirations, sizeof expirations);
          links.poll_multicast();
          links.flush_state();
          if (++ticks % kLivenessTicks == 0) {
            if (auto gone = watch.scan(); !gone.empty()) links.on_orphaned(gone);
          }
          const bool idle = links.device_count() == 0 && server.clients() == 0;
          idle_ms = idle ? idle_ms + kTickMillis : 0;
          if (options.idle_exit_seconds > 0 && idle_ms > options.idle_exit_seconds * 1000L)
            running = false;
          manager.status(status_of(links));
          if (config_apply.running_without_pidfd()) config_apply.on_exit(watch_fd);
          break;
        }
        case kWatchdog: {
          std::uint64_t expirations = 0;
          (void)!::read(wdfd.get(), &expirations, sizeof expirations);
          manager.watchdog(dataplane);
          break;
        }
        case kMetrics:
          metrics.serve([&] { return take_metrics(links, dataplane, server, started); });
          break;
        case kConfigOutput:
          config_apply.on_output();
          break;
        case kConfigExit:
          config_apply.on_exit(watch_fd);
          break;
        case kSignal: {
          signalfd_siginfo si;
          if (::read(sfd.get(), &si, sizeof si) != sizeof si) break;
          if (si.ssi_signo == SIGHUP) {
            config_apply.start("SIGHUP", watch_fd);
            break;
          }
          spdlog::info(
              "umacvlan daemon stopping on signal {}; {} device(s) stay for the next start",
              si.ssi_signo, links.device_count());
          links.flush_state();
          running = false;
          break;
        }
      }
    }
  }
  manager.stopping(
      fmt::format("stopping: {} device(s) stay for the next start", links.device_count()));
  return 0;
}

}  // namespace umacvlan::daemon
